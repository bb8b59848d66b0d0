//! Bundle export and import of many messages: a third node X hands camp A
//! a bundle of N 4 KB messages for camp B (A imports and routes them), A
//! exports one bundle for B, B imports it into bob's INBOX. Prints seconds
//! for each step and bundle bytes per message against the raw size.
//!
//! Run: `cargo bench --bench bundle_throughput` (MESSAGES env to change; default 10000).

#[path = "items.rs"]
mod items;
#[path = "../common/smtp.rs"]
mod smtp;

use cairn::relay::bundle::generate_keypair;
use cairn::relay::node::Card;
use std::time::Instant;

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
    let (x_bundle, raw) = items::bundle(n, &x_private, x_public, a.relay.identity().public);
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
