//! SEARCH (RFC 3501 §6.4.4): evaluating search keys against messages.
//! Sans-I/O: the caller loads what the keys need.

use super::fetch;
use chrono::NaiveDate;
use imap_next::imap_types::search::SearchKey;
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// One message as SEARCH sees it.
pub struct Candidate<'m> {
    pub seq: u32,
    pub uid: u32,
    pub flags: Vec<String>,
    pub size: u64,
    pub internal_date: i64,
    pub modseq: u64,
    /// Recent to this session (RFC 3501 §2.3.2).
    pub recent: bool,
    /// The raw message, when a key needs headers or text.
    pub raw: Option<&'m [u8]>,
}

/// Whether any key needs the message content.
pub fn needs_content(key: &SearchKey<'_>) -> bool {
    use SearchKey as K;
    match key {
        K::And(keys) => keys.as_ref().iter().any(needs_content),
        K::Not(k) => needs_content(k),
        K::Or(a, b) => needs_content(a) || needs_content(b),
        K::Bcc(_)
        | K::Body(_)
        | K::Cc(_)
        | K::From(_)
        | K::Header(..)
        | K::Subject(_)
        | K::Text(_)
        | K::To(_)
        | K::SentBefore(_)
        | K::SentOn(_)
        | K::SentSince(_) => true,
        _ => false,
    }
}

/// Whether the criteria use MODSEQ (RFC 7162 §3.1.5).
pub fn uses_modseq(key: &SearchKey<'_>) -> bool {
    use SearchKey as K;
    match key {
        K::ModSequence { .. } => true,
        K::And(keys) => keys.as_ref().iter().any(uses_modseq),
        K::Not(k) => uses_modseq(k),
        K::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        _ => false,
    }
}

/// Does `hay` contain `needle`, ASCII letters in either case? Linear in
/// both (memchr's two-way search over lower-cased copies): comparing at
/// every offset took time proportional to their product on mail made
/// for it (a body of `aaa…` and a long `aaa…b` needle).
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let needle = needle.to_ascii_lowercase();
    let hay = hay.to_ascii_lowercase();
    memchr::memmem::find(&hay, &needle).is_some()
}

fn has_flag(c: &Candidate<'_>, f: &str) -> bool {
    c.flags.iter().any(|x| x.eq_ignore_ascii_case(f))
}

fn in_set(set: &SequenceSet, n: u32, largest: u32) -> bool {
    let v = |s: &SeqOrUid| match s {
        SeqOrUid::Value(x) => x.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(s) => v(s) == n,
        Sequence::Range(a, b) => (v(a).min(v(b))..=v(a).max(v(b))).contains(&n),
    })
}

/// The unfolded value of every header field named `name`, joined.
fn header_values(raw: &[u8], name: &str) -> Vec<u8> {
    let end = fetch::header_end(raw);
    let fields = fetch::header_fields(&raw[..end], &[name.to_string()], false);
    // Strip the "Name:" prefixes; keep values.
    let mut out = Vec::new();
    for line in fields.split(|&b| b == b'\n') {
        let line = match line.iter().position(|&b| b == b':') {
            Some(i) if !matches!(line.first(), Some(b' ' | b'\t')) => &line[i + 1..],
            _ => line,
        };
        out.extend_from_slice(line);
        out.push(b' ');
    }
    out
}

/// The addresses of the header fields named `name` as a reader sees them
/// ("Name <local@domain>" each, comments and folding gone), so FROM
/// finds `user@example.org` in `user(at home)@example.org`.
fn address_values(raw: &[u8], name: &str) -> Vec<u8> {
    let end = fetch::header_end(raw);
    let fields = fetch::header_fields(&raw[..end], &[name.to_string()], false);
    let fields = without_comments(&fields);
    let Some(parsed) = mail_parser::MessageParser::new().parse_headers(&fields[..]) else {
        return Vec::new();
    };
    let mut out = String::new();
    for header in parsed.headers() {
        let mail_parser::HeaderValue::Address(a) = &header.value else {
            continue;
        };
        for addr in a.iter() {
            out.push_str(addr.name().unwrap_or(""));
            out.push_str(" <");
            out.push_str(addr.address().unwrap_or(""));
            out.push_str("> ");
        }
    }
    out.into_bytes()
}

/// Header text without its RFC 5322 §3.2.2 comments (nested, with
/// quoted pairs), which may stand anywhere in an address; quoted strings
/// are kept as they are.
fn without_comments(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for &b in text {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(b);
            }
            continue;
        }
        match b {
            b'\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(b);
                }
                continue;
            }
            b'"' if depth == 0 => quoted = !quoted,
            b'(' if !quoted => {
                depth += 1;
                continue;
            }
            b')' if !quoted && depth > 0 => {
                depth -= 1;
                continue;
            }
            _ => {}
        }
        if depth == 0 {
            out.push(b);
        }
    }
    tight_at(&out)
}

/// Folding white space around an unquoted `@` removed (`b @y` → `b@y`;
/// RFC 5322 §4.4 obsolete syntax allows it).
fn tight_at(text: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    let mut quoted = false;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'"' {
            quoted = !quoted;
        }
        if b == b'@' && !quoted {
            while out.last().is_some_and(|c| c.is_ascii_whitespace()) {
                out.pop();
            }
            out.push(b);
            i += 1;
            while i < text.len() && text[i].is_ascii_whitespace() {
                i += 1;
            }
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

fn day_of(t: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .date_naive()
}

/// The day a message was sent, for SENTBEFORE/SENTON/SENTSINCE: RFC 3501
/// §6.4.4 compares the Date header's date as written, "disregarding time
/// and timezone" (a message sent late in the evening west of Greenwich
/// is of that day, not the next one in UTC).
fn sent_day(raw: &[u8]) -> Option<NaiveDate> {
    let end = fetch::header_end(raw);
    let msg = mail_parser::MessageParser::default().parse_headers(&raw[..end])?;
    let d = msg.date()?;
    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
}

/// Evaluate `key` for one message. `largest_seq`/`largest_uid` give `*`.
pub fn matches(key: &SearchKey<'_>, c: &Candidate<'_>, largest_seq: u32, largest_uid: u32) -> bool {
    use SearchKey as K;
    let raw = c.raw.unwrap_or(b"");
    let header_has = |name: &str, needle: &[u8]| contains_ci(&header_values(raw, name), needle);
    let address_has = |name: &str, needle: &[u8]| {
        header_has(name, needle) || contains_ci(&address_values(raw, name), needle)
    };
    match key {
        K::And(keys) => keys
            .as_ref()
            .iter()
            .all(|k| matches(k, c, largest_seq, largest_uid)),
        K::SequenceSet(set) => in_set(set, c.seq, largest_seq),
        K::Uid(set) => in_set(set, c.uid, largest_uid),
        K::All => true,
        K::Answered => has_flag(c, "\\Answered"),
        K::Unanswered => !has_flag(c, "\\Answered"),
        K::Deleted => has_flag(c, "\\Deleted"),
        K::Undeleted => !has_flag(c, "\\Deleted"),
        K::Draft => has_flag(c, "\\Draft"),
        K::Undraft => !has_flag(c, "\\Draft"),
        K::Flagged => has_flag(c, "\\Flagged"),
        K::Unflagged => !has_flag(c, "\\Flagged"),
        K::Seen => has_flag(c, "\\Seen"),
        K::Unseen => !has_flag(c, "\\Seen"),
        K::Keyword(k) => has_flag(c, k.as_ref()),
        K::Unkeyword(k) => !has_flag(c, k.as_ref()),
        K::Recent => c.recent,
        K::New => c.recent && !has_flag(c, "\\Seen"),
        K::Old => !c.recent,
        K::Larger(n) => c.size > u64::from(*n),
        K::Smaller(n) => c.size < u64::from(*n),
        K::Before(d) => day_of(c.internal_date) < *d.as_ref(),
        K::On(d) => day_of(c.internal_date) == *d.as_ref(),
        K::Since(d) => day_of(c.internal_date) >= *d.as_ref(),
        K::SentBefore(d) => sent_day(raw).is_some_and(|s| s < *d.as_ref()),
        K::SentOn(d) => sent_day(raw).is_some_and(|s| s == *d.as_ref()),
        K::SentSince(d) => sent_day(raw).is_some_and(|s| s >= *d.as_ref()),
        K::From(s) => address_has("From", s.as_ref()),
        K::To(s) => address_has("To", s.as_ref()),
        K::Cc(s) => address_has("Cc", s.as_ref()),
        K::Bcc(s) => address_has("Bcc", s.as_ref()),
        K::Subject(s) => header_has("Subject", s.as_ref()),
        K::Header(name, value) => {
            let name = String::from_utf8_lossy(name.as_ref()).into_owned();
            let end = fetch::header_end(raw);
            let present =
                fetch::header_fields(&raw[..end], std::slice::from_ref(&name), false).len() > 2;
            present && header_has(&name, value.as_ref())
        }
        K::Body(s) => contains_ci(&raw[fetch::header_end(raw)..], s.as_ref()),
        K::Text(s) => contains_ci(raw, s.as_ref()),
        K::Not(k) => !matches(k, c, largest_seq, largest_uid),
        K::Or(a, b) => {
            matches(a, c, largest_seq, largest_uid) || matches(b, c, largest_seq, largest_uid)
        }
        K::ModSequence { modseq, .. } => c.modseq >= *modseq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::CommandCodec;
    use imap_codec::decode::Decoder;
    use imap_next::imap_types::command::CommandBody;

    fn key(text: &str) -> SearchKey<'static> {
        let line = format!("A SEARCH {text}\r\n");
        let (_, cmd) = CommandCodec::default()
            .decode(line.as_bytes())
            .expect("parses");
        match cmd.body {
            CommandBody::Search { criteria, .. } => {
                let v = criteria.into_inner();
                let k = if v.len() == 1 {
                    v.into_iter().next().unwrap()
                } else {
                    SearchKey::And(v.try_into().unwrap())
                };
                bounded_static::IntoBoundedStatic::into_static(k)
            }
            _ => panic!("not a search"),
        }
    }

    const RAW: &[u8] = b"From: Alice <alice@camp.example>\r\nTo: bob@camp.example\r\nSubject: Campfire tonight\r\nDate: Wed, 25 Nov 2026 18:00:00 +0000\r\nX-Tag: blue\r\n\r\nBring marshmallows.\r\n";

    fn cand(seq: u32, uid: u32, flags: &[&str]) -> Candidate<'static> {
        Candidate {
            seq,
            uid,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            size: RAW.len() as u64,
            internal_date: 1_795_650_000, // 2026-11-25
            modseq: 7,
            recent: false,
            raw: Some(RAW),
        }
    }

    #[test]
    fn rfc_3501_keys() {
        let c = cand(2, 10, &["\\Seen"]);
        let yes = [
            "ALL",
            "2",
            "1:*",
            "UID 10",
            "UID 5:*",
            "SEEN",
            "UNDELETED",
            "FROM alice",
            "FROM \"Alice <\"",
            "TO BOB@camp",
            "SUBJECT campfire",
            "HEADER X-Tag blue",
            "HEADER X-Tag \"\"",
            "BODY marshmallows",
            "TEXT tonight",
            "SINCE 24-Nov-2026",
            "ON 25-Nov-2026",
            "BEFORE 26-Nov-2026",
            "SENTON 25-Nov-2026",
            "LARGER 10",
            "SMALLER 100000",
            "NOT DELETED",
            "OR DELETED SEEN",
            "SEEN FROM alice",
            "MODSEQ 7",
        ];
        for k in yes {
            assert!(matches(&key(k), &c, 3, 12), "{k} should match");
        }
        let no = [
            "1",
            "UID 11",
            "UNSEEN",
            "DELETED",
            "FROM carol",
            "HEADER X-Missing x",
            "BODY campfire",
            "SINCE 26-Nov-2026",
            "BEFORE 25-Nov-2026",
            "LARGER 100000",
            "NOT SEEN",
            "OR DELETED FLAGGED",
            "SEEN FROM carol",
            "MODSEQ 8",
        ];
        for k in no {
            assert!(!matches(&key(k), &c, 3, 12), "{k} should not match");
        }
        // Comments inside an address do not hide it (issue 23 point 5).
        let commented = b"From: user(at home)@example.org (User)\r\nCc: team: a@x.example, b (b\r\n side) @y.example;\r\n\r\n.";
        let c = Candidate {
            raw: Some(commented),
            ..cand(1, 1, &[])
        };
        for k in [
            "FROM user@example.org",
            "FROM \"at home\"",
            "CC b@y.example",
            "CC a@x",
        ] {
            assert!(matches(&key(k), &c, 1, 1), "{k} should match");
        }
        assert!(!matches(&key("FROM other@example.org"), &c, 1, 1));
        assert!(needs_content(&key("OR SEEN FROM x")));
        assert_eq!(
            without_comments(b"a(x(y)z)@b \"q(uoted)\" (c\\)d) e"),
            b"a@b \"q(uoted)\"  e"
        );
        assert!(!needs_content(&key("NOT SEEN")));
    }

    /// RFC 3501 §6.4.4: SENT* compare the Date header's date as written
    /// (issue 23 point 4: converted to UTC, 23:30 -0700 was the next day).
    #[test]
    fn sent_dates_are_the_date_as_written() {
        let late_west = b"Date: Tue, 24 Nov 2026 23:30:00 -0700\r\nSubject: x\r\n\r\nhi\r\n";
        let c = Candidate {
            raw: Some(late_west),
            ..cand(1, 1, &[])
        };
        for k in [
            "SENTON 24-Nov-2026",
            "SENTBEFORE 25-Nov-2026",
            "SENTSINCE 24-Nov-2026",
        ] {
            assert!(matches(&key(k), &c, 1, 1), "{k} should match");
        }
        for k in [
            "SENTON 25-Nov-2026",
            "SENTSINCE 25-Nov-2026",
            "SENTBEFORE 24-Nov-2026",
        ] {
            assert!(!matches(&key(k), &c, 1, 1), "{k} should not match");
        }
        let early_east = b"Date: Wed, 25 Nov 2026 00:30:00 +0900\r\n\r\nhi\r\n";
        let c = Candidate {
            raw: Some(early_east),
            ..cand(1, 1, &[])
        };
        assert!(matches(&key("SENTON 25-Nov-2026"), &c, 1, 1));
    }
}
