//! The LoRa radio carrier: airtime and the law ([`airtime`]), RNode KISS
//! framing ([`kiss`]) and REYAX RYLR AT lines ([`at`]).

pub mod airtime;
pub mod at;
pub mod kiss;
