//! Compression of records for the air.
//!
//! Delta Chat's mail is OpenPGP ciphertext in ASCII armour: the ciphertext
//! itself does not compress, but its base64 carries 6 bits in every 8, and
//! the outer headers and MIME boilerplate repeat from message to message.
//! Each record is compressed on its own with zstd and a small built-in
//! dictionary of that boilerplate (a raw-content dictionary: zstd uses the
//! bytes as prior context), and sent compressed only when that is
//! smaller. Per record, so a resumed transfer needs nothing from before.
//! Sans-I/O.

/// First byte of a record on the air: how the rest is written.
const RAW: u8 = 0;
/// zstd with [`DICTIONARY`] version 1.
const ZSTD_DICT_1: u8 = 1;
/// zstd's strongest levels cost milliseconds on records of a few KiB,
/// nothing next to their air time.
const LEVEL: i32 = 19;

/// Outer headers and MIME structure as Delta Chat writes them, with the
/// armour lines around its ciphertext. Changing it needs a new method
/// byte, since both sides must have the same bytes.
pub const DICTIONARY: &[u8] = b"From: <@>\r\nDate: Mon, Tue, Wed, Thu, Fri, Sat, Sun, Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec 2026 +0000\r\n\
Message-ID: <@localhost>\r\nMIME-Version: 1.0\r\nTo: \"hidden-recipients\": ;\r\nSubject: [...]\r\n\
Chat-Version: 1.0\r\nAutocrypt-Setup-Message: v1\r\nChat-Is-Post-Message: 1\r\nIn-Reply-To: References: \r\n\
Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"\"\r\n\r\n\r\n\
--\r\nContent-Type: application/pgp-encrypted; charset=\"utf-8\"\r\nContent-Description: PGP/MIME version identification\r\n\
Content-Transfer-Encoding: 7bit\r\n\r\nVersion: 1\r\n\r\n\
--\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"; charset=\"utf-8\"\r\n\
Content-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\";\r\n\
Content-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n\
-----END PGP MESSAGE-----\r\n\r\n----\r\n\r\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqueezeError {
    #[error("an empty record")]
    Empty,
    #[error("a record written with method {0}, which this version does not know")]
    Method(u8),
    #[error("a compressed record does not decompress within {0} bytes")]
    Corrupt(usize),
}

/// The record as sent: a method byte and the (maybe compressed) bytes.
pub fn pack(record: &[u8]) -> Vec<u8> {
    let squeezed = zstd::bulk::Compressor::with_dictionary(LEVEL, DICTIONARY)
        .and_then(|mut c| c.compress(record))
        .ok();
    match squeezed {
        Some(z) if z.len() < record.len() => {
            let mut out = Vec::with_capacity(1 + z.len());
            out.push(ZSTD_DICT_1);
            out.extend(z);
            out
        }
        _ => {
            let mut out = Vec::with_capacity(1 + record.len());
            out.push(RAW);
            out.extend_from_slice(record);
            out
        }
    }
}

/// The record back, at most `max` bytes long (a peer cannot make us
/// inflate more).
pub fn unpack(packed: &[u8], max: usize) -> Result<Vec<u8>, SqueezeError> {
    let (&method, body) = packed.split_first().ok_or(SqueezeError::Empty)?;
    match method {
        RAW if body.len() <= max => Ok(body.to_vec()),
        RAW => Err(SqueezeError::Corrupt(max)),
        ZSTD_DICT_1 => zstd::bulk::Decompressor::with_dictionary(DICTIONARY)
            .and_then(|mut d| d.decompress(body, max))
            .map_err(|_| SqueezeError::Corrupt(max)),
        m => Err(SqueezeError::Method(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn armoured_mail_shrinks_and_comes_back() {
        // A Delta Chat-like message: headers and 2 KiB of armoured base64.
        let mut mail = b"From: <alice@camp-a.example>\r\nDate: Thu, 26 Nov 2026 06:29:52 +0000\r\nMessage-ID: <053b748c@localhost>\r\nMIME-Version: 1.0\r\nTo: \"hidden-recipients\": ;\r\nSubject: [...]\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"18ebae4b\"\r\n\r\n\r\n--18ebae4b\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n".to_vec();
        let mut x: u64 = 7;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for line in 0..32 {
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                mail.push(alphabet[(x % 64) as usize]);
            }
            mail.extend(b"\r\n");
            let _ = line;
        }
        mail.extend(b"-----END PGP MESSAGE-----\r\n\r\n--18ebae4b--\r\n");
        let packed = pack(&mail);
        assert_eq!(packed[0], ZSTD_DICT_1);
        assert!(
            packed.len() * 100 < mail.len() * 80,
            "{} of {}",
            packed.len(),
            mail.len()
        );
        assert_eq!(unpack(&packed, 1 << 20).unwrap(), mail);
    }

    #[test]
    fn bad_records_are_refused() {
        assert_eq!(unpack(&[], 10), Err(SqueezeError::Empty));
        assert_eq!(unpack(&[9, 1, 2], 10), Err(SqueezeError::Method(9)));
        assert_eq!(
            unpack(&[ZSTD_DICT_1, 1, 2, 3], 10),
            Err(SqueezeError::Corrupt(10))
        );
        // A bomb: a megabyte of zeros may not inflate past the bound.
        let bomb = pack(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 1000);
        assert_eq!(unpack(&bomb, 1000), Err(SqueezeError::Corrupt(1000)));
        assert_eq!(unpack(&[RAW, 1, 2, 3], 2), Err(SqueezeError::Corrupt(2)));
    }

    proptest! {
        #[test]
        fn any_record_round_trips(record in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let packed = pack(&record);
            prop_assert!(packed.len() <= record.len() + 1);
            prop_assert_eq!(unpack(&packed, 5000).unwrap(), record);
        }
    }
}
