//! A live link against a bundle, in one run: camp A holds N 4 KB messages
//! for camp B (from a bundle of node X); one pair of hubs moves them as a
//! bundle (export at A, import at B), another pair over a live TCP link on
//! loopback. Then one 20 MiB item over the link. Prints seconds, messages
//! per second, MB/s and the link/bundle ratio.
//!
//! Run: `cargo bench --bench link_throughput` (MESSAGES env to change; default 2000).

#[path = "items.rs"]
mod items;
#[path = "../common/smtp.rs"]
mod smtp;

use cairn::app::Hub;
use cairn::relay::bundle::generate_keypair;
use cairn::relay::link::{self, LinkProgress};
use cairn::relay::node::Card;
use std::time::{Duration, Instant};

/// Camp A (with X's messages for B, routed) and camp B, peers of each
/// other, B's card with its link address.
async fn pair(n: usize) -> (tempfile::TempDir, Hub, tempfile::TempDir, Hub) {
    let domain = |d: &str| cairn::domain::Domain::parse(d).unwrap();
    let (ta, a) = smtp::hub(|c| {
        c.hub.name = "camp-a".into();
        c.hub.domains = vec![domain("a.example")];
        c.limits.max_message_size = cairn::config::ByteSize(30 << 20);
    })
    .await;
    let (tb, b) = smtp::hub(|c| {
        c.hub.name = "camp-b".into();
        c.hub.domains = vec![domain("b.example")];
        c.mail.require_encryption = false;
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
    let b_link = b.endpoint(cairn::app::LINK).unwrap().to_string();
    a.relay
        .add_peer(&b.relay.card(vec![b_link]), None)
        .await
        .unwrap();
    b.relay.add_peer(&a.relay.card(vec![]), None).await.unwrap();
    b.relay.add_route("*", "camp-a").await.unwrap();
    let (bundle, _) = items::bundle(n, &x_private, x_public, a.relay.identity().public);
    let r = a.relay.import(std::io::Cursor::new(bundle)).await.unwrap();
    assert_eq!(r.applied.forwarded, n, "{r}");
    a.relay.route_pending().await.unwrap();
    (ta, a, tb, b)
}

async fn sync(a: &Hub) -> (Duration, cairn::store::SyncCounts) {
    let peer = a.relay.peer("camp-b").await.unwrap();
    let (tx, _rx) = tokio::sync::watch::channel(LinkProgress::default());
    let t = Instant::now();
    let counts = link::sync_peer(&a.relay, &peer, &tx).await.unwrap();
    (t.elapsed(), counts)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);

    let (_t1, a1, _t2, b1) = pair(n).await;
    let t = Instant::now();
    let (bundle, exported) = a1.relay.export("camp-b", Vec::new()).await.unwrap();
    a1.relay.sent(&exported).await.unwrap();
    let r = b1.relay.import(std::io::Cursor::new(bundle)).await.unwrap();
    let by_bundle = t.elapsed();
    assert_eq!(r.applied.delivered, n, "{r}");

    let (_t3, a2, _t4, b2) = pair(n).await;
    let (by_link, counts) = sync(&a2).await;
    assert_eq!(counts.items_out, n as u64);
    assert_eq!(smtp::inbox(&b2, "bob@b.example").await.len(), n);
    let (again, counts) = sync(&a2).await;
    assert_eq!(counts.items_out + counts.items_in, 0);

    // One large item.
    let big = 20usize << 20;
    let body = format!(
        "From: <alice@a.example>\r\nTo: <bob@b.example>\r\nSubject: big\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n".repeat(big / 64)
    );
    let mut spool = a2.store.spool();
    spool.write(body.as_bytes()).unwrap();
    let blob = spool.commit().await.unwrap();
    a2.store
        .deliver(cairn::store::Delivery {
            blob: &blob,
            local: &[],
            outbound: Some(&cairn::store::OutboundEnvelope {
                mail_from: "alice@a.example".into(),
                rcpts: vec!["bob@b.example".into()],
            }),
        })
        .await
        .unwrap();
    a2.relay.route_pending().await.unwrap();
    let (large, counts) = sync(&a2).await;
    assert_eq!(counts.items_out, 1);

    println!("link_throughput: {n} messages of ~4 KB from A to B");
    println!(
        "  bundle (export at A, import at B): {:>7.2} s  ({:.0} msg/s)",
        by_bundle.as_secs_f64(),
        n as f64 / by_bundle.as_secs_f64()
    );
    println!(
        "  live link on loopback:             {:>7.2} s  ({:.0} msg/s), link/bundle = {:.2}",
        by_link.as_secs_f64(),
        n as f64 / by_link.as_secs_f64(),
        by_link.as_secs_f64() / by_bundle.as_secs_f64()
    );
    println!(
        "  link again, nothing to move:       {:>7.3} s",
        again.as_secs_f64()
    );
    println!(
        "  one {} MiB item over the link:     {:>7.2} s  ({:.1} MB/s)",
        big >> 20,
        large.as_secs_f64(),
        body.len() as f64 / 1e6 / large.as_secs_f64()
    );
    for h in [a1, b1, a2, b2] {
        h.shutdown().await;
    }
}
