//! Cairn beside Postfix + Dovecot, under the same load, in one run.
//!
//! Both run on loopback from a temporary directory: cairn (the release
//! binary) on its own, and Debian's Postfix (implicit-TLS submission with
//! SASL from Dovecot, delivery by LMTP) with Dovecot (IMAP over TLS,
//! Maildir), configured here from scratch and torn down afterwards. The
//! same client code then measures each in turn:
//!
//! - time from SMTP 250 to `* n EXISTS` on the recipient's IDLE session
//!   with 100 other sessions idling on that mailbox (p50, p99);
//! - sustained delivery with 20 senders of 4 KB messages into one INBOX:
//!   messages per second until the last 250, and until the last one is
//!   visible over IMAP (Postfix answers 250 when queued, cairn when stored);
//! - memory idle and with 200 IMAP sessions in IDLE, as PSS summed over
//!   every process of the system (Dovecot and Postfix are many processes;
//!   PSS counts shared pages once).
//!
//! Needs root (Postfix and Dovecot start as root and drop privileges);
//! installs `dovecot-imapd dovecot-lmtpd` when missing and unpacks Debian's
//! `postfix` package under target/tmp (installing it would remove Exim).
//! Run: `cargo bench --bench versus` (SAMPLES, WATCHERS, SENDERS, PER_SENDER;
//! VERSUS_ONLY=cairn measures cairn alone, without root).

#[path = "../common/imap.rs"]
mod imap;
#[path = "../common/smtp.rs"]
mod smtp;

use rustls::pki_types::CertificateDer;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DOMAIN: &str = "bench.test";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn addr(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

/// Every account either system gets.
fn users(senders: usize) -> Vec<String> {
    let mut u = vec!["alice".to_string(), "bob".to_string()];
    u.extend((0..senders).map(|s| format!("s{s}")));
    u
}

fn run(c: &mut Command) {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        o.status.success(),
        "{c:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(a: SocketAddr, what: &str) {
    let t = Instant::now();
    while TcpStream::connect(a).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what} does not listen on {a}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// PSS in KiB of every process in the trees under `roots`.
fn pss_kib(roots: &[u32]) -> u64 {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may hold spaces and parentheses: fields follow the last ')'.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        parent.insert(pid, ppid);
    }
    let in_tree = |mut p: u32| loop {
        if roots.contains(&p) {
            return true;
        }
        match parent.get(&p) {
            Some(&pp) if pp != 0 && pp != p => p = pp,
            _ => return false,
        }
    };
    parent
        .keys()
        .filter(|&&p| in_tree(p))
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

struct System {
    name: &'static str,
    smtp: SocketAddr,
    imap: SocketAddr,
    cert: CertificateDer<'static>,
    /// The processes whose trees make up the system.
    roots: Vec<u32>,
    stop: Option<Box<dyn FnOnce()>>,
}

/// Stopped however the bench ends, so no daemon outlives it.
impl Drop for System {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// A child process stopped with SIGTERM when dropped, so a failing
/// bench leaves no daemon behind.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Cairn: the release binary, data in `dir`.
fn start_cairn(dir: &Path, senders: usize) -> (System, PathBuf, PathBuf) {
    let bin = env!("CARGO_BIN_EXE_cairn");
    std::fs::create_dir_all(dir).unwrap();
    let cmd = || {
        let mut c = Command::new(bin);
        c.current_dir(dir)
            .env_clear()
            .env("CAIRN_HUB_DOMAINS", DOMAIN)
            .env("CAIRN_LOG", "warn")
            .env("CAIRN_LIMITS_SEND_BURST", "100000")
            .env("CAIRN_LIMITS_SEND_PER_MINUTE", "100000")
            // 200 sessions from one address, as for Postfix and Dovecot.
            .env("CAIRN_LIMITS_MAX_CONNECTIONS_PER_ADDRESS", "1000")
            .env("CAIRN_LISTEN_SMTP_SUBMISSION_TLS", "127.0.0.1:0")
            .env("CAIRN_LISTEN_SMTP_SUBMISSION", "")
            .env("CAIRN_LISTEN_SMTP_MX", "")
            .env("CAIRN_LISTEN_IMAP_TLS", "127.0.0.1:0")
            .env("CAIRN_LISTEN_IMAP", "")
            .env("CAIRN_LISTEN_HTTP", "127.0.0.1:0")
            .env("CAIRN_LISTEN_HTTPS", "")
            .env("CAIRN_LISTEN_LINK", "");
        c
    };
    for u in users(senders) {
        run(cmd().args(["account", "add", &addr(&u), "--password", smtp::PASSWORD]));
    }
    let mut child = cmd().arg("serve").stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut s, mut i) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("smtp submission (TLS): ") {
            s = a.parse().ok();
        }
        if let Some(a) = line.strip_prefix("imap (TLS): ") {
            i = a.parse().ok();
        }
        if line.starts_with("ready") {
            break;
        }
    }
    // Keep reading so the hub never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let tls = dir.join("cairn-data/tls");
    let (cert_pem, key_pem) = (tls.join("cert.pem"), tls.join("key.pem"));
    let pid = child.id();
    let system = System {
        name: "cairn",
        smtp: s.unwrap(),
        imap: i.unwrap(),
        cert: load_cert(&cert_pem),
        roots: vec![pid],
        stop: Some(Box::new(move || {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let _ = child.wait();
        })),
    };
    (system, cert_pem, key_pem)
}

fn load_cert(pem: &Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(pem).unwrap()
}

fn ensure_dovecot() {
    let missing: Vec<&str> = [
        ("/usr/sbin/dovecot", "dovecot-imapd"),
        ("/usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
    ]
    .into_iter()
    .filter(|(p, _)| !Path::new(p).exists())
    .map(|(_, pkg)| pkg)
    .collect();
    if missing.is_empty() {
        return;
    }
    run(Command::new("apt-get").args(["update", "-qq"]));
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(&missing));
}

/// Debian's Postfix unpacked under target/ rather than installed: Debian
/// allows one mail transport agent, and installing Postfix would remove
/// the Exim that tests/classic.rs uses. Returns the unpacked root.
fn postfix_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("versus-postfix");
    let root = dir.join("root");
    if !root.join("usr/sbin/postfix").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let got = Command::new("apt-get")
            .current_dir(&dir)
            .args(["download", "postfix"])
            .status()
            .unwrap();
        if !got.success() {
            run(Command::new("apt-get").args(["update", "-qq"]));
            run(Command::new("apt-get")
                .current_dir(&dir)
                .args(["download", "postfix"]));
        }
        let deb = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .expect("apt-get download postfix left a .deb");
        run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
    }
    // Its users, as the package would make them.
    if Command::new("getent")
        .args(["group", "postdrop"])
        .output()
        .unwrap()
        .stdout
        .is_empty()
    {
        run(Command::new("groupadd").args(["--system", "postdrop"]));
    }
    if Command::new("id")
        .arg("postfix")
        .output()
        .unwrap()
        .stdout
        .is_empty()
    {
        run(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            "postfix",
        ]));
    }
    root
}

/// Postfix + Dovecot in `dir`, with the same certificate as cairn.
fn start_postfix_dovecot(dir: &Path, cert: &Path, key: &Path, senders: usize) -> System {
    ensure_dovecot();
    let pf = postfix_root();
    let r = pf.display();
    let (smtp_port, imap_port) = (free_port(), free_port());
    let d = dir.display();
    for sub in ["dovecot", "mail", "postfix", "spool", "postfix-data"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    // Dovecot's and Postfix's unprivileged users must reach the sockets.
    run(Command::new("chmod")
        .args(["755"])
        .arg(dir.parent().unwrap())
        .arg(dir)
        .arg(dir.join("dovecot")));
    run(Command::new("chown")
        .args(["nobody:nogroup"])
        .arg(dir.join("mail")));
    run(Command::new("chown")
        .arg("postfix")
        .arg(dir.join("postfix-data")));
    std::fs::copy(cert, dir.join("cert.pem")).unwrap();
    std::fs::copy(key, dir.join("key.pem")).unwrap();

    // Same password hashing as cairn: Argon2id.
    let o = Command::new("doveadm")
        .args(["pw", "-s", "ARGON2ID", "-p", smtp::PASSWORD])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "doveadm pw: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let hash = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let passwd: String = users(senders)
        .iter()
        .map(|u| format!("{}:{hash}\n", addr(u)))
        .collect();
    std::fs::write(dir.join("dovecot/users"), passwd).unwrap();
    let conf = format!(
        r#"# Written by cairn's versus bench.
base_dir = {d}/dovecot/run
state_dir = {d}/dovecot/state
log_path = {d}/dovecot/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = required
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
auth_mechanisms = plain login
disable_plaintext_auth = yes
# 200 sessions from one address, for one user: raise the stock limits.
default_process_limit = 1000
default_client_limit = 4000
mail_location = maildir:{d}/mail/%d/%n/Maildir
passdb {{
  driver = passwd-file
  args = {d}/dovecot/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%d/%n
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {imap_port}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener {d}/dovecot/lmtp {{
    mode = 0666
  }}
}}
service auth {{
  unix_listener {d}/dovecot/auth-postfix {{
    mode = 0666
  }}
}}
"#
    );
    std::fs::write(dir.join("dovecot/dovecot.conf"), conf).unwrap();
    let dovecot = Daemon(
        Command::new("dovecot")
            .args(["-F", "-c"])
            .arg(dir.join("dovecot/dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let imap: SocketAddr = format!("127.0.0.1:{imap_port}").parse().unwrap();
    wait_listening(imap, "Dovecot");

    let main_cf = format!(
        r#"# Written by cairn's versus bench.
compatibility_level = 3.6
queue_directory = {d}/spool
data_directory = {d}/postfix-data
daemon_directory = {r}/usr/lib/postfix/sbin
command_directory = {r}/usr/sbin
shlib_directory = {r}/usr/lib/postfix
meta_directory = {r}/etc/postfix
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
maillog_file_prefixes = {d}
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.local
mydestination =
inet_protocols = ipv4
inet_interfaces = 127.0.0.1
maillog_file = {d}/postfix.log
virtual_mailbox_domains = {DOMAIN}
virtual_transport = lmtp:unix:{d}/dovecot/lmtp
smtpd_sasl_type = dovecot
smtpd_sasl_path = {d}/dovecot/auth-postfix
smtpd_tls_security_level = may
smtpd_tls_cert_file = {d}/cert.pem
smtpd_tls_key_file = {d}/key.pem
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtputf8_enable = no
biff = no
"#
    );
    let master_cf = format!(
        "127.0.0.1:{smtp_port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes
pickup    unix  n - n 60   1 pickup
tlsmgr    unix  - - n 1000? 1 tlsmgr
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
lmtp      unix  - - n -    - lmtp
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"
    );
    std::fs::write(dir.join("postfix/main.cf"), main_cf).unwrap();
    std::fs::write(dir.join("postfix/master.cf"), master_cf).unwrap();
    let postfix = move |verb: &str| {
        let mut c = Command::new(pf.join("usr/sbin/postfix"));
        c.env("LD_LIBRARY_PATH", pf.join("usr/lib/postfix"))
            .arg("-c")
            .arg(dir.join("postfix"))
            .arg(verb)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    for verb in ["check", "start"] {
        let ok = postfix(verb).status().unwrap().success();
        let log = std::fs::read_to_string(dir.join("postfix.log")).unwrap_or_default();
        assert!(ok, "postfix {verb} failed; its log says:\n{log}");
    }
    let smtp: SocketAddr = format!("127.0.0.1:{smtp_port}").parse().unwrap();
    wait_listening(smtp, "Postfix");
    let master: u32 = std::fs::read_to_string(dir.join("spool/pid/master.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut stop_postfix = postfix("stop");
    System {
        name: "postfix+dovecot",
        smtp,
        imap,
        cert: load_cert(cert),
        roots: vec![dovecot.0.id(), master],
        stop: Some(Box::new(move || {
            let _ = stop_postfix.status();
            drop(dovecot);
        })),
    }
}

/// A ~4 KB message that passes cairn's encryption rule, with an id.
fn message(from: &str, id: &str) -> String {
    smtp::encrypted_padded(from, &format!("Message-ID: <{id}@{DOMAIN}>\r\n"), 4096)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(Default, Debug)]
struct Numbers {
    p50_ms: f64,
    p99_ms: f64,
    e2e_p50_ms: f64,
    e2e_p99_ms: f64,
    accepted_per_s: f64,
    delivered_per_s: f64,
    idle_mb: f64,
    sessions_mb: f64,
}

async fn inbox_count(s: &System) -> u64 {
    let (mut c, _) = imap::Imap::tls_with(s.imap, s.cert.clone()).await;
    assert!(c.login(&addr("bob"), smtp::PASSWORD).await.ok());
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(r.ok(), "{}", r.all());
    let line = r.untagged.iter().find(|l| l.contains("MESSAGES")).unwrap();
    let n = line.rsplit("MESSAGES ").next().unwrap();
    n.trim_end_matches(')').parse().unwrap()
}

async fn measure(
    s: &System,
    samples: usize,
    watchers: usize,
    senders: usize,
    per: usize,
) -> Numbers {
    let mut n = Numbers::default();
    tokio::time::sleep(Duration::from_secs(1)).await;
    n.idle_mb = pss_kib(&s.roots) as f64 / 1024.0;

    // Latency: 250 to EXISTS with `watchers` other sessions idling.
    let mut idlers = Vec::new();
    let idle_session = || async {
        let (mut c, _) = imap::Imap::tls_with(s.imap, s.cert.clone()).await;
        let r = c.login(&addr("bob"), smtp::PASSWORD).await;
        assert!(r.ok(), "{}: {}", s.name, r.all());
        assert!(c.cmd("SELECT INBOX").await.ok());
        let tag = c.idle().await;
        (c, tag)
    };
    for _ in 0..watchers {
        idlers.push(idle_session().await);
    }
    let (mut probe, _) = imap::Imap::tls_with(s.imap, s.cert.clone()).await;
    assert!(probe.login(&addr("bob"), smtp::PASSWORD).await.ok());
    assert!(probe.cmd("SELECT INBOX").await.ok());
    let mut tag = probe.idle().await;
    let (mut sender, _) = smtp::Client::tls_with(s.smtp, s.cert.clone()).await;
    sender.cmd("EHLO bench").await;
    let r = sender.login(&addr("alice"), smtp::PASSWORD).await;
    assert!(r.starts_with("235"), "{}: {r}", s.name);
    let mut lat = Vec::with_capacity(samples);
    let mut e2e = Vec::with_capacity(samples);
    for k in 1..=samples {
        let m = message(&addr("alice"), &format!("lat{k}"));
        let t0 = Instant::now();
        let r = sender.mail(&addr("alice"), &[&addr("bob")], &m).await;
        let t250 = Instant::now();
        assert!(r.starts_with("250"), "{}: {r}", s.name);
        probe
            .wait_for(&format!("* {k} EXISTS"), "EXISTS on the probe")
            .await;
        lat.push(t250.elapsed().as_secs_f64() * 1000.0);
        e2e.push(t0.elapsed().as_secs_f64() * 1000.0);
        if k % 50 == 0 {
            assert!(probe.done(&tag).await.ok());
            tag = probe.idle().await;
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    n.p50_ms = percentile(&lat, 0.5);
    n.p99_ms = percentile(&lat, 0.99);
    e2e.sort_by(|a, b| a.partial_cmp(b).unwrap());
    n.e2e_p50_ms = percentile(&e2e, 0.5);
    n.e2e_p99_ms = percentile(&e2e, 0.99);
    assert!(probe.done(&tag).await.ok());
    drop(sender);

    // Throughput: `senders` connections, logged in first.
    let before = inbox_count(s).await;
    let mut clients = Vec::new();
    for j in 0..senders {
        let (mut c, _) = smtp::Client::tls_with(s.smtp, s.cert.clone()).await;
        c.cmd("EHLO bench").await;
        let from = addr(&format!("s{j}"));
        let r = c.login(&from, smtp::PASSWORD).await;
        assert!(r.starts_with("235"), "{}: {r}", s.name);
        clients.push((c, from, j));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (mut c, from, j) in clients {
        tasks.push(tokio::spawn(async move {
            for k in 0..per {
                let m = message(&from, &format!("t{j}.{k}"));
                let r = c.mail(&from, &[&addr("bob")], &m).await;
                assert!(r.starts_with("250"), "{r}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let accepted = start.elapsed();
    let total = (senders * per) as u64;
    loop {
        let now = inbox_count(s).await;
        if now >= before + total {
            assert_eq!(now, before + total, "{}: more messages than sent", s.name);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{}: only {} of {total} delivered after 10 minutes",
            s.name,
            now - before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = start.elapsed();
    n.accepted_per_s = total as f64 / accepted.as_secs_f64();
    n.delivered_per_s = total as f64 / delivered.as_secs_f64();

    // Memory with 200 sessions in IDLE (the watchers plus more).
    while idlers.len() < 200 {
        idlers.push(idle_session().await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    n.sessions_mb = pss_kib(&s.roots) as f64 / 1024.0;
    drop(idlers);
    n
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let samples = env_or("SAMPLES", 200);
    let watchers = env_or("WATCHERS", 100);
    let senders = env_or("SENDERS", 20);
    let per = env_or("PER_SENDER", 100);
    let tmp = tempfile::tempdir().unwrap();
    // VERSUS_KEEP: logs and configuration stay for a look afterwards.
    let (_cleanup, root) = if std::env::var_os("VERSUS_KEEP").is_some() {
        let root = tmp.keep();
        println!("versus: keeping {}", root.display());
        (None, root)
    } else {
        let root = tmp.path().to_path_buf();
        (Some(tmp), root)
    };

    let (cairn, cert, key) = start_cairn(&root.join("cairn"), senders);
    let ours = measure(&cairn, samples, watchers, senders, per).await;
    drop(cairn);
    if std::env::var("VERSUS_ONLY").as_deref() == Ok("cairn") {
        println!("cairn alone: {ours:?}");
        return;
    }
    assert!(
        Command::new("id").arg("-u").output().unwrap().stdout == b"0\n",
        "the versus bench starts Postfix and Dovecot, which needs root: run it as root \
         (or VERSUS_ONLY=cairn for cairn alone)"
    );
    let classic = start_postfix_dovecot(&root.join("pfdc"), &cert, &key, senders);
    let theirs = measure(&classic, samples, watchers, senders, per).await;
    drop(classic);

    println!(
        "versus: {samples} latency samples with {watchers} idling watchers; \
         {senders} senders x {per} messages of 4 KB; same machine, one run"
    );
    println!(
        "{:<44} {:>12} {:>16} {:>8}",
        "", "cairn", "postfix+dovecot", "ratio"
    );
    let row = |what: &str, a: f64, b: f64| {
        println!("{what:<44} {a:>12.2} {b:>16.2} {:>8.2}", b / a);
    };
    row("250 -> IDLE EXISTS p50 (ms)", ours.p50_ms, theirs.p50_ms);
    row("250 -> IDLE EXISTS p99 (ms)", ours.p99_ms, theirs.p99_ms);
    row(
        "MAIL FROM -> IDLE EXISTS p50 (ms)",
        ours.e2e_p50_ms,
        theirs.e2e_p50_ms,
    );
    row(
        "MAIL FROM -> IDLE EXISTS p99 (ms)",
        ours.e2e_p99_ms,
        theirs.e2e_p99_ms,
    );
    row(
        "accepted (messages/s, to last 250)",
        ours.accepted_per_s,
        theirs.accepted_per_s,
    );
    row(
        "delivered (messages/s, visible in IMAP)",
        ours.delivered_per_s,
        theirs.delivered_per_s,
    );
    row(
        "memory idle (MB PSS, all processes)",
        ours.idle_mb,
        theirs.idle_mb,
    );
    row(
        "memory, 200 IMAP sessions in IDLE (MB PSS)",
        ours.sessions_mb,
        theirs.sessions_mb,
    );
    println!("ratio = postfix+dovecot / cairn");
}
