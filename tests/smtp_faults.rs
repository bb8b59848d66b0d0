//! SMTP under faults, against the real binary: SIGKILL during submissions,
//! a gigantic line, failed logins in the log.

mod common;
use common::smtp::{Client, PASSWORD, encrypted};
use common::*;
use std::collections::HashMap;
use std::time::Duration;

const ALICE: &str = "alice@[127.0.0.1]";
const BOB: &str = "bob@[127.0.0.1]";

fn setup(tmp: &std::path::Path) {
    for who in [ALICE, BOB] {
        let o = run(cairn(tmp).args(["account", "add", who, "--password", PASSWORD]));
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

fn hub_command(tmp: &std::path::Path) -> std::process::Command {
    let mut c = cairn(tmp);
    port0(&mut c)
        .env("CAIRN_LIMITS_SEND_BURST", "100000")
        .env("CAIRN_LIMITS_SEND_PER_MINUTE", "100000");
    c
}

fn cert(tmp: &std::path::Path) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(data_dir(tmp).join("tls/cert.pem")).unwrap()
}

fn message(n: usize) -> String {
    encrypted(ALICE).replacen(
        "Subject: [...]",
        &format!("Message-ID: <m{n}@test>\r\nSubject: [...]"),
        1,
    )
}

/// Submit until the connection breaks; returns the numbers that got 250.
async fn submit_range(
    addr: std::net::SocketAddr,
    cert: rustls::pki_types::CertificateDer<'static>,
    from: usize,
    to: usize,
    acked: &mut Vec<usize>,
) -> usize {
    let Some((mut c, _)) = Client::try_tls_with(addr, cert).await else {
        return from;
    };
    c.cmd("EHLO x").await;
    if !c.login(ALICE, PASSWORD).await.starts_with("235") {
        return from;
    }
    let mut n = from;
    while n < to {
        let r = c.mail(ALICE, &[BOB], &message(n)).await;
        n += 1;
        if r.starts_with("250") {
            acked.push(n - 1);
        } else {
            // The server died somewhere in this transaction: not acknowledged.
            return n;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_loses_and_doubles_nothing_acknowledged() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    const TOTAL: usize = 200;
    let mut acked = Vec::new();
    let mut next = 0;
    let mut kills = 0;
    let mut seed: u64 = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    while next < TOTAL {
        let hub = serve(hub_command(tmp.path()));
        let addr = hub.smtp_tls.unwrap();
        let pid = hub.child.id();
        // Kill after a random delay: every round, so kills land all
        // through the 200 submissions (mid-DATA, mid-commit, between).
        let delay = Duration::from_millis(20 + rand(600));
        let killer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        let before = next;
        next = submit_range(addr, cert(tmp.path()), next, TOTAL, &mut acked).await;
        eprintln!(
            "round {kills}: submitted {before}..{next}, acknowledged so far {}",
            acked.len()
        );
        killer.await.unwrap();
        kills += 1;
        drop(hub);
        assert!(kills < 200, "no progress: {next} of {TOTAL} submitted");
    }
    assert!(
        kills >= 6,
        "the test must actually kill the server: {kills} kills"
    );
    assert!(
        acked.len() > TOTAL / 2,
        "most submissions should succeed: {}",
        acked.len()
    );

    // Restart once (start-up sweeps leftovers), stop cleanly, then look.
    let hub = serve(hub_command(tmp.path()));
    let (ok, _) = hub.stop("TERM");
    assert!(ok);
    let data = data_dir(tmp.path());
    assert_eq!(
        std::fs::read_dir(data.join("tmp")).unwrap().count(),
        0,
        "orphan temp files"
    );

    let store = cairn::store::Store::open(&data).await.unwrap();
    let bob = store
        .account_find(&cairn::domain::Address::parse(BOB).unwrap())
        .await
        .unwrap()
        .unwrap();
    let inbox = store.inbox(bob.id()).await.unwrap();
    let mut count: HashMap<usize, usize> = HashMap::new();
    let mut files = 0;
    for m in store.messages(inbox).await.unwrap() {
        let body = String::from_utf8(store.blob_read(&m.blob_hash).await.unwrap()).unwrap();
        let n: usize = body
            .split("Message-ID: <m")
            .nth(1)
            .and_then(|r| r.split('@').next())
            .and_then(|n| n.parse().ok())
            .expect("message number");
        *count.entry(n).or_default() += 1;
        files += 1;
    }
    for n in &acked {
        assert_eq!(
            count.get(n),
            Some(&1),
            "acknowledged message {n} must be stored exactly once"
        );
    }
    assert!(
        count.values().all(|&c| c == 1),
        "nothing is stored twice: {count:?}"
    );
    // Every blob file belongs to a row, and every row has its file.
    let blob_files: usize = std::fs::read_dir(data.join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(blob_files, files, "orphan or missing blob files");
    store.close().await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_line_does_not_grow_memory() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let hub = serve(hub_command(tmp.path()));
    let pid = hub.child.id();
    let (mut c, _) = Client::plain(hub.smtp_starttls.unwrap()).await;
    assert!(c.cmd("NOOP").await.starts_with("250"));
    let before = rss_kib(pid);
    let chunk = vec![b'z'; 1 << 20];
    for _ in 0..64 {
        c.send(&chunk).await;
    }
    assert!(c.cmd("").await.starts_with("500 5.5.2"), "line too long");
    let after = rss_kib(pid);
    assert!(
        after < before + 16 * 1024,
        "64 MiB line grew the server from {before} KiB to {after} KiB"
    );
    assert!(c.cmd("NOOP").await.starts_with("250"));
    hub.stop("TERM");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_logged_with_the_ip() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    let log = tmp.path().join("stderr.log");
    let mut c = hub_command(tmp.path());
    c.env("CAIRN_LOG", "warn")
        .stderr(std::fs::File::create(&log).unwrap());
    let hub = serve_quiet(c);
    let (mut client, _) = Client::tls_with(hub.smtp_tls.unwrap(), cert(tmp.path())).await;
    client.cmd("EHLO x").await;
    assert!(
        client
            .login(ALICE, "not the password")
            .await
            .starts_with("535")
    );
    hub.stop("TERM");
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("login failed"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("WARN") && line.contains("ip=127.0.0.1") && line.contains(ALICE),
        "{line}"
    );
    assert!(
        !text.contains("not the password"),
        "passwords never appear in logs"
    );
}
