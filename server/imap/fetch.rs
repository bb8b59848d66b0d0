//! Sections of a stored message for FETCH (RFC 3501 §6.4.5): the header,
//! selected header fields, the text, MIME parts by number, partial ranges.
//! Sans-I/O: bytes in, bytes out.

/// Offset just past the blank line that ends the header section.
pub fn header_end(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 2;
    }
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(raw.len())
}

/// The header fields whose names are (or with `not`, are not) in `names`,
/// each with its continuation lines, followed by the blank line.
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line
                .iter()
                .position(|&b| b == b':')
                .map(|i| String::from_utf8_lossy(&line[..i]).trim().to_string());
            keep = match name {
                Some(n) => names.iter().any(|w| w.eq_ignore_ascii_case(&n)) != not,
                None => false,
            };
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Apply `<origin.length>`.
pub fn partial(data: &[u8], range: Option<(u32, u32)>) -> &[u8] {
    match range {
        None => data,
        Some((origin, len)) => {
            let start = (origin as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            &data[start..end]
        }
    }
}

/// A MIME part as FETCH addresses it (RFC 3501 §6.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located<'a> {
    /// Its MIME header (`n.MIME`).
    pub mime: &'a [u8],
    /// Its body (`n`): for a message/rfc822 part, the whole encapsulated
    /// message.
    pub body: &'a [u8],
    /// For a message/rfc822 part, the encapsulated message's header and
    /// text (`n.HEADER`, `n.TEXT`).
    pub message: Option<(&'a [u8], &'a [u8])>,
}

/// Find part `path` (1-based numbers) and hand it to `f`. A part that is
/// a message/rfc822 is entered by the numbers after it (`2.1` is the
/// first part of the message attached as part 2); a non-multipart
/// message or encapsulated message has one part, "1", its body.
pub fn with_part<R>(raw: &[u8], path: &[u32], f: impl FnOnce(Located<'_>) -> R) -> Option<R> {
    let top = mail_parser::MessageParser::default().parse(raw)?;
    let (msg, id, base) = walk(&top, raw, path)?;
    let part = msg.parts.get(id)?;
    let message = match &part.body {
        mail_parser::PartType::Message(inner) => {
            let root = inner.parts.first()?;
            let inner_base = base_of(inner, base);
            // The text runs to the end of the encapsulated message — a
            // multipart's epilogue included, which mail-parser leaves out
            // of the root part.
            let in_place = std::ptr::eq(inner_base, base);
            let end = if in_place {
                part.offset_end
            } else {
                u32::try_from(inner_base.len()).ok()?
            };
            Some((
                slice(inner_base, root.offset_header, root.offset_body)?,
                slice(inner_base, root.offset_body, end.max(root.offset_end))?,
            ))
        }
        _ => None,
    };
    Some(f(Located {
        mime: slice(base, part.offset_header, part.offset_body)?,
        body: slice(base, part.offset_body, part.offset_end)?,
        message,
    }))
}

fn slice(base: &[u8], from: u32, to: u32) -> Option<&[u8]> {
    base.get(from as usize..(to as usize).max(from as usize))
}

/// What the offsets of an encapsulated message's parts count from: the
/// outer message's bytes when it was parsed in place, its own when it
/// had to be decoded first (a base64 message/rfc822, which RFC 2046
/// forbids but some senders write).
fn base_of<'a>(inner: &'a mail_parser::Message<'_>, outer: &'a [u8]) -> &'a [u8] {
    let r = inner.raw_message();
    let (start, end) = (
        outer.as_ptr() as usize,
        outer.as_ptr() as usize + outer.len(),
    );
    if r.as_ptr() as usize >= start && r.as_ptr() as usize + r.len() <= end {
        outer
    } else {
        r
    }
}

/// The message holding part `path`, the part's index in it, and what its
/// offsets count from.
fn walk<'m, 'x>(
    msg: &'m mail_parser::Message<'x>,
    base: &'m [u8],
    path: &[u32],
) -> Option<(&'m mail_parser::Message<'x>, usize, &'m [u8])> {
    use mail_parser::PartType;
    let (&n, rest) = path.split_first()?;
    let id = match &msg.parts.first()?.body {
        PartType::Multipart(children) => *children.get(n.checked_sub(1)? as usize)? as usize,
        _ if n == 1 => 0,
        _ => return None,
    };
    descend(msg, base, id, rest)
}

fn descend<'m, 'x>(
    msg: &'m mail_parser::Message<'x>,
    base: &'m [u8],
    id: usize,
    rest: &[u32],
) -> Option<(&'m mail_parser::Message<'x>, usize, &'m [u8])> {
    use mail_parser::PartType;
    let Some((&n, after)) = rest.split_first() else {
        return Some((msg, id, base));
    };
    match &msg.parts.get(id)?.body {
        PartType::Multipart(children) => {
            let child = *children.get(n.checked_sub(1)? as usize)? as usize;
            descend(msg, base, child, after)
        }
        PartType::Message(inner) => walk(inner, base_of(inner, base), rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@b\r\nSubject: hi\r\n there\r\nMessage-ID: <1@x>\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--b--\r\n";

    #[test]
    fn header_and_fields() {
        let end = header_end(MSG);
        assert!(MSG[..end].ends_with(b"boundary=\"b\"\r\n\r\n"));
        let names = vec!["SUBJECT".to_string(), "message-id".to_string()];
        assert_eq!(
            header_fields(&MSG[..end], &names, false),
            b"Subject: hi\r\n there\r\nMessage-ID: <1@x>\r\n\r\n"
        );
        let not = header_fields(&MSG[..end], &names, true);
        assert!(
            not.starts_with(b"From: a@b\r\nContent-Type"),
            "{}",
            String::from_utf8_lossy(&not)
        );
        // Nothing matches: just the blank line (what Delta Chat expects).
        assert_eq!(
            header_fields(&MSG[..end], &["X-None".into()], false),
            b"\r\n"
        );
    }

    #[test]
    fn parts_and_partial() {
        let body = |raw: &[u8], path: &[u32]| with_part(raw, path, |l| l.body.to_vec());
        assert_eq!(body(MSG, &[1]).unwrap(), b"one");
        assert_eq!(body(MSG, &[2]).unwrap(), b"<p>two</p>");
        let mime = with_part(MSG, &[2], |l| l.mime.to_vec()).unwrap();
        assert!(mime.starts_with(b"Content-Type: text/html"));
        assert_eq!(body(MSG, &[3]), None);
        assert_eq!(body(MSG, &[1, 1]), None);
        let single = b"Subject: x\r\n\r\nbody\r\n";
        assert_eq!(body(single, &[1]).unwrap(), b"body\r\n");
        assert_eq!(partial(b"0123456789", Some((2, 3))), b"234");
        assert_eq!(partial(b"0123", Some((10, 3))), b"");
        assert_eq!(partial(b"0123", Some((2, 100))), b"23");
    }

    /// A forwarded mail attached as part 2, itself with two parts; and an
    /// attached plain one-part message (RFC 3501 §6.4.5's example shape).
    const NESTED: &[u8] = b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\ncover\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\ninner one\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>inner two</p>\r\n--i--\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: flat\r\n\r\nflat body\r\n--o--\r\n";

    #[test]
    fn attached_messages_are_entered() {
        let get = |path: &[u32], f: fn(Located<'_>) -> Vec<u8>| {
            String::from_utf8(with_part(NESTED, path, f).unwrap_or_default()).unwrap()
        };
        let header = |l: Located<'_>| l.message.map(|m| m.0.to_vec()).unwrap_or_default();
        let text = |l: Located<'_>| l.message.map(|m| m.1.to_vec()).unwrap_or_default();
        let body = |l: Located<'_>| l.body.to_vec();
        let mime = |l: Located<'_>| l.mime.to_vec();
        assert_eq!(get(&[2], mime), "Content-Type: message/rfc822\r\n\r\n");
        assert!(get(&[2], body).starts_with("From: c@d\r\nSubject: inner\r\n"));
        assert!(get(&[2], body).ends_with("--i--"), "{}", get(&[2], body));
        assert_eq!(
            get(&[2], header),
            "From: c@d\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n"
        );
        assert!(get(&[2], text).starts_with("--i\r\nContent-Type: text/plain"));
        assert_eq!(get(&[2, 1], body), "inner one");
        assert_eq!(get(&[2, 2], body), "<p>inner two</p>");
        assert_eq!(get(&[2, 1], mime), "Content-Type: text/plain\r\n\r\n");
        assert_eq!(with_part(NESTED, &[2, 3], body), None);
        assert_eq!(get(&[3], header), "Subject: flat\r\n\r\n");
        assert_eq!(get(&[3, 1], body), "flat body");
        assert_eq!(with_part(NESTED, &[1], header), Some(Vec::new()));
    }

    /// The text of an attached multipart message runs to its end, the
    /// preamble and epilogue included (imaptest's
    /// fetch-body-message-rfc822-mime).
    #[test]
    fn an_attached_message_text_keeps_its_epilogue() {
        let raw = b"Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=\"i\"\r\n\r\nprologue\r\n--i\r\n\r\nm1 body\r\n--i--\r\n\r\nepilogue\r\n--o--\r\n";
        let text = with_part(raw, &[1], |l| l.message.map(|m| m.1.to_vec()))
            .flatten()
            .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "prologue\r\n--i\r\n\r\nm1 body\r\n--i--\r\n\r\nepilogue"
        );
    }

    #[test]
    fn a_base64_attached_message_is_entered_decoded() {
        let raw = b"Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogZW5jDQoNCmVuY29kZWQgYm9keQ0K\r\n--o--\r\n";
        let header = with_part(raw, &[1], |l| l.message.map(|m| m.0.to_vec())).flatten();
        assert_eq!(header.as_deref(), Some(&b"Subject: enc\r\n\r\n"[..]));
        let body = with_part(raw, &[1, 1], |l| l.body.to_vec()).unwrap();
        assert!(
            body.starts_with(b"encoded body"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}
