//! IMAP for Delta Chat and ordinary mail apps, on imap-next's sans-I/O
//! server (imap-codec parses and encodes), driven by our own I/O loop so
//! STARTTLS and IDLE fit. Mailbox logic (UIDs, sequence numbers, modseq,
//! expunge bookkeeping) is ours and lives in [`view`] and the store.
//!
//! RFC 3501 (IMAP4rev1), RFC 2177 (IDLE), RFC 2971 (ID), RFC 5161 (ENABLE),
//! RFC 6851 (MOVE), RFC 4315 (UIDPLUS), RFC 7162 (CONDSTORE, QRESYNC),
//! RFC 9208 (QUOTA), RFC 5464 (METADATA), RFC 7888 (LITERAL+),
//! RFC 3691 (UNSELECT), RFC 2342 (NAMESPACE), RFC 5256 (SORT), RFC 5957
//! (SORT=DISPLAY).

pub mod cmd;
pub mod connection;
pub mod fetch;
pub mod literals;
pub mod pattern;
pub mod server;
pub mod session;
pub mod sort;
pub mod view;

pub use server::{ImapContext, Mode};

/// Longest mailbox name, in bytes: deep folder paths fit, and LIST's
/// cost per name stays small. CREATE took 5000-character names before.
pub const MAX_MAILBOX_NAME: usize = 512;
/// Mailboxes one account may have: every LIST and STATUS walks them all.
pub const MAX_MAILBOXES: usize = 1000;

/// Capabilities before login; `STARTTLS` before TLS, and `AUTH=PLAIN` or
/// `LOGINDISABLED` are added as the connection allows.
pub const CAPABILITIES_BEFORE_LOGIN: &[&str] =
    &["IMAP4rev1", "ID", "ENABLE", "LITERAL+", "SASL-IR"];

/// Capabilities after login (Delta Chat reads them only then).
pub const CAPABILITIES_AUTHENTICATED: &[&str] = &[
    "IMAP4rev1",
    "IDLE",
    "MOVE",
    "UIDPLUS",
    "QUOTA",
    "METADATA",
    "ID",
    "ENABLE",
    "LITERAL+",
    "UNSELECT",
    "NAMESPACE",
    "CONDSTORE",
    "QRESYNC",
    "SORT",
    "SORT=DISPLAY",
    "XCHATMAIL",
];
pub mod search;
pub mod structure;
