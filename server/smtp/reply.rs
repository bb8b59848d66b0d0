//! SMTP replies, and the one place where errors become reply codes.

use crate::mail::inbound::Refused;
use crate::mail::intake::IntakeError;
use crate::mail::transaction::MailError;
use std::fmt;

/// One SMTP reply: basic code, enhanced status code, human text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Self {
        Reply {
            code,
            status,
            text: text.into(),
        }
    }

    /// Whether the session must end after this reply.
    pub fn closes(&self) -> bool {
        self.code == 421
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Replies are one line: never let a value smuggle a line break.
        let text: String = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if self.status.is_empty() {
            write!(f, "{} {}\r\n", self.code, text)
        } else {
            write!(f, "{} {} {}\r\n", self.code, self.status, text)
        }
    }
}

impl From<&MailError> for Reply {
    fn from(e: &MailError) -> Self {
        let text = e.to_string();
        match e {
            MailError::SenderMismatch { .. } | MailError::FromMismatch { .. } => {
                Reply::new(553, "5.7.1", text)
            }
            MailError::RateLimited { .. } => Reply::new(450, "4.7.1", text),
            MailError::LoginsBlocked { .. } => Reply::new(421, "4.7.0", text),
            MailError::BadAddress { .. } => Reply::new(501, "5.1.3", text),
            MailError::NoSuchUser(_) => Reply::new(550, "5.1.1", text),
            MailError::RelayDenied(_) => Reply::new(550, "5.7.1", text),
            // RFC 7372 §3.3: refused by the sender domain's DMARC policy.
            MailError::Refused(Refused::Dmarc { .. }) => Reply::new(550, "5.7.26", text),
            MailError::Refused(Refused::Temporary(_)) => Reply::new(451, "4.4.3", text),
            MailError::HostedSenderWithoutLogin(_) => Reply::new(550, "5.7.1", text),
            MailError::TooManyRecipients(_) => Reply::new(452, "4.5.3", text),
            // RFC 3463 X.2.2 mailbox full: temporary, the owner may make room.
            MailError::MailboxFull(_) | MailError::OverQuota => Reply::new(452, "4.2.2", text),
            // RFC 3463 X.3.1 mail system full.
            MailError::StorageLow { .. } => Reply::new(452, "4.3.1", text),
            MailError::NotEncrypted(n) => Reply::new(
                523,
                "5.7.1",
                format!("Encryption Needed: Invalid Unencrypted Mail ({})", n.0),
            ),
            MailError::Intake(IntakeError::TooBig { .. } | IntakeError::HeaderTooBig) => {
                Reply::new(552, "5.3.4", text)
            }
            MailError::Intake(IntakeError::Store(s)) | MailError::Store(s) if s.is_disk_full() => {
                tracing::error!(error = %e, "mail refused: the disk is full");
                Reply::new(
                    452,
                    "4.3.1",
                    "insufficient system storage: the hub's disk is full; try again later",
                )
            }
            MailError::Intake(IntakeError::Store(_))
            | MailError::Store(_)
            | MailError::Refused(Refused::Spool(_))
            | MailError::Internal(_) => {
                tracing::error!(error = %e, "mail could not be stored");
                Reply::new(
                    451,
                    "4.3.0",
                    "temporary problem storing the message; try again later",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_injection() {
        assert_eq!(
            Reply::new(250, "2.0.0", "OK").to_string(),
            "250 2.0.0 OK\r\n"
        );
        assert_eq!(Reply::new(354, "", "go").to_string(), "354 go\r\n");
        assert_eq!(
            Reply::new(550, "5.1.1", "a\r\n250 fake").to_string(),
            "550 5.1.1 a  250 fake\r\n"
        );
    }
}
