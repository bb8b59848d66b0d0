//! The names of the hub's listeners, as printed at start and shown on the
//! status page, and which configuration field each comes from.

/// Names of services as printed and shown on the status page.
pub const SMTP_SUBMISSION_TLS: &str = "smtp submission (TLS)";
pub const SMTP_SUBMISSION: &str = "smtp submission (STARTTLS)";
pub const SMTP_MX: &str = "smtp mx";
pub const IMAP_TLS: &str = "imap (TLS)";
pub const IMAP_STARTTLS: &str = "imap (STARTTLS)";
pub const WEB_HTTP: &str = "web";
pub const WEB_HTTPS: &str = "web (TLS)";
pub const LINK: &str = "link";

pub fn service_name(field: &str) -> &'static str {
    match field {
        "listen.smtp_submission_tls" => SMTP_SUBMISSION_TLS,
        "listen.smtp_submission" => SMTP_SUBMISSION,
        "listen.smtp_mx" => SMTP_MX,
        "listen.imap_tls" => IMAP_TLS,
        "listen.imap" => IMAP_STARTTLS,
        "listen.https" => WEB_HTTPS,
        "listen.link" => LINK,
        _ => WEB_HTTP,
    }
}
