//! SORT (RFC 5256 §3) and its DISPLAY keys (RFC 5957): what each message
//! is sorted by, the base subject (RFC 5256 §2.1), and the order. No I/O:
//! the handler (`cmd/search.rs`) reads the messages.

use imap_next::imap_types::extensions::sort::{SortCriterion, SortKey};
use std::cmp::Ordering;

/// What a message is sorted by, taken once from its headers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SortFields {
    /// Sequence number: the last tie-breaker (RFC 5256 §3).
    pub seq: u32,
    /// INTERNALDATE, Unix seconds (ARRIVAL).
    pub arrival: i64,
    /// The Date header as UTC seconds; the arrival when it has none or
    /// none that parses (DATE).
    pub sent: i64,
    pub size: u64,
    /// Base subject, upper-cased (i;ascii-casemap).
    pub subject: String,
    /// The first From, To and Cc address's local part, upper-cased.
    pub from: String,
    pub to: String,
    pub cc: String,
    /// RFC 5957: the first From and To address's display name, or its
    /// address when it has none, upper-cased.
    pub display_from: String,
    pub display_to: String,
}

impl SortFields {
    /// The fields of a message from its raw text (only the header is
    /// read). `seq`, `arrival` and `size` come from the store.
    pub fn of(raw: &[u8], seq: u32, arrival: i64, size: u64) -> SortFields {
        let mut fields = SortFields::bare(seq, arrival, size);
        let header = &raw[..super::fetch::header_end(raw)];
        let Some(msg) = mail_parser::MessageParser::default().parse_headers(header) else {
            return fields;
        };
        if let Some(d) = msg.date()
            && d.is_valid()
        {
            fields.sent = d.to_timestamp();
        }
        fields.subject = base_subject(msg.subject().unwrap_or("")).to_ascii_uppercase();
        let (from, to, cc) = (first(msg.from()), first(msg.to()), first(msg.cc()));
        fields.from = from.0;
        fields.to = to.0;
        fields.cc = cc.0;
        fields.display_from = from.1;
        fields.display_to = to.1;
        fields
    }

    /// What the store knows without the message's text: ARRIVAL, SIZE and
    /// the sequence number (DATE falls back to the arrival).
    pub fn bare(seq: u32, arrival: i64, size: u64) -> SortFields {
        SortFields {
            seq,
            arrival,
            sent: arrival,
            size,
            ..SortFields::default()
        }
    }

    /// Whether sorting by `criteria` needs the messages' headers.
    pub fn need_headers(criteria: &[SortCriterion]) -> bool {
        criteria
            .iter()
            .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size))
    }
}

/// The first address of a header as ENVELOPE lists it: (its mailbox,
/// its display name or else its address), upper-cased. A group comes
/// first as its name (RFC 3501 §7.4.2 group syntax), so a group's name is
/// both (as Dovecot sorts).
fn first(a: Option<&mail_parser::Address<'_>>) -> (String, String) {
    let of_addr = |a: &mail_parser::Addr<'_>| {
        let address = a.address.as_deref().unwrap_or("");
        let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
        let display = a
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(address);
        (local.to_ascii_uppercase(), display.to_ascii_uppercase())
    };
    match a {
        None => Default::default(),
        Some(mail_parser::Address::List(list)) => list.first().map(of_addr).unwrap_or_default(),
        Some(mail_parser::Address::Group(groups)) => match groups.first() {
            Some(g) => match g.name.as_deref() {
                Some(name) => (name.to_ascii_uppercase(), name.to_ascii_uppercase()),
                None => g.addresses.first().map(of_addr).unwrap_or_default(),
            },
            None => Default::default(),
        },
    }
}

/// The order of two messages by `criteria`, then by sequence number.
pub fn compare(criteria: &[SortCriterion], a: &SortFields, b: &SortFields) -> Ordering {
    for c in criteria {
        let o = match c.key {
            SortKey::Arrival => a.arrival.cmp(&b.arrival),
            SortKey::Date => a.sent.cmp(&b.sent),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Subject => a.subject.cmp(&b.subject),
            SortKey::From => a.from.cmp(&b.from),
            SortKey::To => a.to.cmp(&b.to),
            SortKey::Cc => a.cc.cmp(&b.cc),
            SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
            SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
        };
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.seq.cmp(&b.seq)
}

/// RFC 5256 §2.1 base subject of an already decoded subject: spaces
/// collapsed; trailing "(fwd)"; leading "Re:", "Fw:", "Fwd:" (with
/// "[blob]"s before or inside them) and leading "[blob]"s that leave
/// something behind; and a "[Fwd: …]" wrapper, until none is left.
pub fn base_subject(subject: &str) -> String {
    // (1) Whitespace runs are one space.
    let mut s: String = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        // (2) Trailing "(fwd)" and spaces.
        loop {
            let t = s.trim_end();
            let lower = t.to_ascii_lowercase();
            if lower.ends_with("(fwd)") {
                s = t[..t.len() - 5].to_string();
            } else {
                s = t.to_string();
                break;
            }
        }
        // (3)-(4) Leaders and leading blobs, until nothing changes.
        loop {
            let before = s.clone();
            s = strip_leader(&s);
            if let Some(rest) = strip_blob(&s)
                && !rest.is_empty()
            {
                s = rest;
            }
            if s == before {
                break;
            }
        }
        // (5) A "[fwd: …]" wrapper.
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("[fwd:") && s.ends_with(']') {
            s = s[5..s.len() - 1].trim().to_string();
            continue;
        }
        return s;
    }
}

/// A leading `[blob]` and the spaces after it, or `None`.
fn strip_blob(s: &str) -> Option<String> {
    let s = s.trim_start();
    let rest = s.strip_prefix('[')?;
    let end = rest.find([']', '['])?;
    if rest.as_bytes()[end] != b']' {
        return None;
    }
    Some(rest[end + 1..].trim_start().to_string())
}

/// A leading subj-leader (RFC 5256 §5: `*subj-blob subj-refwd`, where
/// subj-refwd is "re", "fw" or "fwd", optional spaces, an optional blob,
/// and a colon), or the text unchanged.
fn strip_leader(s: &str) -> String {
    let mut rest = s.trim_start().to_string();
    while let Some(r) = strip_blob(&rest) {
        rest = r;
    }
    let lower = rest.to_ascii_lowercase();
    let word = ["fwd", "fw", "re"]
        .into_iter()
        .find(|w| lower.starts_with(w));
    let Some(word) = word else {
        return s.to_string();
    };
    let mut after = rest[word.len()..].trim_start().to_string();
    if let Some(r) = strip_blob(&after) {
        after = r;
    }
    match after.strip_prefix(':') {
        Some(r) => r.trim_start().to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects_as_rfc_5256_strips_them() {
        for (given, base) in [
            ("Re: hello", "hello"),
            ("RE: Re: re: hello", "hello"),
            ("Fwd: hello (fwd)", "hello"),
            ("[camp] Re: hello", "hello"),
            ("Re[2]: hello", "hello"),
            ("[Fwd: Re: hello]", "hello"),
            ("  many   spaces\there ", "many spaces here"),
            ("[camp]", "[camp]"),
            ("Reply all: no", "Reply all: no"),
            ("Fw: [list] news", "news"),
            ("", ""),
        ] {
            assert_eq!(base_subject(given), base, "{given:?}");
        }
    }

    #[test]
    fn fields_come_from_the_header_and_ties_go_by_sequence() {
        let raw = b"From: \"Zoe Q\" <zoe@camp.example>\r\nTo: adam@b.example\r\nCc: <Bea@c.example>\r\nSubject: Re: [camp] Tents\r\nDate: Tue, 1 Dec 2026 10:00:00 +0200\r\n\r\nbody From: nobody\r\n";
        let f = SortFields::of(raw, 3, 1_000, 42);
        assert_eq!(f.from, "ZOE");
        assert_eq!(f.to, "ADAM");
        assert_eq!(f.cc, "BEA");
        assert_eq!(f.display_from, "ZOE Q");
        assert_eq!(f.display_to, "ADAM@B.EXAMPLE");
        assert_eq!(f.subject, "TENTS");
        assert_eq!(f.sent, 1_796_112_000);
        // No Date: the arrival.
        let g = SortFields::of(b"Subject: x\r\n\r\n", 1, 1_000, 1);
        assert_eq!(g.sent, 1_000);
        let by = |key, reverse| SortCriterion { reverse, key };
        assert_eq!(
            compare(&[by(SortKey::Date, false)], &f, &g),
            Ordering::Greater
        );
        assert_eq!(compare(&[by(SortKey::Date, true)], &f, &g), Ordering::Less);
        let same = SortFields {
            seq: 9,
            ..f.clone()
        };
        assert_eq!(
            compare(&[by(SortKey::Subject, true)], &f, &same),
            Ordering::Less
        );
    }
}
