//! The hub-to-hub radio frame: one frame is one LoRa packet.
//!
//! ```text
//! byte 0     version (2 bits, = 1) | kind (2 bits) | flags (4 bits)
//! bytes 1-2  session tag (random per session, chosen by the caller)
//! bytes 3-5  counter, u24 BE: segment number, turn number, or 0
//! bytes 6..  body
//! ```
//!
//! Kinds: `HELLO` carries a Noise IK handshake message (flag 1 on the
//! answer); `SEG` carries one encrypted piece of the sender's record
//! stream, its nonce the segment number; `TURN` ends a burst and hands the
//! channel over, carrying (encrypted) a selective acknowledgement of the
//! other side's segments, flags and the sender's remaining air time. The
//! AEAD tag (16 bytes) is the frame's integrity check: a frame of another
//! network, session or key, or one corrupted on the air, fails it and is
//! dropped. Sans-I/O.

/// Header bytes before the body.
pub const HEADER: usize = 6;
/// ChaCha20-Poly1305 tag on every encrypted body.
pub const TAG: usize = 16;
/// Frame version in the top two bits.
const VERSION: u8 = 1;
/// The largest counter (u24).
pub const MAX_COUNTER: u32 = (1 << 24) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hello = 0,
    Seg = 1,
    Turn = 2,
}

/// `HELLO` flag: this is the answer to a hello.
pub const HELLO_ANSWER: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub flags: u8,
    pub session: u16,
    pub counter: u32,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.body.len());
        out.push(VERSION << 6 | (self.kind as u8) << 4 | (self.flags & 0x0F));
        out.extend(self.session.to_be_bytes());
        out.extend(&self.counter.to_be_bytes()[1..]);
        out.extend(&self.body);
        out
    }

    /// `None` for anything that is not a frame of this protocol version.
    pub fn decode(bytes: &[u8]) -> Option<Frame> {
        if bytes.len() < HEADER || bytes[0] >> 6 != VERSION {
            return None;
        }
        let kind = match (bytes[0] >> 4) & 0x03 {
            0 => Kind::Hello,
            1 => Kind::Seg,
            2 => Kind::Turn,
            _ => return None,
        };
        Some(Frame {
            kind,
            flags: bytes[0] & 0x0F,
            session: u16::from_be_bytes([bytes[1], bytes[2]]),
            counter: u32::from_be_bytes([0, bytes[3], bytes[4], bytes[5]]),
            body: bytes[HEADER..].to_vec(),
        })
    }

    /// The AEAD nonce: segments and turns draw from separate ranges.
    pub fn nonce(&self) -> u64 {
        match self.kind {
            Kind::Seg => u64::from(self.counter),
            Kind::Turn => 1 << 32 | u64::from(self.counter),
            Kind::Hello => u64::MAX,
        }
    }
}

/// `TURN` flags, in the encrypted body.
pub mod turn {
    /// The sender sent nothing but this turn frame.
    pub const IDLE: u8 = 1;
    /// The sender's stream is complete: `fin` segments in all.
    pub const FIN: u8 = 2;
    /// The sender ends the session.
    pub const BYE: u8 = 4;
}

/// The body of a `TURN` frame (before encryption): 28 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Turn {
    /// The next segment number the sender expects (all below arrived).
    pub cum: u32,
    /// Bit i: segment `cum + 1 + i` arrived.
    pub bitmap: u64,
    pub flags: u8,
    /// With `FIN`: how many segments the sender's stream has.
    pub fin: u32,
    /// The sender's remaining air time in this hour, milliseconds.
    pub budget_ms: u32,
    /// The sender cannot transmit for this long (its duty cycle): the
    /// other side waits that much longer before it polls.
    pub hold_ms: u32,
    /// The last frame the sender heard from us: RSSI dBm, SNR in 0.25 dB.
    pub rssi: i16,
    pub snr_q: i8,
}

pub const TURN_LEN: usize = 28;

impl Turn {
    pub fn encode(&self) -> [u8; TURN_LEN] {
        let mut b = [0u8; TURN_LEN];
        b[0..4].copy_from_slice(&self.cum.to_be_bytes());
        b[4..12].copy_from_slice(&self.bitmap.to_be_bytes());
        b[12] = self.flags;
        b[13..17].copy_from_slice(&self.fin.to_be_bytes());
        b[17..21].copy_from_slice(&self.budget_ms.to_be_bytes());
        b[21..25].copy_from_slice(&self.hold_ms.to_be_bytes());
        b[25..27].copy_from_slice(&self.rssi.to_be_bytes());
        b[27] = self.snr_q as u8;
        b
    }

    pub fn decode(b: &[u8]) -> Option<Turn> {
        if b.len() != TURN_LEN {
            return None;
        }
        Some(Turn {
            cum: u32::from_be_bytes(b[0..4].try_into().ok()?),
            bitmap: u64::from_be_bytes(b[4..12].try_into().ok()?),
            flags: b[12],
            fin: u32::from_be_bytes(b[13..17].try_into().ok()?),
            budget_ms: u32::from_be_bytes(b[17..21].try_into().ok()?),
            hold_ms: u32::from_be_bytes(b[21..25].try_into().ok()?),
            rssi: i16::from_be_bytes(b[25..27].try_into().ok()?),
            snr_q: b[27] as i8,
        })
    }

    /// Whether segment `seq` is acknowledged by this turn.
    pub fn acks(&self, seq: u32) -> bool {
        seq < self.cum
            || (seq > self.cum
                && seq - self.cum <= 64
                && self.bitmap >> (seq - self.cum - 1) & 1 == 1)
    }
}

/// The body of a hello (inside the Noise message): 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u8,
    /// The sender's modem MTU (its frames are at most this long).
    pub mtu: u16,
    /// The sender's remaining air time in this hour, milliseconds.
    pub budget_ms: u32,
    /// What the sender understands beyond version 1: [`CAP_FOLD`],
    /// [`CAP_KEYREF`]. Older hubs send 0.
    pub caps: u8,
}

/// Hello capability: records may be sent folded (`squeeze`, method 2).
pub const CAP_FOLD: u8 = 0x01;
/// Hello capability: items travel in `keyref`'s wire form, Autocrypt keys
/// by reference once the peer holds them.
pub const CAP_KEYREF: u8 = 0x02;

impl Hello {
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.version;
        b[1..3].copy_from_slice(&self.mtu.to_be_bytes());
        b[3..7].copy_from_slice(&self.budget_ms.to_be_bytes());
        b[7] = self.caps;
        b
    }

    pub fn decode(b: &[u8]) -> Option<Hello> {
        if b.len() != 8 {
            return None;
        }
        Some(Hello {
            version: b[0],
            mtu: u16::from_be_bytes([b[1], b[2]]),
            budget_ms: u32::from_be_bytes(b[3..7].try_into().ok()?),
            caps: b[7],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_round_trip(kind in 0u8..3, flags in 0u8..16, session in any::<u16>(),
                             counter in 0u32..=MAX_COUNTER, body in proptest::collection::vec(any::<u8>(), 0..250)) {
            let kind = [Kind::Hello, Kind::Seg, Kind::Turn][kind as usize];
            let f = Frame { kind, flags, session, counter, body };
            prop_assert_eq!(Frame::decode(&f.encode()), Some(f));
        }

        #[test]
        fn turns_round_trip(cum in any::<u32>(), bitmap in any::<u64>(), flags in any::<u8>(), fin in any::<u32>(),
                            budget_ms in any::<u32>(), hold_ms in any::<u32>(), rssi in any::<i16>(), snr_q in any::<i8>()) {
            let t = Turn { cum, bitmap, flags, fin, budget_ms, hold_ms, rssi, snr_q };
            prop_assert_eq!(Turn::decode(&t.encode()), Some(t));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Frame::decode(&bytes);
            let _ = Turn::decode(&bytes);
            let _ = Hello::decode(&bytes);
        }
    }

    #[test]
    fn foreign_frames_are_not_frames() {
        // Version 0 and kind 3 are not ours.
        assert_eq!(Frame::decode(&[0x10, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(Frame::decode(&[0x70, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(Frame::decode(&[0x50, 0, 0]), None);
    }

    #[test]
    fn selective_acks() {
        let t = Turn {
            cum: 10,
            bitmap: 0b101,
            ..Turn::default()
        };
        assert!(t.acks(0) && t.acks(9));
        assert!(!t.acks(10));
        assert!(t.acks(11) && !t.acks(12) && t.acks(13));
        assert!(!t.acks(80));
    }
}
