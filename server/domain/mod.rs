//! Plain types and rules with no I/O: addresses, ids, passwords, units.

pub mod address;
pub mod ids;
pub mod lora;
pub mod password;
pub mod smtp_path;
pub mod units;
pub mod wifi;

pub use address::{Address, AddressError, Domain};

/// Lower-case hex of some bytes (hashes, random names).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
pub use ids::{
    AccountId, Credential, Generation, ItemId, MailboxId, ModSeq, PeerId, Uid, UplinkId,
};
pub use password::{Password, PasswordError, PasswordHash};
