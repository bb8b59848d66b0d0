//! What DKIM signing costs the gateway per message: both signatures (RSA
//! 2048 and Ed25519, relaxed/relaxed) over messages of 4 KiB (a chat
//! message), 100 KiB (a photo) and 10 MiB (a large attachment), and the
//! one-time making of a domain's keys. Prints the median of each.
//!
//! Run: `cargo bench --bench dkim_sign` (ROUNDS env to change; default 200).

use cairn::mail::dkim::Keys;
use std::time::{Duration, Instant};

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: <alice@camp-a.example>\r\nTo: <carol@internet.example>\r\n\
Subject: [...]\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <bench@camp-a.example>\r\n\
Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n"
        .to_vec();
    let line = b"wcBMA0BDw7jV4m8eAQgAhJnS0eJ0b2tsa3UyZHNmZ2hqa2xxd2VydHl1aW9wYXNkZmdoamts\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let mut making = Vec::new();
    for n in 0..5 {
        let t = Instant::now();
        Keys::new(dir.path())
            .domain(&format!("d{n}.example"))
            .unwrap();
        making.push(t.elapsed());
    }
    println!("making a domain's two keys: median {:.1?}", median(making));
    let keys = Keys::new(dir.path()).domain("camp-a.example").unwrap();
    for (label, size, n) in [
        ("4 KiB", 4 << 10, rounds),
        ("100 KiB", 100 << 10, rounds),
        ("10 MiB", 10 << 20, (rounds / 20).max(3)),
    ] {
        let m = message(size);
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let sig = keys.sign(&m).unwrap();
            times.push(t.elapsed());
            assert!(sig.starts_with(b"DKIM-Signature:"));
        }
        let med = median(times);
        println!(
            "signing a {label} message (RSA + Ed25519): median {med:.2?} ({:.0} messages/s on one core)",
            1.0 / med.as_secs_f64()
        );
    }
}
