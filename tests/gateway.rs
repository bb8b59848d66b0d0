//! The gateway role on loopback: camp hub A reaches the Internet only
//! through gateway G; hub I stands in for an Internet mail server. DNS is
//! a small server of the test's own (MX and A records, NXDOMAIN, SERVFAIL).

mod common;
use common::relay::*;
use common::smtp::inbox;
use std::net::SocketAddr;

#[tokio::test]
async fn camp_mail_goes_out_through_the_gateway_and_replies_come_back() {
    let Camp { a, g, i, .. } = campsite().await;
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
    let Camp { a, g, i, .. } = campsite().await;
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

/// What the fake smarthost saw: logins, and each accepted message's
/// envelope and body.
#[derive(Default)]
struct Seen {
    logins: Vec<String>,
    accepted: Vec<(String, Vec<String>, String)>,
}

/// A smarthost on loopback with implicit TLS (its certificate in
/// `dir/smarthost.pem`) that takes AUTH PLAIN for relay/right-password
/// only and refuses recipients whose local part is `nobody`.
async fn smarthost(
    dir: &std::path::Path,
) -> (
    SocketAddr,
    std::path::PathBuf,
    std::sync::Arc<std::sync::Mutex<Seen>>,
) {
    use base64::Engine;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let pem = dir.join("smarthost.pem");
    std::fs::write(&pem, key.cert.pem()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (rd, mut wr) = tokio::io::split(tls);
                let mut rd = BufReader::new(rd);
                let _ = wr.write_all(b"220 smarthost ready\r\n").await;
                let (mut from, mut rcpts, mut authed) = (String::new(), Vec::new(), false);
                let mut line = String::new();
                loop {
                    line.clear();
                    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_string();
                    let upper = cmd.to_ascii_uppercase();
                    let reply: String = if upper.starts_with("EHLO") {
                        "250-smarthost\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n".into()
                    } else if let Some(b64) = cmd.strip_prefix("AUTH PLAIN ") {
                        let raw = base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .unwrap_or_default();
                        let text = String::from_utf8_lossy(&raw).replace('\0', "/");
                        log.lock().unwrap().logins.push(text.clone());
                        if text == "/relay/right-password" {
                            authed = true;
                            "235 2.7.0 ok\r\n".into()
                        } else {
                            "535 5.7.8 bad credentials\r\n".into()
                        }
                    } else if upper.starts_with("MAIL FROM:") {
                        if authed {
                            from = cmd[10..].trim_matches(|c| c == '<' || c == '>').to_string();
                            rcpts.clear();
                            "250 2.1.0 ok\r\n".into()
                        } else {
                            "530 5.7.0 authentication required\r\n".into()
                        }
                    } else if upper.starts_with("RCPT TO:") {
                        let r = cmd[8..].trim_matches(|c| c == '<' || c == '>').to_string();
                        if r.starts_with("nobody@") {
                            "550 5.1.1 no such user here\r\n".into()
                        } else {
                            rcpts.push(r);
                            "250 2.1.5 ok\r\n".into()
                        }
                    } else if upper == "DATA" {
                        let _ = wr.write_all(b"354 go on\r\n").await;
                        let mut body = String::new();
                        loop {
                            line.clear();
                            if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            body.push_str(&line);
                        }
                        log.lock()
                            .unwrap()
                            .accepted
                            .push((from.clone(), rcpts.clone(), body));
                        "250 2.0.0 queued\r\n".into()
                    } else if upper == "QUIT" {
                        let _ = wr.write_all(b"221 bye\r\n").await;
                        return;
                    } else if upper == "RSET" || upper == "NOOP" {
                        "250 ok\r\n".into()
                    } else {
                        "502 5.5.2 what?\r\n".into()
                    };
                    if wr.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, pem, seen)
}

#[tokio::test]
async fn a_smarthost_with_a_login_takes_mail_and_its_refusals_bounce() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, pem, seen) = smarthost(dir.path()).await;
    let with = |password: &'static str| {
        let pem = pem.clone();
        move |c: &mut cairn::config::Config| {
            c.gateway.smarthost = addr.to_string();
            c.gateway.smarthost_tls = "tls".into();
            c.gateway.smarthost_user = "relay".into();
            c.gateway.smarthost_password = cairn::config::Secret(password.into());
            c.gateway.smarthost_ca = pem.to_str().unwrap().into();
        }
    };
    // A wrong password: nothing bounces, the mail waits, the error says what to fix.
    let g = node_for("gw", "gw.example", with("wrong")).await;
    make_gateway(&g).await;
    send(&g, "bob@gw.example", "friend@far.example", "pw").await;
    routed(&g).await;
    sync_now(&g, None).await;
    let left = g.hub.store.outbox().await.unwrap();
    assert_eq!(left.len(), 1);
    let why = left[0].last_error.clone().unwrap_or_default();
    assert!(why.contains("gateway.smarthost_password"), "{why}");
    assert!(inbox(&g.hub, "bob@gw.example").await.is_empty());
    // The password never shows in debug output (logs).
    let mut c = cairn::config::Config::defaults(cairn::config::Profile::Laptop);
    with("wrong")(&mut c);
    assert!(!format!("{c:?}").contains("wrong"));
    g.hub.shutdown().await;

    // The right one: one recipient taken, the other refused and bounced.
    let g = node_for("gw", "gw.example", with("right-password")).await;
    make_gateway(&g).await;
    common::relay::send_to(
        &g,
        "bob@gw.example",
        &["friend@far.example", "nobody@far.example"],
        "two",
    )
    .await;
    routed(&g).await;
    sync_now(&g, None).await;
    assert!(g.hub.store.outbox().await.unwrap().is_empty());
    {
        let s = seen.lock().unwrap();
        assert!(s.logins.contains(&"/relay/right-password".to_string()));
        let (from, rcpts, body) = s.accepted.last().expect("the smarthost took a message");
        assert_eq!(from, "bob@gw.example");
        assert_eq!(rcpts, &vec!["friend@far.example".to_string()]);
        assert!(body.contains("Message-ID: <two@test>"), "{body}");
    }
    let bob = inbox(&g.hub, "bob@gw.example").await;
    assert_eq!(bob.len(), 1, "a bounce for the refused recipient");
    let bounce =
        String::from_utf8(g.hub.store.blob_read(&bob[0].blob_hash).await.unwrap()).unwrap();
    assert!(
        bounce.contains("nobody@far.example") && bounce.contains("Status: 5.1.1"),
        "{bounce}"
    );
    assert!(
        !bounce.contains("Final-Recipient: rfc822; friend@far.example"),
        "{bounce}"
    );
    g.hub.shutdown().await;
}

#[tokio::test]
async fn a_full_disk_on_the_gateway_loses_nothing_and_says_so() {
    let disk = common::SmallDisk::mount("24m");
    let data = disk.path.join("gw-data");
    let a = node_for("camp-a", "camp-a.example", |c| {
        c.mail.require_encryption = false
    })
    .await;
    let g = node_for("gw", "gw.example", |c| {
        c.data_dir = data.clone();
        c.mail.require_encryption = false;
        // The disk fills to its last byte here: with the free-space
        // reserve off, the hub meets ENOSPC itself (the reserve has its
        // own test in tests/hostile.rs).
        c.limits.min_free_disk = cairn::config::ByteSize(0);
    })
    .await;
    let g_card = g.hub.relay.card(vec![link_addr(&g).to_string()]);
    a.hub.relay.add_peer(&g_card, None).await.unwrap();
    g.add(&a).await;
    send_plain(&a, "alice@camp-a.example", "bob@gw.example", "big", 4 << 20).await;
    routed(&a).await;

    // Room for the database, not for the message.
    let filler = disk.fill(1 << 20);
    let p = a.hub.relay.peer("gw").await.unwrap();
    let (tx, _rx) = tokio::sync::watch::channel(cairn::relay::link::LinkProgress::default());
    let r = cairn::relay::link::sync_peer(&a.hub.relay, &p, &tx).await;
    let e = r.expect_err("the sync fails").to_string();
    assert!(
        e.contains("gw") && e.contains("No space left on device"),
        "{e}"
    );
    // Nothing lost: A keeps it; nothing half-delivered on G.
    let out = a.hub.store.outbox().await.unwrap();
    assert_eq!(out.len(), 1);
    assert!(inbox(&g.hub, "bob@gw.example").await.is_empty());
    assert!(
        std::fs::read_dir(data.join("partial"))
            .unwrap()
            .next()
            .is_none(),
        "the partial copy that could not grow is gone"
    );

    // Space again: the next sync delivers it, once.
    std::fs::remove_file(filler).unwrap();
    let r = cairn::relay::link::sync_peer(&a.hub.relay, &p, &tx).await;
    assert_eq!(r.expect("the sync succeeds").items_out, 1);
    assert_eq!(inbox(&g.hub, "bob@gw.example").await.len(), 1);
    assert!(a.hub.store.outbox().await.unwrap().is_empty());
    a.hub.shutdown().await;
    g.hub.shutdown().await;
    drop(disk);
}

/// The gateway's published records for `domain`, as a test DNS has them.
fn dkim_records(g: &Node, domain: &str) -> Vec<(String, String)> {
    cairn::mail::dkim::Keys::new(g.data_dir().join("dkim"))
        .domain(domain)
        .unwrap()
        .records()
        .iter()
        .map(|r| (r.name.clone(), r.value.clone()))
        .collect()
}

#[tokio::test]
async fn mail_to_the_internet_is_dkim_signed_as_its_senders_domain() {
    common::dkimpy_tools();
    let Camp { a, g, i, .. } = campsite().await;
    alice_to_carol(&a, &g, "signed").await;
    let got = inbox(&i.hub, "carol@internet.example").await;
    assert_eq!(got.len(), 1);
    let message = i.hub.store.blob_read(&got[0].blob_hash).await.unwrap();

    // An independent verifier, with the keys the gateway made on first use.
    let records = dkim_records(&g, "camp-a.example");
    let (ok, out) = common::dkimpy(&message, &records);
    assert!(ok, "{out}");
    assert!(
        out.contains("d=camp-a.example s=cairn-rsa a=rsa-sha256 pass")
            && out.contains("d=camp-a.example s=cairn-ed25519 a=ed25519-sha256 pass"),
        "{out}"
    );
    // Proof the check is real: altered after signing, or another key.
    let text = String::from_utf8(message.clone()).unwrap();
    let altered = text.replacen("Message-ID: <signed@test>", "Message-ID: <other@test>", 1);
    assert_ne!(altered, text);
    let (ok, out) = common::dkimpy(altered.as_bytes(), &records);
    assert!(!ok && !out.contains("pass"), "{out}");
    let added = text.replacen("\r\nSubject:", "\r\nSubject: [urgent]\r\nSubject:", 1);
    let (ok, out) = common::dkimpy(added.as_bytes(), &records);
    assert!(
        !ok && !out.contains("pass"),
        "a second Subject is oversigned: {out}"
    );
    let (ok, out) = common::dkimpy(&message, &dkim_records(&g, "other.example"));
    assert!(!ok, "{out}");

    // Keys stay: the next message is signed with the same ones.
    alice_to_carol(&a, &g, "again").await;
    let got = inbox(&i.hub, "carol@internet.example").await;
    let second = i.hub.store.blob_read(&got[1].blob_hash).await.unwrap();
    let (ok, out) = common::dkimpy(&second, &records);
    assert!(ok, "{out}");
    for n in [a, g, i] {
        n.hub.shutdown().await;
    }
}

#[tokio::test]
async fn a_damaged_dkim_key_holds_the_mail_and_says_why() {
    let Camp { a, g, i, .. } = campsite().await;
    let dir = g.data_dir().join("dkim");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("camp-a.example.rsa2048.pem"), "garbage").unwrap();
    alice_to_carol(&a, &g, "held").await;
    assert!(inbox(&i.hub, "carol@internet.example").await.is_empty());
    let waiting = g.hub.store.outbox().await.unwrap();
    assert_eq!(waiting.len(), 1, "the mail waits: {waiting:?}");
    let run = &g.hub.store.sync_history(1).await.unwrap()[0];
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("camp-a.example.rsa2048.pem") && error.contains("--new-keys camp-a.example"),
        "{run:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("camp-a.example.rsa2048.pem")).unwrap(),
        "garbage",
        "the key is left for the admin"
    );
    // Started over as told (`cairn gateway dns --new-keys`): the damaged
    // file is kept aside, new keys are made, the mail goes.
    g.hub.relay.new_domain_keys("camp-a.example").await.unwrap();
    g.hub.relay.retry(waiting[0].id).await.unwrap();
    sync_now(&g, Some("internet")).await;
    assert_eq!(inbox(&i.hub, "carol@internet.example").await.len(), 1);
    let aside: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".old-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");

    // Keys made and used, then lost (a card restored without them): no
    // new key nobody published — the mail waits, and the error says how
    // to restore them; restored, the mail goes.
    let saved = tempfile::tempdir().unwrap();
    for k in ["camp-a.example.rsa2048.pem", "camp-a.example.ed25519.pem"] {
        std::fs::rename(dir.join(k), saved.path().join(k)).unwrap();
    }
    alice_to_carol(&a, &g, "lost-key").await;
    let waiting = g.hub.store.outbox().await.unwrap();
    assert_eq!(waiting.len(), 1, "the mail waits: {waiting:?}");
    let error = g.hub.store.sync_history(1).await.unwrap()[0]
        .error
        .clone()
        .unwrap_or_default();
    assert!(
        error.contains("DKIM key of camp-a.example is missing") && error.contains("restore"),
        "{error}"
    );
    assert!(
        !dir.join("camp-a.example.rsa2048.pem").exists(),
        "no key was made"
    );
    for k in ["camp-a.example.rsa2048.pem", "camp-a.example.ed25519.pem"] {
        std::fs::rename(saved.path().join(k), dir.join(k)).unwrap();
    }
    g.hub.relay.retry(waiting[0].id).await.unwrap();
    sync_now(&g, Some("internet")).await;
    assert_eq!(inbox(&i.hub, "carol@internet.example").await.len(), 2);
    for n in [a, g, i] {
        n.hub.shutdown().await;
    }
}

/// Alice on camp A writes carol on the Internet; A syncs with G, and G's
/// smtp uplink runs.
async fn alice_to_carol(a: &Node, g: &Node, tag: &str) {
    send(a, "alice@camp-a.example", "carol@internet.example", tag).await;
    routed(a).await;
    sync_now(a, None).await;
    routed(g).await;
    sync_now(g, Some("internet")).await;
}

/// Publish `node`'s DKIM keys for `domain` (made now if new, as
/// `cairn gateway dns` does before a gateway goes live).
fn publish_dkim(camp: &Camp, node: &Node, domain: &str) {
    for (name, value) in dkim_records(node, domain) {
        camp.dns.add(&name, common::dns::Entry::Txt(value));
    }
}

/// Hand `message` to G's MX port as an Internet server would (STARTTLS
/// first); the final reply.
async fn to_gateway_mx(g: &Node, mail_from: &str, rcpt: &str, message: &str) -> String {
    let addr = g.hub.endpoint(cairn::app::SMTP_MX).unwrap();
    let (mut c, _) = common::smtp::Client::plain(addr).await;
    c.cmd("EHLO mx.internet.example").await;
    let mut c = c.starttls(&g.hub).await;
    c.cmd("EHLO mx.internet.example").await;
    c.mail(mail_from, &[rcpt], message).await
}

#[tokio::test]
async fn internet_mail_is_checked_for_spf_dkim_and_dmarc() {
    use common::dns::Entry::{Broken, Txt};
    let camp = campsite().await;
    let (a, g, i) = (&camp.a, &camp.g, &camp.i);
    // internet.example publishes its keys, SPF and a strict DMARC policy,
    // as chatmail relays do.
    publish_dkim(&camp, i, "internet.example");
    camp.dns
        .add("internet.example", Txt("v=spf1 ip4:127.0.0.1 -all".into()));
    camp.dns.add(
        "_dmarc.internet.example",
        Txt("v=DMARC1;p=reject;adkim=s;aspf=s".into()),
    );

    // Carol's signed mail passes every check and says so.
    send(i, "carol@internet.example", "alice@camp-a.example", "real").await;
    routed(i).await;
    sync_now(i, Some("internet")).await;
    assert!(i.hub.store.outbox().await.unwrap().is_empty());
    routed(g).await;
    sync_now(a, None).await;
    let got = inbox(&a.hub, "alice@camp-a.example").await;
    assert_eq!(got.len(), 1);
    let body = String::from_utf8(a.hub.store.blob_read(&got[0].blob_hash).await.unwrap()).unwrap();
    let header = &body[..body.find("\r\n\r\n").unwrap()];
    for want in [
        "dkim=pass",
        "header.d=internet.example",
        "spf=pass",
        "dmarc=pass",
        // I (the sending server) used the STARTTLS G's MX port offers.
        "with ESMTPS",
    ] {
        assert!(header.contains(want), "{want} missing:\n{header}");
    }
    assert_eq!(
        header.matches("Authentication-Results:").count(),
        1,
        "{header}"
    );

    // A forged From of that domain (no signature, not its server) is
    // refused with the policy named; so is a signed message altered on
    // the way; nothing is stored.
    let forged = common::smtp::encrypted("carol@internet.example");
    let r = to_gateway_mx(g, "mallory@evil.example", "alice@camp-a.example", &forged).await;
    assert!(r.starts_with("550 5.7.26") && r.contains("DMARC"), "{r}");
    assert!(body.contains("\r\nSubject: [...]\r\n"), "{body}");
    let tampered = body.replacen("\r\nSubject: [...]\r\n", "\r\nSubject: [..]\r\n", 1);
    let r = to_gateway_mx(g, "bounces@evil.example", "alice@camp-a.example", &tampered).await;
    assert!(r.starts_with("550 5.7.26"), "{r}");
    // Forged results it brought were not kept (only the hub's own).
    let bringing = forged.replacen(
        "From:",
        "Authentication-Results: gw.example; dmarc=pass\r\nFrom:",
        1,
    );
    let bringing = bringing.replace("carol@internet.example", "dave@plain.example");
    let r = to_gateway_mx(g, "dave@plain.example", "alice@camp-a.example", &bringing).await;
    assert!(r.starts_with("250"), "no policy, no refusal: {r}");

    // A domain whose policy cannot be learnt now: try again later; one
    // whose records do not parse, or a garbled signature: taken, marked.
    camp.dns.add("_dmarc.flaky.example", Broken);
    let flaky = forged.replace("carol@internet.example", "eve@flaky.example");
    let r = to_gateway_mx(g, "eve@flaky.example", "alice@camp-a.example", &flaky).await;
    assert!(r.starts_with("451 4.4.3"), "{r}");
    camp.dns.add(
        "_dmarc.garbled.example",
        Txt("v=DMARC1; p=sometimes; =;".into()),
    );
    camp.dns.add(
        "garbled.example",
        Txt("v=spf1 ip4:not-an-address ~all".into()),
    );
    let garbled = forged
        .replace("carol@internet.example", "fred@garbled.example")
        .replacen(
            "From:",
            "DKIM-Signature: v=1; a=rsa-sha256; d=garbled.example; b=!!\r\nFrom:",
            1,
        );
    let r = to_gateway_mx(g, "fred@garbled.example", "alice@camp-a.example", &garbled).await;
    assert!(r.starts_with("250"), "{r}");
    sync_now(a, None).await;
    let got = inbox(&a.hub, "alice@camp-a.example").await;
    assert_eq!(got.len(), 3, "carol's, dave's and fred's");
    let texts: Vec<String> =
        futures_util::future::join_all(got.iter().map(|m| a.hub.store.blob_read(&m.blob_hash)))
            .await
            .into_iter()
            .map(|b| String::from_utf8(b.unwrap()).unwrap())
            .collect();
    let dave = texts
        .iter()
        .find(|t| t.contains("dave@plain.example"))
        .unwrap();
    assert_eq!(dave.matches("Authentication-Results:").count(), 1, "{dave}");
    assert!(!dave.contains("dmarc=pass"), "{dave}");
    let fred = texts
        .iter()
        .find(|t| t.contains("fred@garbled.example"))
        .unwrap();
    assert!(
        fred.contains("dkim=permerror") || fred.contains("dkim=neutral"),
        "{fred}"
    );
    assert!(fred.contains("dmarc=permerror"), "{fred}");
    assert!(dave.contains("dkim=none"), "{dave}");
    for n in [camp.a, camp.g, camp.i] {
        n.hub.shutdown().await;
    }
}

/// A bounce from a camp to the Internet is signed as the camp's domain
/// too (chatmail's `test_bounces_are_dkim_signed`): carol writes to a
/// camp user who does not exist; A's bounce leaves through G signed.
#[tokio::test]
async fn bounces_to_the_internet_are_signed_too() {
    common::dkimpy_tools();
    let camp = campsite().await;
    let (a, g, i) = (&camp.a, &camp.g, &camp.i);
    send(i, "carol@internet.example", "nobody@camp-a.example", "lost").await;
    routed(i).await;
    sync_now(i, Some("internet")).await;
    routed(g).await;
    sync_now(a, None).await; // G hands it to A, which bounces it
    routed(a).await;
    sync_now(a, None).await; // the bounce goes to G
    routed(g).await;
    sync_now(g, Some("internet")).await;
    let got = inbox(&i.hub, "carol@internet.example").await;
    assert_eq!(got.len(), 1, "carol got the bounce");
    let bounce = i.hub.store.blob_read(&got[0].blob_hash).await.unwrap();
    let text = String::from_utf8_lossy(&bounce);
    assert!(text.contains("MAILER-DAEMON@camp-a.example"), "{text}");
    let (ok, out) = common::dkimpy(&bounce, &dkim_records(g, "camp-a.example"));
    assert!(ok && out.contains("d=camp-a.example"), "{out}");
    for n in [camp.a, camp.g, camp.i] {
        n.hub.shutdown().await;
    }
}
