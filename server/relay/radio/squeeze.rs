//! Compression of records for the air.
//!
//! Delta Chat's mail is OpenPGP ciphertext in ASCII armour: the ciphertext
//! itself does not compress, but its base64 carries 6 bits in every 8, and
//! the outer headers and MIME boilerplate repeat from message to message.
//! Each record is compressed on its own with zstd and a small built-in
//! dictionary of that boilerplate (a raw-content dictionary: zstd uses the
//! bytes as prior context), after its runs of base64 lines (the armour,
//! base64 MIME parts) are folded back into the bytes they encode — 6 bits
//! a character instead of 8 — when unfolding gives the record back byte
//! for byte. The smallest of raw, compressed and folded-then-compressed
//! goes on the air. Per record, so a resumed transfer needs nothing from
//! before. Sans-I/O.

use base64::Engine;

/// First byte of a record on the air: how the rest is written.
const RAW: u8 = 0;
/// zstd with [`DICTIONARY`] version 1.
const ZSTD_DICT_1: u8 = 1;
/// [`fold`]ed, then zstd with [`DICTIONARY`] version 1.
const FOLDED_ZSTD_DICT_1: u8 = 2;
/// zstd's strongest levels cost milliseconds on records of a few KiB,
/// nothing next to their air time.
const LEVEL: i32 = 19;

/// Outer headers and MIME structure as Delta Chat writes them, with the
/// armour lines around its ciphertext. Changing it needs a new method
/// byte, since both sides must have the same bytes.
pub const DICTIONARY: &[u8] = b"From: <@>\r\nDate: Mon, Tue, Wed, Thu, Fri, Sat, Sun, Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec 2026 +0000\r\n\
Message-ID: <@localhost>\r\nMIME-Version: 1.0\r\nTo: \"hidden-recipients\": ;\r\nSubject: [...]\r\n\
Chat-Version: 1.0\r\nAutocrypt-Setup-Message: v1\r\nChat-Is-Post-Message: 1\r\nIn-Reply-To: References: \r\n\
Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"\"\r\n\r\n\r\n\
--\r\nContent-Type: application/pgp-encrypted; charset=\"utf-8\"\r\nContent-Description: PGP/MIME version identification\r\n\
Content-Transfer-Encoding: 7bit\r\n\r\nVersion: 1\r\n\r\n\
--\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"; charset=\"utf-8\"\r\n\
Content-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\";\r\n\
Content-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n\
-----END PGP MESSAGE-----\r\n\r\n----\r\n\r\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqueezeError {
    #[error("an empty record")]
    Empty,
    #[error("a record written with method {0}, which this version does not know")]
    Method(u8),
    #[error("a compressed record does not decompress within {0} bytes")]
    Corrupt(usize),
}

/// The record as sent: a method byte and the (maybe compressed) bytes.
/// Folded only with `fold` (the other side understands it).
pub fn pack(record: &[u8], fold: bool) -> Vec<u8> {
    let mut best = (RAW, record.to_vec());
    let Ok(mut z) = zstd::bulk::Compressor::with_dictionary(LEVEL, DICTIONARY) else {
        return with_method(best);
    };
    if let Ok(c) = z.compress(record)
        && c.len() < best.1.len()
    {
        best = (ZSTD_DICT_1, c);
    }
    if !fold {
        return with_method(best);
    }
    let folded = self::fold(record);
    if folded.len() < record.len()
        && unfold(&folded, record.len()).as_deref() == Some(record)
        && let Ok(c) = z.compress(&folded)
        && c.len() < best.1.len()
    {
        best = (FOLDED_ZSTD_DICT_1, c);
    }
    with_method(best)
}

fn with_method((method, bytes): (u8, Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + bytes.len());
    out.push(method);
    out.extend(bytes);
    out
}

/// Segments of a folded record: bytes as they are, or lines of base64
/// that end in CRLF or in LF.
const SEG_BYTES: u8 = 0;
const SEG_LINES_CRLF: u8 = 1;
const SEG_LINES_LF: u8 = 2;
/// Fewer base64 characters than this in a run are left as they are (the
/// segment's own bytes would eat the gain).
const MIN_RUN_CHARS: usize = 16;

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn put_varint(out: &mut Vec<u8>, n: usize) {
    crate::relay::varint::put(out, n as u64);
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<usize> {
    let n = crate::relay::varint::get(b, at).ok()?;
    usize::try_from(n).ok()
}

/// The base64 line at `i`: its length in characters (a multiple of 4,
/// no padding) and the length of its line end, if it is one.
fn base64_line(r: &[u8], i: usize) -> Option<(usize, usize)> {
    let chars = r[i..].iter().take_while(|b| is_base64(**b)).count();
    let end = match &r[i + chars..] {
        [b'\r', b'\n', ..] => 2,
        [b'\n', ..] => 1,
        _ => return None,
    };
    (chars > 0 && chars % 4 == 0).then_some((chars, end))
}

/// Runs of equally long base64 lines with the same line end become the
/// bytes they encode; everything else stays. See [`unfold`].
pub fn fold(r: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.len());
    let mut plain = 0; // start of bytes not yet written
    let mut i = 0; // start of a line
    let flush = |out: &mut Vec<u8>, from: usize, to: usize| {
        if to > from {
            out.push(SEG_BYTES);
            put_varint(out, to - from);
            out.extend_from_slice(&r[from..to]);
        }
    };
    while i < r.len() {
        if let Some((chars, end)) = base64_line(r, i) {
            let mut lines = 1;
            let mut j = i + chars + end;
            while j < r.len() && base64_line(r, j) == Some((chars, end)) {
                lines += 1;
                j += chars + end;
            }
            if chars * lines >= MIN_RUN_CHARS {
                flush(&mut out, plain, i);
                out.push(if end == 2 {
                    SEG_LINES_CRLF
                } else {
                    SEG_LINES_LF
                });
                put_varint(&mut out, chars / 4);
                put_varint(&mut out, lines);
                let engine = &base64::engine::general_purpose::STANDARD;
                let mut at = i;
                for _ in 0..lines {
                    // Whole groups of base64 characters always decode;
                    // should one not, the record simply stays unfolded.
                    if engine.decode_vec(&r[at..at + chars], &mut out).is_err() {
                        return unfolded(r);
                    }
                    at += chars + end;
                }
                i = j;
                plain = j;
                continue;
            }
        }
        // On to the next line.
        i = match r[i..].iter().position(|b| *b == b'\n') {
            Some(p) => i + p + 1,
            None => r.len(),
        };
    }
    flush(&mut out, plain, r.len());
    out
}

/// `r` as one segment of bytes as they are.
fn unfolded(r: &[u8]) -> Vec<u8> {
    let mut out = vec![SEG_BYTES];
    put_varint(&mut out, r.len());
    out.extend_from_slice(r);
    out
}

/// A folded record back, if it is well formed and at most `max` bytes.
pub fn unfold(f: &[u8], max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < f.len() {
        let kind = f[at];
        at += 1;
        match kind {
            SEG_BYTES => {
                let n = get_varint(f, &mut at)?;
                let bytes = f.get(at..at.checked_add(n)?)?;
                if out.len() + n > max {
                    return None;
                }
                out.extend_from_slice(bytes);
                at += n;
            }
            SEG_LINES_CRLF | SEG_LINES_LF => {
                let groups = get_varint(f, &mut at)?;
                let lines = get_varint(f, &mut at)?;
                let eol: &[u8] = if kind == SEG_LINES_CRLF {
                    b"\r\n"
                } else {
                    b"\n"
                };
                let line_bytes = groups.checked_mul(3)?;
                let total = line_bytes.checked_mul(lines)?;
                let text = groups
                    .checked_mul(4)?
                    .checked_add(eol.len())?
                    .checked_mul(lines)?;
                if groups == 0 || out.len().checked_add(text)? > max {
                    return None;
                }
                let bin = f.get(at..at.checked_add(total)?)?;
                let engine = &base64::engine::general_purpose::STANDARD;
                for line in bin.chunks(line_bytes) {
                    let mut s = String::with_capacity(groups * 4);
                    engine.encode_string(line, &mut s);
                    out.extend_from_slice(s.as_bytes());
                    out.extend_from_slice(eol);
                }
                at += total;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The record back, at most `max` bytes long (a peer cannot make us
/// inflate more).
pub fn unpack(packed: &[u8], max: usize) -> Result<Vec<u8>, SqueezeError> {
    let (&method, body) = packed.split_first().ok_or(SqueezeError::Empty)?;
    match method {
        RAW if body.len() <= max => Ok(body.to_vec()),
        RAW => Err(SqueezeError::Corrupt(max)),
        ZSTD_DICT_1 => zstd::bulk::Decompressor::with_dictionary(DICTIONARY)
            .and_then(|mut d| d.decompress(body, max))
            .map_err(|_| SqueezeError::Corrupt(max)),
        // Folded bytes are never longer than the record.
        FOLDED_ZSTD_DICT_1 => zstd::bulk::Decompressor::with_dictionary(DICTIONARY)
            .and_then(|mut d| d.decompress(body, max))
            .ok()
            .and_then(|folded| unfold(&folded, max))
            .ok_or(SqueezeError::Corrupt(max)),
        m => Err(SqueezeError::Method(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn armoured_mail_shrinks_and_comes_back() {
        // A Delta Chat-like message: headers and 2 KiB of armoured base64.
        let mut mail = b"From: <alice@camp-a.example>\r\nDate: Thu, 26 Nov 2026 06:29:52 +0000\r\nMessage-ID: <053b748c@localhost>\r\nMIME-Version: 1.0\r\nTo: \"hidden-recipients\": ;\r\nSubject: [...]\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"18ebae4b\"\r\n\r\n\r\n--18ebae4b\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n".to_vec();
        let mut x: u64 = 7;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for line in 0..32 {
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                mail.push(alphabet[(x % 64) as usize]);
            }
            mail.extend(b"\r\n");
            let _ = line;
        }
        mail.extend(b"-----END PGP MESSAGE-----\r\n\r\n--18ebae4b--\r\n");
        let packed = pack(&mail, true);
        assert_eq!(packed[0], FOLDED_ZSTD_DICT_1);
        assert!(
            packed.len() * 100 < mail.len() * 78,
            "{} of {}",
            packed.len(),
            mail.len()
        );
        assert_eq!(unpack(&packed, 1 << 20).unwrap(), mail);
    }

    /// Real Delta Chat 2.65 messages: folded, their armour costs 6 bits a
    /// character; without folding, zstd alone gets about 63 %.
    #[test]
    fn real_delta_chat_messages_fold_below_seventy_percent() {
        for mail in [
            &include_bytes!("../../../tests/bench/fixtures/deltachat-0.eml")[..],
            &include_bytes!("../../../tests/bench/fixtures/deltachat-1.eml")[..],
        ] {
            let packed = pack(mail, true);
            assert_eq!(packed[0], FOLDED_ZSTD_DICT_1);
            assert!(
                packed.len() * 100 < mail.len() * 70,
                "{} of {}",
                packed.len(),
                mail.len()
            );
            assert_eq!(unpack(&packed, mail.len()).unwrap(), mail);
            // For a hub that does not read folded records (an older one).
            let plain = pack(mail, false);
            assert_eq!(plain[0], ZSTD_DICT_1);
            assert!(plain.len() > packed.len());
            assert_eq!(unpack(&plain, mail.len()).unwrap(), mail);
            // Any slice of it, as a record cut from a longer stream.
            for start in [0, 1, 7, 100, 777] {
                for len in [0, 1, 65, 300, 2000] {
                    let part = &mail[start.min(mail.len())..(start + len).min(mail.len())];
                    assert_eq!(unpack(&pack(part, true), part.len()).unwrap(), part);
                }
            }
        }
    }

    #[test]
    fn folding_keeps_what_is_not_whole_base64_lines() {
        for (text, folds) in [
            (&b"QUJDREVGR0hJSktMTU5PUA==\r\n"[..], false),
            (b"QUJDREVGR0hJSktMTU5PUA\r\n", false),
            (b"QUJDREVGR0hJSktMTU5PUABC\r\n", true),
            (
                b"QUJDREVGR0hJSktMTU5PUABC\nQUJDREVGR0hJSktMTU5PUABC\n",
                true,
            ),
            (
                b"QUJDREVGR0hJSktMTU5PUABC\r\nQUJD\nQUJDREVGR0hJSktMTU5PUABC",
                true,
            ),
            (b"QUJDREVGR0hJSktMTU5PUABC", false),
            (b"-----BEGIN PGP MESSAGE-----\r\n", false),
            (b"abcd\r\n", false),
        ] {
            let f = fold(text);
            assert_eq!(
                f.len() < text.len(),
                folds,
                "{}",
                String::from_utf8_lossy(text)
            );
            assert_eq!(unfold(&f, text.len()).unwrap(), text);
        }
        // A bound below the unfolded size, and malformed segments.
        let f = fold(b"QUJDREVGR0hJSktMTU5PUABC\r\n");
        assert_eq!(unfold(&f, 10), None);
        for bad in [
            &[9u8][..],
            &[SEG_BYTES, 5, 1],
            &[SEG_LINES_LF, 0, 1],
            &[SEG_LINES_CRLF, 1, 2, 0, 0, 0],
        ] {
            assert_eq!(unfold(bad, 1000), None, "{bad:?}");
        }
        assert_eq!(
            unpack(&[FOLDED_ZSTD_DICT_1, 1, 2, 3], 10),
            Err(SqueezeError::Corrupt(10))
        );
    }

    #[test]
    fn bad_records_are_refused() {
        assert_eq!(unpack(&[], 10), Err(SqueezeError::Empty));
        assert_eq!(unpack(&[9, 1, 2], 10), Err(SqueezeError::Method(9)));
        assert_eq!(
            unpack(&[ZSTD_DICT_1, 1, 2, 3], 10),
            Err(SqueezeError::Corrupt(10))
        );
        // A bomb: a megabyte of zeros may not inflate past the bound.
        let bomb = pack(&vec![0u8; 1 << 20], true);
        assert!(bomb.len() < 1000);
        assert_eq!(unpack(&bomb, 1000), Err(SqueezeError::Corrupt(1000)));
        assert_eq!(unpack(&[RAW, 1, 2, 3], 2), Err(SqueezeError::Corrupt(2)));
    }

    proptest! {
        #[test]
        fn any_record_round_trips(record in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let packed = pack(&record, true);
            prop_assert!(packed.len() <= record.len() + 1);
            prop_assert_eq!(unpack(&packed, 5000).unwrap(), record);
        }

        /// Records made mostly of base64 lines, line ends and a few other
        /// bytes: folding and unfolding give every one back.
        #[test]
        fn base64_like_records_fold_and_come_back(
            record in proptest::collection::vec(
                prop_oneof![
                    8 => proptest::sample::select(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".to_vec()),
                    2 => Just(b'\n'),
                    2 => Just(b'\r'),
                    1 => any::<u8>(),
                ],
                0..3000,
            )
        ) {
            let f = fold(&record);
            prop_assert_eq!(unfold(&f, record.len()), Some(record.clone()));
            prop_assert_eq!(unpack(&pack(&record, true), 3000).unwrap(), record);
        }

        #[test]
        fn unfolding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(out) = unfold(&bytes, 4000) {
                prop_assert!(out.len() <= 4000);
            }
        }
    }
}
