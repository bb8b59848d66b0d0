//! Taking in a message body as it arrives: line endings normalised to CRLF,
//! the header section held back (bounded) so submission hygiene can drop
//! fields that reveal the sender's device or network, the size capped
//! while streaming, everything spooled to the store.

use crate::store::{self, Spool};

/// RFC 5322 puts no limit on the header section; Postfix's default
/// `header_size_limit` is 100 KiB. Delta Chat's outer headers are < 2 KiB.
pub const MAX_HEADER_SECTION: usize = 256 << 10;

/// Header fields removed from submitted mail, as chatmail does: they tell
/// recipients which device, app or network the sender used.
pub const SUBMISSION_STRIP: &[&str] = &["received", "x-originating-ip", "user-agent", "x-mailer"];

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("message exceeds the size limit of {limit} bytes")]
    TooBig { limit: u64 },
    #[error("the header section exceeds {MAX_HEADER_SECTION} bytes")]
    HeaderTooBig,
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A body in progress.
pub struct Intake {
    spool: Spool,
    header: Vec<u8>,
    in_header: bool,
    strip: bool,
    limit: u64,
    received: u64,
    overflow: Option<IntakeErrorKind>,
    last: u8,
    header_len: usize,
}

#[derive(Debug, Clone, Copy)]
enum IntakeErrorKind {
    TooBig,
    HeaderTooBig,
}

/// A complete body, spooled, with its (cleaned) header section.
pub struct Received {
    pub spool: Spool,
    pub header: Vec<u8>,
}

impl Intake {
    /// `strip`: apply submission hygiene. `limit`: the most bytes accepted.
    pub fn new(spool: Spool, strip: bool, limit: u64) -> Self {
        Intake {
            spool,
            header: Vec::new(),
            in_header: true,
            strip,
            limit,
            received: 0,
            overflow: None,
            last: 0,
            header_len: 0,
        }
    }

    /// Whether the size limit has been passed (the rest is only counted).
    pub fn overflowed(&self) -> bool {
        self.overflow.is_some()
    }

    /// Feed the next bytes of the (already dot-unstuffed) message.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), IntakeError> {
        self.received += bytes.len() as u64;
        if self.overflow.is_some() {
            return Ok(());
        }
        if self.received > self.limit {
            self.overflow = Some(IntakeErrorKind::TooBig);
            self.header = Vec::new();
            return Ok(());
        }
        // Normalise bare LF to CRLF.
        let mut normalised = Vec::with_capacity(bytes.len() + 16);
        for &b in bytes {
            if b == b'\n' && self.last != b'\r' {
                normalised.push(b'\r');
            }
            normalised.push(b);
            self.last = b;
        }
        if !self.in_header {
            self.spool.write(&normalised)?;
            return Ok(());
        }
        let search_from = self.header.len().saturating_sub(3);
        self.header.extend_from_slice(&normalised);
        let end = if self.header.starts_with(b"\r\n") {
            Some(2)
        } else {
            find(&self.header[search_from..], b"\r\n\r\n").map(|i| search_from + i + 4)
        };
        match end {
            Some(end) => {
                let rest = self.header.split_off(end);
                self.flush_header()?;
                self.spool.write(&rest)?;
            }
            None if self.header.len() > MAX_HEADER_SECTION => {
                self.overflow = Some(IntakeErrorKind::HeaderTooBig);
                self.header = Vec::new();
            }
            None => {}
        }
        Ok(())
    }

    fn flush_header(&mut self) -> Result<(), IntakeError> {
        self.in_header = false;
        if self.strip {
            self.header = strip_fields(&self.header, SUBMISSION_STRIP);
        }
        self.header_len = self.header.len();
        self.spool.write(&self.header)?;
        Ok(())
    }

    /// The end of the message: all of it, or why it was refused.
    pub fn finish(mut self) -> Result<Received, IntakeError> {
        match self.overflow {
            Some(IntakeErrorKind::TooBig) => return Err(IntakeError::TooBig { limit: self.limit }),
            Some(IntakeErrorKind::HeaderTooBig) => return Err(IntakeError::HeaderTooBig),
            None => {}
        }
        if self.in_header {
            // No body: the whole message is header.
            if !self.header.ends_with(b"\r\n") && !self.header.is_empty() {
                self.header.extend_from_slice(b"\r\n");
            }
            self.flush_header()?;
        }
        let header = std::mem::take(&mut self.header);
        Ok(Received {
            spool: self.spool,
            header,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The header fields of a header section, unfolded: (name, value).
pub fn fields(header: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(text.trim());
            }
        } else if let Some((name, value)) = text.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// Remove whole fields (with their continuation lines) by name.
pub fn strip_fields(header: &[u8], names: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len());
    let mut dropping = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            let name = line.iter().position(|&b| b == b':').map(|i| {
                String::from_utf8_lossy(&line[..i])
                    .trim()
                    .to_ascii_lowercase()
            });
            dropping = name.is_some_and(|n| names.contains(&n.as_str()));
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, crate::store::Store) {
        let d = tempfile::tempdir().unwrap();
        let s = crate::store::Store::open(d.path()).await.unwrap();
        (d, s)
    }

    fn read_all(r: &Received) -> Vec<u8> {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut r.spool.reader().unwrap(), &mut v).unwrap();
        v
    }

    #[tokio::test]
    async fn strips_hygiene_fields_across_chunks_and_normalises_lf() {
        let (_d, s) = store().await;
        let msg = b"Received: from phone\r\n  (10.42.0.7)\r\nFrom: <a@x>\r\nUser-Agent: Foo/1\nX-Mailer: m\r\nSubject: [...]\r\n\r\nbody\nline\r\n";
        for split in [1, 7, 20, 60, msg.len()] {
            let mut i = Intake::new(s.spool(), true, 1 << 20);
            for chunk in msg.chunks(split) {
                i.push(chunk).unwrap();
            }
            let r = i.finish().unwrap();
            assert_eq!(
                String::from_utf8(read_all(&r)).unwrap(),
                "From: <a@x>\r\nSubject: [...]\r\n\r\nbody\r\nline\r\n",
                "split {split}"
            );
            assert_eq!(fields(&r.header).len(), 2);
        }
    }

    #[tokio::test]
    async fn mx_keeps_received() {
        let (_d, s) = store().await;
        let mut i = Intake::new(s.spool(), false, 1 << 20);
        i.push(b"Received: x\r\n\r\nb\r\n").unwrap();
        let r = i.finish().unwrap();
        assert_eq!(read_all(&r), b"Received: x\r\n\r\nb\r\n");
    }

    #[tokio::test]
    async fn size_limit_while_streaming() {
        let (_d, s) = store().await;
        let mut i = Intake::new(s.spool(), true, 1000);
        i.push(b"Subject: x\r\n\r\n").unwrap();
        for _ in 0..100 {
            i.push(&[b'a'; 100]).unwrap();
        }
        assert!(i.overflowed());
        assert!(matches!(
            i.finish(),
            Err(IntakeError::TooBig { limit: 1000 })
        ));
    }

    #[tokio::test]
    async fn endless_header_is_refused() {
        let (_d, s) = store().await;
        let mut i = Intake::new(s.spool(), true, 10 << 20);
        for n in 0..MAX_HEADER_SECTION / 10 + 10 {
            i.push(format!("X-{n}: yy\r\n").as_bytes()).unwrap();
        }
        assert!(matches!(i.finish(), Err(IntakeError::HeaderTooBig)));
    }

    #[test]
    fn unfolds_fields() {
        let f = fields(b"From: a\r\n b\r\nTo: c\r\n\r\n");
        assert_eq!(
            f,
            vec![("From".into(), "a b".into()), ("To".into(), "c".into())]
        );
    }
}
