//! The bundle file format: what one node hands another through any carrier.
//!
//! ```text
//! header (clear, 81 bytes): "CAIRNBDL" | version u8 | sender key [32] | recipient key [32] | sequence u64 BE
//! handshake:                u16 BE length | Noise_K_25519_ChaChaPoly_BLAKE2s message (e, es, ss)
//! chunks:                   u32 BE length | Noise transport message (≤ 65535 bytes)
//!                           plaintext = flag u8 (0 more, 1 last) | data
//! data:                     one zstd frame of records: u32 BE length | postcard(Record)
//! ```
//!
//! The clear header is the Noise prologue, so changing any byte of it fails
//! authentication. Noise K (both static keys known in advance) encrypts to
//! the recipient and authenticates the sender; the chunk nonces are the
//! Noise counter, so chunks cannot be reordered, and the flag byte of the
//! last chunk makes truncation detectable. The record stream ends with
//! [`Record::End`], which counts what came before.
//!
//! This module does no file or network I/O of its own: it reads from any
//! [`Read`] and writes to any [`Write`].

use serde::{Deserialize, Serialize};
use snow::{Builder, HandshakeState, TransportState};
use std::io::{self, Read, Write};

pub const MAGIC: &[u8; 8] = b"CAIRNBDL"; // also named in `BundleError::NotABundle`
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8 + 1 + 32 + 32 + 8;
/// The Noise protocol every bundle uses.
pub const NOISE: &str = "Noise_K_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message, and the authentication tag inside it.
const NOISE_MAX: usize = 65535;
const TAG: usize = 16;
/// Plaintext data per chunk (one byte goes to the flag).
const CHUNK_DATA: usize = NOISE_MAX - TAG - 1;
/// zstd window the reader accepts (2^23 = 8 MiB): bounds its memory.
const WINDOW_LOG_MAX: u32 = 23;
/// zstd level for writing: fast, and most of a bundle is already-encrypted
/// OpenPGP that does not compress much anyway.
const LEVEL: i32 = 3;

/// A 32-byte X25519 public key (a node's identity).
pub type NodeKey = [u8; 32];
/// A content id: SHA-256 over an item's canonical envelope and body.
pub type ContentId = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "not a cairn bundle (it does not start with \"CAIRNBDL\"): check that this is the right file"
    )]
    NotABundle,
    #[error(
        "bundle format version {0} is newer than this cairn understands ({VERSION}): update cairn on this node"
    )]
    Version(u8),
    #[error(
        "the bundle is truncated (an incomplete copy, or a USB stick pulled while writing): copy it again from the sender"
    )]
    Truncated,
    #[error(
        "the bundle failed authentication (corrupted, tampered with, or not made by the node it names): ask the sender to export it again"
    )]
    Authentication,
    #[error(
        "the bundle expands past {limit} bytes: refused as a decompression bomb; raise limits.max_bundle_size only if the sender is trusted"
    )]
    TooLarge { limit: u64 },
    #[error(
        "the bundle holds a record of {size} bytes, more than the {limit} allowed: the sender must not send messages that large"
    )]
    RecordTooLarge { size: u64, limit: u64 },
    #[error("the bundle is malformed: {0}")]
    Malformed(String),
    #[error("cannot read or write the bundle: {0}")]
    Io(#[source] io::Error),
}

pub type Result<T, E = BundleError> = std::result::Result<T, E>;

/// The clear part at the start of every bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub from: NodeKey,
    pub to: NodeKey,
    /// The sender's counter of bundles to this recipient (for names and logs).
    pub seq: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8] = VERSION;
        h[9..41].copy_from_slice(&self.from);
        h[41..73].copy_from_slice(&self.to);
        h[73..].copy_from_slice(&self.seq.to_be_bytes());
        h
    }

    /// Read and check the clear header.
    pub fn read(r: &mut impl Read) -> Result<Header> {
        let mut h = [0u8; HEADER_LEN];
        let n = read_full(r, &mut h)?;
        if n < MAGIC.len() || &h[..8] != MAGIC {
            return Err(BundleError::NotABundle);
        }
        if n < 9 {
            return Err(BundleError::Truncated);
        }
        if h[8] != VERSION {
            return Err(BundleError::Version(h[8]));
        }
        if n < HEADER_LEN {
            return Err(BundleError::Truncated);
        }
        let mut from = [0u8; 32];
        let mut to = [0u8; 32];
        from.copy_from_slice(&h[9..41]);
        to.copy_from_slice(&h[41..73]);
        let seq = u64::from_be_bytes(h[73..].try_into().expect("8 bytes"));
        Ok(Header { from, to, seq })
    }
}

/// One message in custody: its envelope, its body and its travel so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: ContentId,
    /// Empty for the null reverse-path of a bounce.
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// Time spent in custody so far, summed over hops (clocks on hubs are
    /// unreliable, so no absolute times travel).
    pub age_ms: u64,
    pub lifetime_ms: u64,
    pub hops: u8,
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

/// What a bundle carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Item(Item),
    /// Items of the recipient that the sender now holds durably.
    Acks(Vec<ContentId>),
    /// Last record: how many items and acknowledgements came before.
    End {
        items: u64,
        acks: u64,
    },
}

/// [`Record`] borrowed for writing: the same variants in the same order,
/// so postcard encodes both identically.
#[derive(Serialize)]
enum RecordOut<'a> {
    Item(&'a Item),
    Acks(&'a [ContentId]),
    End { items: u64, acks: u64 },
}

/// Limits a reader enforces on what a peer sent.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes of the whole record stream.
    pub max_plain: u64,
    /// Bytes of one record (an item's message plus its envelope).
    pub max_record: u64,
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BundleError::Io(e)),
        }
    }
    Ok(n)
}

fn noise(
    local_private: &[u8; 32],
    remote_public: &NodeKey,
    prologue: &[u8],
    initiator: bool,
) -> Result<HandshakeState> {
    let params = NOISE.parse().expect("valid Noise pattern name");
    let b = Builder::new(params)
        .local_private_key(local_private)
        .and_then(|b| b.remote_public_key(remote_public))
        .and_then(|b| b.prologue(prologue))
        .map_err(|e| BundleError::Malformed(format!("noise setup: {e}")))?;
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
    .map_err(|e| BundleError::Malformed(format!("noise setup: {e}")))
}

// ---------------------------------------------------------------- writing

/// Encrypts plaintext into length-prefixed Noise chunks.
pub struct ChunkWriter<W: Write> {
    out: W,
    noise: TransportState,
    buf: Vec<u8>,
    cipher: Vec<u8>,
}

impl<W: Write> ChunkWriter<W> {
    fn emit(&mut self, last: bool) -> io::Result<()> {
        let mut plain = Vec::with_capacity(self.buf.len() + 1);
        plain.push(u8::from(last));
        plain.extend_from_slice(&self.buf);
        self.buf.clear();
        let n = self
            .noise
            .write_message(&plain, &mut self.cipher)
            .map_err(|e| io::Error::other(format!("noise: {e}")))?;
        self.out.write_all(&(n as u32).to_be_bytes())?;
        self.out.write_all(&self.cipher[..n])
    }

    fn finish(mut self) -> io::Result<W> {
        self.emit(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ChunkWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_DATA - self.buf.len();
        let take = room.min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == CHUNK_DATA {
            self.emit(false)?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the record stream (zstd, length-prefixed postcard records, an end
/// record) into any sink: the inside of a bundle before encryption.
pub struct RecordWriter<S: Write> {
    z: zstd::stream::write::Encoder<'static, S>,
    items: u64,
    acks: u64,
}

impl<S: Write> RecordWriter<S> {
    pub fn new(sink: S) -> Result<Self> {
        let z = zstd::stream::write::Encoder::new(sink, LEVEL).map_err(BundleError::Io)?;
        Ok(RecordWriter {
            z,
            items: 0,
            acks: 0,
        })
    }

    fn record(&mut self, r: &RecordOut<'_>) -> Result<()> {
        let bytes = postcard::to_stdvec(r).map_err(|e| BundleError::Malformed(e.to_string()))?;
        let len = u32::try_from(bytes.len())
            .map_err(|_| BundleError::Malformed("record over 4 GiB".into()))?;
        self.z
            .write_all(&len.to_be_bytes())
            .and_then(|()| self.z.write_all(&bytes))
            .map_err(BundleError::Io)
    }

    pub fn item(&mut self, item: &Item) -> Result<()> {
        self.items += 1;
        self.record(&RecordOut::Item(item))
    }

    pub fn acks(&mut self, ids: &[ContentId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.acks += ids.len() as u64;
        self.record(&RecordOut::Acks(ids))
    }

    /// Write the end record and finish the zstd stream.
    pub fn finish(mut self) -> Result<S> {
        let end = RecordOut::End {
            items: self.items,
            acks: self.acks,
        };
        self.record(&end)?;
        self.z.finish().map_err(BundleError::Io)
    }
}

/// Writes one bundle: header, handshake, then records as they come.
pub struct BundleWriter<W: Write> {
    records: RecordWriter<ChunkWriter<W>>,
}

impl<W: Write> BundleWriter<W> {
    /// Start a bundle from the node with `local_private` to `header.to`.
    pub fn new(mut out: W, header: &Header, local_private: &[u8; 32]) -> Result<Self> {
        let head = header.encode();
        let mut hs = noise(local_private, &header.to, &head, true)?;
        let mut msg = vec![0u8; NOISE_MAX];
        let n = hs
            .write_message(&[], &mut msg)
            .map_err(|e| BundleError::Malformed(format!("noise handshake: {e}")))?;
        let noise = hs
            .into_transport_mode()
            .map_err(|e| BundleError::Malformed(format!("noise handshake: {e}")))?;
        out.write_all(&head).map_err(BundleError::Io)?;
        out.write_all(&(n as u16).to_be_bytes())
            .map_err(BundleError::Io)?;
        out.write_all(&msg[..n]).map_err(BundleError::Io)?;
        let chunks = ChunkWriter {
            out,
            noise,
            buf: Vec::with_capacity(CHUNK_DATA),
            cipher: vec![0u8; NOISE_MAX],
        };
        Ok(BundleWriter {
            records: RecordWriter::new(chunks)?,
        })
    }

    pub fn item(&mut self, item: &Item) -> Result<()> {
        self.records.item(item)
    }

    pub fn acks(&mut self, ids: &[ContentId]) -> Result<()> {
        self.records.acks(ids)
    }

    /// End the record stream and the last chunk; returns the output.
    pub fn finish(self) -> Result<W> {
        let chunks = self.records.finish()?;
        chunks.finish().map_err(BundleError::Io)
    }
}

// ---------------------------------------------------------------- reading

/// Wraps a bundle error so it can travel through `io::Read`.
#[derive(Debug)]
struct Carried(BundleError);
impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for Carried {}

fn carry(e: BundleError) -> io::Error {
    io::Error::other(Carried(e))
}

fn uncarry(e: io::Error) -> BundleError {
    if e.get_ref().is_some_and(|i| i.is::<Carried>()) {
        let inner = e.into_inner().expect("checked");
        return inner.downcast::<Carried>().expect("checked").0;
    }
    // zstd reports corrupt input as io errors of its own.
    if e.kind() == io::ErrorKind::Other || e.kind() == io::ErrorKind::InvalidData {
        return BundleError::Malformed(format!("compressed data: {e}"));
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return BundleError::Truncated;
    }
    BundleError::Io(e)
}

/// Decrypts length-prefixed Noise chunks back into plaintext.
pub struct ChunkReader<R: Read> {
    input: R,
    noise: TransportState,
    plain: Vec<u8>,
    pos: usize,
    done: bool,
    cipher: Vec<u8>,
}

impl<R: Read> ChunkReader<R> {
    fn next_chunk(&mut self) -> Result<()> {
        let mut len = [0u8; 4];
        let n = read_full(&mut self.input, &mut len)?;
        if n < 4 {
            return Err(BundleError::Truncated);
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG + 1..=NOISE_MAX).contains(&len) {
            return Err(BundleError::Malformed(format!("chunk length {len}")));
        }
        let n = read_full(&mut self.input, &mut self.cipher[..len])?;
        if n < len {
            return Err(BundleError::Truncated);
        }
        self.plain.resize(NOISE_MAX, 0);
        let m = self
            .noise
            .read_message(&self.cipher[..len], &mut self.plain)
            .map_err(|_| BundleError::Authentication)?;
        self.plain.truncate(m);
        match self.plain.first() {
            Some(0) => {}
            Some(1) => {
                self.done = true;
                // Nothing may follow the last chunk.
                let mut extra = [0u8; 1];
                if read_full(&mut self.input, &mut extra)? != 0 {
                    return Err(BundleError::Malformed("bytes after the last chunk".into()));
                }
            }
            _ => return Err(BundleError::Malformed("bad chunk flag".into())),
        }
        self.pos = 1;
        Ok(())
    }
}

impl<R: Read> Read for ChunkReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk().map_err(carry)?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Counts decompressed bytes against the bundle's limit.
struct Bounded<R: Read> {
    inner: R,
    used: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.used += n as u64;
        if self.used > self.limit {
            return Err(carry(BundleError::TooLarge { limit: self.limit }));
        }
        Ok(n)
    }
}

type Plain<S> = Bounded<zstd::stream::read::Decoder<'static, io::BufReader<S>>>;

/// Reads the records of a decrypted record stream (zstd, length-prefixed
/// postcard records, an end record), enforcing the limits.
pub struct RecordReader<S: Read> {
    plain: Plain<S>,
    limits: Limits,
    items: u64,
    acks: u64,
    ended: bool,
}

/// Reads the records of one bundle whose header was already read.
pub type BundleReader<R> = RecordReader<ChunkReader<R>>;

impl<R: Read> RecordReader<ChunkReader<R>> {
    /// Authenticate the handshake: `local_private` is this node's key,
    /// `header.from` must be a known peer (the caller checks).
    pub fn open(
        mut input: R,
        header: &Header,
        local_private: &[u8; 32],
        limits: Limits,
    ) -> Result<Self> {
        let head = header.encode();
        let mut hs = noise(local_private, &header.from, &head, false)?;
        let mut len = [0u8; 2];
        if read_full(&mut input, &mut len)? < 2 {
            return Err(BundleError::Truncated);
        }
        let len = u16::from_be_bytes(len) as usize;
        let mut msg = vec![0u8; len];
        if read_full(&mut input, &mut msg)? < len {
            return Err(BundleError::Truncated);
        }
        let mut payload = vec![0u8; NOISE_MAX];
        hs.read_message(&msg, &mut payload)
            .map_err(|_| BundleError::Authentication)?;
        let noise = hs
            .into_transport_mode()
            .map_err(|_| BundleError::Authentication)?;
        let chunks = ChunkReader {
            input,
            noise,
            plain: Vec::new(),
            pos: 0,
            done: false,
            cipher: vec![0u8; NOISE_MAX],
        };
        RecordReader::new(chunks, limits)
    }
}

impl<S: Read> RecordReader<S> {
    /// Records from an already decrypted stream (the bundle reader's inner
    /// layer; public so fuzzing can reach it without the keys).
    pub fn new(source: S, limits: Limits) -> Result<Self> {
        let mut z = zstd::stream::read::Decoder::new(source).map_err(BundleError::Io)?;
        z.window_log_max(WINDOW_LOG_MAX).map_err(BundleError::Io)?;
        Ok(RecordReader {
            plain: Bounded {
                inner: z,
                used: 0,
                limit: limits.max_plain,
            },
            limits,
            items: 0,
            acks: 0,
            ended: false,
        })
    }

    /// The next item or acknowledgement list; `None` once the stream has
    /// ended, been counted, and authenticated to its last byte.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        if self.ended {
            return Ok(None);
        }
        let mut len = [0u8; 4];
        match self.plain.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) => {
                return Err(match uncarry(e) {
                    // The stream ended without an End record.
                    BundleError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        BundleError::Truncated
                    }
                    other => other,
                });
            }
        }
        let len = u64::from(u32::from_be_bytes(len));
        if len > self.limits.max_record {
            return Err(BundleError::RecordTooLarge {
                size: len,
                limit: self.limits.max_record,
            });
        }
        let mut buf = vec![0u8; len as usize];
        self.plain.read_exact(&mut buf).map_err(uncarry)?;
        let record: Record = postcard::from_bytes(&buf)
            .map_err(|e| BundleError::Malformed(format!("record: {e}")))?;
        match &record {
            Record::Item(_) => self.items += 1,
            Record::Acks(ids) => self.acks += ids.len() as u64,
            Record::End { items, acks } => {
                if (*items, *acks) != (self.items, self.acks) {
                    return Err(BundleError::Malformed(format!(
                        "the end record counts {items} items and {acks} acks, but {} and {} came",
                        self.items, self.acks
                    )));
                }
                // Read to the end: the last chunk must authenticate and
                // nothing may follow the End record.
                let mut rest = [0u8; 1];
                match self.plain.read(&mut rest) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Err(BundleError::Malformed("data after the end record".into()));
                    }
                    Err(e) => return Err(uncarry(e)),
                }
                self.ended = true;
                return Ok(None);
            }
        }
        Ok(Some(record))
    }
}

/// A fresh static key pair for a node: (private, public).
pub fn generate_keypair() -> ([u8; 32], NodeKey) {
    let b = Builder::new(NOISE.parse().expect("valid Noise pattern name"));
    let kp = b.generate_keypair().expect("system random source");
    let mut private = [0u8; 32];
    let mut public = [0u8; 32];
    private.copy_from_slice(&kp.private);
    public.copy_from_slice(&kp.public);
    (private, public)
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
