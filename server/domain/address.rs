//! Mail addresses and domains as a hub accepts them for its accounts.
//!
//! RFC 5321 §4.1.2 (Mailbox syntax), §4.1.3 (address literals), §4.5.3.1
//! (size limits); RFC 6531 (UTF-8 local parts); RFC 5890/5891 (IDNA).
//!
//! Canonical form: the local part in lower case (a hub has no case-distinct
//! users), the domain in lower-case ASCII (punycode for internationalised
//! names), IP literals in their normal text form (`[10.42.0.1]`,
//! `[IPv6:2001:db8::1]`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: a domain is at most 255 octets.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3 path limit of 256 octets minus the angle brackets.
pub const MAX_ADDRESS: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` has no `@`: write an address like alice@example.org")]
    NoAt(String),
    #[error("the part before `@` is empty: write an address like alice@example.org")]
    EmptyLocal,
    #[error("the part before `@` is longer than {MAX_LOCAL_PART} bytes")]
    LocalTooLong,
    #[error(
        "the part before `@` may hold letters, digits and . _ - + only, and no leading, trailing or double dot: `{0}`"
    )]
    BadLocal(String),
    #[error("the domain is empty")]
    EmptyDomain,
    #[error("the address is longer than {MAX_ADDRESS} bytes")]
    AddressTooLong,
    #[error("the domain is longer than {MAX_DOMAIN} bytes")]
    DomainTooLong,
    #[error("`{0}` is not a valid domain name: {1}")]
    BadDomain(String, &'static str),
    #[error("`{0}` is not a valid address literal: write [10.42.0.1] or [IPv6:2001:db8::1]")]
    BadLiteral(String),
}

/// A mail domain: a DNS name (stored as lower-case ASCII) or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    Name(String),
    Literal(IpAddr),
}

impl Domain {
    /// Parse a domain as a user or a peer writes it: `example.org`,
    /// `bücher.example`, `[10.42.0.1]`, `[IPv6:::1]`.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| AddressError::BadLiteral(s.to_string()))?;
            // RFC 5321 §4.1.3: IPv6 literals carry the `IPv6:` tag.
            let ip = if let Some(v6) = strip_prefix_ci(inner, "IPv6:") {
                IpAddr::V6(
                    Ipv6Addr::from_str(v6).map_err(|_| AddressError::BadLiteral(s.to_string()))?,
                )
            } else {
                IpAddr::V4(
                    Ipv4Addr::from_str(inner)
                        .map_err(|_| AddressError::BadLiteral(s.to_string()))?,
                )
            };
            return Ok(Domain::Literal(ip));
        }
        let s = s.strip_suffix('.').unwrap_or(s);
        // A leading `_` marks a private name (`_hub.lan`): Delta Chat skips
        // the CA check for such hosts but still checks the certificate's SAN.
        let (underscore, rest) = match s.strip_prefix('_') {
            Some(rest) => ("_", rest),
            None => ("", s),
        };
        let ascii = idna::domain_to_ascii_strict(rest).map_err(|_| {
            AddressError::BadDomain(s.to_string(), "not a valid (internationalised) name")
        })?;
        if ascii.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        if ascii.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        for label in ascii.split('.') {
            if label.is_empty() {
                return Err(AddressError::BadDomain(
                    s.to_string(),
                    "it has an empty label",
                ));
            }
            if label.len() > 63 {
                return Err(AddressError::BadDomain(
                    s.to_string(),
                    "a label is longer than 63 characters",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(AddressError::BadDomain(
                    s.to_string(),
                    "a label starts or ends with `-`",
                ));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(AddressError::BadDomain(
                    s.to_string(),
                    "only letters, digits and `-` are allowed",
                ));
            }
        }
        if ascii.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(AddressError::BadDomain(
                s.to_string(),
                "a bare IP address must be written in brackets, like [10.42.0.1]",
            ));
        }
        Ok(Domain::Name(format!("{underscore}{ascii}")))
    }

    /// The domain as people read it: Unicode for IDNs, brackets for literals.
    pub fn to_unicode(&self) -> String {
        match self {
            Domain::Name(n) => idna::domain_to_unicode(n).0,
            Domain::Literal(_) => self.to_string(),
        }
    }

    /// The IP address of a literal domain.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Domain::Literal(ip) => Some(*ip),
            Domain::Name(_) => None,
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // Compared as bytes: slicing the str at a byte count could cut a
    // multi-byte character in two (and panic) on a peer's input.
    let head = s.as_bytes().get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix.as_bytes()) {
        // The matched bytes are ASCII, so this is a character boundary.
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::Name(n) => f.write_str(n),
            Domain::Literal(IpAddr::V4(ip)) => write!(f, "[{ip}]"),
            Domain::Literal(IpAddr::V6(ip)) => write!(f, "[IPv6:{ip}]"),
        }
    }
}

impl FromStr for Domain {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

/// A mailbox address `local@domain` in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: Domain,
}

impl Address {
    /// Parse an account address. Quoted local parts are refused: no phone
    /// app creates them and they make every later comparison ambiguous.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let s = input.trim();
        let s = s
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(s);
        // The domain may be an IPv6 literal, which has no `@`, so split at the last one.
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| AddressError::NoAt(s.to_string()))?;
        if local.is_empty() {
            return Err(AddressError::EmptyLocal);
        }
        if local.len() > MAX_LOCAL_PART {
            return Err(AddressError::LocalTooLong);
        }
        if !local_is_valid(local) {
            return Err(AddressError::BadLocal(local.to_string()));
        }
        let domain = Domain::parse(domain)?;
        let local = local.to_lowercase();
        let addr = Address { local, domain };
        if addr.to_string().len() > MAX_ADDRESS {
            return Err(AddressError::AddressTooLong);
        }
        Ok(addr)
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

/// Dot-atom (RFC 5322 §3.2.3) restricted to the characters account names
/// use, plus any non-ASCII letter (RFC 6531 SMTPUTF8).
fn local_is_valid(local: &str) -> bool {
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return false;
    }
    local.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, '.' | '_' | '-' | '+')
            || (!c.is_ascii() && c.is_alphanumeric())
    })
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A literal with a multi-byte character where `IPv6:` would end used
    /// to panic (found by the smtp_session fuzz target via AUTH).
    #[test]
    fn literals_with_odd_characters_are_refused_not_panicked_on() {
        for input in [
            "u@[127-\u{FFFD}.0.1]",
            "u@[IPv\u{e9}:::1]",
            "u@[\u{1F600}]",
            "u@[IPv6\u{e9}]",
        ] {
            assert!(Address::parse(input).is_err(), "{input}");
        }
        assert_eq!(strip_prefix_ci("ab\u{e9}", "abc"), None);
        assert_eq!(strip_prefix_ci("IPV6:x", "IPv6:"), Some("x"));
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("alice@example.org", "alice@example.org"),
            ("Alice@Example.ORG", "alice@example.org"),
            ("<bob@example.org>", "bob@example.org"),
            ("  carol@example.org. ", "carol@example.org"),
            ("a.b+tag@example.org", "a.b+tag@example.org"),
            ("u@[10.42.0.1]", "u@[10.42.0.1]"),
            ("u@[127.0.0.1]", "u@[127.0.0.1]"),
            ("u@[IPv6:2001:DB8::1]", "u@[IPv6:2001:db8::1]"),
            ("u@[ipv6:::1]", "u@[IPv6:::1]"),
            ("jörg@bücher.example", "jörg@xn--bcher-kva.example"),
            ("ÄNNE@BÜCHER.example", "änne@xn--bcher-kva.example"),
            ("u@xn--bcher-kva.example", "u@xn--bcher-kva.example"),
            ("u@localhost", "u@localhost"),
            ("u@_Hub.lan", "u@_hub.lan"),
        ];
        for (input, want) in cases {
            let got = Address::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "{input}");
        }
    }

    #[test]
    fn unicode_display_of_idn() {
        let a = Address::parse("u@bücher.example").unwrap();
        assert_eq!(a.domain().to_unicode(), "bücher.example");
        let d = Domain::parse("[10.42.0.1]").unwrap();
        assert_eq!(d.to_unicode(), "[10.42.0.1]");
        assert_eq!(d.ip(), Some("10.42.0.1".parse().unwrap()));
    }

    #[test]
    fn rejects() {
        let long_local = format!("{}@example.org", "a".repeat(65));
        let long_domain = format!("a@{}.org", vec!["b".repeat(60); 5].join("."));
        let long_label = format!("a@{}.org", "b".repeat(64));
        type Check = fn(&AddressError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("alice", |e| matches!(e, AddressError::NoAt(_))),
            ("@example.org", |e| matches!(e, AddressError::EmptyLocal)),
            ("alice@", |e| matches!(e, AddressError::EmptyDomain)),
            (".alice@example.org", |e| {
                matches!(e, AddressError::BadLocal(_))
            }),
            ("al..ice@example.org", |e| {
                matches!(e, AddressError::BadLocal(_))
            }),
            ("alice.@example.org", |e| {
                matches!(e, AddressError::BadLocal(_))
            }),
            ("\"al ice\"@example.org", |e| {
                matches!(e, AddressError::BadLocal(_))
            }),
            ("al ice@example.org", |e| {
                matches!(e, AddressError::BadLocal(_))
            }),
            ("alice@exa mple.org", |e| {
                matches!(e, AddressError::BadDomain(..))
            }),
            ("alice@example..org", |e| {
                matches!(e, AddressError::BadDomain(..))
            }),
            ("alice@-example.org", |e| {
                matches!(e, AddressError::BadDomain(..))
            }),
            ("alice@ex_ample.org", |e| {
                matches!(e, AddressError::BadDomain(..))
            }),
            ("alice@10.42.0.1", |e| {
                matches!(e, AddressError::BadDomain(..))
            }),
            ("alice@[10.42.0]", |e| {
                matches!(e, AddressError::BadLiteral(_))
            }),
            ("alice@[10.42.0.1", |e| {
                matches!(e, AddressError::BadLiteral(_))
            }),
            ("alice@[::1]", |e| matches!(e, AddressError::BadLiteral(_))),
            ("alice@[IPv6:10.0.0.1]", |e| {
                matches!(e, AddressError::BadLiteral(_))
            }),
        ];
        for (input, ok) in cases {
            let err = Address::parse(input).expect_err(input);
            assert!(ok(&err), "{input}: unexpected {err:?}");
        }
        assert!(matches!(
            Address::parse(&long_local),
            Err(AddressError::LocalTooLong)
        ));
        assert!(Address::parse(&long_domain).is_err());
        assert!(matches!(
            Address::parse(&long_label),
            Err(AddressError::BadDomain(..))
        ));
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = Address::parse("alice").unwrap_err().to_string();
        assert!(e.contains("alice@example.org"), "{e}");
        let e = Domain::parse("10.42.0.1").unwrap_err().to_string();
        assert!(e.contains("[10.42.0.1]"), "{e}");
    }
}
