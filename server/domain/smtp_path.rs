//! MAIL FROM and RCPT TO, parsed here rather than by smtp-proto: its
//! address parser refuses address literals (`alice@[10.42.0.1]`, RFC 5321
//! §4.1.3), and those are the only addresses a hub without DNS has.
//!
//! RFC 5321 §4.1.1.2-3 and §4.1.2: `MAIL FROM:<reverse-path> [params]`,
//! `RCPT TO:<forward-path> [params]`. Sans-I/O: a line in, a command out.

use std::borrow::Cow;

/// A parsed MAIL or RCPT command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCommand {
    /// The mailbox without angle brackets or source route; "" for `<>`.
    pub address: String,
    /// RFC 1870 SIZE, if given.
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not shaped like `<...>`.
    Syntax(&'static str),
    /// A parameter we do not offer.
    Unsupported(String),
    /// A parameter with a bad value.
    BadValue(&'static str),
}

/// Which command a line is, if it is MAIL or RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Mail,
    Rcpt,
}

/// Recognise `MAIL FROM:` / `RCPT TO:` (any case).
pub fn verb(line: &[u8]) -> Option<Verb> {
    let upper = |n: usize| line.get(..n).map(|p| p.to_ascii_uppercase());
    if upper(10).as_deref() == Some(b"MAIL FROM:") {
        Some(Verb::Mail)
    } else if upper(8).as_deref() == Some(b"RCPT TO:") {
        Some(Verb::Rcpt)
    } else {
        None
    }
}

/// Parse a MAIL or RCPT line (with or without its CRLF).
pub fn parse(verb: Verb, line: &[u8]) -> Result<PathCommand, PathError> {
    parse_with(verb, line, false)
}

/// [`parse`] for batch SMTP (RFC 2442): there is no reply to refuse a
/// parameter with, so the ones this hub does not act on (RFC 3461 DSN's
/// NOTIFY, ORCPT, RET, ENVID, anything newer) are ignored, not refused.
pub fn parse_batch(verb: Verb, line: &[u8]) -> Result<PathCommand, PathError> {
    parse_with(verb, line, true)
}

fn parse_with(verb: Verb, line: &[u8], batch: bool) -> Result<PathCommand, PathError> {
    let text: Cow<'_, str> = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\r', '\n']);
    let rest = &text[if verb == Verb::Mail { 10 } else { 8 }..];
    // Be liberal: some clients put a space after the colon.
    let rest = rest.trim_start();
    let Some(rest) = rest.strip_prefix('<') else {
        return Err(PathError::Syntax(
            "the address must be in angle brackets: <user@example.org>",
        ));
    };
    // Find the closing '>' outside a quoted local part.
    let mut quoted = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or(PathError::Syntax("missing `>` after the address"))?;
    let mut address = &rest[..end];
    // RFC 5321 §4.1.2 source route `@a,@b:mailbox`: ignored (Appendix C).
    if address.starts_with('@') {
        address = address
            .split_once(':')
            .map(|(_, m)| m)
            .ok_or(PathError::Syntax("malformed source route"))?;
    }
    if verb == Verb::Rcpt && address.is_empty() {
        return Err(PathError::Syntax("an empty recipient is not allowed"));
    }
    if address.eq_ignore_ascii_case("postmaster") && verb == Verb::Rcpt {
        return Err(PathError::Syntax(
            "write postmaster with a domain: <postmaster@domain>",
        ));
    }
    let mut cmd = PathCommand {
        address: address.to_string(),
        size: None,
    };
    let params = &rest[end + 1..];
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(PathError::Syntax(
            "a space must separate parameters from the address",
        ));
    }
    for p in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        match (verb, key.to_ascii_uppercase().as_str(), value) {
            (Verb::Mail, "SIZE", Some(v)) => {
                cmd.size = Some(v.parse().map_err(|_| PathError::BadValue("SIZE"))?);
            }
            (Verb::Mail, "BODY", Some(v))
                if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
            (Verb::Mail, "SMTPUTF8", None) => {}
            // RFC 4954 §5: the AUTH parameter may be given; we trust the session's login.
            (Verb::Mail, "AUTH", Some(_)) => {}
            (_, "BODY", _) => return Err(PathError::Unsupported(p.chars().take(40).collect())),
            _ if batch => {}
            _ => return Err(PathError::Unsupported(p.chars().take(40).collect())),
        }
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(s: &str) -> Result<PathCommand, PathError> {
        parse(verb(s.as_bytes()).unwrap(), s.as_bytes())
    }

    #[test]
    fn rfc_5321_examples_and_client_habits() {
        let ok = |s: &str, addr: &str, size: Option<u64>| {
            assert_eq!(
                mail(s),
                Ok(PathCommand {
                    address: addr.into(),
                    size
                }),
                "{s}"
            );
        };
        ok("MAIL FROM:<Smith@bar.com>\r\n", "Smith@bar.com", None);
        ok("RCPT TO:<Jones@foo.com>\r\n", "Jones@foo.com", None);
        ok("MAIL FROM:<>\r\n", "", None);
        ok(
            "mail from:<a@[10.42.0.1]> BODY=8BITMIME SMTPUTF8",
            "a@[10.42.0.1]",
            None,
        );
        ok(
            "MAIL FROM: <a@[IPv6:::1]> SIZE=1000",
            "a@[IPv6:::1]",
            Some(1000),
        );
        ok(
            "RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>",
            "userc@d.bar.org",
            None,
        );
        ok("RCPT TO:<\"odd>name\"@x.org>", "\"odd>name\"@x.org", None);
        ok(
            "MAIL FROM:<jörg@bücher.example> SMTPUTF8",
            "jörg@bücher.example",
            None,
        );
        ok("MAIL FROM:<a@b.c> AUTH=<>", "a@b.c", None);
    }

    #[test]
    fn refusals() {
        assert!(matches!(mail("MAIL FROM:a@b.c"), Err(PathError::Syntax(_))));
        assert!(matches!(
            mail("MAIL FROM:<a@b.c"),
            Err(PathError::Syntax(_))
        ));
        assert!(matches!(mail("RCPT TO:<>"), Err(PathError::Syntax(_))));
        assert!(matches!(
            mail("MAIL FROM:<a@b.c>SIZE=1"),
            Err(PathError::Syntax(_))
        ));
        assert!(matches!(
            mail("MAIL FROM:<a@b.c> SIZE=big"),
            Err(PathError::BadValue("SIZE"))
        ));
        assert!(matches!(
            mail("MAIL FROM:<a@b.c> BODY=BINARYMIME"),
            Err(PathError::Unsupported(_))
        ));
        assert!(matches!(
            mail("RCPT TO:<a@b.c> NOTIFY=NEVER"),
            Err(PathError::Unsupported(_))
        ));
        assert!(matches!(
            mail("RCPT TO:<a@b.c> SIZE=1"),
            Err(PathError::Unsupported(_))
        ));
        assert_eq!(
            parse_batch(
                Verb::Rcpt,
                b"RCPT TO:<a@b.c> NOTIFY=NEVER ORCPT=rfc822;a@b.c"
            )
            .map(|c| c.address),
            Ok("a@b.c".into())
        );
        assert!(parse_batch(Verb::Mail, b"MAIL FROM:<a@b.c> BODY=BINARYMIME").is_err());
        assert_eq!(verb(b"MAIL TO:<x>"), None);
        assert_eq!(verb(b"RCPT"), None);
    }
}
