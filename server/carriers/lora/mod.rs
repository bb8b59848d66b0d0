//! The LoRa radio carrier: airtime and the law ([`airtime`]), RNode KISS
//! framing ([`kiss`]) and REYAX RYLR AT lines ([`at`]) — sans-I/O codecs —
//! then the byte pipe to a modem ([`port`]), the modem drivers ([`modem`])
//! and a simulator of both modems on one channel ([`sim`]).

pub mod airtime;
pub mod at;
pub mod kiss;
pub mod modem;
pub mod port;
pub mod sim;
