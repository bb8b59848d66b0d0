//! The live link: two nodes sync over TCP while a connection lasts (a
//! café's Wi-Fi, a hub in reach, a Yggdrasil address).
//!
//! ```text
//! dialler → "CAIRNLNK" | version u8            (clear; also the Noise prologue)
//! frames, both ways:  u16 BE length | Noise message
//! handshake:          Noise_IK_25519_ChaChaPoly_BLAKE2s  → e, es, s, ss   ← e, ee, se
//! transport:          each frame's plaintext is one postcard(Msg)
//! ```
//!
//! Noise IK authenticates both node keys: the dialler knows the peer's key
//! from its card, and the answering side accepts only keys of its peers.
//! Transport nonces are the frame counters of each direction, so frames
//! cannot be dropped, replayed or reordered unnoticed.
//!
//! The sync that runs over the link is [`super::sync`]'s, the same as the
//! radio's. The bytes travel over any [`ByteStream`]: a TCP connection the
//! carrier dialled (`carriers/tcp.rs`) or app.rs accepted, a tunnel, a
//! test's pipe.

use super::bundle::NodeKey;
use super::carrier::ByteStream;
use super::node::fingerprint;
use super::sync::{Channel, Msg, Outgoing, exchange, record};
pub use super::sync::{
    ExchangeOptions, LinkError, LinkProgress, LinkResult, LinkState, MAX_INVENTORY,
    exchange_records,
};
use super::{Relay, RelayError};
use crate::store::SyncCounts;
use crate::store::relay::PeerRow;
use snow::StatelessTransportState;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

pub const MAGIC: &[u8; 8] = b"CAIRNLNK";
pub const VERSION: u8 = 1;
/// The Noise protocol of every link.
pub const NOISE: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
const NOISE_MAX: usize = 65535;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A link with no frame for this long is taken as lost.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// A side with nothing to say sends a ping this often, so a slow transfer
/// the other way does not look like a lost link.
pub const KEEPALIVE: Duration = Duration::from_secs(20);
/// Links answered at once; more wait for a free slot.
pub const MAX_SESSIONS: usize = 16;
/// Links answered at once from one address: a peer needs one, so a few
/// silent connections from one client cannot take the slots (16 of them
/// delayed a real peer by the 10-s handshake time).
pub const MAX_SESSIONS_PER_ADDRESS: u32 = 2;

fn params() -> snow::params::NoiseParams {
    NOISE.parse().expect("the link's Noise pattern parses")
}

/// What the dialler sends first, in clear; the Noise prologue.
const PROLOGUE: &[u8; 9] = b"CAIRNLNK\x01";

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> LinkResult<bool> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    r.read_exact(buf).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            LinkError::Closed
        } else {
            e.into()
        }
    })?;
    Ok(true)
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(frame.len()).expect("a Noise message fits a u16");
    let mut out = Vec::with_capacity(frame.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
    w.write_all(&out).await
}

impl Channel {
    /// The channel over a stream after the Noise handshake: each frame
    /// is one Noise message holding one postcard(Msg); pings keep a
    /// quiet link alive, and one silent for [`IDLE_TIMEOUT`] is lost.
    fn open<S>(stream: S, noise: StatelessTransportState) -> Channel
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let noise = Arc::new(noise);
        let (mut rd, mut wr) = tokio::io::split(stream);
        let n = noise.clone();
        let read = |in_tx: mpsc::Sender<LinkResult<Msg>>| async move {
            let mut nonce = 0u64;
            let mut frame = Vec::new();
            let mut plain = vec![0u8; NOISE_MAX];
            loop {
                let got = match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut rd, &mut frame))
                    .await
                {
                    Err(_) => Err(LinkError::Timeout(IDLE_TIMEOUT)),
                    Ok(Ok(false)) => Err(LinkError::Closed),
                    Ok(Ok(true)) => n
                        .read_message(nonce, &frame, &mut plain)
                        .map_err(|_| {
                            LinkError::Protocol(
                                "a frame failed authentication (corrupted or tampered with)".into(),
                            )
                        })
                        .and_then(|len| {
                            postcard::from_bytes::<Msg>(&plain[..len]).map_err(|e| {
                                LinkError::Protocol(format!("a frame does not decode: {e}"))
                            })
                        }),
                    Ok(Err(e)) => Err(e),
                };
                nonce += 1;
                let stop = got.is_err();
                if let Ok(Msg::Ping) = got {
                    continue;
                }
                if in_tx.send(got).await.is_err() || stop {
                    return;
                }
            }
        };
        let write = |mut outgoing: Outgoing| async move {
            let mut nonce = 0u64;
            let mut frame = vec![0u8; NOISE_MAX];
            while let Some(msg) = outgoing.next(Some(KEEPALIVE)).await {
                let plain = postcard::to_allocvec(&msg).expect("messages serialise");
                let Ok(len) = noise.write_message(nonce, &plain, &mut frame) else {
                    tracing::error!(len = plain.len(), "a link message does not fit a frame");
                    return;
                };
                nonce += 1;
                if write_frame(&mut wr, &frame[..len]).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        };
        Channel::spawn(4, HANDSHAKE_TIMEOUT, read, write)
    }
}

/// Dial `peer` at the first of its addresses that answers.
async fn connect(relay: &Relay, peer: &PeerRow) -> LinkResult<Box<dyn ByteStream>> {
    let addrs = peer.address_list();
    if addrs.is_empty() {
        return Err(LinkError::NoAddress(peer.name.clone()));
    }
    let mut last = String::new();
    for a in &addrs {
        match relay.carriers().dial(a, CONNECT_TIMEOUT).await {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("{}: {}", e.path, e.source),
        }
    }
    Err(LinkError::Unreachable {
        peer: peer.name.clone(),
        addrs: addrs.join(", "),
        error: last,
    })
}

/// The dialling side of the handshake, to the node with `key`.
async fn handshake_dial<S>(relay: &Relay, mut stream: S, key: &NodeKey) -> LinkResult<Channel>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let work = async {
        let mut hs = snow::Builder::new(params())
            .local_private_key(&relay.identity().private)
            .and_then(|b| b.remote_public_key(key))
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(|b| b.build_initiator())
            .map_err(|_| LinkError::Handshake)?;
        let mut buf = vec![0u8; NOISE_MAX];
        let n = hs
            .write_message(&[], &mut buf)
            .map_err(|_| LinkError::Handshake)?;
        let mut first = PROLOGUE.to_vec();
        first.extend_from_slice(&(n as u16).to_be_bytes());
        first.extend_from_slice(&buf[..n]);
        stream.write_all(&first).await?;
        let mut frame = Vec::new();
        match read_frame(&mut stream, &mut frame).await {
            Ok(true) => {}
            Ok(false) | Err(LinkError::Closed) => return Err(LinkError::HandshakeRefused),
            Err(LinkError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(LinkError::HandshakeRefused);
            }
            Err(e) => return Err(e),
        }
        hs.read_message(&frame, &mut buf)
            .map_err(|_| LinkError::Handshake)?;
        hs.into_stateless_transport_mode()
            .map_err(|_| LinkError::Handshake)
    };
    let noise = tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .map_err(|_| LinkError::Timeout(HANDSHAKE_TIMEOUT))??;
    Ok(Channel::open(stream, noise))
}

/// The answering side of the handshake: who is calling, if a peer.
async fn handshake_answer<S>(relay: &Relay, mut stream: S) -> LinkResult<(PeerRow, Channel)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let work = async {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                LinkError::NotALink
            } else {
                e.into()
            }
        })?;
        if &head[..8] != MAGIC {
            return Err(LinkError::NotALink);
        }
        if head[8] != VERSION {
            return Err(LinkError::Version(head[8]));
        }
        let mut hs = snow::Builder::new(params())
            .local_private_key(&relay.identity().private)
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(|b| b.build_responder())
            .map_err(|_| LinkError::Handshake)?;
        let mut frame = Vec::new();
        if !read_frame(&mut stream, &mut frame).await? {
            return Err(LinkError::Closed);
        }
        let mut buf = vec![0u8; NOISE_MAX];
        hs.read_message(&frame, &mut buf)
            .map_err(|_| LinkError::Handshake)?;
        let key: NodeKey = hs
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
            .ok_or(LinkError::Handshake)?;
        let Some(peer) = relay
            .store()
            .peer_by_key(&key)
            .await
            .map_err(RelayError::from)?
        else {
            return Err(LinkError::UnknownPeer(fingerprint(&key)));
        };
        let n = hs
            .write_message(&[], &mut buf)
            .map_err(|_| LinkError::Handshake)?;
        write_frame(&mut stream, &buf[..n]).await?;
        let noise = hs
            .into_stateless_transport_mode()
            .map_err(|_| LinkError::Handshake)?;
        Ok((peer, noise))
    };
    let (peer, noise) = tokio::time::timeout(HANDSHAKE_TIMEOUT, work)
        .await
        .map_err(|_| LinkError::Timeout(HANDSHAKE_TIMEOUT))??;
    Ok((peer, Channel::open(stream, noise)))
}

/// Sync with `peer` now over a live link: dial it, exchange, record the
/// run in the sync history. `progress` follows it as it goes.
pub async fn sync_peer(
    relay: &Relay,
    peer: &PeerRow,
    progress: &watch::Sender<LinkProgress>,
) -> LinkResult<SyncCounts> {
    sync_with(relay, peer, None::<Box<dyn ByteStream>>, progress).await
}

/// [`sync_peer`] over a stream already open to the peer (a test's pipe,
/// a tunnel), or dialling when `stream` is `None`.
pub async fn sync_with<S>(
    relay: &Relay,
    peer: &PeerRow,
    stream: Option<S>,
    progress: &watch::Sender<LinkProgress>,
) -> LinkResult<SyncCounts>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(key) = peer.key() else {
        return Err(RelayError::Classic(peer.name.clone()).into());
    };
    progress.send_modify(|p| p.state = LinkState::Connecting);
    let run = relay
        .store()
        .sync_started(Some(peer.id), &peer.name, "link (dialled)")
        .await
        .map_err(RelayError::from)?;
    let result = async {
        let ch = match stream {
            Some(s) => handshake_dial(relay, s, &key).await?,
            None => handshake_dial(relay, connect(relay, peer).await?, &key).await?,
        };
        exchange(relay, peer, ch, progress, &ExchangeOptions::default()).await
    }
    .await;
    record(relay, Some(run), &peer.name, &result, progress).await;
    result.map(|()| progress.borrow().counts())
}

/// Answer one incoming link on any stream (TCP, or a test's pipe).
pub async fn answer<S>(relay: &Relay, stream: S, remote: &str) -> LinkResult<SyncCounts>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (peer, ch) = match handshake_answer(relay, stream).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(remote, error = %e, "refused a link");
            return Err(e);
        }
    };
    let (progress, _) = watch::channel(LinkProgress::default());
    let run = relay
        .store()
        .sync_started(Some(peer.id), &peer.name, "link (answered)")
        .await
        .map_err(RelayError::from)?;
    let result = exchange(relay, &peer, ch, &progress, &ExchangeOptions::default()).await;
    record(relay, Some(run), &peer.name, &result, &progress).await;
    result.map(|()| progress.borrow().counts())
}
