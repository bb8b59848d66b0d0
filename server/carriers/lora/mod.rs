//! The LoRa radio carrier: RNode KISS framing ([`kiss`]) and REYAX RYLR AT
//! lines ([`at`]) — sans-I/O codecs — then the byte pipe to a modem
//! ([`port`]), the modem drivers ([`modem`]), the drivers behind the radio
//! sync's traits ([`opener`]), a simulator of both modems on one channel
//! ([`sim`]), and the serial devices a modem could be on ([`devices`]).
//! Air time and the law are in `domain::lora`.

pub mod at;
pub mod devices;
pub mod kiss;
pub mod modem;
pub mod opener;
pub mod port;
pub mod sim;
