//! Bundle export and import of many messages: a third node X hands camp A
//! a bundle of N 4 KB messages for camp B (A imports and routes them), A
//! exports one bundle for B, B imports it into bob's INBOX. Prints seconds
//! for each step and bundle bytes per message against the raw size.
//!
//! Run: `cargo bench --bench bundle_throughput` (MESSAGES env to change; default 10000).

#[path = "../common/smtp.rs"]
mod smtp;

use cairn::relay::bundle::{BundleWriter, Header, Item, generate_keypair};
use cairn::relay::node::Card;
use std::time::Instant;

fn hex_id(id: &str) -> [u8; 32] {
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap();
    }
    raw
}

/// A ~4 KB message like Delta Chat's: headers, then armoured ciphertext
/// (random, so it compresses as little as real OpenPGP does).
fn message(n: usize, seed: &mut u64) -> Vec<u8> {
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

fn sha256_hex(b: &[u8]) -> String {
    use aws_lc_rs::digest;
    digest::digest(&digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let domain = |d: &str| cairn::domain::Domain::parse(d).unwrap();
    let (_ta, a) = smtp::hub(|c| {
        c.hub.name = "camp-a".into();
        c.hub.domains = vec![domain("a.example")];
    })
    .await;
    let (_tb, b) = smtp::hub(|c| {
        c.hub.name = "camp-b".into();
        c.hub.domains = vec![domain("b.example")];
    })
    .await;
    let (x_private, x_public) = generate_keypair();
    let x_card = Card {
        name: "x".into(),
        key: x_public,
        domains: vec![domain("x.example")],
        addrs: vec![],
    };
    a.relay.add_peer(&x_card, None).await.unwrap();
    a.relay.add_peer(&b.relay.card(vec![]), None).await.unwrap();
    b.relay.add_peer(&a.relay.card(vec![]), None).await.unwrap();
    // x.example is behind A as far as B knows.
    b.relay.add_route("*", "camp-a").await.unwrap();

    // X's bundle for A.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let header = Header {
        from: x_public,
        to: a.relay.identity().public,
        seq: 1,
    };
    let mut w = BundleWriter::new(Vec::new(), &header, &x_private).unwrap();
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
    let x_bundle = w.finish().unwrap();

    let t = Instant::now();
    let r = a
        .relay
        .import(std::io::Cursor::new(x_bundle))
        .await
        .unwrap();
    let import_a = t.elapsed();
    assert_eq!(r.applied.forwarded, n, "{r}");
    a.relay.route_pending().await.unwrap();

    let t = Instant::now();
    let (bundle, exported) = a.relay.export("camp-b", Vec::new()).await.unwrap();
    a.relay.sent(&exported).await.unwrap();
    let export = t.elapsed();
    assert_eq!(exported.rows.len(), n);

    let t = Instant::now();
    let r = b
        .relay
        .import(std::io::Cursor::new(bundle.clone()))
        .await
        .unwrap();
    let import_b = t.elapsed();
    assert_eq!(r.applied.delivered, n, "{r}");
    assert_eq!(smtp::inbox(&b, "bob@b.example").await.len(), n);

    let t = Instant::now();
    let r = b
        .relay
        .import(std::io::Cursor::new(bundle.clone()))
        .await
        .unwrap();
    let again = t.elapsed();
    assert_eq!(r.applied.duplicates, n);

    println!(
        "bundle_throughput: {n} messages of {} B on average",
        raw / n
    );
    println!(
        "  import at A (routed onward):  {:>7.2} s  ({:.0} msg/s)",
        import_a.as_secs_f64(),
        n as f64 / import_a.as_secs_f64()
    );
    println!(
        "  export at A for B:            {:>7.2} s  ({:.0} msg/s)",
        export.as_secs_f64(),
        n as f64 / export.as_secs_f64()
    );
    println!(
        "  import at B (delivered):      {:>7.2} s  ({:.0} msg/s)",
        import_b.as_secs_f64(),
        n as f64 / import_b.as_secs_f64()
    );
    println!(
        "  same bundle again (no-op):    {:>7.2} s",
        again.as_secs_f64()
    );
    println!(
        "  bundle: {} B, {:.0} B per message, {:.1} % of the raw {} B",
        bundle.len(),
        bundle.len() as f64 / n as f64,
        100.0 * bundle.len() as f64 / raw as f64,
        raw
    );
    a.shutdown().await;
    b.shutdown().await;
}
