//! What happens to accounts and messages: the rules between the protocol
//! front ends (SMTP, IMAP, web, CLI) and the store.

pub mod accounts;

pub use accounts::{AccountError, Accounts};
pub mod bounce;
pub mod dclogin;
pub mod dkim;
pub mod inbound;
pub mod intake;
pub mod policy;
pub mod ratelimit;
pub mod rules;
pub mod transaction;
