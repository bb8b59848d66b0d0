//! The simulated radio channel that joins the modem emulators.
//!
//! Deterministic (a seeded generator) and on tokio's clock, so tests in
//! paused time run an hour of traffic in milliseconds. It models what a
//! LoRa link does to frames: air time from the formula, half duplex (a
//! transmitting radio hears nothing), collisions (overlapping frames on one
//! channel and spreading factor are both lost), independent loss,
//! corruption that slips past the radio's CRC, and RSSI/SNR with a little
//! jitter. A compliance oracle keeps every transmission so a test can fail
//! on any hour over the legal duty cycle.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::domain::lora::{Region, WINDOW};
use crate::domain::units::Airtime;

/// SplitMix64: a tiny, well-known, seedable generator; the simulator needs
/// reproducible draws, not cryptographic ones.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Which modem family made a frame: the two do not understand each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Rnode,
    Rylr,
}

/// What a radio is tuned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    pub family: Family,
    pub frequency: u32,
    pub bandwidth: u32,
    pub sf: u8,
}

impl Tuning {
    fn hears(&self, other: &Tuning) -> bool {
        self.family == other.family
            && self.frequency.abs_diff(other.frequency) < self.bandwidth / 4
            && self.bandwidth == other.bandwidth
            && self.sf == other.sf
    }
    fn collides(&self, other: &Tuning) -> bool {
        // Different spreading factors are quasi-orthogonal; same-channel,
        // same-SF overlaps destroy each other (equal RSSI, no capture).
        self.frequency.abs_diff(other.frequency) < self.bandwidth.max(other.bandwidth) / 2
            && self.sf == other.sf
    }
}

/// A received frame as the radio hands it to its modem.
#[derive(Clone, Debug, PartialEq)]
pub struct Air {
    pub bytes: Vec<u8>,
    /// dBm.
    pub rssi: i16,
    /// dB.
    pub snr: f32,
}

/// Channel behaviour; change it while running with [`Ether::set`].
#[derive(Clone, Debug)]
pub struct Conditions {
    /// Probability that a frame is lost for one receiver.
    pub loss: f64,
    /// Probability that a delivered frame has one bit flipped (and the
    /// radio's CRC did not notice).
    pub corrupt: f64,
    /// Mean RSSI at the receivers, dBm.
    pub rssi: i16,
    /// Mean SNR, dB.
    pub snr: f32,
}

impl Default for Conditions {
    fn default() -> Conditions {
        Conditions {
            loss: 0.0,
            corrupt: 0.0,
            rssi: -92,
            snr: 7.5,
        }
    }
}

/// One transmission, kept for the compliance oracle and the statistics.
#[derive(Clone, Debug)]
pub struct Record {
    pub node: usize,
    pub start: Instant,
    pub airtime: Airtime,
    pub tuning: Tuning,
    pub len: usize,
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub collided: u64,
    pub corrupted: u64,
}

struct Node {
    name: String,
    tuning: Option<Tuning>,
    rx: Option<mpsc::UnboundedSender<Air>>,
    transmitting: bool,
}

struct Active {
    id: u64,
    node: usize,
    tuning: Tuning,
    bytes: Vec<u8>,
    collided: bool,
    deaf: HashSet<usize>,
}

struct Inner {
    rng: Rng,
    conditions: Conditions,
    nodes: Vec<Node>,
    active: Vec<Active>,
    next_id: u64,
    log: Vec<Record>,
    stats: Stats,
}

/// The shared channel.
#[derive(Clone)]
pub struct Ether {
    inner: Arc<Mutex<Inner>>,
}

/// A handle for one transmission in progress.
#[derive(Debug)]
pub struct TxId(u64);

impl Ether {
    pub fn new(seed: u64, conditions: Conditions) -> Ether {
        Ether {
            inner: Arc::new(Mutex::new(Inner {
                rng: Rng::new(seed),
                conditions,
                nodes: Vec::new(),
                active: Vec::new(),
                next_id: 0,
                log: Vec::new(),
                stats: Stats::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a radio; it hears nothing until tuned.
    pub fn attach(&self, name: &str) -> usize {
        let mut g = self.lock();
        g.nodes.push(Node {
            name: name.to_string(),
            tuning: None,
            rx: None,
            transmitting: false,
        });
        g.nodes.len() - 1
    }

    /// Connects a radio's receiver (a new modem after a reboot gets a new
    /// one); frames heard while nothing listens are lost.
    pub fn listen(&self, node: usize) -> mpsc::UnboundedReceiver<Air> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().nodes[node].rx = Some(tx);
        rx
    }

    /// Tunes a radio, or turns it off with `None`.
    pub fn tune(&self, node: usize, tuning: Option<Tuning>) {
        self.lock().nodes[node].tuning = tuning;
    }

    pub fn set(&self, conditions: Conditions) {
        self.lock().conditions = conditions;
    }

    pub fn conditions(&self) -> Conditions {
        self.lock().conditions.clone()
    }

    /// Whether a radio tuned like `tuning` senses another's carrier.
    pub fn busy(&self, node: usize, tuning: &Tuning) -> bool {
        self.lock()
            .active
            .iter()
            .any(|a| a.node != node && a.tuning.collides(tuning))
    }

    /// Starts a transmission; the caller waits for its air time and then
    /// calls [`Ether::finish`].
    pub fn transmit(&self, node: usize, tuning: Tuning, bytes: Vec<u8>, airtime: Airtime) -> TxId {
        let mut g = self.lock();
        let id = g.next_id;
        g.next_id += 1;
        let mut collided = false;
        // Anyone already on air on this channel: both frames are lost.
        for a in g.active.iter_mut() {
            if a.tuning.collides(&tuning) {
                a.collided = true;
                collided = true;
            }
            // Half duplex: this radio now hears nothing of what is on air.
            a.deaf.insert(node);
        }
        // Radios that are transmitting now will not hear this frame.
        let deaf: HashSet<usize> = g
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.transmitting)
            .map(|(i, _)| i)
            .collect();
        g.nodes[node].transmitting = true;
        g.log.push(Record {
            node,
            start: Instant::now(),
            airtime,
            tuning,
            len: bytes.len(),
        });
        g.stats.sent += 1;
        g.active.push(Active {
            id,
            node,
            tuning,
            bytes,
            collided,
            deaf,
        });
        TxId(id)
    }

    /// Ends a transmission and hands the frame to every radio that heard it.
    pub fn finish(&self, tx: TxId) {
        let mut g = self.lock();
        let Some(pos) = g.active.iter().position(|a| a.id == tx.0) else {
            return;
        };
        let a = g.active.remove(pos);
        let node = a.node;
        g.nodes[node].transmitting = g.active.iter().any(|o| o.node == node);
        if a.collided {
            g.stats.collided += 1;
        }
        let cond = g.conditions.clone();
        tracing::trace!(node, len = a.bytes.len(), collided = a.collided, deaf = ?a.deaf, active = g.active.len(), "ether: frame ends");
        for i in 0..g.nodes.len() {
            if i == node || a.deaf.contains(&i) {
                continue;
            }
            let hears = g.nodes[i].tuning.is_some_and(|t| t.hears(&a.tuning));
            if !hears || g.nodes[i].rx.is_none() {
                tracing::trace!(to = i, hears, "ether: not tuned");
                continue;
            }
            if a.collided || g.rng.unit() < cond.loss {
                tracing::trace!(to = i, "ether: lost");
                g.stats.lost += 1;
                continue;
            }
            let mut bytes = a.bytes.clone();
            if !bytes.is_empty() && g.rng.unit() < cond.corrupt {
                let bit = g.rng.below(bytes.len() as u64 * 8);
                bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
                g.stats.corrupted += 1;
            }
            let jitter = g.rng.below(7) as i16 - 3;
            let snr_jitter = (g.rng.below(9) as f32 - 4.0) * 0.25;
            let air = Air {
                bytes,
                rssi: cond.rssi + jitter,
                snr: cond.snr + snr_jitter,
            };
            let delivered = g.nodes[i]
                .rx
                .as_ref()
                .is_some_and(|rx| rx.send(air).is_ok());
            if delivered {
                g.stats.delivered += 1;
            }
        }
    }

    /// Abandons a transmission (the modem rebooted mid-frame): nobody
    /// receives it, but its air time was spent.
    pub fn abort(&self, tx: TxId) {
        let mut g = self.lock();
        if let Some(pos) = g.active.iter().position(|a| a.id == tx.0) {
            let a = g.active.remove(pos);
            g.nodes[a.node].transmitting = g.active.iter().any(|o| o.node == a.node);
        }
    }

    /// Ends every transmission of a radio whose modem vanished mid-frame
    /// (unplugged, or power-cycled): nobody receives them.
    pub fn silence(&self, node: usize) {
        let mut g = self.lock();
        g.active.retain(|a| a.node != node);
        g.nodes[node].transmitting = false;
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    pub fn log(&self) -> Vec<Record> {
        self.lock().log.clone()
    }

    pub fn name(&self, node: usize) -> String {
        self.lock().nodes[node].name.clone()
    }

    /// The compliance oracle: every transmitter's air time in every
    /// one-hour window of every sub-band against `region`'s limit. Returns
    /// the worst window as (node name, band, air time) or the first breach
    /// (also a frame longer than the band's dwell limit) as an error.
    pub fn check_duty(
        &self,
        region: Region,
    ) -> Result<Vec<(String, &'static str, Airtime)>, String> {
        let log = self.log();
        let mut worst: Vec<(String, &'static str, Airtime)> = Vec::new();
        let nodes: HashSet<usize> = log.iter().map(|r| r.node).collect();
        for node in nodes {
            let mine: Vec<&Record> = log.iter().filter(|r| r.node == node).collect();
            for r in &mine {
                let band = region
                    .band_for(r.tuning.frequency, r.tuning.bandwidth)
                    .map_err(|e| {
                        format!("{} transmitted outside the region: {e}", self.name(node))
                    })?;
                if let Some(dwell) = band.max_dwell
                    && r.airtime.as_duration() > dwell
                {
                    return Err(format!(
                        "{} sent a {} frame, over the {} ms dwell limit of {}",
                        self.name(node),
                        r.airtime,
                        dwell.as_millis(),
                        band.name
                    ));
                }
            }
            for band in region.bands() {
                let in_band: Vec<&&Record> = mine
                    .iter()
                    .filter(|r| {
                        region
                            .band_for(r.tuning.frequency, r.tuning.bandwidth)
                            .is_ok_and(|b| b.name == band.name)
                    })
                    .collect();
                let mut max = Airtime(0);
                for start in &in_band {
                    let end = start.start + WINDOW;
                    let total: Airtime = in_band
                        .iter()
                        .filter(|r| r.start >= start.start && r.start < end)
                        .map(|r| r.airtime)
                        .sum();
                    max = max.max(total);
                }
                if max > band.budget() {
                    return Err(format!(
                        "{} used {} of air in one hour in {}, over its {} budget",
                        self.name(node),
                        max,
                        band.name,
                        band.budget()
                    ));
                }
                if !in_band.is_empty() {
                    worst.push((self.name(node), band.name, max));
                }
            }
        }
        Ok(worst)
    }
}

/// How long the modem takes to pass a received frame to USB.
pub const USB_LATENCY: Duration = Duration::from_millis(2);
