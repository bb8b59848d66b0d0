//! Hub-to-hub sync over a LoRa modem.
//!
//! A session opens with a Noise IK handshake in two `HELLO` frames (the
//! caller knows the peer's key from its card; the answering hub accepts
//! only its peers), then runs the live link's exchange — inventories, want
//! lists with resume points, items smallest first, acknowledgements —
//! over [`session`]'s reliable record stream, in small records so a
//! partial item is kept at fine grain and resumes in the next session.
//! Every frame's air time is written to a persistent ledger before it is
//! sent, and the sender waits rather than exceed the band's duty cycle.

pub mod frame;
pub mod ledger;
pub mod modem;
pub mod service;
pub mod session;
pub mod squeeze;

use std::sync::Arc;
use std::time::Duration;

use snow::{HandshakeState, StatelessTransportState};
use tokio::time::Instant;

use self::frame::{Frame, HELLO_ANSWER, Hello, Kind};
use self::session::{Air, AirError};
use super::bundle::NodeKey;
use crate::domain::lora::Received;
use crate::domain::lora::{SubBand, WINDOW};
use crate::domain::units::Airtime;
use crate::store::Store;
use ledger::{Ledger, PACE_WINDOW};
use modem::FrameModem;

/// The radio speaks the same Noise pattern as the live link.
pub const NOISE: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// Radio protocol version, in every hello.
pub const VERSION: u8 = 1;
/// Slack after a burst's air time for the modem's channel check and its
/// report back over USB.
const CSMA_SLACK: Duration = Duration::from_millis(400);

fn params() -> snow::params::NoiseParams {
    NOISE.parse().expect("the radio's Noise pattern parses")
}

/// The prologue binds the session tag (sent in clear) to the handshake.
fn prologue(session: u16) -> Vec<u8> {
    let mut p = b"CAIRNRAD".to_vec();
    p.push(VERSION);
    p.extend(session.to_be_bytes());
    p
}

/// The caller's first frame: a hello to the hub with `peer_key`.
pub fn hello(
    private: &[u8; 32],
    peer_key: &NodeKey,
    session: u16,
    ours: &Hello,
) -> Option<(HandshakeState, Vec<u8>)> {
    let pro = prologue(session);
    let mut hs = snow::Builder::new(params())
        .local_private_key(private)
        .and_then(|b| b.remote_public_key(peer_key))
        .and_then(|b| b.prologue(&pro))
        .and_then(|b| b.build_initiator())
        .ok()?;
    let mut buf = vec![0u8; 256];
    let n = hs.write_message(&ours.encode(), &mut buf).ok()?;
    buf.truncate(n);
    let f = Frame {
        kind: Kind::Hello,
        flags: 0,
        session,
        counter: 0,
        body: buf,
    };
    Some((hs, f.encode()))
}

/// Who sent a hello, if it is a well-formed one addressed to us.
pub fn hello_sender(private: &[u8; 32], f: &Frame) -> Option<(NodeKey, Hello, HandshakeState)> {
    if f.kind != Kind::Hello || f.flags & HELLO_ANSWER != 0 {
        return None;
    }
    let pro = prologue(f.session);
    let mut hs = snow::Builder::new(params())
        .local_private_key(private)
        .and_then(|b| b.prologue(&pro))
        .and_then(|b| b.build_responder())
        .ok()?;
    let mut buf = vec![0u8; 256];
    let n = hs.read_message(&f.body, &mut buf).ok()?;
    let theirs = Hello::decode(&buf[..n])?;
    let key: NodeKey = hs.get_remote_static()?.try_into().ok()?;
    Some((key, theirs, hs))
}

/// The answer to a hello already read with [`hello_sender`].
pub fn answer(
    mut hs: HandshakeState,
    session: u16,
    ours: &Hello,
) -> Option<(StatelessTransportState, Vec<u8>)> {
    let mut buf = vec![0u8; 256];
    let n = hs.write_message(&ours.encode(), &mut buf).ok()?;
    buf.truncate(n);
    let f = Frame {
        kind: Kind::Hello,
        flags: HELLO_ANSWER,
        session,
        counter: 0,
        body: buf,
    };
    Some((hs.into_stateless_transport_mode().ok()?, f.encode()))
}

/// The caller reads the answer; the session keys are ready.
pub fn finish(mut hs: HandshakeState, f: &Frame) -> Option<(StatelessTransportState, Hello)> {
    if f.kind != Kind::Hello || f.flags & HELLO_ANSWER == 0 {
        return None;
    }
    let mut buf = vec![0u8; 256];
    let n = hs.read_message(&f.body, &mut buf).ok()?;
    let theirs = Hello::decode(&buf[..n])?;
    Some((hs.into_stateless_transport_mode().ok()?, theirs))
}

/// What the radio did, for the page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AirStats {
    pub frames_sent: u64,
    pub frames_heard: u64,
    pub airtime: Airtime,
    /// Time spent waiting for the duty cycle to allow a send.
    pub waited: Duration,
    pub last_rssi: Option<i16>,
    pub last_snr: Option<f32>,
}

/// An open modem with its ledger: every frame is costed, recorded
/// (persistently, when there is a store) and sent only within budget.
pub struct RadioIo {
    modem: Box<dyn FrameModem>,
    ledger: Ledger,
    /// The same duty cycle over six minutes, so the hour's budget is
    /// spread out and a busy sender never waits most of an hour.
    pace: Ledger,
    band: &'static SubBand,
    store: Option<Store>,
    /// The ledger's clock: wall time at open, advanced by tokio's clock so
    /// paused-time tests and clock jumps do not confuse it.
    epoch: (u64, Instant),
    pub stats: AirStats,
    /// Told of `stats` after every frame sent or heard (the radio page
    /// follows a session as it runs).
    observer: Option<StatsObserver>,
    /// Signal samples not yet written to the store.
    pub samples: Vec<(i64, i16, f32)>,
}

/// What [`RadioIo::observe`] calls.
pub type StatsObserver = Arc<dyn Fn(&AirStats) + Send + Sync>;

impl RadioIo {
    /// Wraps an open modem; the ledger is reloaded from `store` (the last
    /// hour of this band's transmissions).
    pub async fn new(
        modem: Box<dyn FrameModem>,
        store: Option<Store>,
    ) -> Result<RadioIo, AirError> {
        let s = modem.settings();
        let band = s
            .region
            .band_for(s.frequency, s.bandwidth)
            .map_err(AirError::Ledger)?;
        let mut ledger = Ledger::new(band);
        let hour = WINDOW.as_secs() / PACE_WINDOW.as_secs();
        let mut pace = Ledger::with_window(Airtime(ledger.limit().0 / hour), PACE_WINDOW);
        let now = u64::try_from(crate::store::now_ms()).unwrap_or(0);
        if let Some(store) = &store {
            let since = now.saturating_sub(WINDOW.as_millis() as u64) as i64;
            let rows = store
                .airtime_since(band.name, since)
                .await
                .map_err(|e| AirError::Ledger(e.to_string()))?;
            for (at, us) in rows {
                ledger.restore(now, at as u64, Airtime(us as u64));
                pace.restore(now, at as u64, Airtime(us as u64));
            }
        }
        Ok(RadioIo {
            modem,
            ledger,
            pace,
            band,
            store,
            epoch: (now, Instant::now()),
            stats: AirStats::default(),
            observer: None,
            samples: Vec::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.0 + self.epoch.1.elapsed().as_millis() as u64
    }

    pub fn modem(&self) -> &dyn FrameModem {
        self.modem.as_ref()
    }

    /// Have `observer` told of the counts after every frame.
    pub fn observe(&mut self, observer: StatsObserver) {
        self.observer = Some(observer);
    }

    fn tell(&self) {
        if let Some(o) = &self.observer {
            o(&self.stats);
        }
    }

    pub fn band(&self) -> &'static SubBand {
        self.band
    }

    /// Air time used and allowed in the last hour.
    pub fn ledger_use(&mut self) -> (Airtime, Airtime) {
        let now = self.now_ms();
        (self.ledger.used(now), self.ledger.limit())
    }

    pub fn into_modem(self) -> Box<dyn FrameModem> {
        self.modem
    }

    /// Sends `frames` as one modem burst, recorded first.
    async fn burst(
        &mut self,
        frames: Vec<Vec<u8>>,
        costs: Vec<(u64, Airtime)>,
    ) -> Result<(), AirError> {
        if frames.is_empty() {
            return Ok(());
        }
        if let Some(store) = &self.store {
            let rows: Vec<(i64, i64)> =
                costs.iter().map(|(t, a)| (*t as i64, a.0 as i64)).collect();
            store
                .airtime_add(self.band.name, &rows)
                .await
                .map_err(|e| AirError::Ledger(e.to_string()))?;
        }
        let total: Airtime = costs.iter().map(|(_, a)| *a).sum();
        self.modem.send(&frames).await?;
        self.stats.frames_sent += frames.len() as u64;
        self.stats.airtime += total;
        self.tell();
        // Half duplex: nothing can be heard until the burst has left.
        tokio::time::sleep(total.as_duration() + CSMA_SLACK).await;
        Ok(())
    }
}

impl Air for RadioIo {
    fn mtu(&self) -> usize {
        self.modem.mtu()
    }

    fn airtime(&self, len: usize) -> Airtime {
        self.modem.settings().airtime(len)
    }

    fn budget_ms(&mut self) -> u32 {
        let now = self.now_ms();
        let left = self.ledger.remaining(now).min(self.pace.remaining(now));
        (left.0 / 1000).min(u64::from(u32::MAX)) as u32
    }

    fn wait_for(&mut self, cost: Airtime) -> Duration {
        let now = self.now_ms();
        match (
            self.ledger.earliest(now, cost),
            self.pace.earliest(now, cost),
        ) {
            (Some(a), Some(b)) => Duration::from_millis(a.max(b).saturating_sub(now)),
            _ => Duration::ZERO,
        }
    }

    fn limit(&self) -> Airtime {
        self.pace.limit().min(self.ledger.limit())
    }

    async fn send(&mut self, frames: Vec<Vec<u8>>) -> Result<(), AirError> {
        let mut group = Vec::new();
        let mut costs = Vec::new();
        for f in frames {
            let cost = self.airtime(f.len());
            loop {
                let now = self.now_ms();
                let earliest = match (
                    self.ledger.earliest(now, cost),
                    self.pace.earliest(now, cost),
                ) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                match earliest {
                    None => {
                        return Err(AirError::Ledger(format!(
                            "one frame needs {cost} of air, more than the {} per six minutes the duty cycle allows in {}: use a lower spreading factor",
                            self.pace.limit(),
                            self.band.name
                        )));
                    }
                    Some(t) if t <= now => {
                        // Frames of one burst follow each other on the air:
                        // each is recorded at its own start.
                        let at = now
                            + costs
                                .iter()
                                .map(|(_, a): &(u64, Airtime)| a.0.div_ceil(1000))
                                .sum::<u64>();
                        self.ledger.spend_at(at, cost);
                        self.pace.spend_at(at, cost);
                        costs.push((at, cost));
                        group.push(f);
                        break;
                    }
                    Some(t) => {
                        // Send what fits now, then wait for the window to slide.
                        self.burst(std::mem::take(&mut group), std::mem::take(&mut costs))
                            .await?;
                        let wait = Duration::from_millis(t - now);
                        tracing::debug!(band = self.band.name, ?wait, "waiting for air time");
                        self.stats.waited += wait;
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        self.burst(group, costs).await
    }

    async fn recv(&mut self) -> Result<Received, AirError> {
        let r = self.modem.recv().await?;
        self.stats.frames_heard += 1;
        self.stats.last_rssi = Some(r.rssi);
        self.stats.last_snr = Some(r.snr);
        self.tell();
        if self.samples.len() < 10_000 {
            self.samples.push((self.now_ms() as i64, r.rssi, r.snr));
        }
        Ok(r)
    }
}
