//! Unsigned LEB128 varints (seven bits a byte, lowest first, the top bit
//! saying more follow) for the radio's compact formats: `radio::squeeze`'s
//! folded records and `keyref`'s key lists. Sans-I/O.

/// Bytes a varint may take (63 bits).
const MAX_BYTES: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes end inside it.
    Truncated,
    /// Longer than [`MAX_BYTES`].
    TooLong,
}

pub fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at `*at` in `b`; `*at` moves past it.
pub fn get(b: &[u8], at: &mut usize) -> Result<u64, VarintError> {
    let mut n = 0u64;
    for i in 0..MAX_BYTES {
        let byte = *b.get(*at).ok_or(VarintError::Truncated)?;
        *at += 1;
        n |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(VarintError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_what_is_cut_or_too_long() {
        for n in [0, 1, 127, 128, 300, 1 << 35, (1 << 63) - 1] {
            let mut b = Vec::new();
            put(&mut b, n);
            let mut at = 0;
            assert_eq!(get(&b, &mut at), Ok(n));
            assert_eq!(at, b.len());
            let mut at = 0;
            assert_eq!(get(&b[..b.len() - 1], &mut at), Err(VarintError::Truncated));
        }
        let mut at = 0;
        assert_eq!(get(&[0xFF; 10], &mut at), Err(VarintError::TooLong));
    }
}
