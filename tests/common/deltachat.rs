//! The real Delta Chat core (`deltachat-rpc-server`, pinned) over its
//! stdio JSON-RPC, installed by the test itself into `target/dc-venv`.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The Delta Chat core version the tests are pinned to.
pub const DC_VERSION: &str = "2.65.0";
/// Deadline for any one thing Delta Chat should do.
pub const DC_WAIT: Duration = Duration::from_secs(90);
/// The whole conversation with one rpc server must end by then.
pub const RPC_WATCHDOG: Duration = Duration::from_secs(300);

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
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    backlog: std::collections::VecDeque<Value>,
    current: std::sync::Arc<std::sync::Mutex<String>>,
    waiting: std::sync::Arc<std::sync::Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Rpc {
    pub fn spawn() -> Rpc {
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
        // Watchdog: a call that blocks (a wait for events that never come)
        // ends when the server is killed, and the test fails saying so.
        let pid = child.id();
        let current = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let watched = current.clone();
        let waiting = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let waited = waiting.clone();
        let limit = std::env::var("DC_WATCHDOG_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(RPC_WATCHDOG, Duration::from_secs);
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
            stdout,
            next_id: 0,
            current,
            waiting,
            backlog: std::collections::VecDeque::new(),
            _dir: dir,
        }
    }

    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        *self.current.lock().unwrap() = method.to_string();
        let req = json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        let stdin = self.stdin.as_mut().expect("rpc stdin open");
        writeln!(stdin, "{req}").unwrap();
        stdin.flush().unwrap();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).unwrap_or(0);
            assert!(n > 0, "deltachat-rpc-server exited during {method}");
            let resp: Value = serde_json::from_str(&line).unwrap();
            if resp["id"] == json!(self.next_id) {
                return match resp.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(resp["result"].clone()),
                };
            }
        }
    }

    pub fn ok(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params.clone())
            .unwrap_or_else(|e| panic!("{method}({params}) failed: {e}"))
    }

    /// Poll events until `pred` matches, or fail saying `what` did not happen.
    pub fn wait_event(&mut self, what: &str, pred: impl Fn(u64, &Value) -> bool) -> Value {
        let deadline = Instant::now() + DC_WAIT;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let had_backlog = !self.backlog.is_empty();
            let mut keep = Vec::new();
            let mut found = None;
            for ev in self.events() {
                let ctx = ev["contextId"].as_u64().unwrap_or(0);
                if found.is_none() && pred(ctx, &ev["event"]) {
                    found = Some(ev["event"].clone());
                    continue;
                }
                if matches!(ev["event"]["kind"].as_str(), Some("Warning" | "Error")) {
                    last.push(format!("{ctx}: {}", ev["event"]["msg"]));
                    if last.len() > 8 {
                        last.remove(0);
                    }
                }
                if ev["event"]["msgId"].as_u64().unwrap_or(0) != 0 {
                    keep.push(ev);
                }
            }
            self.backlog.extend(keep);
            if let Some(ev) = found {
                return ev;
            }
            if had_backlog {
                let fresh = self
                    .ok("get_next_event_batch", json!([]))
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                self.backlog.extend(fresh);
            }
        }
        panic!(
            "{what}: did not happen within {DC_WAIT:?}; last warnings:\n{}",
            last.join("\n")
        );
    }

    /// An account logged in to the hub over implicit TLS, certificate
    /// checks off (as a DCLOGIN QR with ic=3 sets them).
    pub fn account(&mut self, addr: &str, password: &str, imap_port: u16, smtp_port: u16) -> u64 {
        let acc = self.account_offline(addr, password, imap_port, smtp_port);
        self.ok("start_io", json!([acc]));
        acc
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

    /// Wait for the next incoming message on `acc`; returns its snapshot.
    pub fn incoming(&mut self, acc: u64, what: &str) -> Value {
        let ev = self.wait_event(what, |ctx, e| ctx == acc && e["kind"] == "IncomingMsg");
        self.ok("get_message", json!([acc, ev["msgId"]]))
    }
}

impl Drop for Rpc {
    fn drop(&mut self) {
        let _ = self.call("stop_io_for_all_accounts", json!([]));
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

impl Rpc {
    /// Events not yet looked at: the backlog first, then a fresh batch.
    fn events(&mut self) -> Vec<Value> {
        let mut out: Vec<Value> = self.backlog.drain(..).collect();
        if out.is_empty() {
            out = self
                .ok("get_next_event_batch", json!([]))
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        out
    }

    /// Wait until `acc` has a message for which `check(snapshot)` holds.
    /// Every message an event mentions is re-read on each round, so a
    /// pre-message whose full download finishes later is seen too; events
    /// of other accounts are kept for their own waits.
    pub fn wait_message(&mut self, acc: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DC_WAIT;
        *self.waiting.lock().unwrap() = what.to_string();
        let mut ids: Vec<u64> = Vec::new();
        while Instant::now() < deadline {
            let mut keep = Vec::new();
            for ev in self.events() {
                let id = ev["event"]["msgId"].as_u64().unwrap_or(0);
                if ev["contextId"].as_u64() == Some(acc) {
                    if id != 0 && !ids.contains(&id) {
                        ids.push(id);
                    }
                } else if id != 0 {
                    keep.push(ev);
                }
            }
            self.backlog.extend(keep);
            for id in &ids {
                if let Ok(m) = self.call("get_message", json!([acc, id]))
                    && check(&m)
                {
                    return m;
                }
            }
            if !self.backlog.is_empty() {
                // Let other accounts' events wait without spinning on them.
                std::thread::sleep(Duration::from_millis(50));
                let fresh = self
                    .ok("get_next_event_batch", json!([]))
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                self.backlog.extend(fresh);
            }
        }
        panic!("{what}: did not happen within {DC_WAIT:?}");
    }

    /// Like [`Rpc::wait_message`], but by reading every chat of `acc`
    /// twice a second instead of following events (some changes, such as
    /// a message another device of the account sent, need not raise one).
    pub fn poll_message(&mut self, acc: u64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        *self.waiting.lock().unwrap() = what.to_string();
        let deadline = Instant::now() + DC_WAIT;
        while Instant::now() < deadline {
            let chats = self.ok("get_chatlist_entries", json!([acc, null, null, null]));
            for chat in chats.as_array().cloned().unwrap_or_default() {
                let ids = self.ok("get_message_ids", json!([acc, chat, false, false]));
                for id in ids.as_array().cloned().unwrap_or_default() {
                    if let Ok(m) = self.call("get_message", json!([acc, id]))
                        && check(&m)
                    {
                        return m;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{what}: did not happen within {DC_WAIT:?}");
    }
}
