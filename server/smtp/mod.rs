//! SMTP: submission for phones (implicit TLS and STARTTLS) and the MX port
//! for peers, on tokio, with commands parsed by `smtp-proto`.
//!
//! RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 4616 (PLAIN),
//! RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
//! RFC 6531 (SMTPUTF8), RFC 2034 / 3463 (enhanced status codes),
//! RFC 8314 (implicit TLS for submission).

pub mod reply;
pub mod server;
pub mod session;

pub use server::{Listener, Mode, SmtpContext};
