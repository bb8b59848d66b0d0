//! A real Internet mail server for gateway tests: Debian's Exim configured
//! the way chatmail relays receive — STARTTLS required before MAIL, every
//! DKIM signature verified, and mail refused unless the From domain has a
//! valid signature of its own (DMARC with p=reject and strict alignment,
//! which chatmail publishes) — and signing its own outgoing mail with
//! DKIM. Exim runs per connection in inetd style (`exim -bs` on the
//! accepted socket), as the user the tests run services as.
//!
//! Exim asks DNS through the C library, which reads only port 53 of the
//! servers in /etc/resolv.conf; each Exim here runs in a mount namespace
//! of its own whose /etc/resolv.conf names the test's DNS server on a
//! loopback address of its own (binding port 53 and `unshare` need root:
//! CI runs as root).
#![allow(dead_code)]

use super::RunAs;
use super::classic::{EXIM, exim_tools};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The selector of the relay's own DKIM key.
pub const SELECTOR: &str = "exim";

pub struct Relay {
    pub dir: PathBuf,
    conf: PathBuf,
    resolv: PathBuf,
    who: RunAs,
    pub domain: String,
    /// Where it takes mail (the bridge to `exim -bs`).
    pub addr: SocketAddr,
    /// Its certificate, for clients that verify it.
    pub cert: rustls::pki_types::CertificateDer<'static>,
    /// The TXT record publishing its DKIM key: (name, value).
    pub dkim_record: (String, String),
}

/// Whether this process may do what the relay needs (root).
pub fn require_root() {
    let me = RunAs::current();
    assert_eq!(
        me.name, "root",
        "this test runs Exim in a mount namespace of its own with the test's DNS server on port 53, which needs root: run it as root (CI does)"
    );
}

impl Relay {
    /// An Exim for `domain` with local `users`, asking DNS at `dns` (port
    /// 53), and sending mail for `hub_domains` to `hub_mx`.
    pub async fn start(
        dir: &Path,
        domain: &str,
        users: &[&str],
        dns: Ipv4Addr,
        hub_domains: &[&str],
        hub_mx: SocketAddr,
    ) -> Relay {
        require_root();
        exim_tools();
        let who = RunAs::service();
        for d in ["spool", "log", "mail"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let resolv = dir.join("resolv.conf");
        std::fs::write(
            &resolv,
            format!("nameserver {dns}\noptions timeout:2 attempts:2\n"),
        )
        .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("mx.{domain}"), "127.0.0.1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        let dkim =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        std::fs::write(dir.join("dkim.pem"), dkim.serialize_pem()).unwrap();
        use base64::Engine;
        use rcgen::PublicKeyData;
        let dkim_record = (
            format!("{SELECTOR}._domainkey.{domain}"),
            format!(
                "v=DKIM1; k=rsa; p={}",
                base64::engine::general_purpose::STANDARD.encode(dkim.subject_public_key_info())
            ),
        );
        who.own(dir);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conf = dir.join("exim.conf");
        std::fs::write(
            &conf,
            config(dir, domain, users, &who.name, hub_domains, hub_mx),
        )
        .unwrap();
        let relay = Relay {
            dir: dir.to_path_buf(),
            conf,
            resolv,
            who,
            domain: domain.into(),
            addr,
            cert: cert.der().clone(),
            dkim_record,
        };
        let argv = relay.argv(&["-odi", "-bs", "-oMa", "127.0.0.1", "-oMi", "127.0.0.1"]);
        // With -C, Exim's processes give up root and may log to stderr
        // instead of the main log (as in tests/common/classic.rs).
        let stderr_log = dir.join("log").join("stderr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let argv = argv.clone();
                let stderr_log = stderr_log.clone();
                tokio::task::spawn_blocking(move || {
                    let err = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&stderr_log)
                        .unwrap();
                    let std = stream.into_std().unwrap();
                    std.set_nonblocking(false).unwrap();
                    let fd: std::os::fd::OwnedFd = std.into();
                    let out = fd.try_clone().unwrap();
                    let _ = Command::new(&argv[0])
                        .args(&argv[1..])
                        .stdin(Stdio::from(fd))
                        .stdout(Stdio::from(out))
                        .stderr(Stdio::from(err))
                        .status();
                });
            }
        });
        relay
    }

    /// The argv of Exim with `args`, in its namespace, as its user.
    fn argv(&self, args: &[&str]) -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec![
            "unshare".into(),
            "--mount".into(),
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#.into(),
            self.resolv.clone().into(),
        ];
        v.extend(self.who.argv(EXIM));
        v.push("-C".into());
        v.push(self.conf.clone().into());
        v.extend(args.iter().map(Into::into));
        v
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let argv = self.argv(args);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run exim4");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// A local user submits `message`; Exim tries delivery before
    /// returning (`-odi`). What became of it is in [`Relay::log`].
    pub fn send(&self, from: &str, to: &[&str], message: &str) {
        let mut args = vec!["-odi", "-f", from, "--"];
        args.extend(to);
        let o = self.run(&args, message.as_bytes());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log").join("stderr"))
            .unwrap();
        f.write_all(&o.stderr).unwrap();
        assert!(
            o.status.success(),
            "exim did not take the message ({}): {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
    }

    /// The messages in `user`'s maildir, oldest first.
    pub fn mailbox(&self, user: &str) -> Vec<String> {
        super::classic::maildir(&self.dir.join("mail").join(user))
    }

    /// `user`'s messages once there are `n` (Exim delivers a bounce in a
    /// process of its own, after the command that caused it returned);
    /// fails after 60 s.
    pub fn wait_mailbox(&self, user: &str, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let got = self.mailbox(user);
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Exim's logs (with `-C`, most of what it says goes to stderr or
    /// nowhere; the messages and replies are the evidence).
    pub fn log(&self) -> String {
        let read =
            |n: &str| std::fs::read_to_string(self.dir.join("log").join(n)).unwrap_or_default();
        read("mainlog") + &read("rejectlog") + &read("paniclog") + &read("stderr")
    }
}

/// The configuration: receive as a chatmail relay does, sign what it sends.
fn config(
    dir: &Path,
    domain: &str,
    users: &[&str],
    user: &str,
    hub_domains: &[&str],
    hub_mx: SocketAddr,
) -> String {
    format!(
        r#"# Written by cairn's tests: an Internet mail server with chatmail's rules.
primary_hostname = mx.{domain}
qualify_domain = {domain}
domainlist local_domains = {domain}
domainlist hub_domains = {hub}
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
exim_user = {user}
exim_group = {user}
trusted_users = {user}
keep_environment =
queue_only = false
log_selector = +tls_cipher +tls_peerdn
tls_certificate = {dir}/cert.pem
tls_privatekey = {dir}/key.pem
tls_advertise_hosts = *
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt
acl_smtp_dkim = acl_dkim
acl_smtp_data = acl_data
# Verify every signature, and look for one of the From domain even when
# the message has none (DMARC p=reject with adkim=s, as chatmail's DNS).
dkim_verify_signers = $dkim_signers : ${{domain:${{address:$h_from:}}}}

begin acl

acl_mail:
  deny    message = STARTTLS is required
          hosts = *
          !encrypted = *
  accept

acl_rcpt:
  accept  domains = +local_domains
          local_parts = {users}
  accept  hosts = :
          domains = +hub_domains
  deny    message = relay not permitted

acl_dkim:
  warn    add_header = X-Relay-DKIM: $dkim_cur_signer $dkim_verify_status
  deny    message = DKIM signature of $dkim_cur_signer does not verify ($dkim_verify_reason)
          dkim_status = fail:invalid
  deny    message = No DKIM signature found for $dkim_cur_signer
          condition = ${{if eqi{{$dkim_cur_signer}}{{${{domain:${{address:$h_from:}}}}}}}}
          dkim_status = none
  accept

acl_data:
  accept

begin routers

to_hub:
  driver = manualroute
  domains = +hub_domains
  route_list = * 127.0.0.1
  self = send
  transport = remote_smtp

local_users:
  driver = accept
  domains = +local_domains
  local_parts = {users}
  transport = maildir

begin transports

remote_smtp:
  driver = smtp
  port = {port}
  hosts_require_tls = *
  dkim_domain = {domain}
  dkim_selector = {selector}
  dkim_private_key = {dir}/dkim.pem
  dkim_canon = relaxed

maildir:
  driver = appendfile
  directory = {dir}/mail/$local_part_data
  maildir_format
  user = {user}
  envelope_to_add
  return_path_add

begin retry

*  *  F,1h,1m
"#,
        dir = dir.display(),
        users = users.join(" : "),
        hub = hub_domains.join(" : "),
        port = hub_mx.port(),
        selector = SELECTOR,
    )
}
