//! Items for the relay benchmarks: Delta Chat-like messages and their ids.
#![allow(dead_code)]

pub fn hex_id(id: &str) -> [u8; 32] {
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap();
    }
    raw
}

/// A ~4 KB message like Delta Chat's: headers, then armoured ciphertext
/// (random, so it compresses as little as real OpenPGP does).
pub fn message(n: usize, seed: &mut u64) -> Vec<u8> {
    use base64::Engine;
    let mut body = vec![0u8; 2900];
    for b in body.iter_mut() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *b = *seed as u8;
    }
    let armour = base64::engine::general_purpose::STANDARD.encode(&body);
    let lines: Vec<&str> = armour
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: <x{n}@x.example>\r\nTo: \"hidden-recipients\": ;\r\nMessage-ID: <{n}@x.example>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nSubject: [...]\r\nChat-Version: 1.0\r\n\
         Autocrypt: addr=x{n}@x.example; prefer-encrypt=mutual; keydata=xjMEZ1234\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\r\n\
         -----BEGIN PGP MESSAGE-----\r\n\r\n{}\r\n-----END PGP MESSAGE-----\r\n\r\n--b--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use aws_lc_rs::digest;
    digest::digest(&digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A bundle from node X (`x_private`, `x_public`) to `to` with `n`
/// messages from x.example for bob@b.example; and their raw size.
pub fn bundle(
    n: usize,
    x_private: &[u8; 32],
    x_public: [u8; 32],
    to: [u8; 32],
) -> (Vec<u8>, usize) {
    use cairn::relay::bundle::{BundleWriter, Header, Item};
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let header = Header {
        from: x_public,
        to,
        seq: 1,
    };
    let mut w = BundleWriter::new(Vec::new(), &header, x_private).unwrap();
    let mut raw = 0usize;
    for i in 0..n {
        let m = message(i, &mut seed);
        raw += m.len();
        let from = format!("x{i}@x.example");
        let rcpts = vec!["bob@b.example".to_string()];
        let id = cairn::relay::item_id(&from, &rcpts, &sha256_hex(&m));
        w.item(&Item {
            id: hex_id(&id),
            mail_from: from,
            rcpts,
            age_ms: 0,
            lifetime_ms: 14 * 24 * 3600 * 1000,
            hops: 1,
            message: m,
        })
        .unwrap();
    }
    (w.finish().unwrap(), raw)
}
