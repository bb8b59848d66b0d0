//! The carriers as the relay sees them. The kinds an uplink can use, as
//! one enum (what each takes as its target, whether it can read a deleted
//! bundle as an acknowledgement, whether it polls an idle peer; the store
//! keeps the kind as its name), and the traits the bundle carriers
//! implement in carriers/: a [`Folder`] bundles are left in and found in
//! (a USB stick, Syncthing), a [`Spool`] that takes a finished bundle
//! (NNCP, Filespooler), and [`Carriers`], which makes them for an uplink's
//! target and is handed in by app.rs. The relay never names a concrete
//! carrier; the radio's traits are in `radio::modem`.

use futures_util::future::BoxFuture;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A carrier that failed: what it was using, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot use {path}: {source}")]
pub struct CarrierError {
    /// The file, directory or program, as the user knows it.
    pub path: String,
    pub source: io::Error,
}

/// A directory both sides see. Its names are bundle files; the relay
/// decides what they mean.
pub trait Folder: Send + Sync {
    /// Where it is (the key its records are kept under).
    fn path(&self) -> &Path;
    /// Whether the folder is there now.
    fn present(&self) -> bool;
    /// Whether something is mounted there (a USB stick's mount point
    /// exists even when nothing is in).
    fn mounted(&self) -> bool;
    /// The files here that may be bundles for a reader to look at (not
    /// temporary files of this or other tools), sorted by name.
    fn bundles(&self) -> Result<Vec<String>, CarrierError>;
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, CarrierError>;
    fn contains(&self, name: &str) -> bool;
    /// Removes `name`; a file already gone is no error.
    fn remove(&self, name: &str) -> Result<(), CarrierError>;
    /// The folder's id, if it has a valid one: it tells this folder from
    /// another at the same mount point.
    fn id(&self) -> Option<String>;
    /// The folder's id, made now if it has none (or a damaged one).
    fn id_or_make(&self) -> Result<String, CarrierError>;
    /// A new file under a temporary name that no reader takes for a
    /// bundle; it appears under its final name only when published.
    fn stage(&self) -> Result<Box<dyn Staged>, CarrierError>;
}

/// A file being written into a [`Folder`]. Dropped unpublished, it is
/// removed.
pub trait Staged: Write + Send {
    /// Makes the file durable and gives it its final `name`, atomically;
    /// returns its path.
    fn publish(self: Box<Self>, name: &str) -> Result<PathBuf, CarrierError>;
}

/// One job for a [`Spool`]: a body for an exec handle, with arguments.
pub struct Job<'a> {
    pub handle: &'a str,
    pub args: &'a [String],
    pub body: &'a [u8],
}

/// A store-and-forward system that takes finished jobs: `queue` returns
/// Ok only once the job is complete and durable in its spool.
pub trait Spool: Send + Sync {
    fn queue<'a>(&'a self, job: Job<'a>) -> BoxFuture<'a, Result<(), CarrierError>>;
}

/// What became of one recipient handed to the Internet's mail servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again later, saying why.
    Temporary(String),
    /// Never: bounce with this enhanced status and text.
    Permanent {
        status: String,
        diagnostic: String,
    },
}

/// The Internet's mail servers (each domain's MX hosts, or a smarthost):
/// what became of each recipient of one message.
pub trait MailOut: Send + Sync {
    fn deliver<'a>(
        &'a self,
        from: &'a str,
        rcpts: &'a [String],
        message: &'a [u8],
    ) -> BoxFuture<'a, Vec<(String, Outcome)>>;
    /// What the Internet's DNS publishes for `name` (to check the records
    /// a gateway asks its admin to publish).
    fn lookup<'a>(&'a self, name: &'a str, kind: RecordType) -> BoxFuture<'a, Lookup>;
}

/// The DNS record types a gateway publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    Mx,
    Txt,
}

/// A DNS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The records of that type (an MX as its host name without the
    /// trailing dot; a TXT with its strings joined).
    Found(Vec<String>),
    /// The name does not exist or has no record of that type.
    Missing,
    /// No answer (no DNS server reachable, a server failure).
    Failed(String),
}

/// A byte stream to another node (a TCP connection, a tunnel, a test's
/// pipe): the live link runs its Noise channel over it.
pub trait ByteStream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> ByteStream for S {}

/// Makes the carriers for an uplink's target.
pub trait Carriers: Send + Sync {
    /// A byte stream to `addr` (an address from a peer's card), trying
    /// for at most `timeout` per address it resolves to.
    fn dial<'a>(
        &'a self,
        addr: &'a str,
        timeout: std::time::Duration,
    ) -> BoxFuture<'a, Result<Box<dyn ByteStream>, CarrierError>>;
    fn folder(&self, dir: &Path) -> Box<dyn Folder>;
    /// NNCP node `node`, with the NNCP configuration `cfg` (default: the
    /// system's).
    fn nncp(&self, node: &str, cfg: Option<&Path>) -> Box<dyn Spool>;
    /// The Filespooler queue `queue`, numbered by the sequence file
    /// `seqfile`.
    fn fspl(&self, queue: &Path, seqfile: &Path) -> Box<dyn Spool>;
    /// The way to the Internet that `gateway` describes, greeting as
    /// `helo`; an error says which setting to fix.
    fn smtp(
        &self,
        gateway: &crate::config::GatewayConfig,
        helo: &str,
    ) -> Result<Box<dyn MailOut>, String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CarrierKind {
    /// The live TCP link to the peer's card addresses (Noise).
    Link,
    /// A folder both hubs see (Syncthing, a share): bundles in and out.
    Folder,
    /// A folder on a removable stick: present only while mounted.
    Usb,
    /// NNCP packets to the peer's node.
    Nncp,
    /// The Internet's mail servers (the gateway's outbound SMTP).
    Smtp,
    /// The hub's LoRa radio.
    Lora,
}

impl CarrierKind {
    pub const ALL: [CarrierKind; 6] = [
        CarrierKind::Link,
        CarrierKind::Folder,
        CarrierKind::Usb,
        CarrierKind::Nncp,
        CarrierKind::Smtp,
        CarrierKind::Lora,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CarrierKind::Link => "link",
            CarrierKind::Folder => "folder",
            CarrierKind::Usb => "usb",
            CarrierKind::Nncp => "nncp",
            CarrierKind::Smtp => "smtp",
            CarrierKind::Lora => "lora",
        }
    }

    /// Bundles left in a folder: a deleted one can stand for its
    /// acknowledgement (the other side took it).
    pub fn is_folder(self) -> bool {
        matches!(self, CarrierKind::Folder | CarrierKind::Usb)
    }

    /// Whether an open uplink with nothing queued still syncs now and
    /// then to fetch what waits on the other side. Air time is scarce: a
    /// radio peer calls when it has something.
    pub fn polls(self) -> bool {
        self != CarrierKind::Lora
    }
}

impl fmt::Display for CarrierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A carrier name that is none of [`CarrierKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no carrier `{0}`: use one of link, folder, usb, nncp, smtp, lora")]
pub struct UnknownCarrier(pub String);

impl FromStr for CarrierKind {
    type Err = UnknownCarrier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CarrierKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownCarrier(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_exists() {
        for k in CarrierKind::ALL {
            assert_eq!(k.as_str().parse::<CarrierKind>(), Ok(k));
        }
        let e = "pigeon".parse::<CarrierKind>().unwrap_err().to_string();
        for k in CarrierKind::ALL {
            assert!(e.contains(k.as_str()), "{e}");
        }
    }
}
