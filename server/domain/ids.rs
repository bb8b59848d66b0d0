//! Newtype ids, so an account id is never mistaken for another integer.

use std::fmt;

/// Row id of an account in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Generation of an account's credentials: every password change raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation(pub i64);

impl Generation {
    /// A new account's (the column's default).
    pub const FIRST: Generation = Generation(1);
}

/// Whom a logged-in session belongs to: an account, and the generation of
/// the credentials it logged in with. Account ids are never used twice, so
/// a session that checks its credential again after accounts change (see
/// `Store::credential_current`) notices a removed account or a new password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Credential {
    pub account: AccountId,
    pub generation: Generation,
}

/// Row id of a mailbox in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxId(pub i64);

/// RFC 3501 §2.3.1.1 unique identifier of a message within a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub u32);

/// RFC 7162 modification sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModSeq(pub u64);

/// Row id of an outbox item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub i64);

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Row id of a peer (another hub, or a classic mail server) in the store.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct PeerId(pub i64);

/// Row id of an uplink (a carrier and schedule to a peer) in the store.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct UplinkId(pub i64);

impl From<i64> for PeerId {
    fn from(id: i64) -> PeerId {
        PeerId(id)
    }
}

impl From<i64> for UplinkId {
    fn from(id: i64) -> UplinkId {
        UplinkId(id)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for UplinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
