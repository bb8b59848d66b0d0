//! A classic mail node for tests: Debian's Exim (`exim4-daemon-light`)
//! with a configuration of the test's own (`exim4 -C`), its spool, log and
//! maildirs in one directory. Mail for the hub's domain leaves through a
//! `pipe` transport with `use_bsmtp` — batch SMTP into whatever command the
//! test gives (cairn's importer, or nncp-exec). Local users' mail lands in
//! maildirs.
#![allow(dead_code)]

use super::RunAs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

pub const EXIM: &str = "/usr/sbin/exim4";

pub fn exim_tools() {
    super::debian_tool(EXIM, "exim4-daemon-light");
}

pub struct Exim {
    pub dir: PathBuf,
    pub conf: PathBuf,
    /// Its one mail domain; users are the local parts given to `new`.
    pub domain: String,
    /// What Exim wrote to stderr: with `-C` it gives up root, and its
    /// delivery processes then log there instead of the main log.
    stderr: std::cell::RefCell<String>,
}

impl Exim {
    /// An Exim node for `domain` with `users`, sending mail for
    /// `hub_domain` as batch SMTP into `pipe` (an argv, run as `who`).
    pub fn new(
        dir: &Path,
        who: &RunAs,
        domain: &str,
        users: &[&str],
        hub_domain: &str,
        pipe: &[String],
    ) -> Exim {
        for d in ["spool", "log", "mail"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        who.own(dir);
        let conf = dir.join("exim.conf");
        // Exim splits the command itself; the paths here have no spaces.
        assert!(pipe.iter().all(|a| !a.contains(' ')), "{pipe:?}");
        let text = format!(
            r#"# Written by cairn's tests.
primary_hostname = {domain}
qualify_domain = {domain}
domainlist local_domains = {domain}
spool_directory = {spool}
log_file_path = {log}/%slog
exim_user = {user}
exim_group = {user}
trusted_users = {user}
keep_environment =
# Deliver at once; no daemon, no queue runner.
queue_only = false

begin routers

to_hub:
  driver = accept
  domains = {hub_domain}
  transport = hub_bsmtp

local_users:
  driver = accept
  domains = +local_domains
  local_parts = {users}
  transport = maildir

begin transports

# What NNCP's Exim integration uses: one batch SMTP job per message.
hub_bsmtp:
  driver = pipe
  use_bsmtp
  command = {pipe}
  user = {user}
  log_output
  temp_errors = 75 : 73

maildir:
  driver = appendfile
  directory = {mail}/$local_part_data
  maildir_format
  user = {user}
  envelope_to_add
  return_path_add

begin retry

*  *  F,1h,1m
"#,
            spool = dir.join("spool").display(),
            log = dir.join("log").display(),
            mail = dir.join("mail").display(),
            user = who.name,
            users = users.join(" : "),
            pipe = pipe.join(" "),
        );
        std::fs::write(&conf, text).unwrap();
        Exim {
            dir: dir.to_path_buf(),
            conf,
            domain: domain.into(),
            stderr: Default::default(),
        }
    }

    fn exim(&self, who: &RunAs, args: &[&str], stdin: &[u8]) -> Output {
        let mut c = who.command(EXIM);
        c.arg("-C")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("run exim4");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let o = child.wait_with_output().unwrap();
        self.stderr
            .borrow_mut()
            .push_str(&String::from_utf8_lossy(&o.stderr));
        o
    }

    /// A local user submits `message` (as with `sendmail -f FROM TO…`);
    /// Exim delivers it before returning (`-odi`).
    pub fn send(&self, who: &RunAs, from: &str, to: &[&str], message: &str) {
        let mut args = vec!["-odi", "-f", from, "--"];
        args.extend(to);
        let o = self.exim(who, &args, message.as_bytes());
        assert!(
            o.status.success(),
            "exim did not take the message ({}): {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
    }

    /// Feed a batch SMTP stream to `exim -bS`, as a classic node's NNCP
    /// handle does.
    pub fn take_bsmtp(&self, who: &RunAs, batch: &[u8]) -> Output {
        self.exim(who, &["-odi", "-bS"], batch)
    }

    /// The argv of `exim -bS` for this node (an NNCP exec handle).
    pub fn bsmtp_argv(&self) -> Vec<String> {
        vec![
            EXIM.into(),
            "-C".into(),
            self.conf.to_str().unwrap().into(),
            "-odi".into(),
            "-bS".into(),
        ]
    }

    /// The messages in `user`'s maildir, oldest first.
    pub fn mailbox(&self, user: &str) -> Vec<String> {
        maildir(&self.dir.join("mail").join(user))
    }

    /// Exim's main log and what its processes wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log").join("mainlog")).unwrap_or_default()
            + &self.stderr.borrow()
    }
}

/// The new messages of the maildir at `dir`, oldest first (Exim names
/// them by time); none when it does not exist yet.
pub fn maildir(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .collect()
}
