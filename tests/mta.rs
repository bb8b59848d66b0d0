//! The gateway against a real Internet mail server: Debian's Exim with the
//! rules chatmail relays receive by (STARTTLS first, no mail without a
//! valid DKIM signature of its From domain), resolving keys through the
//! test's DNS. Camp mail leaving through the gateway is accepted there —
//! and dkimpy, a second verifier, agrees — while the same message
//! unsigned, altered, or sent without TLS is refused, proving the checks
//! are real. The other way, Exim's signed mail is taken by the gateway
//! with `dkim=pass`, and a forged From of a `p=reject` domain is refused.
//!
//! Needs root (see tests/common/mta.rs).

mod common;
use common::dns::{Entry, Zone};
use common::mta::Relay;
use common::relay::*;
use common::smtp::{Client, encrypted, inbox};
use std::net::{Ipv4Addr, SocketAddr};

/// The loopback address the DNS of this test answers on, port 53.
const DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 53, 1);

async fn relay_client(relay: &Relay, tls: bool) -> Client {
    let (mut c, greeting) = Client::plain(relay.addr).await;
    assert!(greeting.starts_with("220"), "{greeting}\n{}", relay.log());
    c.cmd("EHLO tester.example").await;
    if !tls {
        return c;
    }
    let mut c = c.starttls_with(relay.cert.clone()).await;
    c.cmd("EHLO tester.example").await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatmail_like_relay_takes_the_gateways_mail_and_the_gateway_checks_its() {
    common::mta::require_root();
    common::dkimpy_tools();
    let zone = Zone::new(vec![
        ("relay.example", Entry::Mx("mx.relay.example")),
        ("mx.relay.example", Entry::A(Ipv4Addr::LOCALHOST)),
        (
            "relay.example",
            Entry::Txt("v=spf1 ip4:127.0.0.1 -all".into()),
        ),
        (
            "_dmarc.relay.example",
            Entry::Txt("v=DMARC1;p=reject;adkim=s;aspf=s".into()),
        ),
        ("camp-a.example", Entry::Mx("mx.gw.example")),
        ("mx.gw.example", Entry::A(Ipv4Addr::LOCALHOST)),
        (
            "_dmarc.camp-a.example",
            Entry::Txt("v=DMARC1;p=reject;adkim=s;aspf=s".into()),
        ),
        (
            "_dmarc.strict.example",
            Entry::Txt("v=DMARC1;p=reject;adkim=s;aspf=s".into()),
        ),
    ]);
    let dns = common::dns::serve_zone(SocketAddr::from((DNS_IP, 53)), zone.clone()).await;
    let work = tempfile::tempdir().unwrap();
    let g_mx = free_port();
    let relay = Relay::start(
        &work.path().join("exim"),
        "relay.example",
        &["dora"],
        DNS_IP,
        &["camp-a.example"],
        SocketAddr::from((Ipv4Addr::LOCALHOST, g_mx)),
    )
    .await;
    let (a, g) = camp_and_gateway(dns, g_mx, relay.addr.port()).await;
    // The records a gateway publishes before it goes live, and the relay's.
    for r in cairn::mail::dkim::Keys::new(g.data_dir().join("dkim"))
        .domain("camp-a.example")
        .unwrap()
        .records()
    {
        zone.add(&r.name, Entry::Txt(r.value.clone()));
    }
    zone.add(
        &relay.dkim_record.0,
        Entry::Txt(relay.dkim_record.1.clone()),
    );

    // Camp mail out: Exim verifies the signature and stores it.
    send(&a, "alice@camp-a.example", "dora@relay.example", "out").await;
    routed(&a).await;
    sync_now(&a, None).await;
    routed(&g).await;
    sync_now(&g, Some("internet")).await;
    let got = relay.mailbox("dora");
    assert_eq!(got.len(), 1, "{}", relay.log());
    // Both signatures verified by Exim; the gateway used STARTTLS.
    let head = &got[0][..got[0].find("\n\n").unwrap()];
    for want in [
        "X-Relay-DKIM: camp-a.example pass",
        "by mx.relay.example with esmtps",
    ] {
        assert!(head.contains(want), "{want} missing:\n{head}");
    }
    assert!(
        !head.contains("X-Relay-DKIM: camp-a.example fail"),
        "{head}"
    );
    assert!(g.hub.store.outbox().await.unwrap().is_empty());
    // dkimpy agrees about the copy Exim stored.
    let records: Vec<(String, String)> = cairn::mail::dkim::Keys::new(g.data_dir().join("dkim"))
        .domain("camp-a.example")
        .unwrap()
        .records()
        .iter()
        .map(|r| (r.name.clone(), r.value.clone()))
        .collect();
    let stored = got[0].replace("\r\n", "\n").replace('\n', "\r\n");
    let (ok, out) = common::dkimpy(stored.as_bytes(), &records);
    assert!(ok, "{out}");

    // The same message unsigned, or altered, or in the clear: refused.
    let signed = &stored[stored.find("DKIM-Signature:").unwrap()..];
    let unsigned: String = {
        let (head, body) = signed.split_once("\r\n\r\n").unwrap();
        let mut keep = Vec::new();
        let mut dropping = false;
        for line in head.split("\r\n") {
            if !line.starts_with([' ', '\t']) {
                dropping = line.to_ascii_lowercase().starts_with("dkim-signature:");
            }
            if !dropping {
                keep.push(line);
            }
        }
        format!("{}\r\n\r\n{body}", keep.join("\r\n"))
    };
    let mut c = relay_client(&relay, true).await;
    let r = c
        .mail("alice@camp-a.example", &["dora@relay.example"], &unsigned)
        .await;
    assert!(
        r.starts_with("550") && r.contains("No DKIM signature"),
        "{r}"
    );
    let altered = signed.replacen("Message-ID: <out@test>", "Message-ID: <out2@test>", 1);
    let mut c = relay_client(&relay, true).await;
    let r = c
        .mail("alice@camp-a.example", &["dora@relay.example"], &altered)
        .await;
    assert!(r.starts_with("550") && r.contains("does not verify"), "{r}");
    let mut c = relay_client(&relay, false).await;
    let r = c.cmd("MAIL FROM:<alice@camp-a.example>").await;
    assert!(r.starts_with("550") && r.contains("STARTTLS"), "{r}");
    assert_eq!(relay.mailbox("dora").len(), 1);

    // Dora answers: Exim signs as relay.example and hands it to the
    // gateway over STARTTLS; the gateway records dkim=pass and A gets it.
    relay.send(
        "dora@relay.example",
        &["alice@camp-a.example"],
        &encrypted("dora@relay.example"),
    );
    assert_eq!(
        relay.mailbox("dora").len(),
        1,
        "no bounce: {:?}",
        relay.mailbox("dora")
    );
    routed(&g).await;
    sync_now(&a, None).await;
    let got = inbox(&a.hub, "alice@camp-a.example").await;
    assert_eq!(got.len(), 1);
    let body = String::from_utf8(a.hub.store.blob_read(&got[0].blob_hash).await.unwrap()).unwrap();
    for want in [
        "dkim=pass",
        "header.d=relay.example",
        "dmarc=pass",
        "with ESMTPS",
    ] {
        assert!(body.contains(want), "{want} missing:\n{body}");
    }

    // A From of a p=reject domain that Exim cannot sign for: the gateway
    // refuses it, and Exim says so (a bounce to its sender).
    let forged = encrypted("boss@strict.example");
    relay.send("dora@relay.example", &["alice@camp-a.example"], &forged);
    let mail = relay.wait_mailbox("dora", 2);
    assert_eq!(mail.len(), 2, "dora got a bounce: {}", relay.log());
    assert!(
        mail[1].contains("550 5.7.26") && mail[1].contains("DMARC"),
        "{}",
        mail[1]
    );
    sync_now(&a, None).await;
    assert_eq!(inbox(&a.hub, "alice@camp-a.example").await.len(), 1);
    for n in [a, g] {
        n.hub.shutdown().await;
    }
}
