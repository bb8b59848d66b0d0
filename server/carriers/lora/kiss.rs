//! KISS framing as RNode firmware speaks it over USB serial.
//!
//! `C0 <command> <escaped data> C0`; inside a frame `DB` is written
//! `DB DD` and `C0` is written `DB DC` (Reticulum `KISS.escape()`, RNode
//! `Framing.h`). Sans-I/O: [`encode`] makes bytes, [`Deframer`] takes bytes
//! as they come and yields whole frames.

pub const FEND: u8 = 0xC0;
pub const FESC: u8 = 0xDB;
pub const TFEND: u8 = 0xDC;
pub const TFESC: u8 = 0xDD;

/// RNode command bytes (`Framing.h`).
pub mod cmd {
    pub const DATA: u8 = 0x00;
    pub const FREQUENCY: u8 = 0x01;
    pub const BANDWIDTH: u8 = 0x02;
    pub const TXPOWER: u8 = 0x03;
    pub const SF: u8 = 0x04;
    pub const CR: u8 = 0x05;
    pub const RADIO_STATE: u8 = 0x06;
    pub const RADIO_LOCK: u8 = 0x07;
    pub const DETECT: u8 = 0x08;
    pub const IMPLICIT: u8 = 0x09;
    pub const LEAVE: u8 = 0x0A;
    pub const ST_ALOCK: u8 = 0x0B;
    pub const LT_ALOCK: u8 = 0x0C;
    pub const PROMISC: u8 = 0x0E;
    pub const READY: u8 = 0x0F;
    pub const STAT_RX: u8 = 0x21;
    pub const STAT_TX: u8 = 0x22;
    pub const STAT_RSSI: u8 = 0x23;
    pub const STAT_SNR: u8 = 0x24;
    pub const STAT_CHTM: u8 = 0x25;
    pub const STAT_PHYPRM: u8 = 0x26;
    pub const BOARD: u8 = 0x47;
    pub const PLATFORM: u8 = 0x48;
    pub const MCU: u8 = 0x49;
    pub const FW_VERSION: u8 = 0x50;
    pub const RESET: u8 = 0x55;
    pub const ERROR: u8 = 0x90;

    pub const DETECT_REQ: u8 = 0x73;
    pub const DETECT_RESP: u8 = 0x46;
    pub const RESET_BYTE: u8 = 0xF8;
}

/// The largest host packet RNode accepts (`Config.h` `MTU`); longer DATA
/// frames are dropped by the firmware, so the deframer drops them too.
pub const MTU: usize = 508;
/// The largest frame the deframer buffers: a command byte and an MTU of
/// data. Anything longer is line noise and is discarded up to the next FEND.
pub const MAX_FRAME: usize = 1 + MTU;

/// One KISS frame: a command byte and its unescaped data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub command: u8,
    pub data: Vec<u8>,
}

/// Appends the escaped form of `data` to `out`.
pub fn escape_into(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        match b {
            FEND => out.extend_from_slice(&[FESC, TFEND]),
            FESC => out.extend_from_slice(&[FESC, TFESC]),
            _ => out.push(b),
        }
    }
}

/// A whole frame on the wire: `C0 escaped(command data) C0`. RNode's
/// command bytes never need escaping, but a frame that arrived with an
/// escaped command byte must encode back to itself.
pub fn encode(command: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 4);
    out.push(FEND);
    escape_into(&[command], &mut out);
    escape_into(data, &mut out);
    out.push(FEND);
    out
}

/// What the deframer saw besides good frames, for the radio page and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Noise {
    /// Frames longer than [`MAX_FRAME`], discarded.
    pub oversized: u64,
    /// Frames with an escape byte followed by neither TFEND nor TFESC.
    pub bad_escapes: u64,
}

/// Streaming deframer: feed it bytes in any fragmentation; it yields each
/// complete frame once. Bytes outside frames are ignored; runs of FEND are
/// empty frames and yield nothing.
#[derive(Debug, Default)]
pub struct Deframer {
    in_frame: bool,
    escape: bool,
    broken: bool,
    buf: Vec<u8>,
    pub noise: Noise,
}

impl Deframer {
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// Forgets a partly received frame (the host does this when no byte
    /// arrived for 100 ms, as Reticulum does).
    pub fn reset(&mut self) {
        self.in_frame = false;
        self.escape = false;
        self.broken = false;
        self.buf.clear();
    }

    /// Whether a frame is partly received.
    pub fn mid_frame(&self) -> bool {
        self.in_frame && !self.buf.is_empty()
    }

    /// Takes one byte; returns a frame when this byte completed one.
    pub fn push(&mut self, b: u8) -> Option<Frame> {
        if b == FEND {
            let done = self.in_frame && !self.broken && !self.buf.is_empty() && !self.escape;
            if self.in_frame && self.escape && !self.buf.is_empty() {
                self.noise.bad_escapes += 1;
            }
            let frame = if done {
                let mut data = std::mem::take(&mut self.buf);
                let command = data.remove(0);
                Some(Frame { command, data })
            } else {
                None
            };
            self.buf.clear();
            self.in_frame = true;
            self.escape = false;
            self.broken = false;
            return frame;
        }
        if !self.in_frame || self.broken {
            return None;
        }
        let byte = if self.escape {
            self.escape = false;
            match b {
                TFEND => FEND,
                TFESC => FESC,
                _ => {
                    self.noise.bad_escapes += 1;
                    self.broken = true;
                    self.buf.clear();
                    return None;
                }
            }
        } else if b == FESC {
            self.escape = true;
            return None;
        } else {
            b
        };
        if self.buf.len() >= MAX_FRAME {
            self.noise.oversized += 1;
            self.broken = true;
            self.buf.clear();
            return None;
        }
        self.buf.push(byte);
        None
    }

    /// Takes a chunk of bytes; returns every frame it completed, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        bytes.iter().filter_map(|&b| self.push(b)).collect()
    }
}

/// A big-endian u32 argument (frequency, bandwidth).
pub fn u32_arg(data: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(..4)?.try_into().ok()?))
}

/// A big-endian u16 argument (airtime locks).
pub fn u16_arg(data: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(..2)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_reference_bytes() {
        // 869.525 MHz, 125 kHz, LT_ALOCK 9.5 %: bytes from the RNode docs.
        assert_eq!(
            encode(cmd::FREQUENCY, &869_525_000u32.to_be_bytes()),
            [0xC0, 0x01, 0x33, 0xD3, 0xE6, 0x08, 0xC0]
        );
        assert_eq!(
            encode(cmd::BANDWIDTH, &125_000u32.to_be_bytes()),
            [0xC0, 0x02, 0x00, 0x01, 0xE8, 0x48, 0xC0]
        );
        assert_eq!(
            encode(cmd::LT_ALOCK, &950u16.to_be_bytes()),
            [0xC0, 0x0C, 0x03, 0xB6, 0xC0]
        );
        // Escapes: DB first, then C0.
        assert_eq!(
            encode(cmd::DATA, &[0xC0, 0xDB, 0x01]),
            [0xC0, 0x00, 0xDB, 0xDC, 0xDB, 0xDD, 0x01, 0xC0]
        );
    }

    #[test]
    fn the_detect_answer_parses() {
        let mut d = Deframer::new();
        let frames = d.feed(&[
            0xC0, 0x08, 0x46, 0xC0, 0xC0, 0x50, 0x01, 0x56, 0xC0, 0xC0, 0x48, 0x80, 0xC0, 0xC0,
            0x49, 0x81, 0xC0,
        ]);
        assert_eq!(
            frames,
            vec![
                Frame {
                    command: cmd::DETECT,
                    data: vec![cmd::DETECT_RESP]
                },
                Frame {
                    command: cmd::FW_VERSION,
                    data: vec![1, 0x56]
                },
                Frame {
                    command: cmd::PLATFORM,
                    data: vec![0x80]
                },
                Frame {
                    command: cmd::MCU,
                    data: vec![0x81]
                },
            ]
        );
    }

    #[test]
    fn garbage_is_ignored_and_counted() {
        let mut d = Deframer::new();
        // Bytes before the first FEND, a bad escape, an oversized frame.
        let mut wire = b"noise before".to_vec();
        wire.extend([0xC0, 0x00, 0xDB, 0x41, 0x42, 0xC0]);
        wire.push(0xC0);
        wire.push(0x00);
        wire.extend(std::iter::repeat_n(0x55, MAX_FRAME + 10));
        wire.push(0xC0);
        wire.extend(encode(cmd::DATA, b"ok"));
        let frames = d.feed(&wire);
        assert_eq!(
            frames,
            vec![Frame {
                command: cmd::DATA,
                data: b"ok".to_vec()
            }]
        );
        assert_eq!(d.noise.bad_escapes, 1);
        assert_eq!(d.noise.oversized, 1);
    }

    /// Found by the `kiss_deframer` fuzz target: a command byte that
    /// arrives escaped (`DB DC` = C0) must encode back the same way, not
    /// as a bare C0 that ends the frame.
    #[test]
    fn an_escaped_command_byte_round_trips() {
        let wire = [
            0xb0, 0xbb, 0x3c, 0xc0, 0x08, 0xdb, 0xdc, 0x40, 0xc0, 0x08, 0xdb, 0xdc, 0x40, 0xc0,
            0xdb, 0xdc, 0x40, 0x00, 0xc0, 0xdb, 0xdc, 0x40, 0x00, 0x00, 0x00, 0x00,
        ];
        let frames = Deframer::new().feed(&wire);
        assert!(
            frames.contains(&Frame {
                command: 0xC0,
                data: vec![0x40, 0x00]
            }),
            "{frames:?}"
        );
        for f in frames {
            assert_eq!(Deframer::new().feed(&encode(f.command, &f.data)), vec![f]);
        }
        assert_eq!(encode(0xC0, &[]), [0xC0, 0xDB, 0xDC, 0xC0]);
    }

    #[test]
    fn a_reset_forgets_a_partial_frame() {
        let mut d = Deframer::new();
        assert!(d.feed(&[0xC0, 0x00, 1, 2, 3]).is_empty());
        assert!(d.mid_frame());
        d.reset();
        // Without its opening FEND the tail is ignored.
        assert!(d.feed(&[4, 5, 0xC0]).is_empty());
        assert_eq!(
            d.feed(&encode(0, b"x")),
            vec![Frame {
                command: 0,
                data: b"x".to_vec()
            }]
        );
    }

    proptest! {
        /// Any frames, escaped and split at any points, come back whole and
        /// in order.
        #[test]
        fn frames_round_trip_through_any_fragmentation(
            frames in proptest::collection::vec(
                (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..MTU)), 1..8),
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let mut wire = Vec::new();
            for (c, data) in &frames {
                wire.extend(encode(*c, data));
            }
            let mut d = Deframer::new();
            let mut got = Vec::new();
            let mut rest = &wire[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                got.extend(d.feed(&rest[..n]));
                rest = &rest[n..];
                i += 1;
            }
            let want: Vec<Frame> = frames
                .into_iter()
                .map(|(command, data)| Frame { command, data })
                .collect();
            prop_assert_eq!(got, want);
        }

        /// Random bytes never panic and never yield a frame over the bound.
        #[test]
        fn random_bytes_are_harmless(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let mut d = Deframer::new();
            for f in d.feed(&bytes) {
                prop_assert!(f.data.len() < MAX_FRAME);
            }
        }
    }
}
