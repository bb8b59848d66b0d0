//! Autocrypt keys cross a radio link once per peer, then by reference.
//!
//! Mail that carries its sender's OpenPGP key in an `Autocrypt:` or
//! `Autocrypt-Gossip:` header outside the encryption (older Delta Chat,
//! K-9 Mail, Thunderbird) repeats the same 1–5 KB key in every message,
//! which is most of a short message's air time. Over the radio an item's
//! message therefore travels in a *wire form*: a short list of the key
//! spans in its header section, then the message with every key the peer
//! already holds cut out. A key the peer does not hold yet stays in place
//! and is marked, so the peer keeps a copy; once the peer acknowledges
//! that item the key counts as held, and later items name it by its
//! SHA-256 instead. A reference the peer cannot resolve (its cache lost
//! the key) turns that one item away; the sender forgets what it thought
//! the peer held and the item goes again in full.
//!
//! ```text
//! wire form = varint count | count × entry
//!           | the header section with the referenced keys cut out
//!           | the rest of the message as it is
//! entry     = 0 | varint at | varint len     a key carried in place
//!           | 1 | varint at | digest[32]     a key the peer holds
//! ```
//!
//! `at` is the key's offset in the message itself; entries come in
//! ascending order and do not overlap. Sans-I/O but for `std::io::Read`.

use super::varint::{self, VarintError, put as put_varint};
use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;

/// SHA-256 of a key's bytes exactly as they stand in the header.
pub type Digest = [u8; 32];

/// Key spans per message at most (more are left as they are).
pub const MAX_ENTRIES: usize = 16;
/// A key value shorter than this is not worth an entry.
const MIN_KEY: usize = 64;
/// A key value longer than this is left in place (real keys are 1–10 KB).
pub const MAX_KEY: usize = 32 << 10;
/// The longest list of entries on the wire.
pub const MAX_PREFIX: usize = 1 + MAX_ENTRIES * (1 + 10 + 32);

const CARRIED: u8 = 0;
const REFERENCED: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyrefError {
    #[error("the item's key list is malformed")]
    Malformed,
    #[error("the item names a key this hub does not hold")]
    Unresolved,
    #[error("the item ends inside its key list or a key")]
    Truncated,
}

pub fn digest(key: &[u8]) -> Digest {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The `keydata=` values of the Autocrypt headers in `head` (a message's
/// header section), as byte ranges: from after `keydata=` to the end of
/// the field, folding included, its final line end excluded.
pub fn key_spans(head: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < head.len() && spans.len() < MAX_ENTRIES {
        // One field: its first line and every line that starts with
        // a space or a tab.
        let start = i;
        let mut end = line_end(head, i);
        while end < head.len() && matches!(head[end], b' ' | b'\t') {
            end = line_end(head, end);
        }
        i = end;
        let field = &head[start..end];
        let Some(colon) = field.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &field[..colon];
        if !(name.eq_ignore_ascii_case(b"Autocrypt")
            || name.eq_ignore_ascii_case(b"Autocrypt-Gossip"))
        {
            continue;
        }
        let value_end = end - trailing_line_end(field);
        if let Some(at) = keydata_start(&head[start + colon + 1..value_end]) {
            let s = start + colon + 1 + at;
            if (MIN_KEY..=MAX_KEY).contains(&(value_end - s)) {
                spans.push(s..value_end);
            }
        }
    }
    spans
}

/// Index just past the line that starts at `i` (its LF included).
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p + 1)
}

fn trailing_line_end(field: &[u8]) -> usize {
    match field {
        [.., b'\r', b'\n'] => 2,
        [.., b'\n'] => 1,
        _ => 0,
    }
}

/// Where the value of the `keydata` attribute starts in a header value
/// (`addr=…; prefer-encrypt=mutual; keydata=…`).
fn keydata_start(value: &[u8]) -> Option<usize> {
    const ATTR: &[u8] = b"keydata=";
    let mut at_attr = true;
    for (i, &b) in value.iter().enumerate() {
        if at_attr && value[i..].starts_with(ATTR) {
            return Some(i + ATTR.len());
        }
        match b {
            b';' => at_attr = true,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => at_attr = false,
        }
    }
    None
}

/// A header section in wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireHead {
    /// The entries and the header section with referenced keys cut out;
    /// the rest of the message follows it unchanged.
    pub bytes: Vec<u8>,
    /// Keys named by reference.
    pub refs: Vec<Digest>,
    /// Keys carried in place: the peer holds them once it acknowledges.
    pub marks: Vec<Digest>,
}

/// `head` in wire form for a peer that holds the keys `held` says it does.
pub fn write_head(head: &[u8], held: &dyn Fn(&Digest) -> bool) -> WireHead {
    let spans = key_spans(head);
    let mut w = WireHead {
        bytes: Vec::with_capacity(head.len() + MAX_PREFIX),
        refs: Vec::new(),
        marks: Vec::new(),
    };
    put_varint(&mut w.bytes, spans.len() as u64);
    let mut cut = Vec::new();
    for s in &spans {
        let d = digest(&head[s.clone()]);
        if held(&d) {
            w.bytes.push(REFERENCED);
            put_varint(&mut w.bytes, s.start as u64);
            w.bytes.extend_from_slice(&d);
            w.refs.push(d);
            cut.push(s.clone());
        } else {
            w.bytes.push(CARRIED);
            put_varint(&mut w.bytes, s.start as u64);
            put_varint(&mut w.bytes, s.len() as u64);
            w.marks.push(d);
        }
    }
    let mut at = 0;
    for s in cut {
        w.bytes.extend_from_slice(&head[at..s.start]);
        at = s.end;
    }
    w.bytes.extend_from_slice(&head[at..]);
    w
}

fn get_varint(b: &[u8], at: &mut usize) -> Result<u64, KeyrefError> {
    varint::get(b, at).map_err(|e| match e {
        VarintError::Truncated => KeyrefError::Truncated,
        VarintError::TooLong => KeyrefError::Malformed,
    })
}

/// One key span of a message in wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Carried { at: u64, len: u64 },
    Referenced { at: u64, digest: Digest },
}

impl Entry {
    fn at(&self) -> u64 {
        match self {
            Entry::Carried { at, .. } | Entry::Referenced { at, .. } => *at,
        }
    }
}

/// The entries at the start of `wire` (at most [`MAX_PREFIX`] bytes of
/// it are needed) and how many bytes they took.
pub fn read_entries(wire: &[u8]) -> Result<(Vec<Entry>, usize), KeyrefError> {
    let mut at = 0;
    let count = get_varint(wire, &mut at)?;
    if count > MAX_ENTRIES as u64 {
        return Err(KeyrefError::Malformed);
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut next_free = 0u64;
    for _ in 0..count {
        let kind = *wire.get(at).ok_or(KeyrefError::Truncated)?;
        at += 1;
        let pos = get_varint(wire, &mut at)?;
        if pos < next_free {
            return Err(KeyrefError::Malformed);
        }
        let e = match kind {
            CARRIED => {
                let len = get_varint(wire, &mut at)?;
                if !(MIN_KEY as u64..=MAX_KEY as u64).contains(&len) {
                    return Err(KeyrefError::Malformed);
                }
                next_free = pos + len;
                Entry::Carried { at: pos, len }
            }
            REFERENCED => {
                let d = wire.get(at..at + 32).ok_or(KeyrefError::Truncated)?;
                at += 32;
                // Its length is known once resolved; a later entry may
                // not start before this one.
                next_free = pos;
                Entry::Referenced {
                    at: pos,
                    digest: d.try_into().expect("32 bytes"),
                }
            }
            _ => return Err(KeyrefError::Malformed),
        };
        entries.push(e);
    }
    Ok((entries, at))
}

/// Rebuild the message from the rest of a wire form (`wire`, read past
/// its entries), putting the referenced keys from `keys` back. Each piece
/// of the message goes to `out` in order; returns the keys that were
/// carried, for the receiver to keep.
pub fn rebuild(
    entries: &[Entry],
    keys: &HashMap<Digest, Vec<u8>>,
    wire: &mut dyn Read,
    out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<Vec<(Digest, Vec<u8>)>, RebuildError> {
    let mut pos = 0u64;
    let mut carried = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    for e in entries {
        if e.at() < pos {
            return Err(KeyrefError::Malformed.into());
        }
        copy(wire, e.at() - pos, &mut buf, out, None)?;
        pos = e.at();
        match e {
            Entry::Carried { len, .. } => {
                let mut key = Vec::with_capacity(*len as usize);
                copy(wire, *len, &mut buf, out, Some(&mut key))?;
                pos += len;
                carried.push((digest(&key), key));
            }
            Entry::Referenced { digest, .. } => {
                let key = keys.get(digest).ok_or(KeyrefError::Unresolved)?;
                out(key)?;
                pos += key.len() as u64;
            }
        }
    }
    loop {
        let n = wire.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out(&buf[..n])?;
    }
    Ok(carried)
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("{0}")]
    Form(#[from] KeyrefError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Copy exactly `n` bytes from `wire` to `out` (and to `keep`).
fn copy(
    wire: &mut dyn Read,
    mut n: u64,
    buf: &mut [u8],
    out: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    mut keep: Option<&mut Vec<u8>>,
) -> Result<(), RebuildError> {
    while n > 0 {
        let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        let got = wire.read(&mut buf[..want])?;
        if got == 0 {
            return Err(KeyrefError::Truncated.into());
        }
        out(&buf[..got])?;
        if let Some(k) = keep.as_deref_mut() {
            k.extend_from_slice(&buf[..got]);
        }
        n -= got as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(i * 7 + seed as usize) % 64]
            })
            .collect()
    }

    /// An Autocrypt header folded as mail clients write it.
    fn header(name: &str, key: &[u8], eol: &str) -> Vec<u8> {
        let mut h = format!("{name}: addr=alice@camp.example; prefer-encrypt=mutual; keydata=")
            .into_bytes();
        for (i, line) in key.chunks(76).enumerate() {
            if i > 0 {
                h.extend_from_slice(eol.as_bytes());
                h.push(b' ');
            }
            h.extend_from_slice(line);
        }
        h.extend_from_slice(eol.as_bytes());
        h
    }

    fn message(keys: &[(&str, Vec<u8>)], eol: &str) -> Vec<u8> {
        let mut m = format!("From: alice@camp.example{eol}Subject: hi{eol}").into_bytes();
        for (name, k) in keys {
            m.extend(header(name, k, eol));
        }
        m.extend(format!("Content-Type: text/plain{eol}{eol}keydata=not a header{eol}").bytes());
        m
    }

    type Trip = (WireHead, Vec<u8>, Vec<(Digest, Vec<u8>)>);

    fn round_trip(msg: &[u8], held: &[Digest], keys: &HashMap<Digest, Vec<u8>>) -> Trip {
        let head_len = crate::relay::header_section(msg).len();
        let w = write_head(&msg[..head_len], &|d| held.contains(d));
        let mut wire = w.bytes.clone();
        wire.extend_from_slice(&msg[head_len..]);
        let (entries, used) = read_entries(&wire).unwrap();
        let mut out = Vec::new();
        let carried = rebuild(&entries, keys, &mut &wire[used..], &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        (w, out, carried)
    }

    #[test]
    fn keys_are_found_in_folded_autocrypt_headers_only() {
        let k1 = key(1, 900);
        let k2 = key(2, 700);
        for eol in ["\r\n", "\n"] {
            let m = message(
                &[("Autocrypt", k1.clone()), ("autocrypt-gossip", k2.clone())],
                eol,
            );
            let head = crate::relay::header_section(&m);
            let spans = key_spans(head);
            assert_eq!(spans.len(), 2, "{eol:?}");
            let unfold = |r: &Range<usize>| -> Vec<u8> {
                head[r.clone()]
                    .iter()
                    .copied()
                    .filter(|b| !b" \t\r\n".contains(b))
                    .collect()
            };
            assert_eq!(unfold(&spans[0]), k1);
            assert_eq!(unfold(&spans[1]), k2);
            assert!(!head[spans[0].clone()].ends_with(b"\n"));
        }
        // No keydata, a tiny key, a look-alike header, an attribute that
        // only ends in "keydata=": nothing.
        let m = b"Autocrypt: addr=a@b; prefer-encrypt=mutual\r\nAutocrypt: addr=a@b; keydata=AAAA\r\n\
X-Autocrypt: addr=a@b; keydata=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n\
Autocrypt: addr=a@b; xkeydata=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n\r\n";
        assert!(key_spans(m).is_empty());
    }

    #[test]
    fn a_held_key_is_cut_out_and_put_back_byte_for_byte() {
        let k1 = key(1, 2000);
        let k2 = key(2, 1200);
        for eol in ["\r\n", "\n"] {
            let m = message(
                &[("Autocrypt", k1.clone()), ("Autocrypt-Gossip", k2.clone())],
                eol,
            );
            let head = crate::relay::header_section(&m);
            let spans = key_spans(head);
            let (d1, d2) = (
                digest(&head[spans[0].clone()]),
                digest(&head[spans[1].clone()]),
            );

            // First time: both carried, both learned by the receiver.
            let (w, out, carried) = round_trip(&m, &[], &HashMap::new());
            assert_eq!(out, m);
            assert_eq!((w.refs.len(), w.marks.clone()), (0, vec![d1, d2]));
            let keys: HashMap<Digest, Vec<u8>> = carried.into_iter().collect();
            assert!(keys.contains_key(&d1) && keys.contains_key(&d2));

            // Then both referenced: the wire form is smaller by the keys.
            let (w2, out, carried) = round_trip(&m, &[d1, d2], &keys);
            assert_eq!(out, m);
            assert!(carried.is_empty());
            assert_eq!(w2.refs, vec![d1, d2]);
            assert!(w2.bytes.len() + spans[0].len() + spans[1].len() - 64 <= w.bytes.len());

            // A reference the receiver cannot resolve is said so.
            let head_len = head.len();
            let (entries, used) = read_entries(&w2.bytes).unwrap();
            let mut rest = w2.bytes[used..].to_vec();
            rest.extend_from_slice(&m[head_len..]);
            let e =
                rebuild(&entries, &HashMap::new(), &mut &rest[..], &mut |_| Ok(())).unwrap_err();
            assert!(matches!(e, RebuildError::Form(KeyrefError::Unresolved)));
        }
    }

    #[test]
    fn malformed_entries_are_refused() {
        let d = [7u8; 32];
        let cases: Vec<(Vec<u8>, KeyrefError)> = vec![
            (vec![], KeyrefError::Truncated),
            (vec![17], KeyrefError::Malformed),
            (vec![1, 9, 0], KeyrefError::Malformed),
            (vec![1, 0, 5], KeyrefError::Truncated),
            (vec![1, 0, 5, 10], KeyrefError::Malformed),
            (vec![1, 1, 5, 1, 2, 3], KeyrefError::Truncated),
            (vec![2, 0, 0, 100, 0, 50, 100], KeyrefError::Malformed),
            (
                vec![
                    1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                ],
                KeyrefError::Malformed,
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(read_entries(&wire).unwrap_err(), want, "{wire:?}");
        }
        // A referenced key that would overlap the next entry.
        let mut wire = vec![2, 1, 10];
        wire.extend_from_slice(&d);
        wire.extend_from_slice(&[1, 20]);
        wire.extend_from_slice(&d);
        let (entries, used) = read_entries(&wire).unwrap();
        let keys = HashMap::from([(d, vec![b'k'; 100])]);
        let rest = [b'x'; 200];
        let e = rebuild(&entries, &keys, &mut &rest[..], &mut |_| Ok(())).unwrap_err();
        assert!(
            matches!(e, RebuildError::Form(KeyrefError::Malformed)),
            "{used}"
        );
        // A carried key past the end of the message.
        let wire = [1, 0, 0, 100];
        let (entries, used) = read_entries(&wire).unwrap();
        let e = rebuild(&entries, &keys, &mut &b"short"[..], &mut |_| Ok(())).unwrap_err();
        assert!(
            matches!(e, RebuildError::Form(KeyrefError::Truncated)),
            "{used}"
        );
    }

    proptest! {
        #[test]
        fn any_message_comes_back_whole(
            before in proptest::collection::vec(any::<u8>(), 0..200),
            lens in proptest::collection::vec(64usize..3000, 0..4),
            held_mask in any::<u8>(),
            eol_crlf in any::<bool>(),
        ) {
            let eol = if eol_crlf { "\r\n" } else { "\n" };
            let mut m: Vec<u8> = before.iter().map(|b| if *b == b'\n' || *b == b':' { b'x' } else { *b }).collect();
            m.extend_from_slice(format!(": x{eol}").as_bytes());
            for (i, len) in lens.iter().enumerate() {
                m.extend(header("Autocrypt", &key(i as u8, *len), eol));
            }
            m.extend_from_slice(format!("{eol}body{eol}").as_bytes());
            let head = crate::relay::header_section(&m);
            let all: Vec<(Digest, Vec<u8>)> = key_spans(head).into_iter().map(|s| (digest(&head[s.clone()]), head[s].to_vec())).collect();
            let held: Vec<Digest> = all.iter().enumerate().filter(|(i, _)| held_mask >> (i % 8) & 1 == 1).map(|(_, (d, _))| *d).collect();
            let keys: HashMap<Digest, Vec<u8>> = all.into_iter().collect();
            let (_, out, _) = round_trip(&m, &held, &keys);
            prop_assert_eq!(out, m);
        }

        #[test]
        fn garbage_never_panics(wire in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok((entries, used)) = read_entries(&wire) {
                let keys = HashMap::new();
                let _ = rebuild(&entries, &keys, &mut &wire[used..], &mut |_| Ok(()));
            }
        }
    }
}
