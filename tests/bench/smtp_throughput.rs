//! SMTP delivery throughput: N concurrent senders submit 4 KB encrypted
//! messages over implicit TLS into ONE recipient's INBOX, fsync on (SQLite
//! synchronous=FULL, blob files fsynced). Prints messages per second and
//! checks that none is missing or doubled.
//!
//! Run: `cargo bench --bench smtp_throughput` (SENDERS, PER_SENDER env to change).

#[path = "../common/smtp.rs"]
mod smtp;

use cairn::app::Hub;
use cairn::config::{Config, Profile};
use smtp::Client;
use std::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn message(from: &str, n: usize) -> String {
    smtp::encrypted_padded(from, &format!("Message-ID: <{n}.{from}>\r\n"), 4096)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let senders = env_or("SENDERS", 20);
    let per_sender = env_or("PER_SENDER", 100);
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Config::defaults(Profile::Laptop);
    c.data_dir = tmp.path().join("data");
    let any = "127.0.0.1:0".parse().unwrap();
    c.listen.smtp_submission_tls = vec![any];
    c.listen.smtp_submission = vec![];
    c.listen.smtp_mx = vec![];
    c.listen.imap_tls = vec![];
    c.listen.imap = vec![];
    c.listen.http = vec![];
    c.listen.https = vec![];
    c.listen.link = vec![];
    c.limits.send_burst = 100_000;
    c.limits.send_per_minute = 100_000;
    let domains = c.hub.domains.clone();
    let hub = Hub::start(c).await.unwrap();
    let accounts = cairn::mail::Accounts::new(hub.store.clone(), domains);
    let pw = || Some(cairn::domain::Password::chosen(smtp::PASSWORD).unwrap());
    accounts.create("inbox@[127.0.0.1]", pw()).await.unwrap();
    for s in 0..senders {
        accounts
            .create(&format!("s{s}@[127.0.0.1]"), pw())
            .await
            .unwrap();
    }
    let addr = hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    let cert = smtp::hub_cert(&hub);

    // Connect and log in first: the measurement is delivery, not Argon2.
    let mut clients = Vec::new();
    for s in 0..senders {
        let (mut c, _) = Client::tls_with(addr, cert.clone()).await;
        c.cmd("EHLO bench").await;
        let from = format!("s{s}@[127.0.0.1]");
        assert!(c.login(&from, smtp::PASSWORD).await.starts_with("235"));
        clients.push((c, from));
    }
    let size = message("s0@[127.0.0.1]", 0).len();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (mut c, from) in clients {
        tasks.push(tokio::spawn(async move {
            let mut ok: usize = 0;
            for n in 0..per_sender {
                let r = c
                    .mail(&from, &["inbox@[127.0.0.1]"], &message(&from, n))
                    .await;
                assert!(r.starts_with("250"), "{r}");
                ok += 1;
            }
            ok
        }));
    }
    let mut acked: usize = 0;
    for t in tasks {
        acked += t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let a = cairn::domain::Address::parse("inbox@[127.0.0.1]").unwrap();
    let row = hub.store.account_find(&a).await.unwrap().unwrap();
    let mb = hub.store.inbox(row.id()).await.unwrap();
    let stored = hub.store.messages(mb).await.unwrap();
    let mut uids: Vec<i64> = stored.iter().map(|m| m.uid).collect();
    uids.dedup();
    println!(
        "smtp_throughput: {senders} senders x {per_sender} messages of {size} bytes, fsync on: \
         {acked} acknowledged in {secs:.2} s = {:.0} messages/s; stored {} (missing {}, doubled {})",
        acked as f64 / secs,
        stored.len(),
        acked.saturating_sub(stored.len()),
        stored.len().saturating_sub(acked),
    );
    assert_eq!(
        stored.len(),
        acked,
        "every acknowledged message stored exactly once"
    );
    assert_eq!(uids.len(), stored.len(), "UIDs unique");
    hub.shutdown().await;
}
