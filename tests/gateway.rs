//! The gateway role on loopback: camp hub A reaches the Internet only
//! through gateway G; hub I stands in for an Internet mail server. DNS is
//! a small server of the test's own (MX and A records, NXDOMAIN, SERVFAIL).

mod common;
use common::dns::{self, Entry};
use common::relay::*;
use common::smtp::inbox;
use std::net::{Ipv4Addr, SocketAddr};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Camp {
    a: Node,
    g: Node,
    i: Node,
}

/// A (camp-a.example) → G (gw.example, the gateway) → I (internet.example).
async fn campsite() -> Camp {
    let zone = vec![
        ("internet.example", Entry::Mx("mx.internet.example")),
        ("mx.internet.example", Entry::A(LOCAL)),
        ("camp-a.example", Entry::Mx("mx.gw.example")),
        ("mx.gw.example", Entry::A(LOCAL)),
        ("broken.example", Entry::Broken),
        ("hostonly.example", Entry::A(LOCAL)),
    ];
    let dns = dns::serve(zone).await;
    let (g_mx, i_mx) = (free_port(), free_port());
    let gateway = move |c: &mut cairn::config::Config, own: u16, theirs: u16| {
        c.listen.smtp_mx = vec![SocketAddr::from((LOCAL, own))];
        c.gateway.dns = vec![dns];
        c.gateway.mx_port = theirs;
    };
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let g = node_for("gw", "gw.example", |c| gateway(c, g_mx, i_mx)).await;
    let i = node_for("internet", "internet.example", |c| gateway(c, i_mx, g_mx)).await;

    // A ↔ G over a live link that A dials when someone presses Sync now.
    let g_card = g.hub.relay.card(vec![link_addr(&g).to_string()]);
    a.hub.relay.add_peer(&g_card, None).await.unwrap();
    a.hub.relay.add_route("*", "gw").await.unwrap();
    a.hub.syncer.add("gw", "link", "", "manual").await.unwrap();
    g.add(&a).await;
    // G and I reach the Internet by MX.
    for n in [&g, &i] {
        n.hub.relay.add_internet_peer("internet").await.unwrap();
        n.hub
            .syncer
            .add("internet", "smtp", "", "manual")
            .await
            .unwrap();
    }
    Camp { a, g, i }
}

async fn sync_now(n: &Node, peer: Option<&str>) {
    let round = n.hub.syncer.sync_now(peer).await.unwrap();
    let mut board = n.hub.syncer.board();
    board
        .wait_for(|b| b.round == round && !b.round_running)
        .await
        .unwrap();
}

#[tokio::test]
async fn camp_mail_goes_out_through_the_gateway_and_replies_come_back() {
    let Camp { a, g, i } = campsite().await;
    send(&a, "alice@camp-a.example", "carol@internet.example", "out").await;
    routed(&a).await;

    // Nothing leaves A until the uplink runs.
    sync_now(&g, Some("internet")).await;
    assert!(inbox(&i.hub, "carol@internet.example").await.is_empty());
    assert_eq!(a.hub.store.outbox().await.unwrap()[0].state, "queued");

    // Sync now on A, then the gateway's smtp uplink: carol has it.
    sync_now(&a, None).await;
    routed(&g).await;
    sync_now(&g, Some("internet")).await;
    let got = inbox(&i.hub, "carol@internet.example").await;
    assert_eq!(got.len(), 1);
    let body = String::from_utf8(i.hub.store.blob_read(&got[0].blob_hash).await.unwrap()).unwrap();
    assert!(body.contains("Message-ID: <out@test>"), "{body}");
    assert!(g.hub.store.outbox().await.unwrap().is_empty());
    let run = &g.hub.store.sync_history(1).await.unwrap()[0];
    assert_eq!(
        (run.carrier.as_str(), run.items_out, run.error.as_deref()),
        ("smtp (MX)", 1, None)
    );

    // Carol answers: I finds camp-a.example's MX (the gateway), G queues
    // it for A, and A's next sync brings it to alice.
    send(&i, "carol@internet.example", "alice@camp-a.example", "back").await;
    routed(&i).await;
    sync_now(&i, Some("internet")).await;
    assert!(i.hub.store.outbox().await.unwrap().is_empty());
    routed(&g).await;
    let waiting = g.hub.store.outbox().await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].next_hop.as_deref(), Some("camp-a"));
    sync_now(&a, None).await;
    let got = inbox(&a.hub, "alice@camp-a.example").await;
    assert_eq!(got.len(), 1);
    let body = String::from_utf8(a.hub.store.blob_read(&got[0].blob_hash).await.unwrap()).unwrap();
    assert!(body.contains("Message-ID: <back@test>"), "{body}");

    for n in [a, g, i] {
        n.hub.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_domains_bounce_and_dns_failures_wait() {
    let Camp { a, g, i } = campsite().await;
    // A domain that does not exist: bounced to the sender at once.
    send(&g, "bob@gw.example", "x@nowhere.example", "nx").await;
    // A resolver failing: kept for later, saying why.
    send(&g, "bob@gw.example", "y@broken.example", "servfail").await;
    // No MX, only an address: the host itself takes the mail (RFC 5321
    // §5.1), here I's MX port, which does not host that domain: refused.
    send(&g, "bob@gw.example", "z@hostonly.example", "implicit").await;
    routed(&g).await;
    sync_now(&g, Some("internet")).await;

    let bob = inbox(&g.hub, "bob@gw.example").await;
    let bounces: Vec<String> = {
        let mut v = Vec::new();
        for m in &bob {
            v.push(String::from_utf8(g.hub.store.blob_read(&m.blob_hash).await.unwrap()).unwrap());
        }
        v
    };
    assert_eq!(bounces.len(), 2, "{bounces:#?}");
    let nx = bounces
        .iter()
        .find(|b| b.contains("x@nowhere.example"))
        .expect("a bounce for nowhere.example");
    assert!(
        nx.contains("Status: 5.1.2") && nx.contains("does not exist"),
        "{nx}"
    );
    let implicit = bounces
        .iter()
        .find(|b| b.contains("z@hostonly.example"))
        .expect("a bounce for hostonly.example");
    assert!(implicit.contains("Status: 5."), "{implicit}");

    let left = g.hub.store.outbox().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].rcpts.contains("broken.example"));
    assert_eq!(left[0].attempts, 1);
    let why = left[0].last_error.clone().unwrap_or_default();
    assert!(
        why.contains("broken.example") && why.contains("trying again later"),
        "{why}"
    );
    let run = &g.hub.store.sync_history(1).await.unwrap()[0];
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("1 item wait")),
        "{run:?}"
    );

    // Not due yet: the next run leaves it alone.
    sync_now(&g, Some("internet")).await;
    assert_eq!(g.hub.store.outbox().await.unwrap()[0].attempts, 1);

    for n in [a, g, i] {
        n.hub.shutdown().await;
    }
}
