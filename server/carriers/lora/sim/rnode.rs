//! An RNode (firmware 1.86 on an ESP32) as its USB serial port behaves:
//! the boot announcement, detection, configuration with echoes and the
//! radio-lock rule, a bounded queue that drops silently when full, CSMA
//! then a back-to-back flush of the queue, split packets (with the
//! firmware's splice hazard), RSSI and SNR before every received packet,
//! channel-time reports, READY, airtime locks and reboot on request.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::ether::{Air, Ether, Family, Rng, Tuning, TxId, USB_LATENCY};
use crate::carriers::lora::kiss::{self, Deframer, MTU, cmd};
use crate::carriers::lora::port::Port;
use crate::domain::lora::{Modulation, rnode_preamble};
use crate::domain::units::Airtime;

/// ESP32 firmware queue (`CONFIG_QUEUE_SIZE`, `CONFIG_QUEUE_MAX_LENGTH`).
const QUEUE_BYTES: usize = 6144;
const QUEUE_PACKETS: usize = 200;
/// A host packet up to this size fits one LoRa packet with the header.
const SINGLE_MTU: usize = 254;
/// Contention window in slots per band (`CSMA_CW_PER_BAND_WINDOWS`).
const CW_SLOTS: u64 = 15;
/// Channel-time reports come about once a second.
const CHTM_EVERY: Duration = Duration::from_secs(1);
/// Short-term airtime bins: two of 7.5 s.
const SHORT_TERM: Duration = Duration::from_millis(15_000);
const LONG_TERM: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug)]
pub struct Options {
    /// Silence after the boot announcement (ESP32 boards reboot when the
    /// port opens).
    pub boot: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            boot: Duration::from_secs(2),
        }
    }
}

struct Radio {
    frequency: u32,
    bandwidth: u32,
    txpower: u8,
    sf: u8,
    cr: u8,
    on: bool,
    st_alock: u16,
    lt_alock: u16,
}

impl Radio {
    fn new() -> Radio {
        Radio {
            frequency: 0,
            bandwidth: 0,
            txpower: 0xFF,
            sf: 0,
            cr: 5,
            on: false,
            st_alock: 0,
            lt_alock: 0,
        }
    }
    /// `update_radio_lock()`: the radio may start only when configured.
    fn unlocked(&self) -> bool {
        self.frequency != 0 && self.bandwidth != 0 && self.txpower != 0xFF && self.sf != 0
    }
    fn tuning(&self) -> Tuning {
        Tuning {
            family: Family::Rnode,
            frequency: self.frequency,
            bandwidth: self.bandwidth,
            sf: self.sf,
        }
    }
    fn modulation(&self) -> Modulation {
        Modulation::new(
            self.sf,
            self.bandwidth,
            self.cr.saturating_sub(4).max(1),
            rnode_preamble(self.sf, self.bandwidth),
        )
    }
    fn slot(&self) -> Duration {
        let sym_us = (1u64 << self.sf) * 1_000_000 / u64::from(self.bandwidth.max(1));
        Duration::from_micros((12 * sym_us).clamp(24_000, 100_000))
    }
}

enum Tx {
    Idle,
    Csma(Instant),
    OnAir(Instant, TxId, VecDeque<Vec<u8>>),
}

/// Runs one RNode until the host closes the port or the task is dropped
/// (an unplug).
pub async fn run(ether: Ether, node: usize, mut port: Port, options: Options, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut air_rx = ether.listen(node);
    ether.tune(node, None);
    if port
        .write(&kiss::encode(cmd::RESET, &[cmd::RESET_BYTE]))
        .await
        .is_err()
    {
        return;
    }
    let booted = Instant::now() + options.boot;
    let mut radio = Radio::new();
    let mut deframer = Deframer::new();
    let mut queue: VecDeque<Vec<u8>> = VecDeque::new();
    let mut tx = Tx::Idle;
    let mut history: VecDeque<(Instant, Duration)> = VecDeque::new();
    let mut split: Option<(u8, Vec<u8>)> = None;
    let mut next_chtm = Instant::now() + CHTM_EVERY;
    let mut last_rssi: i16 = -120;

    loop {
        let tx_deadline = match &tx {
            Tx::Idle => None,
            Tx::Csma(t) => Some(*t),
            Tx::OnAir(t, _, _) => Some(*t),
        };
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            bytes = port.rx.recv() => {
                let Some(bytes) = bytes else { return };
                if Instant::now() < booted {
                    continue;
                }
                let mut out = Vec::new();
                for frame in deframer.feed(&bytes) {
                    if frame.command == cmd::RESET && frame.data.first() == Some(&cmd::RESET_BYTE) {
                        if let Tx::OnAir(_, id, _) = std::mem::replace(&mut tx, Tx::Idle) {
                            ether.abort(id);
                        }
                        ether.tune(node, None);
                        // Reboot: announce and forget everything.
                        Box::pin(run(ether.clone(), node, port, options.clone(), rng.next_u64())).await;
                        return;
                    }
                    handle(&frame, &mut radio, &mut queue, &history, &mut out);
                }
                ether.tune(node, radio.on.then(|| radio.tuning()));
                if !out.is_empty() && port.write(&out).await.is_err() {
                    return;
                }
                if matches!(tx, Tx::Idle) && !queue.is_empty() && radio.on {
                    tx = Tx::Csma(Instant::now() + csma_wait(&radio, &mut rng));
                }
            }
            air = air_rx.recv() => {
                let Some(air) = air else { return };
                if !radio.on {
                    continue;
                }
                last_rssi = air.rssi;
                if let Some(packet) = reassemble(&air, &mut split) {
                    tokio::time::sleep(USB_LATENCY).await;
                    let mut out = kiss::encode(cmd::STAT_RSSI, &[(air.rssi + 157).clamp(0, 255) as u8]);
                    out.extend(kiss::encode(cmd::STAT_SNR, &[((air.snr * 4.0).round() as i8) as u8]));
                    out.extend(kiss::encode(cmd::DATA, &packet));
                    if port.write(&out).await.is_err() {
                        return;
                    }
                }
            }
            _ = sleep_until(tx_deadline.unwrap_or(far)), if tx_deadline.is_some() => {
                let now = Instant::now();
                tx = match std::mem::replace(&mut tx, Tx::Idle) {
                    Tx::Csma(_) => {
                        if !radio.on || queue.is_empty() {
                            Tx::Idle
                        } else if locked(&radio, &mut history, now) {
                            Tx::Csma(now + radio.slot() * 4)
                        } else if ether.busy(node, &radio.tuning()) {
                            Tx::Csma(now + csma_wait(&radio, &mut rng))
                        } else {
                            // Flush the whole queue back to back.
                            let mut air: VecDeque<Vec<u8>> = VecDeque::new();
                            while let Some(p) = queue.pop_front() {
                                air.extend(split_packet(&p, &mut rng));
                            }
                            start_air(&ether, node, &radio, air, &mut history)
                        }
                    }
                    Tx::OnAir(_, id, rest) => {
                        ether.finish(id);
                        if rest.is_empty() {
                            let report = chtm(&radio, &mut history, now, last_rssi);
                            if port.write(&report).await.is_err() {
                                return;
                            }
                            if queue.is_empty() { Tx::Idle } else { Tx::Csma(now + csma_wait(&radio, &mut rng)) }
                        } else {
                            start_air(&ether, node, &radio, rest, &mut history)
                        }
                    }
                    Tx::Idle => Tx::Idle,
                };
            }
            _ = sleep_until(next_chtm) => {
                next_chtm = Instant::now() + CHTM_EVERY;
                if radio.on && Instant::now() >= booted {
                    let report = chtm(&radio, &mut history, Instant::now(), last_rssi);
                    if port.write(&report).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn csma_wait(radio: &Radio, rng: &mut Rng) -> Duration {
    // DIFS (two slots) plus a random contention window.
    radio.slot() * (2 + rng.below(CW_SLOTS) as u32)
}

fn start_air(
    ether: &Ether,
    node: usize,
    radio: &Radio,
    mut air: VecDeque<Vec<u8>>,
    history: &mut VecDeque<(Instant, Duration)>,
) -> Tx {
    let Some(packet) = air.pop_front() else {
        return Tx::Idle;
    };
    let toa: Airtime = radio.modulation().time_on_air(packet.len());
    history.push_back((Instant::now(), toa.as_duration()));
    let id = ether.transmit(node, radio.tuning(), packet, toa);
    Tx::OnAir(Instant::now() + toa.as_duration(), id, air)
}

/// One or two on-air packets with the RNode header (a random sequence
/// nibble, `FLAG_SPLIT` for host packets over 254 bytes).
fn split_packet(p: &[u8], rng: &mut Rng) -> Vec<Vec<u8>> {
    let seq = (rng.below(256) as u8) & 0xF0;
    if p.len() <= SINGLE_MTU {
        let mut a = vec![seq];
        a.extend_from_slice(p);
        vec![a]
    } else {
        let h = seq | 0x01;
        let mut a = vec![h];
        a.extend_from_slice(&p[..SINGLE_MTU]);
        let mut b = vec![h];
        b.extend_from_slice(&p[SINGLE_MTU..]);
        vec![a, b]
    }
}

/// The firmware's reassembly: a split part with the sequence of the one
/// before completes it (even if it belongs to another packet: the splice
/// hazard), a new sequence restarts, a non-split packet discards a half.
fn reassemble(air: &Air, split: &mut Option<(u8, Vec<u8>)>) -> Option<Vec<u8>> {
    let (&header, body) = air.bytes.split_first()?;
    if header & 0x01 == 0 {
        *split = None;
        return Some(body.to_vec());
    }
    let seq = header & 0xF0;
    match split.take() {
        Some((s, mut first)) if s == seq => {
            first.extend_from_slice(body);
            Some(first)
        }
        _ => {
            *split = Some((seq, body.to_vec()));
            None
        }
    }
}

fn airtime_share(
    history: &mut VecDeque<(Instant, Duration)>,
    now: Instant,
    window: Duration,
) -> u16 {
    while history.front().is_some_and(|(t, _)| *t + LONG_TERM < now) {
        history.pop_front();
    }
    let used: Duration = history
        .iter()
        .filter(|(t, _)| *t + window >= now)
        .map(|(_, d)| *d)
        .sum();
    (used.as_secs_f64() / window.as_secs_f64() * 10_000.0).min(u16::MAX as f64) as u16
}

fn locked(radio: &Radio, history: &mut VecDeque<(Instant, Duration)>, now: Instant) -> bool {
    let over = |lock: u16, share: u16| lock > 0 && lock < 10_000 && share >= lock;
    over(radio.st_alock, airtime_share(history, now, SHORT_TERM))
        || over(radio.lt_alock, airtime_share(history, now, LONG_TERM))
}

fn chtm(
    radio: &Radio,
    history: &mut VecDeque<(Instant, Duration)>,
    now: Instant,
    rssi: i16,
) -> Vec<u8> {
    let mut d = Vec::with_capacity(11);
    d.extend(airtime_share(history, now, SHORT_TERM).to_be_bytes());
    d.extend(airtime_share(history, now, LONG_TERM).to_be_bytes());
    d.extend(0u16.to_be_bytes());
    d.extend(0u16.to_be_bytes());
    d.push((rssi + 157).clamp(0, 255) as u8);
    d.push((-120i16 + 157) as u8);
    d.push(0xFF);
    let _ = radio;
    kiss::encode(cmd::STAT_CHTM, &d)
}

/// One host frame. Commands need their argument: a query sent without the
/// dummy byte never runs, as on the firmware.
fn handle(
    frame: &kiss::Frame,
    radio: &mut Radio,
    queue: &mut VecDeque<Vec<u8>>,
    history: &VecDeque<(Instant, Duration)>,
    out: &mut Vec<u8>,
) {
    let d = &frame.data;
    let reply = |out: &mut Vec<u8>, c: u8, data: &[u8]| out.extend(kiss::encode(c, data));
    let _ = history;
    match frame.command {
        cmd::DATA => {
            let bytes: usize = queue.iter().map(Vec::len).sum();
            if radio.on
                && !d.is_empty()
                && d.len() <= MTU
                && queue.len() < QUEUE_PACKETS
                && bytes + d.len() <= QUEUE_BYTES
            {
                queue.push_back(d.clone());
            }
        }
        cmd::DETECT if d.first() == Some(&cmd::DETECT_REQ) => {
            reply(out, cmd::DETECT, &[cmd::DETECT_RESP])
        }
        cmd::FW_VERSION if !d.is_empty() => reply(out, cmd::FW_VERSION, &[0x01, 0x56]),
        cmd::PLATFORM if !d.is_empty() => reply(out, cmd::PLATFORM, &[0x80]),
        cmd::MCU if !d.is_empty() => reply(out, cmd::MCU, &[0x81]),
        cmd::BOARD if !d.is_empty() => reply(out, cmd::BOARD, &[0x31]),
        cmd::FREQUENCY => {
            if let Some(v) = kiss::u32_arg(d) {
                if v != 0 {
                    radio.frequency = v;
                }
                reply(out, cmd::FREQUENCY, &radio.frequency.to_be_bytes());
            }
        }
        cmd::BANDWIDTH => {
            if let Some(v) = kiss::u32_arg(d) {
                if v != 0 {
                    radio.bandwidth = v.clamp(7_800, 500_000);
                }
                reply(out, cmd::BANDWIDTH, &radio.bandwidth.to_be_bytes());
            }
        }
        cmd::TXPOWER if !d.is_empty() => {
            if d[0] != 0xFF {
                radio.txpower = d[0].min(22);
            }
            reply(out, cmd::TXPOWER, &[radio.txpower]);
        }
        cmd::SF if !d.is_empty() => {
            if d[0] != 0xFF {
                radio.sf = d[0].clamp(5, 12);
            }
            reply(out, cmd::SF, &[radio.sf]);
        }
        cmd::CR if !d.is_empty() => {
            if d[0] != 0xFF {
                radio.cr = d[0].clamp(5, 8);
            }
            reply(out, cmd::CR, &[radio.cr]);
        }
        cmd::RADIO_STATE if !d.is_empty() => {
            match d[0] {
                0x00 => radio.on = false,
                0x01 => radio.on = radio.unlocked(),
                _ => {}
            }
            reply(out, cmd::RADIO_STATE, &[u8::from(radio.on)]);
        }
        cmd::ST_ALOCK => {
            if let Some(v) = kiss::u16_arg(d) {
                radio.st_alock = v;
                reply(out, cmd::ST_ALOCK, &v.to_be_bytes());
            }
        }
        cmd::LT_ALOCK => {
            if let Some(v) = kiss::u16_arg(d) {
                radio.lt_alock = v;
                reply(out, cmd::LT_ALOCK, &v.to_be_bytes());
            }
        }
        cmd::READY if !d.is_empty() => {
            let bytes: usize = queue.iter().map(Vec::len).sum();
            let ready = queue.len() < QUEUE_PACKETS && bytes + MTU <= QUEUE_BYTES;
            reply(out, cmd::READY, &[u8::from(ready)]);
        }
        cmd::LEAVE => {}
        _ => {}
    }
}
