//! Time on air of a LoRa packet, the regional sub-bands with their duty
//! cycles, and the sliding-window ledger that keeps a transmitter inside
//! them.
//!
//! Sans-I/O: the formula is Semtech AN1200.13 (SX127x datasheet §4.1.1.7);
//! the ledger is plain arithmetic over `(time, airtime)` entries that the
//! caller persists.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// Air time in microseconds (what the formula yields, rounded up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Airtime(pub u64);

impl Airtime {
    pub fn from_micros(us: u64) -> Airtime {
        Airtime(us)
    }
    pub fn micros(self) -> u64 {
        self.0
    }
    pub fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }
    pub fn millis_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl std::ops::Add for Airtime {
    type Output = Airtime;
    fn add(self, o: Airtime) -> Airtime {
        Airtime(self.0 + o.0)
    }
}

impl std::ops::AddAssign for Airtime {
    fn add_assign(&mut self, o: Airtime) {
        self.0 += o.0;
    }
}

impl std::iter::Sum for Airtime {
    fn sum<I: Iterator<Item = Airtime>>(it: I) -> Airtime {
        Airtime(it.map(|a| a.0).sum())
    }
}

impl fmt::Display for Airtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 10_000_000 {
            write!(f, "{:.0} s", self.0 as f64 / 1e6)
        } else if self.0 >= 1_000_000 {
            write!(f, "{:.1} s", self.0 as f64 / 1e6)
        } else {
            write!(f, "{:.0} ms", self.0 as f64 / 1e3)
        }
    }
}

/// The spreading factors the formula here covers. SF5/6 use a different
/// preamble and payload form on SX126x chips, so they are refused rather
/// than mis-costed.
pub const SF_RANGE: std::ops::RangeInclusive<u8> = 7..=12;
/// Coding rates 4/5 .. 4/8, written as 1..4 as in the formula.
pub const CR_RANGE: std::ops::RangeInclusive<u8> = 1..=4;
/// The longest PHY payload of one LoRa packet.
pub const MAX_PHY_PAYLOAD: usize = 255;

/// The modulation of one link: everything the time-on-air formula needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulation {
    /// Spreading factor, 7..=12.
    pub sf: u8,
    /// Bandwidth in Hz (125 000, 250 000, 500 000, …).
    pub bandwidth: u32,
    /// Coding rate 1..=4 for 4/5..4/8.
    pub cr: u8,
    /// Preamble symbols as programmed.
    pub preamble: u16,
    /// Payload CRC on (RNode and RYLR both enable it).
    pub crc: bool,
    /// Implicit header mode (neither modem uses it).
    pub implicit_header: bool,
}

impl Modulation {
    /// An explicit-header, CRC-on modulation with the given preamble.
    pub fn new(sf: u8, bandwidth: u32, cr: u8, preamble: u16) -> Modulation {
        Modulation {
            sf,
            bandwidth,
            cr,
            preamble,
            crc: true,
            implicit_header: false,
        }
    }

    /// Whether the formula covers these settings; the error says which
    /// field is wrong and what is allowed.
    pub fn check(&self) -> Result<(), String> {
        if !SF_RANGE.contains(&self.sf) {
            return Err(format!(
                "spreading factor {} is not supported: use 7 to 12",
                self.sf
            ));
        }
        if !CR_RANGE.contains(&self.cr) {
            return Err(format!(
                "coding rate {} is not supported: use 1 to 4 (4/5 to 4/8)",
                self.cr
            ));
        }
        if self.bandwidth < 7_800 || self.bandwidth > 500_000 {
            return Err(format!(
                "bandwidth {} Hz is not a LoRa bandwidth: use 125000, 250000 or 500000",
                self.bandwidth
            ));
        }
        Ok(())
    }

    /// Symbol time in seconds.
    pub fn symbol_time(&self) -> f64 {
        f64::from(1u32 << self.sf) / f64::from(self.bandwidth)
    }

    /// Low-data-rate optimisation: mandatory when a symbol lasts 16 ms or
    /// more (SF11–12 at 125 kHz, SF12 at 250 kHz).
    pub fn low_data_rate(&self) -> bool {
        self.symbol_time() >= 0.016
    }

    /// Raw PHY bit rate: SF · 4/(4+CR) · BW / 2^SF.
    pub fn bit_rate(&self) -> f64 {
        f64::from(self.sf) * 4.0 / f64::from(4 + self.cr) * f64::from(self.bandwidth)
            / f64::from(1u32 << self.sf)
    }

    /// Time on air of a packet with `payload` PHY bytes (Semtech AN1200.13).
    pub fn time_on_air(&self, payload: usize) -> Airtime {
        let t_sym = self.symbol_time();
        let sf = f64::from(self.sf);
        let de = if self.low_data_rate() { 1.0 } else { 0.0 };
        let crc = if self.crc { 1.0 } else { 0.0 };
        let ih = if self.implicit_header { 1.0 } else { 0.0 };
        let t_preamble = (f64::from(self.preamble) + 4.25) * t_sym;
        let numerator = 8.0 * payload as f64 - 4.0 * sf + 28.0 + 16.0 * crc - 20.0 * ih;
        let blocks = (numerator / (4.0 * (sf - 2.0 * de))).ceil().max(0.0);
        let n_payload = 8.0 + blocks * f64::from(self.cr + 4);
        let seconds = t_preamble + n_payload * t_sym;
        // Round up to the microsecond so the ledger never under-counts.
        Airtime((seconds * 1e6 - 1e-6).ceil() as u64)
    }
}

/// RNode's preamble: at least 18 symbols, and long enough to last 24 ms
/// (firmware `LORA_PREAMBLE_SYMBOLS_MIN`, `LORA_PREAMBLE_TARGET_MS`).
pub fn rnode_preamble(sf: u8, bandwidth: u32) -> u16 {
    let t_sym_ms = f64::from(1u32 << sf) * 1000.0 / f64::from(bandwidth);
    let target = (24.0 / t_sym_ms).ceil() as u16;
    target.max(18)
}

/// One regulated sub-band: a frequency range with its duty-cycle limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubBand {
    /// Stable name used as the ledger key ("eu868-g3").
    pub name: &'static str,
    pub low_hz: u32,
    pub high_hz: u32,
    /// Duty cycle in per-mille of the window (10 % = 100).
    pub duty_permille: u32,
    /// Longest single packet allowed (dwell time), if the rules cap it.
    pub max_dwell: Option<Duration>,
    pub note: &'static str,
}

impl SubBand {
    /// Air time allowed per ledger window.
    pub fn budget(&self) -> Airtime {
        Airtime(WINDOW.as_micros() as u64 * u64::from(self.duty_permille) / 1000)
    }
}

/// The duty cycle is measured per transmitter over one hour.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// Regions whose rules cairn knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// EU 863–870 MHz, ERC/REC 70-03 Annex 1 (duty cycle without LBT+AFA).
    Eu868,
    /// US 902–928 MHz, 47 CFR 15.247: no duty cycle for a single 500 kHz
    /// channel (DTS-style) but a 400 ms cap per packet. Needs regulatory
    /// review before real use.
    Us915,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Eu868 => "eu868",
            Region::Us915 => "us915",
        }
    }

    pub fn bands(self) -> &'static [SubBand] {
        match self {
            Region::Eu868 => &EU868,
            Region::Us915 => &US915,
        }
    }

    /// The sub-band that wholly contains a channel of `bandwidth` Hz
    /// centred on `frequency`, or an error that names the legal ranges.
    pub fn band_for(self, frequency: u32, bandwidth: u32) -> Result<&'static SubBand, String> {
        let low = frequency.saturating_sub(bandwidth / 2);
        let high = frequency.saturating_add(bandwidth / 2);
        if let Some(band) = self
            .bands()
            .iter()
            .find(|b| low >= b.low_hz && high <= b.high_hz)
        {
            if self == Region::Us915 && bandwidth < 500_000 {
                return Err(format!(
                    "region us915: a fixed single channel must use 500 kHz bandwidth (DTS); {bandwidth} Hz would need frequency hopping"
                ));
            }
            return Ok(band);
        }
        let ranges: Vec<String> = self
            .bands()
            .iter()
            .map(|b| {
                format!(
                    "{:.3}–{:.3} MHz ({})",
                    f64::from(b.low_hz) / 1e6,
                    f64::from(b.high_hz) / 1e6,
                    b.note
                )
            })
            .collect();
        Err(format!(
            "{:.3} MHz with {} kHz bandwidth does not fit inside one {} sub-band; the channel must lie wholly in one of: {}",
            f64::from(frequency) / 1e6,
            bandwidth / 1000,
            self.as_str(),
            ranges.join(", ")
        ))
    }
}

impl std::str::FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Region, String> {
        match s {
            "eu868" => Ok(Region::Eu868),
            "us915" => Ok(Region::Us915),
            _ => Err(format!("unknown region `{s}`: use eu868 or us915")),
        }
    }
}

const EU868: [SubBand; 6] = [
    SubBand {
        name: "eu868-863",
        low_hz: 863_000_000,
        high_hz: 865_000_000,
        duty_permille: 1,
        max_dwell: None,
        note: "0.1 %",
    },
    SubBand {
        name: "eu868-865",
        low_hz: 865_000_000,
        high_hz: 868_000_000,
        duty_permille: 10,
        max_dwell: None,
        note: "1 %",
    },
    SubBand {
        name: "eu868-g1",
        low_hz: 868_000_000,
        high_hz: 868_600_000,
        duty_permille: 10,
        max_dwell: None,
        note: "1 %",
    },
    SubBand {
        name: "eu868-g2",
        low_hz: 868_700_000,
        high_hz: 869_200_000,
        duty_permille: 1,
        max_dwell: None,
        note: "0.1 %",
    },
    SubBand {
        name: "eu868-g3",
        low_hz: 869_400_000,
        high_hz: 869_650_000,
        duty_permille: 100,
        max_dwell: None,
        note: "10 %, 500 mW",
    },
    SubBand {
        name: "eu868-g4",
        low_hz: 869_700_000,
        high_hz: 870_000_000,
        duty_permille: 10,
        max_dwell: None,
        note: "1 % at 25 mW",
    },
];

const US915: [SubBand; 1] = [SubBand {
    name: "us915",
    low_hz: 902_000_000,
    high_hz: 928_000_000,
    duty_permille: 1000,
    max_dwell: Some(Duration::from_millis(400)),
    note: "400 ms per packet",
}];

/// The pacing window: the duty cycle also holds over every six minutes.
pub const PACE_WINDOW: Duration = Duration::from_secs(360);

/// Share of the legal budget the ledger lets cairn use: the rest is margin
/// for the modem's own rounding and a clock that drifts between restarts.
pub const LEDGER_SHARE_PERMILLE: u64 = 950;

/// One transmitter's sliding-window account of air time in one sub-band.
/// Times are milliseconds on any clock that does not run backwards much
/// (wall-clock milliseconds, persisted with each entry).
#[derive(Clone, Debug)]
pub struct Ledger {
    limit: Airtime,
    window_ms: u64,
    entries: VecDeque<(u64, Airtime)>,
    used: Airtime,
}

impl Ledger {
    /// A ledger for `band`, allowed [`LEDGER_SHARE_PERMILLE`] of its budget.
    pub fn new(band: &SubBand) -> Ledger {
        Ledger::with_limit(Airtime(band.budget().0 * LEDGER_SHARE_PERMILLE / 1000))
    }

    pub fn with_limit(limit: Airtime) -> Ledger {
        Ledger::with_window(limit, WINDOW)
    }

    /// A ledger over another window: [`PACE_WINDOW`] with a tenth of the
    /// hour's limit spreads the hour's air time so that a sender that used
    /// it up waits minutes, not most of an hour.
    pub fn with_window(limit: Airtime, window: Duration) -> Ledger {
        Ledger {
            limit,
            window_ms: window.as_millis() as u64,
            entries: VecDeque::new(),
            used: Airtime(0),
        }
    }

    pub fn limit(&self) -> Airtime {
        self.limit
    }

    /// Restores an entry read back from disk. An entry stamped in the
    /// future (the clock went back) counts as if sent now, so a clock that
    /// jumps backwards can only make the ledger stricter.
    pub fn restore(&mut self, now_ms: u64, at_ms: u64, airtime: Airtime) {
        self.push(at_ms.min(now_ms), airtime);
    }

    fn push(&mut self, at_ms: u64, airtime: Airtime) {
        // Keep entries sorted by time (restores may come in any order).
        let pos = self.entries.partition_point(|(t, _)| *t <= at_ms);
        self.entries.insert(pos, (at_ms, airtime));
        self.used += airtime;
    }

    fn expire(&mut self, now_ms: u64) {
        let window = self.window_ms;
        while let Some(&(t, a)) = self.entries.front() {
            if t + window <= now_ms {
                self.entries.pop_front();
                self.used = Airtime(self.used.0 - a.0);
            } else {
                break;
            }
        }
    }

    /// Air time spent in the window ending at `now_ms`.
    pub fn used(&mut self, now_ms: u64) -> Airtime {
        self.expire(now_ms);
        self.used
    }

    /// Air time still allowed in the window ending at `now_ms`.
    pub fn remaining(&mut self, now_ms: u64) -> Airtime {
        let used = self.used(now_ms);
        Airtime(self.limit.0.saturating_sub(used.0))
    }

    /// The earliest time at or after `now_ms` when `cost` fits, or `None`
    /// when it never can (a single packet larger than the whole budget).
    pub fn earliest(&mut self, now_ms: u64, cost: Airtime) -> Option<u64> {
        if cost > self.limit {
            return None;
        }
        self.expire(now_ms);
        let mut used = self.used.0;
        if used + cost.0 <= self.limit.0 {
            return Some(now_ms);
        }
        let window = self.window_ms;
        for &(t, a) in &self.entries {
            used -= a.0;
            if used + cost.0 <= self.limit.0 {
                return Some(t + window);
            }
        }
        Some(now_ms)
    }

    /// Records a transmission of `cost` at `now_ms` if it fits, and says
    /// whether it did. The caller persists the entry before transmitting.
    pub fn try_spend(&mut self, now_ms: u64, cost: Airtime) -> bool {
        if self.earliest(now_ms, cost) == Some(now_ms) {
            self.push(now_ms, cost);
            true
        } else {
            false
        }
    }

    /// Records a transmission starting at `at_ms` (a later frame of a
    /// burst already checked with [`Ledger::earliest`]).
    pub fn spend_at(&mut self, at_ms: u64, cost: Airtime) {
        self.push(at_ms, cost);
    }

    /// Entries still inside the window (for a page or a test).
    pub fn entries(&self) -> impl Iterator<Item = (u64, Airtime)> + '_ {
        self.entries.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(a: Airtime) -> f64 {
        a.millis_f64()
    }

    #[test]
    fn worked_examples_from_the_formula() {
        // 255 B, SF7/125 kHz, CR 4/5, preamble 8: 399.6 ms.
        let m = Modulation::new(7, 125_000, 1, 8);
        assert!((ms(m.time_on_air(255)) - 399.616).abs() < 0.01);
        // 50 B at SF7/125: 97.5 ms.
        assert!((ms(m.time_on_air(50)) - 97.5).abs() < 0.1);
        // 255 B at SF12/125 with low-data-rate optimisation: 9019 ms.
        let m12 = Modulation::new(12, 125_000, 1, 8);
        assert!(m12.low_data_rate());
        assert!((ms(m12.time_on_air(255)) - 9019.0).abs() < 1.0);
        // The LoRaWAN calculator's check value: 51 B at SF12/125 = 2465.8 ms.
        assert!((ms(m12.time_on_air(51)) - 2465.8).abs() < 0.1);
        // SF9/250: 255 B in 625 ms.
        let m9 = Modulation::new(9, 250_000, 1, 8);
        assert!((ms(m9.time_on_air(255)) - 625.0).abs() < 1.0);
        // Bit rates: SF7/125 = 5469 bit/s, SF12/125 = 293 bit/s.
        assert!((m.bit_rate() - 5468.75).abs() < 0.01);
        assert!((m12.bit_rate() - 292.97).abs() < 0.01);
    }

    #[test]
    fn rnode_preamble_matches_the_firmware_table() {
        assert_eq!(rnode_preamble(7, 125_000), 24);
        assert_eq!(rnode_preamble(8, 125_000), 18);
        assert_eq!(rnode_preamble(12, 125_000), 18);
        assert_eq!(rnode_preamble(7, 250_000), 47);
        // 255 B frame at SF7/125 with RNode's preamble: 416 ms.
        let m = Modulation::new(7, 125_000, 1, rnode_preamble(7, 125_000));
        assert!((ms(m.time_on_air(255)) - 416.0).abs() < 0.01);
    }

    #[test]
    fn air_time_grows_with_payload_and_spreading_factor() {
        for sf in SF_RANGE {
            let m = Modulation::new(sf, 125_000, 1, 8);
            let mut last = Airtime(0);
            for pl in 0..=255 {
                let t = m.time_on_air(pl);
                assert!(t >= last, "sf{sf} pl{pl}");
                last = t;
            }
            if sf > 7 {
                let lower = Modulation::new(sf - 1, 125_000, 1, 8);
                assert!(m.time_on_air(200) > lower.time_on_air(200));
            }
        }
    }

    #[test]
    fn modulation_check_names_the_field() {
        assert!(
            Modulation::new(6, 125_000, 1, 8)
                .check()
                .unwrap_err()
                .contains("spreading factor")
        );
        assert!(
            Modulation::new(7, 125_000, 5, 8)
                .check()
                .unwrap_err()
                .contains("coding rate")
        );
        assert!(
            Modulation::new(7, 1_000_000, 1, 8)
                .check()
                .unwrap_err()
                .contains("bandwidth")
        );
        assert!(Modulation::new(9, 125_000, 1, 8).check().is_ok());
    }

    #[test]
    fn sub_bands_by_frequency() {
        let g3 = Region::Eu868.band_for(869_525_000, 125_000).unwrap();
        assert_eq!(g3.name, "eu868-g3");
        assert_eq!(g3.budget(), Airtime(360_000_000));
        // 250 kHz centred on 869.525 fills g3 exactly.
        assert!(Region::Eu868.band_for(869_525_000, 250_000).is_ok());
        // 500 kHz spills over: refused with the legal ranges named.
        let e = Region::Eu868.band_for(869_525_000, 500_000).unwrap_err();
        assert!(e.contains("869.400–869.650"), "{e}");
        assert_eq!(
            Region::Eu868
                .band_for(868_100_000, 125_000)
                .unwrap()
                .duty_permille,
            10
        );
        assert!(Region::Eu868.band_for(915_000_000, 125_000).is_err());
        assert!(Region::Us915.band_for(915_000_000, 125_000).is_err());
        let us = Region::Us915.band_for(915_000_000, 500_000).unwrap();
        assert_eq!(us.max_dwell, Some(Duration::from_millis(400)));
    }

    #[test]
    fn the_ledger_slides_and_never_overspends() {
        let mut l = Ledger::with_limit(Airtime(1_000_000));
        assert!(l.try_spend(0, Airtime(600_000)));
        assert!(!l.try_spend(10, Airtime(600_000)));
        assert_eq!(l.earliest(10, Airtime(600_000)), Some(3_600_000));
        assert!(l.try_spend(20, Airtime(400_000)));
        assert_eq!(l.remaining(30), Airtime(0));
        // The first entry leaves the window after an hour; only it frees.
        assert_eq!(l.remaining(3_600_000), Airtime(600_000));
        assert_eq!(l.earliest(3_600_000, Airtime(700_000)), Some(3_600_020));
        assert_eq!(l.earliest(0, Airtime(2_000_000)), None);
        // A restored entry from the future counts as sent now.
        let mut r = Ledger::with_limit(Airtime(1_000_000));
        r.restore(5_000, 9_000_000, Airtime(900_000));
        assert_eq!(r.remaining(5_000), Airtime(100_000));
        assert_eq!(r.remaining(5_000 + 3_600_000), Airtime(1_000_000));
    }

    #[test]
    fn the_ledger_share_leaves_a_margin() {
        let g3 = Region::Eu868.band_for(869_525_000, 125_000).unwrap();
        let l = Ledger::new(g3);
        assert_eq!(l.limit(), Airtime(342_000_000));
    }

    proptest::proptest! {
        /// Whatever is spent, at whatever times, no hour-long window ever
        /// holds more than the limit.
        #[test]
        fn no_window_exceeds_the_limit(
            steps in proptest::collection::vec((0u64..400_000, 1u64..5_000_000), 1..300)
        ) {
            let limit = Airtime(36_000_000);
            let mut l = Ledger::with_limit(limit);
            let mut now = 0u64;
            let mut sent: Vec<(u64, u64)> = Vec::new();
            for (dt, cost) in steps {
                now += dt;
                if l.try_spend(now, Airtime(cost)) {
                    sent.push((now, cost));
                }
            }
            for &(start, _) in &sent {
                let total: u64 = sent
                    .iter()
                    .filter(|(t, _)| *t >= start && *t < start + 3_600_000)
                    .map(|(_, c)| c)
                    .sum();
                proptest::prop_assert!(total <= limit.0);
            }
        }
    }
}
