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

/// Byte ranges of a MIME part: (header start, body start, end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRange {
    pub header: usize,
    pub body: usize,
    pub end: usize,
}

/// Locate part `path` (1-based numbers, RFC 3501 §6.4.5). A non-multipart
/// message has one part, "1", its body.
pub fn find_part(raw: &[u8], path: &[u32]) -> Option<PartRange> {
    use mail_parser::PartType;
    let msg = mail_parser::MessageParser::default().parse(raw)?;
    let mut id = 0usize;
    for (depth, &n) in path.iter().enumerate() {
        let part = msg.parts.get(id)?;
        match &part.body {
            PartType::Multipart(children) => {
                id = *children.get(n.checked_sub(1)? as usize)? as usize;
            }
            _ if depth == 0 && n == 1 && path.len() == 1 => {
                // The single body of a non-multipart message.
                return Some(PartRange {
                    header: part.offset_header as usize,
                    body: part.offset_body as usize,
                    end: part.offset_end as usize,
                });
            }
            _ => return None,
        }
    }
    let part = msg.parts.get(id)?;
    Some(PartRange {
        header: part.offset_header as usize,
        body: part.offset_body as usize,
        end: part.offset_end as usize,
    })
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
        let p1 = find_part(MSG, &[1]).unwrap();
        assert_eq!(&MSG[p1.body..p1.end], b"one");
        let p2 = find_part(MSG, &[2]).unwrap();
        assert_eq!(&MSG[p2.body..p2.end], b"<p>two</p>");
        assert!(MSG[p2.header..p2.body].starts_with(b"Content-Type: text/html"));
        assert_eq!(find_part(MSG, &[3]), None);
        let single = b"Subject: x\r\n\r\nbody\r\n";
        let p = find_part(single, &[1]).unwrap();
        assert_eq!(&single[p.body..p.end], b"body\r\n");
        assert_eq!(partial(b"0123456789", Some((2, 3))), b"234");
        assert_eq!(partial(b"0123", Some((10, 3))), b"");
        assert_eq!(partial(b"0123", Some((2, 100))), b"23");
    }
}
