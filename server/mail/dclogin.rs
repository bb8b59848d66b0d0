//! `dclogin:` links and QR codes that configure Delta Chat for an account
//! of this hub in one scan (Delta Chat's `src/qr/dclogin_scheme.rs` format):
//!
//! ```text
//! dclogin:alice@[10.42.0.1]?p=<pw>&v=1&ih=10.42.0.1&ip=993&is=ssl&sh=10.42.0.1&sp=465&ss=ssl&ic=3
//! ```
//!
//! `ic=3` (accept invalid certificates) because the hub's certificate is
//! self-signed: phones cannot check it against any authority.

/// Where phones reach the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Host name or IP address (no brackets).
    pub host: String,
    /// Implicit-TLS IMAP and SMTP submission ports.
    pub imap_port: u16,
    pub smtp_port: u16,
}

/// Percent-encode everything but unreserved characters (RFC 3986 §2.3),
/// keeping `@[]:` in the address part when `address` is set.
fn encode(s: &str, address: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (address && matches!(b, b'@' | b'[' | b']' | b':'));
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `dclogin:` URI for an account.
pub fn uri(address: &str, password: &str, at: &Endpoints) -> String {
    let host = encode(&at.host, false);
    format!(
        "dclogin:{}?p={}&v=1&ih={host}&ip={}&is=ssl&sh={host}&sp={}&ss=ssl&ic=3",
        encode(address, true),
        encode(password, false),
        at.imap_port,
        at.smtp_port
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_account_link() {
        let at = Endpoints {
            host: "10.42.0.1".into(),
            imap_port: 993,
            smtp_port: 465,
        };
        assert_eq!(
            uri("alice@[10.42.0.1]", "k7xq2-m9wpt h&=?", &at),
            "dclogin:alice@[10.42.0.1]?p=k7xq2-m9wpt%20h%26%3D%3F&v=1&ih=10.42.0.1&ip=993&is=ssl&sh=10.42.0.1&sp=465&ss=ssl&ic=3"
        );
    }
}
