//! SMTP against a hub on port 0: real clients (Python's smtplib, lettre),
//! exact replies to bad input, and what ends up in the store.

mod common;
// The session fuzz targets' small hub, shared so their seeds are checked.
#[path = "fuzz/fuzz_targets/hub/mod.rs"]
#[allow(dead_code)]
mod fuzz_hub;
use common::smtp::*;
use std::time::Duration;

const ALICE: &str = "alice@[127.0.0.1]";
const BOB: &str = "bob@[127.0.0.1]";
const CAROL: &str = "carol@[127.0.0.1]";

fn python(args: &[&str]) -> std::process::Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/smtp_client.py");
    std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is needed for this test: apt-get install python3 gnupg")
}

#[tokio::test(flavor = "multi_thread")]
async fn smtplib_submits_over_implicit_tls_and_starttls() {
    let (_t, hub) = hub(|_| {}).await;
    let tls = hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    let starttls = hub.endpoint(cairn::app::SMTP_SUBMISSION).unwrap();
    let to = format!("{BOB},{CAROL},dave@elsewhere.example");
    let (tp, sp) = (tls.port().to_string(), starttls.port().to_string());
    let o = tokio::task::spawn_blocking(move || {
        python(&[
            "tls",
            "127.0.0.1",
            &tp,
            ALICE,
            PASSWORD,
            ALICE,
            &to,
            "encrypted",
        ])
    })
    .await
    .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let (b, c) = (inbox(&hub, BOB).await, inbox(&hub, CAROL).await);
    assert_eq!((b.len(), c.len()), (1, 1));
    assert_eq!(b[0].blob_hash, c[0].blob_hash, "one stored copy for both");
    assert!(inbox(&hub, ALICE).await.is_empty());
    let out = hub.store.outbox().await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].recipients(), ["dave@elsewhere.example"]);
    assert_eq!(out[0].mail_from, ALICE);
    assert_eq!(out[0].state, "no-route");
    assert_eq!(out[0].blob_hash, b[0].blob_hash);
    let stored = String::from_utf8(hub.store.blob_read(&b[0].blob_hash).await.unwrap()).unwrap();
    assert!(stored.contains("-----BEGIN PGP MESSAGE-----"), "{stored}");
    assert!(
        !stored.contains("User-Agent") && !stored.contains("Received:"),
        "hygiene:\n{stored}"
    );

    let o = tokio::task::spawn_blocking(move || {
        python(&[
            "starttls",
            "127.0.0.1",
            &sp,
            ALICE,
            PASSWORD,
            ALICE,
            BOB,
            "encrypted",
        ])
    })
    .await
    .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let b = inbox(&hub, BOB).await;
    assert_eq!(b.len(), 2);
    assert!(b[1].uid > b[0].uid && b[1].modseq > b[0].modseq);

    // smtplib's plain text is refused under the encryption rule, with 523.
    let tp = tls.port().to_string();
    let o = tokio::task::spawn_blocking(move || {
        python(&[
            "tls",
            "127.0.0.1",
            &tp,
            ALICE,
            PASSWORD,
            ALICE,
            BOB,
            "plain",
        ])
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("refused 523"), "{out}");
    assert_eq!(inbox(&hub, BOB).await.len(), 2);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lettre_submits_over_implicit_tls_and_starttls() {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor, address::Envelope};
    let (_t, hub) = hub(|_| {}).await;
    let params = TlsParameters::builder("127.0.0.1".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .unwrap();
    for (name, tls) in [
        (
            cairn::app::SMTP_SUBMISSION_TLS,
            Tls::Wrapper(params.clone()),
        ),
        (cairn::app::SMTP_SUBMISSION, Tls::Required(params.clone())),
    ] {
        let port = hub.endpoint(name).unwrap().port();
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .tls(tls)
            .credentials(Credentials::new(ALICE.into(), PASSWORD.into()))
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let envelope =
            Envelope::new(Some(ALICE.parse().unwrap()), vec![BOB.parse().unwrap()]).unwrap();
        let r = mailer
            .send_raw(&envelope, encrypted(ALICE).as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.code().to_string(), "250", "{name}");
    }
    assert_eq!(inbox(&hub, BOB).await.len(), 2);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_long_held_sessions_all_get_their_greeting_and_the_cap_says_421() {
    let (_t, hub) = hub(|c| c.limits.max_connections = 20).await;
    let addr = hub.endpoint(cairn::app::SMTP_SUBMISSION).unwrap();
    let mut held = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..20 {
        pending.push(tokio::spawn(async move { Client::plain(addr).await }));
    }
    for p in pending {
        let (c, greeting) = p.await.unwrap();
        assert!(greeting.starts_with("220 "), "{greeting}");
        held.push(c);
    }
    let (_c, greeting) = Client::plain(addr).await;
    assert!(greeting.starts_with("421 4.3.2"), "{greeting}");
    // The held sessions still work.
    for c in held.iter_mut() {
        assert!(c.cmd("NOOP").await.starts_with("250"));
    }
    drop(held);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ehlo_advertises_what_delta_chat_expects() {
    let (_t, hub) = hub(|_| {}).await;
    let (mut c, greeting) = Client::plain(hub.endpoint(cairn::app::SMTP_SUBMISSION).unwrap()).await;
    assert!(greeting.starts_with("220 127.0.0.1 "), "{greeting}");
    let before = c.cmd("EHLO [127.0.0.1]").await;
    assert!(
        before.contains("STARTTLS") && !before.contains("AUTH"),
        "{before}"
    );
    let r = c.login(ALICE, PASSWORD).await;
    assert!(
        r.starts_with("538 5.7.11"),
        "AUTH without TLS must be refused with a reason: {r}"
    );
    let mut c = c.starttls(&hub).await;
    let after = c.cmd("EHLO [127.0.0.1]").await;
    for cap in [
        "PIPELINING",
        "SIZE 31457280",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "AUTH PLAIN LOGIN",
    ] {
        assert!(after.contains(cap), "{cap} missing:\n{after}");
    }
    assert!(!after.contains("STARTTLS"), "{after}");
    assert!(c.login(ALICE, PASSWORD).await.starts_with("235"));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_login_mechanism_and_pipelining() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (_t, hub) = hub(|_| {}).await;
    let (mut c, _) =
        Client::tls(hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap(), &hub).await;
    c.cmd("EHLO x").await;
    assert!(c.cmd("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
    assert!(c.cmd(&b64(ALICE)).await.starts_with("334 UGFzc3dvcmQ6"));
    assert!(c.cmd(&b64(PASSWORD)).await.starts_with("235"));
    // All commands in one write (RFC 2920), then the replies in order.
    c.send(format!("MAIL FROM:<{ALICE}> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<{BOB}>\r\nRCPT TO:<{CAROL}>\r\nDATA\r\n").as_bytes()).await;
    for want in ["250", "250", "250", "354"] {
        let r = c.reply().await;
        assert!(r.starts_with(want), "{want}: {r}");
    }
    c.send(format!("{}.\r\n", encrypted(ALICE)).as_bytes())
        .await;
    assert!(c.reply().await.starts_with("250"));
    assert_eq!(inbox(&hub, CAROL).await.len(), 1);
    hub.shutdown().await;
}

/// Logs in on the implicit-TLS port.
async fn alice(hub: &cairn::app::Hub) -> Client {
    let (mut c, _) = Client::tls(hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap(), hub).await;
    c.cmd("EHLO [127.0.0.1]").await;
    let r = c.login(ALICE, PASSWORD).await;
    assert!(r.starts_with("235"), "{r}");
    c
}

async fn nothing_stored(hub: &cairn::app::Hub) {
    for who in [ALICE, BOB, CAROL] {
        assert!(inbox(hub, who).await.is_empty(), "{who} got mail");
    }
    assert!(hub.store.outbox().await.unwrap().is_empty());
    let tmp = hub.report.data_dir.join("tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp files left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_535() {
    let (_t, hub) = hub(|_| {}).await;
    let (mut c, _) =
        Client::tls(hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap(), &hub).await;
    c.cmd("EHLO x").await;
    assert!(
        c.login(ALICE, "wrong password")
            .await
            .starts_with("535 5.7.8")
    );
    assert!(
        c.login("nobody@elsewhere.example", PASSWORD)
            .await
            .starts_with("535 5.7.8")
    );
    let r = c.cmd(&format!("MAIL FROM:<{ALICE}>")).await;
    assert!(r.starts_with("530"), "not logged in: {r}");
    nothing_stored(&hub).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_from_one_address_are_cut_off() {
    let (_t, hub) = hub(|_| {}).await;
    let addr = hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    let mut last = String::new();
    for _ in 0..(cairn::mail::transaction::LOGIN_FAILURE_BURST + 1) {
        let (mut c, _) = Client::tls(addr, &hub).await;
        c.cmd("EHLO x").await;
        last = c.login(ALICE, "guessing").await;
    }
    assert!(last.starts_with("421 4.7.0"), "{last}");
    // Even the right password waits now: guessing must not pay off.
    let (mut c, _) = Client::tls(addr, &hub).await;
    c.cmd("EHLO x").await;
    assert!(c.login(ALICE, PASSWORD).await.starts_with("421"));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sender_must_be_the_login() {
    let (_t, hub) = hub(|_| {}).await;
    let mut c = alice(&hub).await;
    let r = c.cmd(&format!("MAIL FROM:<{BOB}>")).await;
    assert!(
        r.starts_with("553 5.7.1") && r.contains("logged in as alice@[127.0.0.1]"),
        "{r}"
    );
    // The From: header too.
    let r = c.mail(ALICE, &[BOB], &encrypted(BOB)).await;
    assert!(r.starts_with("553 5.7.1") && r.contains("From:"), "{r}");
    nothing_stored(&hub).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_message_is_552_and_stores_nothing() {
    let (_t, hub) = hub(|c| c.limits.max_message_size = cairn::config::ByteSize(64 << 10)).await;
    let mut c = alice(&hub).await;
    let r = c.cmd(&format!("MAIL FROM:<{ALICE}> SIZE=100000")).await;
    assert!(r.starts_with("552 5.3.4"), "declared size: {r}");
    let big = format!("{}{}\r\n", encrypted(ALICE), "x".repeat(1000).repeat(100));
    let r = c.mail(ALICE, &[BOB], &big).await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    nothing_stored(&hub).await;
    // The session goes on.
    assert!(
        c.mail(ALICE, &[BOB], &encrypted(ALICE))
            .await
            .starts_with("250")
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn long_line_and_garbage() {
    let (_t, hub) = hub(|_| {}).await;
    let (mut c, _) = Client::plain(hub.endpoint(cairn::app::SMTP_SUBMISSION).unwrap()).await;
    c.send(&vec![b'a'; 1 << 20]).await;
    c.send(b"\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("500 5.5.2") && r.contains("too long"), "{r}");
    assert!(c.cmd("NOOP").await.starts_with("250"), "session survives");
    for _ in 0..3 {
        let r = c.cmd("\u{1}\u{2}GARBAGE \u{ff}").await;
        assert!(r.starts_with("500"), "{r}");
    }
    assert!(
        c.cmd("MAIL FROM:<x>").await.starts_with("503"),
        "no EHLO yet"
    );
    let mut r = String::new();
    for _ in 0..10 {
        r = c.cmd("XYZZY").await;
        if r.starts_with("421") {
            break;
        }
    }
    assert!(
        r.starts_with("421"),
        "too many errors ends the session: {r}"
    );
    assert_eq!(c.reply().await, "", "closed");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_vanishing_mid_data_leaves_nothing() {
    // Large enough to spill to a temp file before the client goes.
    let (_t, hub) = hub(|_| {}).await;
    let mut c = alice(&hub).await;
    assert!(
        c.cmd(&format!("MAIL FROM:<{ALICE}>"))
            .await
            .starts_with("250")
    );
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(encrypted(ALICE).as_bytes()).await;
    c.send(&vec![b'x'; 600 << 10]).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    nothing_stored(&hub).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unencrypted_mail_is_523() {
    let (_t, hub) = hub(|_| {}).await;
    let mut c = alice(&hub).await;
    let plain = format!("From: <{ALICE}>\r\nSubject: hi\r\n\r\nhello\r\n");
    let r = c.mail(ALICE, &[BOB], &plain).await;
    assert!(
        r.starts_with("523 ") && r.contains("Encryption Needed"),
        "{r}"
    );
    nothing_stored(&hub).await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encryption_rule_can_be_switched_off() {
    let (_t, hub) = hub(|c| c.mail.require_encryption = false).await;
    let mut c = alice(&hub).await;
    let plain = format!("From: <{ALICE}>\r\nSubject: hi\r\n\r\n.leading dot\r\n");
    assert!(c.mail(ALICE, &[BOB], &plain).await.starts_with("250"));
    let m = inbox(&hub, BOB).await;
    let body = String::from_utf8(hub.store.blob_read(&m[0].blob_hash).await.unwrap()).unwrap();
    assert!(
        body.ends_with("\r\n\r\n.leading dot\r\n"),
        "dot-unstuffed: {body:?}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_is_450() {
    let (_t, hub) = hub(|c| {
        c.limits.send_burst = 2;
        c.limits.send_per_minute = 1;
    })
    .await;
    let mut c = alice(&hub).await;
    for _ in 0..2 {
        assert!(
            c.mail(ALICE, &[BOB], &encrypted(ALICE))
                .await
                .starts_with("250")
        );
    }
    let r = c.cmd(&format!("MAIL FROM:<{ALICE}>")).await;
    assert!(
        r.starts_with("450 4.7.1") && r.contains("try again in"),
        "{r}"
    );
    assert_eq!(inbox(&hub, BOB).await.len(), 2);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_local_and_one_remote_in_one_transaction() {
    let (_t, hub) = hub(|_| {}).await;
    let mut changes = hub.store.changes();
    let mut c = alice(&hub).await;
    let r = c
        .mail(
            ALICE,
            &[BOB, "dave@elsewhere.example", CAROL, BOB],
            &encrypted(ALICE),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(
        inbox(&hub, BOB).await.len(),
        1,
        "duplicate RCPT delivers once"
    );
    assert_eq!(inbox(&hub, CAROL).await.len(), 1);
    assert_eq!(hub.store.outbox().await.unwrap().len(), 1);
    // Change events for IMAP IDLE: two appends and one queued item.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(
            tokio::time::timeout(Duration::from_secs(5), changes.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(
        seen.iter()
            .filter(|c| matches!(c, cairn::store::Change::Appended { .. }))
            .count(),
        2
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mx_port_takes_bounces_but_is_no_open_relay() {
    let (_t, hub) = hub(|_| {}).await;
    let (mut c, _) = Client::plain(hub.endpoint(cairn::app::SMTP_MX).unwrap()).await;
    let ehlo = c.cmd("EHLO peer.example").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    // Mail servers encrypt when offered (RFC 3207, RFC 7435); once.
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    let mut c = c.starttls(&hub).await;
    let ehlo = c.cmd("EHLO peer.example").await;
    assert!(
        !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(c.cmd("STARTTLS").await.starts_with("503"));
    assert!(c.login(ALICE, PASSWORD).await.starts_with("503"));
    let bounce = "From: Mail Delivery System <MAILER-DAEMON@peer.example>\r\nAuto-Submitted: auto-replied\r\n\
                  Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
                  --b\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n--b--\r\n";
    let r = c.mail("", &[ALICE], bounce).await;
    assert!(r.starts_with("250"), "null sender accepted: {r}");
    assert_eq!(inbox(&hub, ALICE).await.len(), 1);
    assert!(c.cmd("MAIL FROM:<x@peer.example>").await.starts_with("250"));
    let r = c.cmd("RCPT TO:<someone@elsewhere.example>").await;
    assert!(r.starts_with("550 5.7.1"), "relay denied: {r}");
    let r = c.cmd("RCPT TO:<nobody@[127.0.0.1]>").await;
    assert!(r.starts_with("550 5.1.1"), "{r}");
    assert!(c.cmd("RSET").await.starts_with("250"));
    // Encrypted mail from a peer passes; clear text does not.
    assert!(
        c.mail("x@peer.example", &[BOB], &encrypted("x@peer.example"))
            .await
            .starts_with("250")
    );
    let plain = "From: <x@peer.example>\r\n\r\nhi\r\n";
    assert!(
        c.mail("x@peer.example", &[BOB], plain)
            .await
            .starts_with("523")
    );
    assert!(hub.store.outbox().await.unwrap().is_empty());

    // A domain routed to a node behind this hub is taken and queued for
    // it; the default route opens nothing.
    let domains = ["valley.example".to_string()];
    hub.relay
        .add_classic_peer("valley", &domains, None)
        .await
        .unwrap();
    hub.relay.add_route("*", "valley").await.unwrap();
    assert!(c.cmd("MAIL FROM:<x@peer.example>").await.starts_with("250"));
    let r = c.cmd("RCPT TO:<someone@elsewhere.example>").await;
    assert!(r.starts_with("550 5.7.1"), "default route is no relay: {r}");
    assert!(c.cmd("RSET").await.starts_with("250"));
    let r = c
        .mail(
            "x@peer.example",
            &["bob@valley.example"],
            &encrypted("x@peer.example"),
        )
        .await;
    assert!(r.starts_with("250"), "routed domain: {r}");
    let out = hub.store.outbox().await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rcpts, "[\"bob@valley.example\"]");
    hub.shutdown().await;
}

/// The seed of the `smtp_session` fuzz target logs in and delivers, so
/// fuzzing starts from a whole good transaction.
#[test]
fn the_smtp_fuzz_seed_is_a_whole_good_session() {
    let seed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz/corpus/smtp_session/seed"
    ))
    .unwrap();
    assert_eq!(seed[0], 0x81, "implicit TLS submission, no encryption rule");
    let out = fuzz_hub::smtp(cairn::smtp::Mode::SubmissionTls, false, &seed[1..]);
    let out = String::from_utf8_lossy(&out);
    let codes: Vec<&str> = out
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        codes,
        [
            "220", "250", "235", "250", "250", "250", "354", "250", "250", "250", "221"
        ],
        "{out}"
    );
}
