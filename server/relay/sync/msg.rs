//! The sync protocol's messages, one postcard record each.

use crate::relay::bundle::ContentId;
use serde::{Deserialize, Serialize};

/// An item offered: its content id and message size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Offered {
    pub(crate) id: ContentId,
    pub(crate) size: u64,
}

/// An item wanted, from byte `from` of its message on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Wanted {
    pub(crate) id: ContentId,
    pub(crate) from: u64,
}

/// An item's envelope; its message follows in `Data` frames from `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Start {
    pub(crate) id: ContentId,
    pub(crate) mail_from: String,
    pub(crate) rcpts: Vec<String>,
    pub(crate) age_ms: u64,
    pub(crate) lifetime_ms: u64,
    pub(crate) hops: u8,
    pub(crate) size: u64,
    pub(crate) from: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Msg {
    Offer {
        items: Vec<Offered>,
        acks: Vec<ContentId>,
        more: bool,
    },
    Want {
        items: Vec<Wanted>,
        more: bool,
    },
    Acks(Vec<ContentId>),
    Start(Start),
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The sender no longer has an item it offered.
    Gone(ContentId),
    Ping,
    Done,
    /// The sender stops the sync, saying why.
    Refuse(String),
    /// An item named a key the receiver does not hold: not taken; it goes
    /// again in full at the next sync. Only with [`ExchangeOptions::keyrefs`].
    Unresolved(ContentId),
}
