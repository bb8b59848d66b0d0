//! The radio as a hub service: it owns the modem, answers hellos from
//! peers, starts sessions when an uplink asks ("Sync now", a schedule, new
//! mail), reopens the modem when it is unplugged or reboots, and publishes
//! its state for the radio page.

use crate::domain::PeerId;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::frame::{CAP_FOLD, CAP_KEYREF, Frame, HELLO_ANSWER, Hello, Kind};
use super::modem::ModemOpener;
use super::session::{self, Air, AirError, SessionError, Tuning};
use super::{AirStats, RadioIo, VERSION, answer, finish, hello, hello_sender};
use crate::config::RadioConfig;
use crate::domain::lora::Received;
use crate::relay::Relay;
use crate::relay::link::{self, ExchangeOptions, LinkProgress, LinkState};
use crate::store::SyncCounts;
use crate::store::relay::PeerRow;

/// A session the handshake just opened.
struct Opened {
    keys: snow::StatelessTransportState,
    /// The session tag in every frame's header.
    tag: u16,
    /// This side called.
    initiator: bool,
    /// The other side's hello capabilities.
    their_caps: u8,
}

/// After a failed open, try again this soon.
const REOPEN: Duration = Duration::from_secs(5);
/// Hellos sent before a sync gives up on a silent peer.
const HELLO_TRIES: u32 = 6;
/// How long a finished session's `BYE` is repeated to a late poll.
const LINGER: Duration = Duration::from_secs(120);
/// Item data per record on the air: a resumed item loses at most this,
/// and each record is compressed alone (a Delta Chat text message fits
/// one).
const AIR_CHUNK: usize = 4096;
/// Signal samples are written to the store this often.
const SAMPLE_FLUSH: Duration = Duration::from_secs(60);

/// What the radio is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RadioState {
    #[default]
    Off,
    Opening,
    Ready,
    Session,
    Failed,
}

impl RadioState {
    pub fn as_str(self) -> &'static str {
        match self {
            RadioState::Off => "off",
            RadioState::Opening => "opening the modem",
            RadioState::Ready => "listening",
            RadioState::Session => "in a session",
            RadioState::Failed => "failed",
        }
    }
}

/// The radio page's view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RadioStatus {
    pub state: RadioState,
    pub port: String,
    pub identity: String,
    pub error: Option<String>,
    pub band: String,
    /// Air time used in the last hour, and what the ledger allows.
    pub used_ms: u64,
    pub limit_ms: u64,
    /// The legal budget of the band per hour.
    pub legal_ms: u64,
    /// Frames sent and heard, the last signal (the radio's own counters).
    pub air: AirStats,
    /// Noise and errors the modem driver saw.
    pub noise_frames: u64,
    /// The peer of the session in progress.
    pub peer: Option<String>,
    pub progress: LinkProgress,
    /// Sessions since start, and how the last one ended.
    pub sessions: u64,
    pub last_session: Option<String>,
}

enum Request {
    Sync {
        peer: PeerRow,
        progress: watch::Sender<LinkProgress>,
        done: oneshot::Sender<Result<SyncCounts, String>>,
    },
}

struct Inner {
    relay: Relay,
    config: RadioConfig,
    opener: Arc<dyn ModemOpener>,
    tuning: Tuning,
    status: watch::Sender<RadioStatus>,
    requests: mpsc::Sender<Request>,
    receiver: Mutex<Option<mpsc::Receiver<Request>>>,
}

/// A handle on the radio service.
#[derive(Clone)]
pub struct Radio {
    inner: Arc<Inner>,
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

impl Radio {
    pub fn new(
        relay: Relay,
        config: RadioConfig,
        opener: Arc<dyn ModemOpener>,
        tuning: Tuning,
    ) -> Radio {
        let (requests, receiver) = mpsc::channel(8);
        let status = RadioStatus {
            port: opener.name(),
            ..RadioStatus::default()
        };
        Radio {
            inner: Arc::new(Inner {
                relay,
                config,
                opener,
                tuning,
                status: watch::channel(status).0,
                requests,
                receiver: Mutex::new(Some(receiver)),
            }),
        }
    }

    pub fn status(&self) -> watch::Receiver<RadioStatus> {
        self.inner.status.subscribe()
    }

    pub fn config(&self) -> &RadioConfig {
        &self.inner.config
    }

    /// Whether the modem is open and listening (an uplink over it can run).
    pub fn ready(&self) -> bool {
        matches!(
            self.inner.status.borrow().state,
            RadioState::Ready | RadioState::Session
        )
    }

    /// Syncs with `peer` over the radio; `progress` follows it.
    pub async fn sync(
        &self,
        peer: &PeerRow,
        progress: &watch::Sender<LinkProgress>,
    ) -> Result<SyncCounts, String> {
        let (done, wait) = oneshot::channel();
        progress.send_modify(|p| p.state = LinkState::Connecting);
        self.inner
            .requests
            .send(Request::Sync {
                peer: peer.clone(),
                progress: progress.clone(),
                done,
            })
            .await
            .map_err(|_| "the radio service has stopped".to_string())?;
        wait.await
            .map_err(|_| "the radio service stopped during the sync".to_string())?
    }

    fn set(&self, f: impl FnOnce(&mut RadioStatus)) {
        self.inner.status.send_modify(f);
    }

    fn publish_io(&self, io: &mut RadioIo) {
        let (used, limit) = io.ledger_use();
        let band = io.band();
        let stats = io.stats.clone();
        let noise = io.modem().noise_frames();
        self.set(|s| {
            s.band = band.name.to_string();
            s.used_ms = used.0 / 1000;
            s.limit_ms = limit.0 / 1000;
            s.legal_ms = band.budget().0 / 1000;
            s.air = stats;
            s.noise_frames = noise;
        });
    }

    async fn flush_samples(&self, io: &mut RadioIo, peer: Option<PeerId>) {
        let samples: Vec<(i64, Option<i64>, i64, f64)> = io
            .samples
            .drain(..)
            .map(|(at, rssi, snr)| (at, peer.map(|p| p.0), i64::from(rssi), f64::from(snr)))
            .collect();
        if let Err(e) = self.inner.relay.store().signal_add(&samples).await {
            tracing::warn!(error = %e, "could not record radio signal samples");
        }
    }

    /// Runs the radio until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let Some(mut requests) = self
            .inner
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        loop {
            self.set(|s| {
                s.state = RadioState::Opening;
            });
            let opened = async {
                let modem = self.inner.opener.open().await.map_err(|e| e.to_string())?;
                RadioIo::new(modem, Some(self.inner.relay.store().clone()))
                    .await
                    .map_err(|e| e.to_string())
            };
            let mut io = tokio::select! {
                r = opened => match r {
                    Ok(io) => io,
                    Err(e) => {
                        tracing::warn!(port = %self.inner.opener.name(), error = %e, "the radio could not start");
                        self.set(|s| { s.state = RadioState::Failed; s.error = Some(e); });
                        // Syncs asked for meanwhile fail at once, clearly.
                        while let Ok(Request::Sync { done, .. }) = requests.try_recv() {
                            let _ = done.send(Err("the radio is not working: see the radio page".into()));
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(REOPEN) => continue,
                            _ = stop.cancelled() => return,
                        }
                    }
                },
                _ = stop.cancelled() => return,
            };
            // Frames sent and heard reach the radio page as they happen,
            // also during a session.
            let me = self.clone();
            io.observe(Arc::new(move |st| me.set(|s| s.air = st.clone())));
            let identity = io.modem().identity();
            tracing::info!(port = %self.inner.opener.name(), modem = %identity, band = io.band().name, "radio listening");
            self.set(|s| {
                s.state = RadioState::Ready;
                s.identity = identity;
                s.error = None;
            });
            self.publish_io(&mut io);
            let why = self.serve(&mut io, &mut requests, &stop).await;
            self.flush_samples(&mut io, None).await;
            match why {
                None => {
                    io.into_modem().close().await;
                    self.set(|s| s.state = RadioState::Off);
                    return;
                }
                Some(e) => {
                    tracing::warn!(port = %self.inner.opener.name(), error = %e, "the radio stopped; reopening");
                    self.set(|s| {
                        s.state = RadioState::Failed;
                        s.error = Some(e);
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(REOPEN) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Listens and runs sessions until the modem fails (`Some(why)`) or
    /// `stop` (`None`).
    async fn serve(
        &self,
        io: &mut RadioIo,
        requests: &mut mpsc::Receiver<Request>,
        stop: &CancellationToken,
    ) -> Option<String> {
        let mut linger: Option<(u16, Vec<u8>, Instant)> = None;
        let mut flush = tokio::time::interval(SAMPLE_FLUSH);
        loop {
            let next = tokio::select! {
                r = io.recv() => Next::Heard(r),
                q = requests.recv() => match q {
                    Some(q) => Next::Asked(q),
                    None => return None,
                },
                _ = flush.tick() => Next::Flush,
                _ = stop.cancelled() => return None,
            };
            match next {
                Next::Flush => {
                    self.flush_samples(io, None).await;
                    self.publish_io(io);
                }
                Next::Heard(Err(e)) => return Some(e.to_string()),
                Next::Heard(Ok(r)) => {
                    let Some(f) = Frame::decode(&r.data) else {
                        continue;
                    };
                    if f.kind == Kind::Hello && f.flags & HELLO_ANSWER == 0 {
                        match self.answer_hellos(io, r).await {
                            Err(e) => return Some(e),
                            Ok(bye) => linger = bye,
                        }
                    } else if let Some((tag, bye, until)) = &linger
                        && f.kind == Kind::Turn
                        && f.session == *tag
                        && Instant::now() < *until
                    {
                        // The other side missed our BYE and polls.
                        let bye = bye.clone();
                        if let Err(e) = io.send(vec![bye]).await {
                            return Some(e.to_string());
                        }
                    }
                }
                Next::Asked(Request::Sync {
                    peer,
                    progress,
                    done,
                }) => {
                    let r = self.call(io, &peer, &progress).await;
                    let mut restart = None;
                    let (result, radio_error) = match r {
                        Ok((counts, bye)) => {
                            linger = bye;
                            (Ok(counts), None)
                        }
                        Err(Failure::Radio(e)) => (Err(e.clone()), Some(e)),
                        Err(Failure::Session(e)) => (Err(e), None),
                        Err(Failure::Restarted(r)) => {
                            restart = Some(r);
                            (
                                Err(format!(
                                    "{} started over during the sync; it continues in a new session",
                                    peer.name
                                )),
                                None,
                            )
                        }
                    };
                    let _ = done.send(result);
                    if let Some(e) = radio_error {
                        return Some(e);
                    }
                    if let Some(r) = restart {
                        match self.answer_hellos(io, r).await {
                            Err(e) => return Some(e),
                            Ok(bye) => linger = bye,
                        }
                    }
                }
            }
        }
    }

    fn our_hello(&self, io: &mut RadioIo) -> Hello {
        Hello {
            version: VERSION,
            mtu: io.mtu() as u16,
            budget_ms: io.budget_ms(),
            caps: CAP_FOLD | CAP_KEYREF,
        }
    }

    /// Calls `peer`: hellos until it answers, then the session.
    async fn call(
        &self,
        io: &mut RadioIo,
        peer: &PeerRow,
        progress: &watch::Sender<LinkProgress>,
    ) -> Result<(SyncCounts, Option<(u16, Vec<u8>, Instant)>), Failure> {
        let relay = &self.inner.relay;
        let Some(key) = peer.key() else {
            return Err(Failure::Session(format!(
                "{} is a classic peer: it has no radio",
                peer.name
            )));
        };
        let private = relay.identity().private;
        let ours = relay.identity().public;
        let hello_air = io.airtime(160).as_duration();
        let wait = hello_air * 2 + self.inner.tuning.turnaround * 2 + Duration::from_secs(2);
        for attempt in 0..HELLO_TRIES {
            let tag = (random_u64() & 0xFFFF) as u16;
            let h = self.our_hello(io);
            let Some((hs, first)) = hello(&private, &key, tag, &h) else {
                return Err(Failure::Session(
                    "the radio handshake could not start".into(),
                ));
            };
            tracing::debug!(peer = %peer.name, attempt, tag, "radio hello");
            io.send(vec![first]).await.map_err(radio_failure)?;
            // A random part keeps two hubs calling each other from
            // colliding again and again.
            let deadline = Instant::now() + wait + Duration::from_millis(random_u64() % 1500);
            loop {
                let r = match timeout_at(deadline, io.recv()).await {
                    Err(_) => break,
                    Ok(r) => r.map_err(radio_failure)?,
                };
                let Some(f) = Frame::decode(&r.data) else {
                    continue;
                };
                tracing::debug!(kind = ?f.kind, session = f.session, flags = f.flags, "heard while calling");
                if f.kind != Kind::Hello {
                    continue;
                }
                if f.flags & HELLO_ANSWER != 0 && f.session == tag {
                    let Some((keys, theirs)) = finish(hs, &f) else {
                        return Err(Failure::Session(format!(
                            "{}'s answer over the radio failed authentication",
                            peer.name
                        )));
                    };
                    let opened = Opened {
                        keys,
                        tag,
                        initiator: true,
                        their_caps: theirs.caps,
                    };
                    return self.session_then_linger(io, peer, opened, progress).await;
                }
                // Both called at once: the hub with the smaller key answers.
                if f.flags & HELLO_ANSWER == 0
                    && let Some((their_key, theirs, rhs)) = hello_sender(&private, &f)
                    && their_key == key
                    && ours > key
                {
                    let h = self.our_hello(io);
                    let Some((keys, reply)) = answer(rhs, f.session, &h) else {
                        continue;
                    };
                    io.send(vec![reply]).await.map_err(radio_failure)?;
                    let opened = Opened {
                        keys,
                        tag: f.session,
                        initiator: false,
                        their_caps: theirs.caps,
                    };
                    return self.session_then_linger(io, peer, opened, progress).await;
                }
            }
        }
        Err(Failure::Session(format!(
            "{} did not answer over the radio ({HELLO_TRIES} hellos): out of range, or its radio is off",
            peer.name
        )))
    }

    /// Answers a hello, and the next if the peer starts over again.
    /// Returns the session's last frame to repeat to late polls; an error
    /// when the radio failed.
    async fn answer_hellos(&self, io: &mut RadioIo, mut r: Received) -> Result<Lingering, String> {
        loop {
            match self.answer_hello(io, r).await {
                Ok(bye) => return Ok(bye),
                Err(Failure::Radio(e)) => return Err(e),
                Err(Failure::Session(e)) => {
                    tracing::info!(error = %e, "radio session ended");
                    return Ok(None);
                }
                Err(Failure::Restarted(next)) => r = next,
            }
        }
    }

    /// Answers a hello; runs the session if it is from a peer.
    async fn answer_hello(&self, io: &mut RadioIo, r: Received) -> Result<Lingering, Failure> {
        let relay = &self.inner.relay;
        let private = relay.identity().private;
        let Some(f) = Frame::decode(&r.data) else {
            return Ok(None);
        };
        let Some((key, theirs, hs)) = hello_sender(&private, &f) else {
            // Another network's hub, or noise that looked like a hello.
            return Ok(None);
        };
        let peer = match relay.store().peer_by_key(&key).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::warn!(
                    node = %crate::relay::node::fingerprint(&key),
                    "a hello over the radio from a node that is not a peer; ignored"
                );
                return Ok(None);
            }
            Err(e) => return Err(Failure::Session(e.to_string())),
        };
        if theirs.version != VERSION {
            tracing::warn!(peer = %peer.name, version = theirs.version, "a radio hello of another protocol version; ignored");
            return Ok(None);
        }
        let h = self.our_hello(io);
        let Some((keys, reply)) = answer(hs, f.session, &h) else {
            return Ok(None);
        };
        io.send(vec![reply]).await.map_err(radio_failure)?;
        let (progress, _) = watch::channel(LinkProgress::default());
        let tag = f.session;
        let opened = Opened {
            keys,
            tag,
            initiator: false,
            their_caps: theirs.caps,
        };
        self.session(io, &peer, opened, &progress)
            .await
            .map(|(_, bye)| bye.map(|b| (tag, b, Instant::now() + LINGER)))
    }

    /// One session with `peer`: the exchange over the record stream.
    /// A session a call opened; its goodbye (if any) is kept to repeat
    /// for late polls until [`LINGER`] has passed.
    async fn session_then_linger(
        &self,
        io: &mut RadioIo,
        peer: &PeerRow,
        opened: Opened,
        progress: &watch::Sender<LinkProgress>,
    ) -> Result<(SyncCounts, Option<(u16, Vec<u8>, Instant)>), Failure> {
        let tag = opened.tag;
        let (counts, bye) = self.session(io, peer, opened, progress).await?;
        Ok((counts, bye.map(|b| (tag, b, Instant::now() + LINGER))))
    }

    async fn session(
        &self,
        io: &mut RadioIo,
        peer: &PeerRow,
        opened: Opened,
        progress: &watch::Sender<LinkProgress>,
    ) -> Result<(SyncCounts, Option<Vec<u8>>), Failure> {
        let Opened {
            keys,
            tag,
            initiator,
            their_caps,
        } = opened;
        let relay = &self.inner.relay;
        let private = relay.identity().private;
        let key = peer.key();
        let same_peer =
            move |f: &Frame| hello_sender(&private, f).is_some_and(|(k, _, _)| Some(k) == key);
        self.set(|s| {
            s.state = RadioState::Session;
            s.peer = Some(peer.name.clone());
            s.progress = LinkProgress::default();
        });
        // Mirror the exchange's progress onto the radio page.
        let mut follow = progress.subscribe();
        let me = self.clone();
        let mirror = tokio::spawn(async move {
            while follow.changed().await.is_ok() {
                let p = follow.borrow().clone();
                me.set(|s| s.progress = p);
            }
        });
        let (out_tx, out_rx) = mpsc::channel(2);
        let (in_tx, in_rx) = mpsc::channel(16);
        let options = ExchangeOptions {
            data_chunk: AIR_CHUNK,
            max_item: Some(self.inner.config.max_item.0),
            close_wait: self.inner.tuning.max_silence,
            keyrefs: their_caps & CAP_KEYREF != 0,
        };
        let label = if initiator {
            "lora (called)"
        } else {
            "lora (answered)"
        };
        let tuning = Tuning {
            fold: their_caps & CAP_FOLD != 0,
            ..self.inner.tuning.clone()
        };
        let (s, e) = tokio::join!(
            session::run(
                io,
                &keys,
                tag,
                initiator,
                out_rx,
                in_tx,
                &tuning,
                random_u64(),
                &same_peer,
            ),
            link::exchange_records(relay, peer, out_tx, in_rx, progress, &options, label),
        );
        mirror.abort();
        self.flush_samples(io, Some(peer.id)).await;
        self.publish_io(io);
        let summary = match (&s, &e) {
            (_, Ok(c)) => format!("with {}: {} out, {} in", peer.name, c.items_out, c.items_in),
            (_, Err(e)) => format!("with {}: {e}", peer.name),
        };
        self.set(|st| {
            st.state = RadioState::Ready;
            st.peer = None;
            st.sessions += 1;
            st.last_session = Some(summary);
        });
        match (s, e) {
            (Err(SessionError::Air(a)), _) => Err(Failure::Radio(a.to_string())),
            (Err(SessionError::Interrupted(r)), _) => Err(Failure::Restarted(r)),
            (_, Err(e)) => Err(Failure::Session(e.to_string())),
            // The exchange finished: everything agreed has moved, even if
            // the session's last goodbye was lost.
            (s, Ok(c)) => Ok((c, s.ok().and_then(|o| o.bye))),
        }
    }
}

/// A finished session's last frame, repeated to late polls until then.
type Lingering = Option<(u16, Vec<u8>, Instant)>;

enum Next {
    Heard(Result<Received, AirError>),
    Asked(Request),
    Flush,
}

/// A failed sync: the radio itself (reopen it), just this session, or
/// the peer started over with a new hello (answer it).
enum Failure {
    Radio(String),
    Session(String),
    Restarted(Received),
}

fn radio_failure(e: AirError) -> Failure {
    Failure::Radio(e.to_string())
}
