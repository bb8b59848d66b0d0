//! The real Delta Chat core (`deltachat-rpc-server`, pinned) over its
//! stdio JSON-RPC, installed by the test itself into `target/dc-venv`.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Delta Chat core version the tests are pinned to.
pub const DC_VERSION: &str = "2.65.0";
/// Deadline for any one thing Delta Chat should do.
pub const DC_WAIT: Duration = Duration::from_secs(90);
/// The whole conversation with one rpc server must end by then.
pub const RPC_WATCHDOG: Duration = Duration::from_secs(300);
/// Deadline for a message carried by a radio. Over the simulated LoRa
/// link of the tests one message takes 25–45 s here (duty-cycle pacing,
/// and a poll's exponential back-off after lost frames can add a minute
/// more); this guards against a hang, it does not measure speed.
pub const RADIO_WAIT: Duration = Duration::from_secs(300);

/// Path of the pinned `deltachat-rpc-server`, installing it on first use.
pub fn rpc_server() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let venv = target.join("dc-venv");
    let bin = venv.join("bin/deltachat-rpc-server");
    std::fs::create_dir_all(&target).unwrap();
    // Several test binaries may get here at once: one installs, others wait.
    let lock = std::fs::File::create(target.join("dc-venv.lock")).unwrap();
    lock.lock().unwrap();
    let version_ok = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == DC_VERSION)
        .unwrap_or(false);
    if !version_ok {
        let how = format!(
            "install it with: python3 -m venv {0} && {0}/bin/pip install deltachat-rpc-server=={DC_VERSION} \
             (needs python3-venv and access to PyPI)",
            venv.display()
        );
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {how}"));
        assert!(st.success(), "python3 -m venv failed; {how}");
        let st = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "-q",
                &format!("deltachat-rpc-server=={DC_VERSION}"),
            ])
            .status()
            .unwrap_or_else(|e| panic!("cannot run pip ({e}); {how}"));
        assert!(st.success(), "pip install failed; {how}");
    }
    bin
}

pub struct Rpc {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Every line the server prints, read by a thread so no wait can
    /// block past its deadline.
    lines: Receiver<Value>,
    /// Answers that arrived while waiting for another one.
    answers: HashMap<u64, Value>,
    /// The id of a `get_next_event_batch` still outstanding (it blocks in
    /// the server until an event exists).
    events_call: Option<u64>,
    next_id: u64,
    backlog: VecDeque<Value>,
    /// The last lines Delta Chat logged (info, warnings, errors), printed
    /// when a wait fails.
    log: VecDeque<String>,
    current: Arc<Mutex<String>>,
    waiting: Arc<Mutex<String>>,
    /// How long a wait for an event or a message may take.
    patience: Duration,
    _dir: tempfile::TempDir,
}

/// How many of Delta Chat's log lines a failure report shows.
const LOG_LINES: usize = 120;

impl Rpc {
    pub fn spawn() -> Rpc {
        Rpc::spawn_patient(DC_WAIT)
    }

    /// An rpc server whose waits for events and messages last up to
    /// `patience` each (the whole conversation up to four of them).
    pub fn spawn_patient(patience: Duration) -> Rpc {
        let bin = rpc_server();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin)
            .env("DC_ACCOUNTS_PATH", dir.path().join("accounts"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn deltachat-rpc-server");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("deltachat-rpc-server printed non-JSON ({e}): {line}"),
                }
            }
        });
        // Watchdog: the whole conversation has a limit; past it the server
        // is killed and the test fails saying what it was doing.
        let pid = child.id();
        let current = Arc::new(Mutex::new(String::new()));
        let watched = current.clone();
        let waiting = Arc::new(Mutex::new(String::new()));
        let waited = waiting.clone();
        let limit = std::env::var("DC_WATCHDOG_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(RPC_WATCHDOG.max(patience * 4), Duration::from_secs);
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!(
                    "watchdog: killing deltachat-rpc-server after {limit:?}, during {} while waiting for: {}",
                    watched.lock().unwrap(),
                    waited.lock().unwrap()
                );
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        Rpc {
            child,
            stdin,
            lines,
            answers: HashMap::new(),
            events_call: None,
            next_id: 0,
            backlog: VecDeque::new(),
            log: VecDeque::new(),
            current,
            waiting,
            patience,
            _dir: dir,
        }
    }

    fn send(&mut self, method: &str, params: &Value) -> Result<u64, String> {
        self.next_id += 1;
        let req = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        let stdin = self.stdin.as_mut().ok_or("rpc stdin closed")?;
        writeln!(stdin, "{req}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("deltachat-rpc-server is gone ({e}) before {method}"))?;
        Ok(self.next_id)
    }

    /// Wait until `deadline` for the answer with `id`.
    fn answer(&mut self, id: u64, deadline: Instant) -> Result<Option<Value>, String> {
        loop {
            if let Some(v) = self.answers.remove(&id) {
                return Ok(Some(v));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    if let Some(got) = v["id"].as_u64() {
                        self.answers.insert(got, v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("deltachat-rpc-server exited".into());
                }
            }
        }
    }

    /// One call, answered within [`DC_WAIT`], or an error saying why not.
    fn try_call(&mut self, method: &str, params: Value) -> Result<Result<Value, Value>, String> {
        *self.current.lock().unwrap() = method.to_string();
        let id = self.send(method, &params)?;
        match self.answer(id, Instant::now() + DC_WAIT)? {
            Some(resp) => Ok(match resp.get("error") {
                Some(e) => Err(e.clone()),
                None => Ok(resp["result"].clone()),
            }),
            None => Err(format!("{method} got no answer within {DC_WAIT:?}")),
        }
    }

    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        match self.try_call(method, params) {
            Ok(r) => r,
            Err(why) => self.fail(&why),
        }
    }

    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params.clone())
            .unwrap_or_else(|e| panic!("{method}({params}) failed: {e}"))
    }

    /// Fail the test with Delta Chat's recent log, so a hang explains itself.
    fn fail(&mut self, why: &str) -> ! {
        let log: Vec<String> = self.log.iter().cloned().collect();
        panic!(
            "{why}\nDelta Chat's last {} log lines (account: kind: message):\n{}",
            log.len(),
            log.join("\n")
        );
    }

    /// Events that arrive within `wait` (the backlog first); empty if none.
    fn events_within(&mut self, wait: Duration) -> Vec<Value> {
        if !self.backlog.is_empty() {
            return self.backlog.drain(..).collect();
        }
        let id = match self.events_call {
            Some(id) => id,
            None => match self.send("get_next_event_batch", &json!([])) {
                Ok(id) => {
                    self.events_call = Some(id);
                    id
                }
                Err(why) => self.fail(&why),
            },
        };
        let got = match self.answer(id, Instant::now() + wait) {
            Ok(got) => got,
            Err(why) => self.fail(&why),
        };
        let Some(resp) = got else {
            return Vec::new();
        };
        self.events_call = None;
        let events = resp["result"].as_array().cloned().unwrap_or_default();
        for ev in &events {
            let kind = ev["event"]["kind"].as_str().unwrap_or("");
            if matches!(kind, "Info" | "Warning" | "Error" | "ErrorSelfNotInGroup") {
                if self.log.len() == LOG_LINES {
                    self.log.pop_front();
                }
                self.log.push_back(format!(
                    "{}: {kind}: {}",
                    ev["contextId"],
                    ev["event"]["msg"].as_str().unwrap_or("")
                ));
            }
        }
        events
    }

    /// Wait for an event for which `pred(account, event)` holds, or fail
    /// saying `what` did not happen. Events mentioning a message that do
    /// not match are kept for later waits.
    pub fn wait_event(&mut self, what: &str, pred: impl Fn(u64, &Value) -> bool) -> Value {
        *self.waiting.lock().unwrap() = what.to_string();
        let deadline = Instant::now() + self.patience;
        let mut keep = Vec::new();
        while Instant::now() < deadline {
            let mut found = None;
            for ev in self.events_within(Duration::from_millis(500)) {
                let ctx = ev["contextId"].as_u64().unwrap_or(0);
                if found.is_none() && pred(ctx, &ev["event"]) {
                    found = Some(ev["event"].clone());
                } else if ev["event"]["msgId"].as_u64().unwrap_or(0) != 0 {
                    keep.push(ev);
                }
            }
            if let Some(ev) = found {
                self.backlog.extend(keep);
                return ev;
            }
        }
        self.backlog.extend(keep);
        self.fail(&format!(
            "{what}: did not happen within {:?}",
            self.patience
        ));
    }

    /// An account logged in to the hub over implicit TLS, certificate
    /// checks off (as a DCLOGIN QR with ic=3 sets them).
    pub fn account(&mut self, addr: &str, password: &str, imap_port: u16, smtp_port: u16) -> u64 {
        let acc = self.account_offline(addr, password, imap_port, smtp_port);
        self.start(acc);
        acc
    }

    /// Start I/O of `acc` and wait until its INBOX is in IDLE. Delta Chat
    /// does not download what was in the INBOX before its first visit
    /// (a new device skips old mail), so a test must not send to an
    /// account before this.
    pub fn start(&mut self, acc: u64) {
        self.ok("start_io", json!([acc]));
        self.inbox_idle(acc);
    }

    /// Wait until `acc`'s INBOX is in IDLE (after its first fetch).
    pub fn inbox_idle(&mut self, acc: u64) {
        self.wait_event(&format!("account {acc} reaches IMAP IDLE"), |ctx, e| {
            ctx == acc && e["kind"] == "ImapInboxIdle"
        });
    }

    /// Like [`Rpc::account`], without starting I/O yet (to set options first).
    pub fn account_offline(
        &mut self,
        addr: &str,
        password: &str,
        imap_port: u16,
        smtp_port: u16,
    ) -> u64 {
        let acc = self.ok("add_account", json!([])).as_u64().unwrap();
        self.ok(
            "add_or_update_transport",
            json!([acc, {
                "addr": addr, "password": password,
                "imapServer": "127.0.0.1", "imapPort": imap_port, "imapSecurity": "ssl",
                "smtpServer": "127.0.0.1", "smtpPort": smtp_port, "smtpSecurity": "ssl",
                "certificateChecks": "acceptInvalidCertificates",
            }]),
        );
        acc
    }

    /// A chat from `from` to `to` after importing `to`'s vCard (key exchange).
    pub fn chat_with(&mut self, from: u64, to: u64) -> Value {
        let vcard = self.ok("make_vcard", json!([to, [1]]));
        let contact = self.ok("import_vcard_contents", json!([from, vcard]))[0].clone();
        self.ok("create_chat_by_contact_id", json!([from, contact]))
    }

    /// Wait for an incoming message with this text on `acc`.
    pub fn incoming(&mut self, acc: u64, text: &str, what: &str) -> Value {
        self.wait_message(acc, what, |m| m["text"] == text && m["fromId"] != json!(1))
    }

    /// Wait until `acc` has a message for which `check(snapshot)` holds.
    /// Every message an event mentions is re-read on each round, so a
    /// pre-message whose full download finishes later is seen too; events
    /// of other accounts are kept for their own waits. Every few seconds
    /// all chats are read as well, in case the event went to an earlier wait.
    pub fn wait_message(&mut self, acc: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        *self.waiting.lock().unwrap() = what.to_string();
        let deadline = Instant::now() + self.patience;
        let mut ids: Vec<u64> = Vec::new();
        let mut keep = Vec::new();
        let mut round = 0u32;
        while Instant::now() < deadline {
            for ev in self.events_within(Duration::from_millis(500)) {
                let id = ev["event"]["msgId"].as_u64().unwrap_or(0);
                if ev["contextId"].as_u64() == Some(acc) {
                    if id != 0 && !ids.contains(&id) {
                        ids.push(id);
                    }
                } else if id != 0 {
                    keep.push(ev);
                }
            }
            for id in ids.clone() {
                if let Ok(m) = self.call("get_message", json!([acc, id]))
                    && check(&m)
                {
                    self.backlog.extend(keep);
                    return m;
                }
            }
            round += 1;
            if round.is_multiple_of(6)
                && let Some(m) = self.scan_chats(acc, &check)
            {
                self.backlog.extend(keep);
                return m;
            }
        }
        self.backlog.extend(keep);
        self.fail(&format!(
            "{what}: did not happen within {:?}",
            self.patience
        ));
    }

    /// A message in any chat of `acc` (contact requests included) for which
    /// `check` holds.
    fn scan_chats(&mut self, acc: u64, check: &impl Fn(&Value) -> bool) -> Option<Value> {
        let chats = self.ok("get_chatlist_entries", json!([acc, null, null, null]));
        for chat in chats.as_array().cloned().unwrap_or_default() {
            let ids = self.ok("get_message_ids", json!([acc, chat, false, false]));
            for id in ids.as_array().cloned().unwrap_or_default() {
                if let Ok(m) = self.call("get_message", json!([acc, id]))
                    && check(&m)
                {
                    return Some(m);
                }
            }
        }
        None
    }

    /// Like [`Rpc::wait_message`], but by reading every chat of `acc`
    /// twice a second instead of following events (some changes, such as
    /// a message another device of the account sent, need not raise one).
    pub fn poll_message(&mut self, acc: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        *self.waiting.lock().unwrap() = what.to_string();
        let deadline = Instant::now() + self.patience;
        while Instant::now() < deadline {
            if let Some(m) = self.scan_chats(acc, &check) {
                return m;
            }
            // Keep the log current for a failure report.
            let _ = self.events_within(Duration::from_millis(500));
        }
        self.fail(&format!(
            "{what}: did not happen within {:?}",
            self.patience
        ));
    }
}

impl Drop for Rpc {
    /// Never panics (a panic while unwinding would abort the test binary
    /// and hide the real failure).
    fn drop(&mut self) {
        if let Ok(id) = self.send("stop_io_for_all_accounts", &json!([])) {
            let _ = self.answer(id, Instant::now() + Duration::from_secs(10));
        }
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The IMAP and SMTP implicit-TLS ports of a hub, for [`Rpc::account`].
pub fn ports(h: &cairn::app::Hub) -> (u16, u16) {
    (
        h.endpoint(cairn::app::IMAP_TLS).unwrap().port(),
        h.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap().port(),
    )
}
