//! LoRa as the law and the physics see it: the modem families and their
//! settings, the time on air of a packet, and the regional sub-bands with
//! their duty cycles. Pure arithmetic and tables (no I/O): the drivers in
//! carriers/lora, the radio sync in relay/radio and the radio page all
//! read it.
//!
//! The formula is Semtech AN1200.13 (SX127x datasheet §4.1.1.7).

use super::units::Airtime;
use std::time::Duration;

/// Host frames never reach RNode's split mode (255–508 bytes), where
/// losing either half loses both and halves can be spliced.
pub const RNODE_MTU: usize = 254;
/// RYLR data is sent as base64: 180 bytes make the 240 characters an
/// `AT+SEND` allows, since binary transparency is undocumented.
pub const RYLR_MTU: usize = 180;
/// RYLR preamble: 12 works with every network id.
pub const RYLR_PREAMBLE: u16 = 12;
/// Bytes the RYLR adds on air to every send.
pub const RYLR_OVERHEAD: usize = 8;

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

/// Which modem family: RNode (KISS) or REYAX RYLR998 (AT commands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    Rnode,
    Rylr,
}

impl Model {
    /// The name in the configuration (`radio.modem`).
    pub fn as_str(self) -> &'static str {
        match self {
            Model::Rnode => "rnode",
            Model::Rylr => "rylr",
        }
    }
}

impl std::str::FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Model, String> {
        match s {
            "rnode" => Ok(Model::Rnode),
            "rylr" | "rylr998" => Ok(Model::Rylr),
            _ => Err(format!("unknown modem `{s}`: use rnode or rylr")),
        }
    }
}

/// The radio settings of one LoRa carrier.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub model: Model,
    pub region: Region,
    /// Centre frequency, Hz.
    pub frequency: u32,
    /// Bandwidth, Hz.
    pub bandwidth: u32,
    pub sf: u8,
    /// Coding rate 1..=4 (4/5..4/8).
    pub cr: u8,
    /// Transmit power, dBm.
    pub txpower: u8,
    /// RYLR network id (3..15 or 18): frames of other networks are unheard.
    pub network: u8,
    /// RYLR address of this hub.
    pub address: u16,
}

impl Default for Settings {
    /// The EU 869.525 MHz profile: the 10 % sub-band, SF9/125 kHz.
    fn default() -> Settings {
        Settings {
            model: Model::Rnode,
            region: Region::Eu868,
            frequency: 869_525_000,
            bandwidth: 125_000,
            sf: 9,
            cr: 1,
            txpower: 14,
            network: 18,
            address: 0,
        }
    }
}

impl Settings {
    pub fn preamble(&self) -> u16 {
        match self.model {
            Model::Rnode => rnode_preamble(self.sf, self.bandwidth),
            Model::Rylr => RYLR_PREAMBLE,
        }
    }

    pub fn modulation(&self) -> Modulation {
        Modulation::new(self.sf, self.bandwidth, self.cr, self.preamble())
    }

    pub fn mtu(&self) -> usize {
        match self.model {
            Model::Rnode => RNODE_MTU,
            Model::Rylr => RYLR_MTU,
        }
    }

    /// Air time of a host frame of `len` bytes, with what the modem adds.
    pub fn airtime(&self, len: usize) -> Airtime {
        let phy = match self.model {
            Model::Rnode => 1 + len,
            Model::Rylr => RYLR_OVERHEAD + len.div_ceil(3) * 4,
        };
        self.modulation().time_on_air(phy)
    }

    /// Every problem, each naming its field and what is allowed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = self.modulation().check() {
            out.push(e);
        }
        match self.region.band_for(self.frequency, self.bandwidth) {
            Err(e) => out.push(format!("frequency: {e}")),
            Ok(band) => {
                if let Some(dwell) = band.max_dwell
                    && self.airtime(self.mtu()).as_duration() > dwell
                {
                    out.push(format!(
                        "sf: a full frame at SF{} lasts {}, over the {} ms per-packet limit of {}; use a lower spreading factor",
                        self.sf,
                        self.airtime(self.mtu()),
                        dwell.as_millis(),
                        band.name
                    ));
                }
            }
        }
        match self.model {
            Model::Rnode => {
                if self.txpower > 22 {
                    out.push(format!(
                        "txpower: {} dBm is more than an RNode can do (22)",
                        self.txpower
                    ));
                }
            }
            Model::Rylr => {
                if !matches!(self.bandwidth, 125_000 | 250_000 | 500_000) {
                    out.push(format!(
                        "bandwidth: an RYLR998 offers 125000, 250000 or 500000 Hz, not {}",
                        self.bandwidth
                    ));
                }
                if self.sf > 11 {
                    out.push(format!("sf: an RYLR998 goes up to SF11, not SF{}", self.sf));
                }
                if self.txpower > 22 {
                    out.push(format!(
                        "txpower: {} dBm is more than an RYLR998 can do (22)",
                        self.txpower
                    ));
                }
                if !((3..=15).contains(&self.network) || self.network == 18) {
                    out.push(format!(
                        "network: {} is not an RYLR network id (3 to 15, or 18)",
                        self.network
                    ));
                }
            }
        }
        out
    }
}

/// A frame heard on the air.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub data: Vec<u8>,
    /// dBm.
    pub rssi: i16,
    /// dB.
    pub snr: f32,
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
}
