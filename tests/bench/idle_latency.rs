//! Time from SMTP 250 to the `* n EXISTS` line on the recipient's IDLE
//! session, with 100 other sessions idling on the same mailbox; and the
//! hub's memory idle and with 200 IMAP sessions in IDLE.
//!
//! Runs the release `cairn` binary on port 0 in a temp directory.
//! Run: `cargo bench --bench idle_latency` (SAMPLES, WATCHERS env to change).

#[path = "../common/imap.rs"]
mod imap;
#[path = "../common/smtp.rs"]
mod smtp;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let samples = env_or("SAMPLES", 200);
    let watchers = env_or("WATCHERS", 100);
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cairn");
    let run = |args: &[&str]| {
        let o = Command::new(bin)
            .current_dir(tmp.path())
            .env_clear()
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&[
        "account",
        "add",
        "alice@[127.0.0.1]",
        "--password",
        smtp::PASSWORD,
    ]);
    run(&[
        "account",
        "add",
        "bob@[127.0.0.1]",
        "--password",
        smtp::PASSWORD,
    ]);
    let mut child = Command::new(bin)
        .current_dir(tmp.path())
        .env_clear()
        .env("CAIRN_LOG", "warn")
        // Pass glibc malloc tuning through, to see where memory goes.
        .envs(std::env::vars().filter(|(k, _)| k.starts_with("MALLOC_")))
        .env("CAIRN_MAIL_REQUIRE_ENCRYPTION", "true")
        .env("CAIRN_LIMITS_SEND_BURST", "100000")
        .env("CAIRN_LIMITS_SEND_PER_MINUTE", "100000")
        .env("CAIRN_LISTEN_SMTP_SUBMISSION_TLS", "127.0.0.1:0")
        .env("CAIRN_LISTEN_SMTP_SUBMISSION", "")
        .env("CAIRN_LISTEN_SMTP_MX", "")
        .env("CAIRN_LISTEN_IMAP_TLS", "127.0.0.1:0")
        .env("CAIRN_LISTEN_IMAP", "")
        .env("CAIRN_LISTEN_HTTP", "127.0.0.1:0")
        .env("CAIRN_LISTEN_HTTPS", "")
        .env("CAIRN_LISTEN_LINK", "")
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut smtp_addr, mut imap_addr): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("smtp submission (TLS): ") {
            smtp_addr = a.parse().ok();
        }
        if let Some(a) = line.strip_prefix("imap (TLS): ") {
            imap_addr = a.parse().ok();
        }
        if line.starts_with("ready") {
            break;
        }
    }
    let (smtp_addr, imap_addr) = (smtp_addr.unwrap(), imap_addr.unwrap());
    let cert = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(tmp.path().join("cairn-data/tls/cert.pem"))
            .unwrap()
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rss_idle = rss_kib(pid);

    // Watchers idling on bob's INBOX, plus the measuring session.
    let mut idlers = Vec::new();
    for _ in 0..watchers {
        let (mut c, _) = imap::Imap::tls_with(imap_addr, cert.clone()).await;
        assert!(c.login("bob@[127.0.0.1]", smtp::PASSWORD).await.ok());
        assert!(c.cmd("SELECT INBOX").await.ok());
        let tag = c.idle().await;
        idlers.push((c, tag));
    }
    let (mut probe, _) = imap::Imap::tls_with(imap_addr, cert.clone()).await;
    assert!(probe.login("bob@[127.0.0.1]", smtp::PASSWORD).await.ok());
    assert!(probe.cmd("SELECT INBOX").await.ok());
    let mut tag = probe.idle().await;

    let (mut sender, _) = smtp::Client::tls_with(smtp_addr, cert.clone()).await;
    sender.cmd("EHLO bench").await;
    assert!(
        sender
            .login("alice@[127.0.0.1]", smtp::PASSWORD)
            .await
            .starts_with("235")
    );
    let body = smtp::encrypted("alice@[127.0.0.1]");
    let mut lat = Vec::with_capacity(samples);
    for n in 1..=samples {
        let r = sender
            .mail("alice@[127.0.0.1]", &["bob@[127.0.0.1]"], &body)
            .await;
        let t250 = Instant::now();
        assert!(r.starts_with("250"), "{r}");
        probe
            .wait_for(&format!("* {n} EXISTS"), "EXISTS on the probe")
            .await;
        lat.push(t250.elapsed().as_secs_f64() * 1000.0);
        // Re-enter IDLE now and then, as clients do; watchers drain lazily.
        if n % 50 == 0 {
            assert!(probe.done(&tag).await.ok());
            tag = probe.idle().await;
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());

    // Memory with 200 sessions in IDLE.
    while idlers.len() < 200 {
        let (mut c, _) = imap::Imap::tls_with(imap_addr, cert.clone()).await;
        assert!(c.login("bob@[127.0.0.1]", smtp::PASSWORD).await.ok());
        assert!(c.cmd("SELECT INBOX").await.ok());
        let tag = c.idle().await;
        idlers.push((c, tag));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rss_200 = rss_kib(pid);
    println!(
        "idle_latency: SMTP 250 -> IDLE EXISTS over {samples} messages with {watchers} other sessions idling: \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    println!(
        "memory: idle {:.1} MB RSS; with 200 IMAP sessions in IDLE {:.1} MB RSS ({:.0} KiB per session)",
        rss_idle as f64 / 1024.0,
        rss_200 as f64 / 1024.0,
        (rss_200.saturating_sub(rss_idle)) as f64 / 200.0
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}
