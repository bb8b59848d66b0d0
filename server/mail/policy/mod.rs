//! The encryption rule of chatmail relays, which Delta Chat users expect
//! from a hub: between users only OpenPGP-encrypted mail passes, plus the
//! few clear-text messages the protocol needs (Secure-Join requests,
//! bounces, the Autocrypt Setup Message to oneself).
//!
//! RFC 3156 §4 (multipart/encrypted), RFC 4880 / RFC 9580 §4.2 (packet
//! framing), RFC 4880 §6.2 (ASCII armour). The check walks the structure
//! as a stream: it never holds more than one line, so a 30 MiB attachment
//! costs no memory.

use super::intake::fields;
use base64::Engine;
use std::io::BufRead;

/// Longest line accepted inside an encrypted message (armour lines are 64–76).
const MAX_LINE: usize = 8 << 10;
/// A Secure-Join request body is one short line; read no more than this.
const MAX_SECUREJOIN_BODY: usize = 4 << 10;

/// Direction, because the exemptions differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Submitted by a local user.
    Outgoing,
    /// Arriving from a peer or the Internet.
    Incoming,
}

/// Why a message is not acceptable under the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unencrypted mail is not accepted here: {0}")]
pub struct NotEncrypted(pub &'static str);

/// What the rule needs to know about the envelope.
pub struct Envelope<'a> {
    pub mail_from: &'a str,
    pub rcpts: &'a [String],
}

/// What [`check_spooled`] found: the message could be read (outer) and
/// passes (inner).
pub type Verdict = crate::store::Result<Result<(), NotEncrypted>>;

/// [`check`] a message spooled on disk: its body is read back off the
/// async workers (file I/O). The spool comes back with the verdict, for
/// the commit or the bounce. An error: the check did not finish (the
/// hub is stopping, or a bug), never a reason to take the message.
pub async fn check_spooled(
    direction: Direction,
    mail_from: String,
    rcpts: Vec<String>,
    header: Vec<u8>,
    spool: crate::store::Spool,
) -> Result<(crate::store::Spool, Verdict), tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let verdict = spool.reader().map(|mut reader| {
            let envelope = Envelope {
                mail_from: &mail_from,
                rcpts: &rcpts,
            };
            check(direction, &envelope, &header, &mut reader)
        });
        (spool, verdict)
    })
    .await
}

/// Decide whether a message passes. `message` reads the whole message
/// (header section first); `header` is its header section.
pub fn check(
    direction: Direction,
    envelope: &Envelope<'_>,
    header: &[u8],
    message: &mut dyn BufRead,
) -> Result<(), NotEncrypted> {
    let fields = fields(header);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let ctype = get("Content-Type").unwrap_or("text/plain");
    let (mime, params) = parse_content_type(ctype);

    // Skip the header section in the stream.
    let mut skipped = 0usize;
    while skipped < header.len() {
        let buf = message.fill_buf().map_err(|_| NotEncrypted("unreadable"))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(header.len() - skipped);
        message.consume(n);
        skipped += n;
    }

    if mime == "multipart/encrypted" {
        let boundary = params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())
            .ok_or(NotEncrypted("multipart/encrypted without a boundary"))?;
        return check_encrypted(message, &boundary, direction);
    }

    // Secure-Join v1/v2 requests travel in clear (RFC-less Delta Chat protocol).
    if get("Secure-Join").is_some() && mime == "text/plain" {
        let mut body = Vec::new();
        let mut limited = std::io::Read::take(message, MAX_SECUREJOIN_BODY as u64);
        std::io::Read::read_to_end(&mut limited, &mut body)
            .map_err(|_| NotEncrypted("unreadable"))?;
        let text = String::from_utf8_lossy(&body);
        if matches!(
            text.trim(),
            "secure-join: vc-request" | "secure-join: vg-request"
        ) {
            return Ok(());
        }
    }

    match direction {
        Direction::Outgoing => {
            // The Autocrypt Setup Message is sent by a user to themselves.
            if get("Autocrypt-Setup-Message").is_some()
                && !envelope.rcpts.is_empty()
                && envelope
                    .rcpts
                    .iter()
                    .all(|r| r.eq_ignore_ascii_case(envelope.mail_from))
            {
                return Ok(());
            }
        }
        Direction::Incoming => {
            // Delivery status notifications (bounces) from mail servers.
            if mime == "multipart/report" && get("Auto-Submitted").is_some() {
                let from = get("From").unwrap_or("").to_ascii_lowercase();
                if envelope.mail_from.is_empty() || from.contains("mailer-daemon@") {
                    return Ok(());
                }
            }
        }
    }
    Err(NotEncrypted(
        "only OpenPGP-encrypted messages may be sent between users of this hub",
    ))
}

/// `type/subtype` in lower case and the parameters (names lower-cased, quotes removed).
fn parse_content_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = split_params(value).into_iter();
    let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((k.trim().to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    (mime, params)
}

/// Split at `;` outside quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                out.last_mut().unwrap().push(c);
            }
            ';' if !quoted => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// Read one line without its line ending; `None` at the end.
fn line(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> Result<Option<()>, NotEncrypted> {
    buf.clear();
    let mut limited = std::io::Read::take(&mut *r, MAX_LINE as u64 + 2);
    let n = limited
        .read_until(b'\n', buf)
        .map_err(|_| NotEncrypted("unreadable"))?;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") && n > MAX_LINE {
        return Err(NotEncrypted("a line in the encrypted part is too long"));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(()))
}

/// RFC 3156 §4: exactly two parts, `application/pgp-encrypted` with
/// `Version: 1`, then `application/octet-stream` holding one armoured
/// OpenPGP message made of key packets followed by one encrypted-data packet.
fn check_encrypted(
    r: &mut dyn BufRead,
    boundary: &str,
    direction: Direction,
) -> Result<(), NotEncrypted> {
    let delim = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut buf = Vec::new();
    let is = |buf: &[u8], s: &str| buf.trim_ascii_end() == s.as_bytes();

    // Preamble.
    loop {
        line(r, &mut buf)?.ok_or(NotEncrypted("no MIME parts"))?;
        if is(&buf, &delim) {
            break;
        }
    }
    // Part 1 header and body.
    let h1 = part_header(r, &mut buf)?;
    if parse_content_type(&h1).0 != "application/pgp-encrypted" {
        return Err(NotEncrypted("first part is not application/pgp-encrypted"));
    }
    let mut body1 = Vec::new();
    loop {
        line(r, &mut buf)?.ok_or(NotEncrypted("truncated MIME structure"))?;
        if is(&buf, &delim) {
            break;
        }
        let t = String::from_utf8_lossy(&buf).trim().to_string();
        if !t.is_empty() {
            body1.push(t);
        }
    }
    if body1 != ["Version: 1"] {
        return Err(NotEncrypted("first part is not `Version: 1`"));
    }
    // Part 2 header, then the armour.
    let h2 = part_header(r, &mut buf)?;
    if parse_content_type(&h2).0 != "application/octet-stream" {
        return Err(NotEncrypted("second part is not application/octet-stream"));
    }
    loop {
        line(r, &mut buf)?.ok_or(NotEncrypted("no OpenPGP armour"))?;
        if buf.trim_ascii().is_empty() {
            continue;
        }
        if buf.trim_ascii() == b"-----BEGIN PGP MESSAGE-----" {
            break;
        }
        return Err(NotEncrypted(
            "second part is not an armoured OpenPGP message",
        ));
    }
    // Armour headers, up to a blank line (RFC 4880 §6.2).
    loop {
        line(r, &mut buf)?.ok_or(NotEncrypted("truncated armour"))?;
        if buf.trim_ascii().is_empty() {
            break;
        }
        if direction == Direction::Outgoing && buf.to_ascii_lowercase().starts_with(b"version:") {
            return Err(NotEncrypted("armour `Version:` header is not allowed"));
        }
        if !buf.contains(&b':') {
            return Err(NotEncrypted("malformed armour header"));
        }
    }
    let mut packets = Packets::default();
    let mut pending = Vec::new();
    let engine = base64::engine::general_purpose::STANDARD;
    loop {
        line(r, &mut buf)?.ok_or(NotEncrypted("armour without an end line"))?;
        let t = buf.trim_ascii();
        if t == b"-----END PGP MESSAGE-----" {
            break;
        }
        if t.starts_with(b"=") && t.len() == 5 {
            continue; // CRC-24 checksum line
        }
        pending.extend_from_slice(t);
        let whole = pending.len() / 4 * 4;
        if whole > 0 {
            let bytes = engine
                .decode(&pending[..whole])
                .map_err(|_| NotEncrypted("armour is not valid base64"))?;
            pending.drain(..whole);
            packets.feed(&bytes)?;
        }
    }
    if !pending.is_empty() {
        return Err(NotEncrypted("armour is not valid base64"));
    }
    packets.finish()?;
    // The closing delimiter; anything after it is epilogue.
    loop {
        line(r, &mut buf)?.ok_or(NotEncrypted("missing closing MIME boundary"))?;
        if buf.trim_ascii().is_empty() {
            continue;
        }
        if is(&buf, &close) {
            return Ok(());
        }
        return Err(NotEncrypted("unexpected content after the encrypted part"));
    }
}

/// A MIME part's header section; returns its Content-Type value.
fn part_header(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> Result<String, NotEncrypted> {
    let mut header = Vec::new();
    loop {
        line(r, buf)?.ok_or(NotEncrypted("truncated MIME part"))?;
        if buf.is_empty() {
            break;
        }
        header.extend_from_slice(buf);
        header.extend_from_slice(b"\r\n");
        if header.len() > MAX_LINE * 4 {
            return Err(NotEncrypted("MIME part header too long"));
        }
    }
    Ok(fields(&header)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, v)| v)
        .unwrap_or_else(|| "text/plain".into()))
}

/// RFC 9580 §4.2 packet framing, checked as bytes arrive: any number of
/// PKESK (1) / SKESK (3) packets, then exactly one SEIPD (18), then nothing.
#[derive(Default)]
struct Packets {
    /// Bytes of the current packet header gathered so far.
    head: Vec<u8>,
    /// Body bytes still to skip in the current packet (or partial chunk).
    skip: u64,
    /// The current body is in partial chunks and more follow.
    partial: bool,
    /// Inside a packet body.
    in_body: bool,
    seen_key: bool,
    seen_data: bool,
}

impl Packets {
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), NotEncrypted> {
        while !bytes.is_empty() {
            if self.in_body {
                let n = (self.skip.min(bytes.len() as u64)) as usize;
                self.skip -= n as u64;
                bytes = &bytes[n..];
                if self.skip == 0 {
                    if self.partial {
                        // Next chunk length follows (RFC 9580 §4.2.1.4).
                        self.in_body = false;
                        self.head.clear();
                        self.head.push(0); // marker: expecting a chunk length
                    } else {
                        self.in_body = false;
                        self.head.clear();
                    }
                }
                continue;
            }
            self.head.push(bytes[0]);
            bytes = &bytes[1..];
            self.try_header()?;
        }
        Ok(())
    }

    fn try_header(&mut self) -> Result<(), NotEncrypted> {
        let bad = || NotEncrypted("not a well-formed OpenPGP message");
        // A partial-body chunk length: the marker byte then the length octets.
        if self.head.first() == Some(&0) && self.partial {
            let len = &self.head[1..];
            if let Some((n, partial)) = new_length(len)? {
                self.start_body(n, partial);
            }
            return Ok(());
        }
        let first = self.head[0];
        if first & 0x80 == 0 {
            return Err(bad());
        }
        let (tag, length) = if first & 0x40 != 0 {
            let len = &self.head[1..];
            match new_length(len)? {
                Some(l) => (first & 0x3f, l),
                None => return Ok(()),
            }
        } else {
            let len_bytes = match first & 0x03 {
                0 => 1,
                1 => 2,
                2 => 4,
                _ => {
                    return Err(NotEncrypted(
                        "indeterminate-length OpenPGP packets are not accepted",
                    ));
                }
            };
            if self.head.len() < 1 + len_bytes {
                return Ok(());
            }
            let n = self.head[1..]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            ((first >> 2) & 0x0f, (n, false))
        };
        match tag {
            1 | 3 if !self.seen_data => self.seen_key = true,
            18 if !self.seen_data && self.seen_key => self.seen_data = true,
            18 if !self.seen_key => {
                return Err(NotEncrypted("encrypted data without a key packet"));
            }
            _ => return Err(NotEncrypted("unexpected OpenPGP packet")),
        }
        if length.1 && tag != 18 {
            return Err(bad());
        }
        self.start_body(length.0, length.1);
        Ok(())
    }

    fn start_body(&mut self, n: u64, partial: bool) {
        self.skip = n;
        self.partial = partial;
        self.head.clear();
        if n == 0 {
            if partial {
                self.head.push(0);
            }
        } else {
            self.in_body = true;
        }
    }

    fn finish(&self) -> Result<(), NotEncrypted> {
        if self.in_body || !self.head.is_empty() || self.partial && self.skip > 0 {
            return Err(NotEncrypted("truncated OpenPGP message"));
        }
        if !self.seen_data {
            return Err(NotEncrypted("no encrypted data packet"));
        }
        Ok(())
    }
}

/// RFC 9580 §4.2.1 new-format length: `None` while more octets are needed;
/// `(length, partial)` when complete.
fn new_length(len: &[u8]) -> Result<Option<(u64, bool)>, NotEncrypted> {
    let Some(&o1) = len.first() else {
        return Ok(None);
    };
    Ok(match o1 {
        0..=191 => Some((u64::from(o1), false)),
        192..=223 => len
            .get(1)
            .map(|&o2| ((u64::from(o1) - 192) * 256 + u64::from(o2) + 192, false)),
        224..=254 => Some((1u64 << (o1 & 0x1f), true)),
        255 => {
            if len.len() < 5 {
                None
            } else {
                Some((
                    len[1..5].iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)),
                    false,
                ))
            }
        }
    })
}

#[cfg(test)]
mod tests;
