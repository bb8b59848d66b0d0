//! Helpers for tests that run the real `cairn` binary in a temp directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest a hub may take to print "ready" (a debug build on a busy 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A `cairn` command with a clean environment, run inside `dir`.
pub fn cairn(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CAIRN_LOG", "warn");
    c
}

/// Environment that puts every service on port 0 (the OS picks free ports).
pub fn port0(c: &mut Command) -> &mut Command {
    for var in [
        "CAIRN_LISTEN_SMTP_SUBMISSION_TLS",
        "CAIRN_LISTEN_SMTP_SUBMISSION",
        "CAIRN_LISTEN_SMTP_MX",
        "CAIRN_LISTEN_IMAP_TLS",
        "CAIRN_LISTEN_IMAP",
        "CAIRN_LISTEN_HTTP",
        "CAIRN_LISTEN_HTTPS",
        "CAIRN_LISTEN_LINK",
    ] {
        c.env(var, "127.0.0.1:0");
    }
    c
}

pub fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().expect("run cairn")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed with exactly one line on stderr, which starts with
/// `error:` and contains every `needle`.
pub fn assert_one_clear_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` missing from: {err}");
    }
}

/// Names in a directory, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A running `cairn serve` and what it printed up to "ready".
pub struct Running {
    pub child: Child,
    pub printed: Vec<String>,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub smtp_tls: Option<SocketAddr>,
    pub smtp_starttls: Option<SocketAddr>,
    pub smtp_mx: Option<SocketAddr>,
    pub imap_tls: Option<SocketAddr>,
    pub imap_starttls: Option<SocketAddr>,
    rest: mpsc::Receiver<String>,
}

pub fn serve(mut c: Command) -> Running {
    c.stderr(Stdio::inherit());
    serve_quiet(c)
}

/// Like [`serve`], with stderr wherever the command already sends it.
pub fn serve_quiet(mut c: Command) -> Running {
    let mut child = c
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cairn serve");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    loop {
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => {
                let ready = line.starts_with("ready");
                printed.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "cairn serve did not get ready; printed:\n{}",
                    printed.join("\n")
                );
            }
        }
    }
    let addr = |prefix: &str| {
        printed.iter().find_map(|l| {
            l.strip_prefix(prefix)
                .map(|a| a.trim_end_matches('/').parse::<SocketAddr>().unwrap())
        })
    };
    let http = addr("web: http://").expect("an http address");
    let https = addr("web (TLS): https://");
    let named = |prefix: &str| {
        printed.iter().find_map(|l| {
            l.strip_prefix(prefix)
                .map(|a| a.parse::<SocketAddr>().unwrap())
        })
    };
    let smtp_tls = named("smtp submission (TLS): ");
    let smtp_starttls = named("smtp submission (STARTTLS): ");
    let smtp_mx = named("smtp mx: ");
    let imap_tls = named("imap (TLS): ");
    let imap_starttls = named("imap (STARTTLS): ");
    Running {
        child,
        printed,
        http,
        https,
        smtp_tls,
        smtp_starttls,
        smtp_mx,
        imap_tls,
        imap_starttls,
        rest: rx,
    }
}

impl Running {
    pub fn printed_text(&self) -> String {
        self.printed.join("\n")
    }

    /// The admin setup code the hub printed at its first start.
    pub fn setup_code(&self) -> String {
        self.printed_text()
            .split("admin setup code: ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("a setup code was printed")
            .to_string()
    }

    /// Wait for a printed line starting with `prefix` (kept in `printed`).
    pub fn wait_for_line(&mut self, prefix: &str) -> String {
        loop {
            match self.rest.recv_timeout(START_TIMEOUT) {
                Ok(line) => {
                    self.printed.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line starting with `{prefix}`; printed:\n{}",
                    self.printed_text()
                ),
            }
        }
    }

    /// Send a signal and wait for the exit; returns (success, the rest of stdout).
    pub fn stop(mut self, signal: &str) -> (bool, Vec<String>) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = wait_timeout(&mut self.child, Duration::from_secs(30));
        let rest: Vec<String> = self.rest.try_iter().collect();
        (status, rest)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> bool {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            // Let the stdout reader thread drain the last lines.
            std::thread::sleep(Duration::from_millis(100));
            return s.success();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("cairn did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A plain HTTP/1.1 GET; returns (status line, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    split_response(&resp)
}

fn split_response(resp: &str) -> (String, String) {
    let status = resp.lines().next().unwrap_or_default().to_string();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// An HTTPS GET that trusts only the hub's own certificate and checks the
/// name strictly, as Delta Chat's strict mode would.
pub fn https_get(
    addr: SocketAddr,
    server_name: &str,
    cert_pem: &Path,
    path: &str,
) -> (String, String) {
    use rustls::pki_types::pem::PemObject;
    use std::sync::Arc;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert_pem).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    // A server may close without close_notify; what was read is still complete.
    let _ = tls.read_to_end(&mut resp);
    split_response(&String::from_utf8_lossy(&resp))
}

pub fn data_dir(tmp: &Path) -> PathBuf {
    tmp.join("cairn-data")
}

/// A tmpfs of `size` mounted at a fresh directory while the value lives.
/// Mounting needs root (CI runs tests as root).
pub struct SmallDisk {
    _tmp: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

impl SmallDisk {
    pub fn mount(size: &str) -> SmallDisk {
        let me = RunAs::current();
        assert_eq!(
            me.name, "root",
            "this test fills a small tmpfs to make a disk full, and mounting one needs root: run it as root (CI does)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount -t tmpfs failed");
        SmallDisk { _tmp: tmp, path }
    }

    /// Mount another tmpfs at `dir` (a USB stick plugged in there).
    pub fn plug(dir: &std::path::Path, size: &str) -> std::process::ExitStatus {
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount")
    }

    /// Fill it to all but `leave` bytes with a file; returns the file.
    pub fn fill(&self, leave: u64) -> std::path::PathBuf {
        let filler = self.path.join("filler");
        let free = rustix::fs::statvfs(&self.path)
            .map(|v| v.f_bavail * v.f_frsize)
            .unwrap();
        let f = std::fs::File::create(&filler).unwrap();
        use std::io::Write;
        let mut w = std::io::BufWriter::new(f);
        let chunk = vec![0x55u8; 64 << 10];
        let mut left = free.saturating_sub(leave);
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if w.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = w.flush();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

pub mod browser;
pub mod classic;
pub mod deltachat;
pub mod dns;
pub mod imap;
pub mod mta;
pub mod nncp;
pub mod qr;
pub mod radio;
pub mod relay;
pub mod smtp;
pub mod web;

/// Make sure a program from a Debian package is installed: installs the
/// package on first use when running as root, or fails saying how.
pub fn debian_tool(program: &str, package: &str) {
    if Path::new(program).exists() {
        return;
    }
    let how = format!("this test needs {program}: install it with `apt-get install {package}`");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    assert!(root, "{how}");
    let lock = std::fs::File::create(std::env::temp_dir().join("cairn-apt.lock")).unwrap();
    lock.lock().unwrap();
    if !Path::new(program).exists() {
        let ok = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .is_ok_and(|s| s.success())
            && Command::new("apt-get")
                .args(["install", "-y", "-qq", package])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "could not install {package}; {how}");
    }
}

/// Debian's own Python, whose packages (python3-dkim) the tests use.
pub const PYTHON_DEBIAN: &str = "/usr/bin/python3";

/// dkimpy with Ed25519 support, from Debian's packages.
pub fn dkimpy_tools() {
    debian_tool(
        "/usr/lib/python3/dist-packages/dkim/__init__.py",
        "python3-dkim",
    );
    debian_tool(
        "/usr/lib/python3/dist-packages/nacl/__init__.py",
        "python3-nacl",
    );
}

/// Verify every DKIM signature of `message` with dkimpy, answering DNS
/// from `records`; (all passed, what it printed).
pub fn dkimpy(message: &[u8], records: &[(String, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let msg = dir.path().join("message.eml");
    std::fs::write(&msg, message).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = records
        .iter()
        .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let json = dir.path().join("records.json");
    std::fs::write(&json, serde_json::to_vec(&map).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/dkim_verify.py");
    let o = std::process::Command::new(PYTHON_DEBIAN)
        .arg(script)
        .arg(&msg)
        .arg(&json)
        .output()
        .expect("run dkim_verify.py");
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

/// Who runs a command. Some tools refuse to run programs as root (Exim's
/// pipe transport: Debian builds it with root as a fixed never_user), so
/// as root the hub's side runs as the system user `cairn-test`, the way
/// the appliance runs cairn as a service user; otherwise as ourselves.
pub struct RunAs {
    pub name: String,
    switch: bool,
}

/// The system user tests run services as when they are root.
pub const SERVICE_USER: &str = "cairn-test";

impl RunAs {
    /// This process's own user.
    pub fn current() -> RunAs {
        let o = Command::new("id").arg("-un").output().expect("run id");
        RunAs {
            name: String::from_utf8_lossy(&o.stdout).trim().to_string(),
            switch: false,
        }
    }

    /// A user other than root: [`SERVICE_USER`] (created if missing) when
    /// this process is root, else this process's own user.
    pub fn service() -> RunAs {
        let me = RunAs::current();
        if me.name != "root" {
            return me;
        }
        let lock = std::fs::File::create(std::env::temp_dir().join("cairn-useradd.lock")).unwrap();
        lock.lock().unwrap();
        let exists = Command::new("id")
            .arg(SERVICE_USER)
            .output()
            .is_ok_and(|o| o.status.success());
        if !exists {
            let o = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    SERVICE_USER,
                ])
                .output()
                .expect("run useradd");
            assert!(
                o.status.success(),
                "cannot create the test user {SERVICE_USER}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        RunAs {
            name: SERVICE_USER.into(),
            switch: true,
        }
    }

    /// `program` as this user (through util-linux's setpriv when switching).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let argv = self.argv(program);
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }

    /// The argv that runs `program` as this user (for wrappers such as
    /// `unshare` that exec it).
    pub fn argv(&self, program: impl AsRef<std::ffi::OsStr>) -> Vec<std::ffi::OsString> {
        let program = program.as_ref().to_os_string();
        if !self.switch {
            return vec![program];
        }
        vec![
            "setpriv".into(),
            format!("--reuid={}", self.name).into(),
            format!("--regid={}", self.name).into(),
            "--clear-groups".into(),
            "--".into(),
            program,
        ]
    }

    /// `program` at a path this user can run: as it is, or — when the
    /// build directory is closed to other users (a clone under /root) —
    /// hard-linked or copied into `dir`.
    pub fn reachable(&self, program: &Path, dir: &Path) -> PathBuf {
        if !self.switch
            || self
                .command("test")
                .arg("-x")
                .arg(program)
                .status()
                .is_ok_and(|s| s.success())
        {
            return program.to_path_buf();
        }
        let dest = dir.join(program.file_name().expect("a file"));
        if std::fs::hard_link(program, &dest).is_err() {
            std::fs::copy(program, &dest).expect("copy the program");
        }
        dest
    }

    /// Make `path` (recursively) belong to this user.
    pub fn own(&self, path: &Path) {
        if !self.switch {
            return;
        }
        let ok = Command::new("chown")
            .arg("-R")
            .arg(format!("{0}:{0}", self.name))
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown {} to {}", path.display(), self.name);
    }
}

/// Resident memory of a process, from /proc (KiB).
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

/// Peak resident memory of a process, from /proc (KiB).
pub fn peak_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}
