//! SMTP under faults: against the real binary, SIGKILL during submissions,
//! a gigantic line, failed logins in the log; in process, a full disk and
//! a database locked by another program.

mod common;
use common::imap::Imap;
use common::smtp::{Client, PASSWORD, encrypted, hub as smtp_hub, inbox};
use common::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    in_round: &AtomicUsize,
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
            in_round.fetch_add(1, Ordering::SeqCst);
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
    let mut rounds = 0;
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
        // Kill after a random number of acknowledged submissions (1-20)
        // and a random fraction of the next few: kills land all through
        // the 200 submissions (mid-DATA, mid-commit, between), however
        // fast or slow this machine is.
        let target = 1 + rand(20) as usize;
        let jitter = Duration::from_micros(rand(4000));
        let in_round = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let killer = {
            let (in_round, killed) = (in_round.clone(), killed.clone());
            tokio::spawn(async move {
                while in_round.load(Ordering::SeqCst) < target {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                tokio::time::sleep(jitter).await;
                killed.store(true, Ordering::SeqCst);
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            })
        };
        let before = next;
        next = submit_range(addr, cert(tmp.path()), next, TOTAL, &mut acked, &in_round).await;
        eprintln!(
            "round {rounds}: submitted {before}..{next}, acknowledged so far {}",
            acked.len()
        );
        // The last round may end before its target: stop it by hand.
        killer.abort();
        let _ = killer.await;
        if killed.load(Ordering::SeqCst) {
            kills += 1;
        }
        drop(hub);
        rounds += 1;
        assert!(rounds < 400, "no progress: {next} of {TOTAL} submitted");
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

/// A message of about `size` bytes that passes the encryption rule: an
/// OpenPGP key packet and an encrypted-data packet of `size` bytes.
fn sized(n: usize, size: usize) -> String {
    use base64::Engine;
    let mut packets = vec![0xC3, 4, 5, 5, 5, 5]; // SKESK
    packets.extend_from_slice(&[0xD2, 0xFF]); // SEIPD, 4-byte length
    packets.extend_from_slice(&(size as u32).to_be_bytes());
    packets.extend((0..size).map(|i| (i * 7 + n) as u8));
    let b64 = base64::engine::general_purpose::STANDARD.encode(packets);
    let armour: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let m = message(n);
    let begin = "-----BEGIN PGP MESSAGE-----\r\n\r\n";
    let start = m.find(begin).unwrap() + begin.len();
    let end = m.find("\r\n-----END PGP MESSAGE-----").unwrap();
    format!("{}{}{}", &m[..start], armour.join("\r\n"), &m[end..])
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A full data partition: the submission is refused with 452 4.3.1 (the
/// sender keeps it and retries), nothing half-written stays behind, other
/// users can still read their mail, and once there is room the same
/// connection delivers it, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_mail_clearly_and_service_resumes() {
    let disk = SmallDisk::mount("32m");
    let data = disk.path.join("data");
    // The disk fills to its last byte here: with the free-space reserve
    // off, the hub meets ENOSPC itself (the reserve: tests/hostile.rs).
    let (_t, hub) = smtp_hub(|c| {
        c.data_dir = data.clone();
        c.limits.min_free_disk = cairn::config::ByteSize(0);
    })
    .await;
    let (mut c, _) =
        Client::tls(hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap(), &hub).await;
    c.cmd("EHLO x").await;
    assert!(c.login(ALICE, PASSWORD).await.starts_with("235"));
    assert!(c.mail(ALICE, &[BOB], &message(0)).await.starts_with("250"));

    let filler = disk.fill(128 << 10);
    let r = c.mail(ALICE, &[BOB], &sized(1, 1 << 20)).await;
    assert!(
        r.starts_with("452 4.3.1") && r.contains("disk is full"),
        "a full disk must be a clear temporary refusal: {r}"
    );
    assert_eq!(
        inbox(&hub, BOB).await.len(),
        1,
        "nothing of the refused message"
    );
    assert!(
        files_in(&data.join("tmp")).is_empty(),
        "{:?}",
        files_in(&data.join("tmp"))
    );
    // Bob reads his mail meanwhile.
    let (mut i, _) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
    assert!(i.login(BOB, PASSWORD).await.ok());
    let r = i.cmd("SELECT INBOX").await;
    assert!(
        r.ok() && r.untagged.iter().any(|l| l == "* 1 EXISTS"),
        "{}",
        r.all()
    );
    assert!(i.cmd("FETCH 1 BODY.PEEK[]").await.ok());

    std::fs::remove_file(filler).unwrap();
    let r = c.mail(ALICE, &[BOB], &sized(1, 1 << 20)).await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(inbox(&hub, BOB).await.len(), 2);
    hub.shutdown().await;
    drop(disk);
}

/// Another program (an admin's `sqlite3`, a backup) holds the database's
/// write lock longer than the hub waits for it: the submission gets a
/// temporary 451 and leaves nothing behind, readers carry on, and after
/// the lock is gone the same connection delivers it, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_locked_database_refuses_mail_for_a_while_and_service_resumes() {
    let (tmp, hub) = smtp_hub(|_| {}).await;
    let db = tmp.path().join("data/cairn.db");
    let (mut c, _) =
        Client::tls(hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap(), &hub).await;
    c.cmd("EHLO x").await;
    assert!(c.login(ALICE, PASSWORD).await.starts_with("235"));
    assert!(c.mail(ALICE, &[BOB], &message(0)).await.starts_with("250"));

    let hold = cairn::store::BUSY_TIMEOUT + Duration::from_secs(5);
    let mut locker = std::process::Command::new("python3")
        .args(["-c", LOCKER])
        .arg(&db)
        .arg(hold.as_secs().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test: apt-get install python3");
    let mut said = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(locker.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "locked");

    let r = c.mail(ALICE, &[BOB], &message(1)).await;
    assert!(
        r.starts_with("451 4.3.0"),
        "a locked database is a temporary refusal: {r}"
    );
    assert_eq!(inbox(&hub, BOB).await.len(), 1);
    // Readers are not blocked by a writer.
    let (mut i, _) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
    assert!(i.login(BOB, PASSWORD).await.ok());
    let r = i.cmd("EXAMINE INBOX").await;
    assert!(
        r.ok() && r.untagged.iter().any(|l| l == "* 1 EXISTS"),
        "{}",
        r.all()
    );

    assert!(
        tokio::task::spawn_blocking(move || locker.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    let r = c.mail(ALICE, &[BOB], &message(1)).await;
    assert!(r.starts_with("250"), "{r}");
    let got = inbox(&hub, BOB).await;
    assert_eq!(got.len(), 2);
    assert!(files_in(&tmp.path().join("data/tmp")).is_empty());
    hub.shutdown().await;
}

/// Holds SQLite's write lock on argv[1] for argv[2] seconds.
const LOCKER: &str = r#"
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"#;
