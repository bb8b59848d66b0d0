//! The classic stack: Debian's Exim hands mail for a hub user to `cairn
//! bsmtp import` through a batch SMTP pipe (directly, and through two NNCP
//! nodes), and the hub hands mail for the Exim user back as batch SMTP that
//! `exim -bS` takes. Delta Chat on the hub's side reads and answers it.
//!
//! Exim will not run a pipe as root, so as root the hub's side runs as a
//! service user (see `common::RunAs`), as on the appliance.

mod common;
use common::RunAs;
use common::classic::{Exim, exim_tools};
use common::nncp::{NncpNode, carry, nncp_tools};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A hub run as processes only (`cairn …` as `who`); this test process
/// opens its store only when none of them runs.
struct Hub {
    cfg: PathBuf,
    data: PathBuf,
    /// The `cairn` binary, where `who` can run it.
    bin: PathBuf,
}

impl Hub {
    fn new(root: &Path, who: &RunAs) -> Hub {
        let dir = root.join("hub");
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("cairn.toml");
        // Classic mail is not OpenPGP-encrypted: this hub lets it pass.
        std::fs::write(
            &cfg,
            "[hub]\nname = \"camp\"\ndomains = [\"hub.example\"]\n[mail]\nrequire_encryption = false\n",
        )
        .unwrap();
        let bin = who.reachable(Path::new(env!("CARGO_BIN_EXE_cairn")), &dir);
        who.own(&dir);
        Hub {
            cfg,
            data: dir.join("data"),
            bin,
        }
    }

    fn cmd(&self, who: &RunAs) -> Command {
        let mut c = who.command(&self.bin);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CAIRN_LOG", "warn")
            .arg("--config")
            .arg(&self.cfg)
            .arg("--data")
            .arg(&self.data);
        c
    }

    fn cli_env(&self, who: &RunAs, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd(who);
        c.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("run cairn");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn cli(&self, who: &RunAs, args: &[&str], stdin: &[u8]) -> Output {
        self.cli_env(who, args, stdin, &[])
    }

    /// Run a command that must succeed; its stdout and stderr.
    fn ok(&self, who: &RunAs, args: &[&str]) -> String {
        let o = self.cli(who, args, b"");
        let text = format!("{}{}", common::stdout(&o), common::stderr(&o));
        assert!(o.status.success(), "cairn {args:?} failed: {text}");
        text
    }

    /// The importer's argv, as an Exim pipe command or NNCP exec handle.
    fn importer(&self, peer: Option<&str>) -> Vec<String> {
        let mut v = vec![
            self.bin.to_str().unwrap().to_string(),
            "--config".into(),
            self.cfg.to_str().unwrap().into(),
            "--data".into(),
            self.data.to_str().unwrap().into(),
            "bsmtp".into(),
            "import".into(),
        ];
        if let Some(p) = peer {
            v.extend(["--peer".into(), p.into()]);
        }
        v
    }

    /// Add an account; its generated password.
    fn account(&self, who: &RunAs, address: &str) -> String {
        let out = self.ok(who, &["account", "add", address]);
        out.split("with password ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no password in: {out}"))
            .to_string()
    }

    /// The bodies in `address`'s INBOX (no hub process may be running).
    fn inbox(&self, address: &str) -> Vec<String> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = cairn::store::Store::open(&self.data).await.unwrap();
            let a = cairn::domain::Address::parse(address).unwrap();
            let row = store.account_find(&a).await.unwrap().unwrap();
            let mb = store.inbox(row.id()).await.unwrap();
            let mut out = Vec::new();
            for m in store.messages(mb).await.unwrap() {
                let body = store.blob_read(&m.blob_hash).await.unwrap();
                out.push(String::from_utf8_lossy(&body).into_owned());
            }
            store.close().await;
            out
        })
    }

    /// `cairn bundle export --peer exim --out -`: the batch for Exim.
    fn batch_for(&self, who: &RunAs, peer: &str) -> Vec<u8> {
        let o = self.cli(
            who,
            &["bundle", "export", "--peer", peer, "--out", "-"],
            b"",
        );
        assert!(o.status.success(), "export: {}", common::stderr(&o));
        o.stdout
    }
}

/// A work directory others (the service user) can enter.
fn workdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

const FROM_BOB: &str = "From: Bob <bob@exim.example>\nTo: alice@hub.example\nSubject: from the valley\nMessage-ID: <valley-1@exim.example>\n\n.a line that starts with a dot\nhello from the classic side\n";

#[test]
fn exim_and_a_hub_exchange_mail_through_a_bsmtp_pipe() {
    exim_tools();
    let who = RunAs::service();
    let work = workdir();
    let hub = Hub::new(work.path(), &who);
    hub.account(&who, "alice@hub.example");
    let added = hub.ok(
        &who,
        &["peer", "add-classic", "exim", "--domain", "exim.example"],
    );
    assert!(added.contains("route: exim.example -> exim"), "{added}");
    let exim = Exim::new(
        &work.path().join("exim"),
        &who,
        "exim.example",
        &["bob"],
        "hub.example",
        &hub.importer(Some("exim")),
    );

    // Bob writes to alice and to someone the hub does not have.
    exim.send(
        &RunAs::current(),
        "bob@exim.example",
        &["alice@hub.example", "nobody@hub.example"],
        FROM_BOB,
    );
    let log = exim.log();
    for r in ["alice@hub.example", "nobody@hub.example"] {
        assert!(
            log.lines()
                .any(|l| l.contains("=> ") && l.contains(&format!("<{r}> R=to_hub T=hub_bsmtp"))),
            "Exim handed {r} over: {log}"
        );
    }
    let alice = hub.inbox("alice@hub.example");
    assert_eq!(alice.len(), 1, "{alice:?}");
    assert!(
        alice[0].contains("\r\n.a line that starts with a dot\r\nhello from the classic side\r\n"),
        "dot-unstuffed once, CRLF: {:?}",
        alice[0]
    );
    assert!(
        alice[0].contains("by exim.example"),
        "Exim's Received: kept"
    );

    // The unknown recipient's bounce goes back to Bob through Exim.
    let outbox = hub.ok(&who, &["outbox", "list"]);
    assert!(outbox.contains("<> -> bob@exim.example"), "{outbox}");
    let batch = hub.batch_for(&who, "exim");
    let text = String::from_utf8_lossy(&batch);
    assert!(
        text.starts_with("MAIL FROM:<>\r\nRCPT TO:<bob@exim.example>\r\nDATA\r\n"),
        "{text}"
    );
    let o = exim.take_bsmtp(&RunAs::current(), &batch);
    assert!(o.status.success(), "exim -bS: {}", common::stderr(&o));
    let bob = exim.mailbox("bob");
    assert_eq!(bob.len(), 1, "{}", exim.log());
    assert!(bob[0].contains("nobody@hub.example") && bob[0].contains("5.1.1"));
    assert!(bob[0].contains("Return-path: <>"), "a bounce: {}", bob[0]);

    // Handed over: the outbox is empty and the peer shows both exchanges.
    assert!(hub.ok(&who, &["outbox", "list"]).contains("empty"));
    let peers = hub.ok(&who, &["peer", "list"]);
    assert!(
        peers.contains("exim  classic (batch SMTP)")
            && !peers.contains("sent never")
            && !peers.contains("received never"),
        "{peers}"
    );
}

/// A batch with two messages and a third with an unknown recipient:
/// LF and CRLF, dot-stuffing, no newline at the very end.
const BATCH: &[u8] = b"HELO exim.example\nMAIL FROM:<bob@exim.example>\nRCPT TO:<alice@hub.example>\nDATA\nSubject: one\n\n..dotted\n.\nMAIL FROM:<bob@exim.example> BODY=8BITMIME\r\nRCPT TO:<alice@hub.example> NOTIFY=FAILURE\r\nRCPT TO:<carol@hub.example>\r\nDATA\r\nSubject: two\r\n\r\n8-bit caf\xc3\xa9\r\n.\r\nMAIL FROM:<bob@exim.example>\nRCPT TO:<alice@hub.example>\nRCPT TO:<nobody@hub.example>\nDATA\nSubject: three\n\nlast\n.";

#[test]
fn a_batch_run_again_or_cut_short_delivers_each_message_once() {
    let me = RunAs::current();
    let work = workdir();
    let hub = Hub::new(work.path(), &me);
    hub.account(&me, "alice@hub.example");
    hub.account(&me, "carol@hub.example");
    hub.ok(
        &me,
        &[
            "peer",
            "add-classic",
            "exim",
            "--domain",
            "exim.example",
            "--nncp",
            "EXIMNODE",
        ],
    );
    let import = |batch: &[u8], env: &[(&str, &str)]| {
        let o = hub.cli_env(&me, &["bsmtp", "import"], batch, env);
        (o.status.code(), common::stderr(&o))
    };

    // Cut inside the second message: the first is taken, the second not.
    let cut = BATCH.windows(5).position(|w| w == b"8-bit").unwrap();
    let (code, err) = import(&BATCH[..cut], &[]);
    assert_eq!(code, Some(75), "{err}");
    assert!(
        err.contains("ends inside the message from <bob@exim.example> that starts on line 9"),
        "{err}"
    );
    assert_eq!(hub.inbox("alice@hub.example").len(), 1);
    assert_eq!(hub.inbox("carol@hub.example").len(), 0);

    // The whole batch: the first is not taken again.
    let (code, err) = import(BATCH, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("3 messages (2 delivered here, 0 passed on, 1 already had"),
        "{err}"
    );
    assert!(
        err.contains("line 17: <nobody@hub.example> refused (5.1.1"),
        "each failure reported with its line: {err}"
    );
    let alice = hub.inbox("alice@hub.example");
    assert_eq!(alice.len(), 3);
    assert!(alice[0].ends_with("\r\n\r\n.dotted\r\n"), "{:?}", alice[0]);
    assert!(alice[1].contains("8-bit caf\u{e9}\r\n"), "{:?}", alice[1]);
    assert!(alice[2].ends_with("\r\n\r\nlast\r\n"), "{:?}", alice[2]);
    assert_eq!(hub.inbox("carol@hub.example").len(), 1);
    let outbox = hub.ok(&me, &["outbox", "list"]);
    assert_eq!(
        outbox.matches("bob@exim.example").count(),
        1,
        "one bounce: {outbox}"
    );

    // Again, as NNCP would after a lost acknowledgement: nothing doubles.
    let (code, err) = import(BATCH, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("3 already had"), "{err}");
    assert_eq!(hub.inbox("alice@hub.example").len(), 3);
    // (id, recipient) of each item; the age column moves on.
    let items = |list: &str| -> Vec<(String, String)> {
        list.lines()
            .filter_map(|l| {
                let t: Vec<&str> = l.split_whitespace().collect();
                Some((t.first()?.to_string(), t.last()?.to_string()))
            })
            .collect()
    };
    assert_eq!(items(&hub.ok(&me, &["outbox", "list"])), items(&outbox));

    // From the peer (named, or known by its NNCP node) no one else may send.
    let forged = b"MAIL FROM:<mallory@elsewhere.example>\nRCPT TO:<alice@hub.example>\nDATA\nSubject: forged\n\nx\n.\n";
    for env in [&[][..], &[("NNCP_SENDER", "EXIMNODE")][..]] {
        let o = if env.is_empty() {
            hub.cli(&me, &["bsmtp", "import", "--peer", "exim"], forged)
        } else {
            hub.cli_env(&me, &["bsmtp", "import"], forged, env)
        };
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(
            err.contains("exim may not send as <mallory@elsewhere.example>"),
            "{err}"
        );
    }
    assert_eq!(hub.inbox("alice@hub.example").len(), 3);

    // An NNCP node that is no peer is a stranger, as on the MX port: it
    // may not send as this hub's users. (The hub's own command line may.)
    let hosted =
        b"MAIL FROM:<alice@hub.example>\nRCPT TO:<alice@hub.example>\nDATA\nSubject: me?\n\nx\n.\n";
    let o = hub.cli_env(
        &me,
        &["bsmtp", "import"],
        hosted,
        &[("NNCP_SENDER", "NOBODY")],
    );
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("<alice@hub.example> is an address of this hub"),
        "{err}"
    );
    assert_eq!(hub.inbox("alice@hub.example").len(), 3);

    // From anyone, as on the MX port: no relaying to domains not routed here.
    let relay =
        b"MAIL FROM:<bob@exim.example>\nRCPT TO:<x@far.example>\nDATA\nSubject: r\n\nx\n.\n";
    let (code, err) = import(relay, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("far.example is not a domain this hub serves or routes"),
        "{err}"
    );

    // A malformed transaction and a message over the size limit bounce,
    // once however often the batch runs.
    let mut spoilt_and_big = b"MAIL FROM:<bob@exim.example>\nRCPT TO:<alice@hub.example>\nXYZZY\nDATA\nbody\n.\nMAIL FROM:<bob@exim.example>\nRCPT TO:<alice@hub.example>\nDATA\nSubject: big\n\n".to_vec();
    spoilt_and_big.extend(b"0123456789abcdef\n".repeat(1100));
    spoilt_and_big.extend(b".\n");
    let small = [("CAIRN_LIMITS_MAX_MESSAGE_SIZE", "16 KiB")];
    for round in 0..2 {
        let (code, err) = import(&spoilt_and_big, &small);
        assert_eq!(code, Some(0), "both bounced: {err}");
        assert!(
            err.contains(
                "line 3: unknown command `XYZZY`; the message from <bob@exim.example> was skipped"
            ) && err.contains("line 7: message exceeds the size limit of 16384 bytes"),
            "{err}"
        );
        assert!(
            err.contains(&format!("{} with bounces", if round == 0 { 2 } else { 0 })),
            "round {round}: {err}"
        );
    }
    let bounces = hub.ok(&me, &["outbox", "list"]);
    // Two from before (nobody@, far.example) and these two.
    assert_eq!(
        bounces.matches("<> -> bob@exim.example").count(),
        4,
        "{bounces}"
    );
    assert_eq!(hub.inbox("alice@hub.example").len(), 3);

    // Not batch SMTP at all: kept by the carrier (65), nothing taken.
    let (code, err) = import(b"Subject: a bare message\n\nhello\n", &[]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("not batch SMTP"), "{err}");

    // A setup mistake keeps the batch for later (75), it does not bounce.
    let o = hub.cli(&me, &["bsmtp", "import", "--peer", "nobody"], BATCH);
    assert_eq!(o.status.code(), Some(75), "{}", common::stderr(&o));
    assert!(common::stderr(&o).contains("no peer named nobody"));
    assert_eq!(hub.inbox("alice@hub.example").len(), 3);

    // The bounces leave as one batch SMTP file in a folder (a USB stick).
    let stick = work.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    let out = hub.ok(
        &me,
        &[
            "bundle",
            "export",
            "--peer",
            "exim",
            "--out",
            stick.to_str().unwrap(),
        ],
    );
    assert!(out.contains("batch SMTP for exim: 4 messages"), "{out}");
    let files = common::listing(&stick);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".bsmtp"), "{files:?}");
    let batch = std::fs::read(stick.join(&files[0])).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&batch)
            .matches("MAIL FROM:<>\r\n")
            .count(),
        4
    );
    assert!(batch.ends_with(b".\r\nQUIT\r\n"));
    assert!(hub.ok(&me, &["outbox", "list"]).contains("empty"));
}

#[test]
fn exim_and_a_hub_over_two_nncp_nodes() {
    exim_tools();
    nncp_tools();
    let who = RunAs::service();
    let work = workdir();
    let hub = Hub::new(work.path(), &who);
    hub.account(&who, "alice@hub.example");
    let e = NncpNode::new(work.path().join("nncp-exim"));
    let c = NncpNode::new(work.path().join("nncp-hub"));
    // The hub knows the Exim side by its NNCP node id.
    hub.ok(
        &who,
        &[
            "peer",
            "add-classic",
            "exim",
            "--domain",
            "exim.example",
            "--nncp",
            e.id(),
        ],
    );
    let exim = Exim::new(
        &work.path().join("exim"),
        &who,
        "exim.example",
        &["bob"],
        "hub.example",
        &[
            "/usr/bin/nncp-exec".into(),
            "-cfg".into(),
            e.cfg_str(),
            "-quiet".into(),
            "-noprogress".into(),
            "hub".into(),
            "rsmtp".into(),
        ],
    );
    // Each side's `rsmtp` handle feeds its own mail system, as in NNCP's
    // Exim integration: the hub's importer, and Exim's `-bS`.
    c.write("exim", &e, &[("rsmtp", hub.importer(None))]);
    e.write("hub", &c, &[("rsmtp", exim.bsmtp_argv())]);
    who.own(&e.dir);
    who.own(&c.dir);

    exim.send(
        &RunAs::current(),
        "bob@exim.example",
        &["alice@hub.example", "nobody@hub.example"],
        FROM_BOB,
    );
    assert!(
        hub.inbox("alice@hub.example").is_empty(),
        "not before carrying"
    );
    carry(&who, &e, &c, &work.path().join("stick-1"));
    let alice = hub.inbox("alice@hub.example");
    assert_eq!(alice.len(), 1, "{}", exim.log());
    assert!(alice[0].contains("hello from the classic side"));
    // $NNCP_SENDER named the peer: its last exchange is recorded.
    assert!(!hub.ok(&who, &["peer", "list"]).contains("received never"));

    // The bounce for nobody@ goes back as an NNCP job for the rsmtp handle.
    let out = hub.ok(
        &who,
        &[
            "bundle",
            "export",
            "--peer",
            "exim",
            "--nncp",
            "--nncp-cfg",
            &c.cfg_str(),
        ],
    );
    assert!(out.contains("batch SMTP for exim: 1 messages"), "{out}");
    assert!(exim.mailbox("bob").is_empty());
    carry(&who, &c, &e, &work.path().join("stick-2"));
    let bob = exim.mailbox("bob");
    assert_eq!(bob.len(), 1, "{}", exim.log());
    assert!(bob[0].contains("nobody@hub.example"));
}

#[test]
fn delta_chat_on_the_hub_talks_with_an_exim_user() {
    use common::deltachat::Rpc;
    use serde_json::json;
    exim_tools();
    let who = RunAs::service();
    let work = workdir();
    let hub = Hub::new(work.path(), &who);
    let password = hub.account(&who, "alice@hub.example");
    hub.ok(
        &who,
        &["peer", "add-classic", "exim", "--domain", "exim.example"],
    );
    let exim = Exim::new(
        &work.path().join("exim"),
        &who,
        "exim.example",
        &["bob"],
        "hub.example",
        &hub.importer(Some("exim")),
    );
    let mut serve = hub.cmd(&who);
    common::port0(&mut serve);
    let running = common::serve(serve);
    let port = |prefix: &str| {
        running
            .printed
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` in {}", running.printed_text()))
            .port()
    };
    let imap = port("imap (TLS): ");
    let smtp = running.smtp_tls.unwrap().port();

    let mut rpc = Rpc::spawn();
    let alice = rpc.account_offline("alice@hub.example", &password, imap, smtp);
    // Classic mail is unencrypted: Delta Chat must be told to show it.
    rpc.ok("set_config", json!([alice, "force_encryption", "0"]));
    rpc.start(alice);

    exim.send(
        &RunAs::current(),
        "bob@exim.example",
        &["alice@hub.example"],
        "From: Bob <bob@exim.example>\nTo: alice@hub.example\nSubject: hello\nMessage-ID: <dc-1@exim.example>\nDate: Thu, 26 Nov 2026 12:00:00 +0000\n\nhello from the valley\n",
    );
    let m = rpc.wait_message(alice, "alice sees Bob's mail from Exim", |m| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.contains("hello from the valley"))
    });
    assert_eq!(m["sender"]["address"], "bob@exim.example");

    // Alice answers; the hub queues it for the classic peer.
    let chat = m["chatId"].clone();
    rpc.ok("accept_chat", json!([alice, chat]));
    rpc.ok(
        "misc_send_text_message",
        json!([alice, chat, "hello from the campsite"]),
    );
    let mut queued = String::new();
    for _ in 0..600 {
        queued = hub.ok(&who, &["outbox", "list"]);
        if queued.contains("queued") && queued.contains("bob@exim.example") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(queued.contains("-> bob@exim.example"), "{queued}");
    let batch = hub.batch_for(&who, "exim");
    let o = exim.take_bsmtp(&RunAs::current(), &batch);
    assert!(o.status.success(), "exim -bS: {}", common::stderr(&o));
    let bob = exim.mailbox("bob");
    assert_eq!(bob.len(), 1, "{}", exim.log());
    assert!(bob[0].contains("hello from the campsite"), "{}", bob[0]);
    assert!(bob[0].contains("Return-path: <alice@hub.example>"));
    drop(rpc);
    let (clean, _) = running.stop("TERM");
    assert!(clean);
}

/// Postfix's way (NNCP's Postfix integration): one message per job, the
/// recipients as arguments and the sender in a leading `From ` line that
/// pipe(8)'s `F` flag writes — or `-f SENDER`. Here a second hub's `cairn
/// sendmail` stands in for Postfix's sendmail(1) on the far side.
#[test]
fn postfix_style_sendmail_jobs_both_ways_over_nncp() {
    nncp_tools();
    let me = RunAs::current();
    let work = workdir();
    let hub = Hub::new(work.path(), &me);
    hub.account(&me, "alice@hub.example");
    let valley_dir = work.path().join("valley");
    std::fs::create_dir_all(&valley_dir).unwrap();
    let valley = Hub::new(&valley_dir, &me);
    std::fs::write(
        &valley.cfg,
        "[hub]\nname = \"valley\"\ndomains = [\"valley.example\"]\n[mail]\nrequire_encryption = false\n",
    )
    .unwrap();
    valley.account(&me, "bob@valley.example");

    let sendmail = |h: &Hub, args: &[&str], stdin: &str| {
        let mut a = vec!["sendmail"];
        a.extend(args);
        let o = h.cli(&me, &a, stdin.as_bytes());
        (o.status.code(), common::stderr(&o))
    };
    let with_from_line =
        "From bob@valley.example  Thu Nov 26 12:00:00 2026\nSubject: p\n\nhello from postfix\n";
    let (code, err) = sendmail(&hub, &["alice@hub.example"], with_from_line);
    assert_eq!(code, Some(0), "{err}");
    let alice = hub.inbox("alice@hub.example");
    assert_eq!(alice.len(), 1);
    assert!(
        alice[0].starts_with("Subject: p\r\n") && alice[0].ends_with("hello from postfix\r\n"),
        "the From_ line is the envelope, not the message: {:?}",
        alice[0]
    );
    // The same job again (NNCP re-tossing it): nothing doubles.
    let (code, err) = sendmail(&hub, &["alice@hub.example"], with_from_line);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("1 already had"), "{err}");
    assert_eq!(hub.inbox("alice@hub.example").len(), 1);
    // -f names the sender; -oi and -i are accepted.
    let (code, err) = sendmail(
        &hub,
        &[
            "-oi",
            "-i",
            "-f",
            "carol@valley.example",
            "alice@hub.example",
        ],
        "Subject: q\n\nsecond\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(hub.inbox("alice@hub.example").len(), 2);
    // No sender at all: refused, kept by the carrier (65), nothing taken.
    let (code, err) = sendmail(&hub, &["alice@hub.example"], "Subject: r\n\nno sender\n");
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("no sender"), "{err}");
    assert_eq!(hub.inbox("alice@hub.example").len(), 2);

    // The hub sends to the Postfix-style node: `nncp-exec NODE sendmail
    // -f SENDER RCPT…` with the message as the job.
    let a = NncpNode::new(work.path().join("nncp-hub"));
    let v = NncpNode::new(work.path().join("nncp-valley"));
    hub.ok(
        &me,
        &[
            "peer",
            "add-classic",
            "valley",
            "--domain",
            "valley.example",
            "--nncp",
            "valley",
        ],
    );
    let mut far_sendmail = valley.importer(None);
    far_sendmail.truncate(far_sendmail.len() - 2);
    far_sendmail.push("sendmail".into());
    a.write("valley", &v, &[]);
    v.write("hub", &a, &[("sendmail", far_sendmail)]);
    // alice's answer reaches the hub's outbox (routed to valley).
    let (code, err) = sendmail(
        &hub,
        &["-f", "alice@hub.example", "bob@valley.example"],
        "From: alice@hub.example\nSubject: back\n\n.hello from the campsite\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let out = hub.ok(
        &me,
        &[
            "bundle",
            "export",
            "--peer",
            "valley",
            "--nncp",
            "--nncp-handle",
            "sendmail",
            "--nncp-cfg",
            &a.cfg_str(),
        ],
    );
    assert!(out.contains("1 messages"), "{out}");
    assert!(hub.ok(&me, &["outbox", "list"]).contains("empty"));
    carry(&me, &a, &v, &work.path().join("stick"));
    let bob = valley.inbox("bob@valley.example");
    assert_eq!(bob.len(), 1);
    assert!(
        bob[0].contains("\r\n.hello from the campsite\r\n"),
        "{:?}",
        bob[0]
    );
}

/// A Filespooler queue whose command is the importer: the same batch queued
/// twice (a sender that resent it) is delivered once.
#[test]
fn a_filespooler_queue_runs_the_importer() {
    common::debian_tool("/usr/bin/fspl", "filespooler");
    let me = RunAs::current();
    let work = workdir();
    let hub = Hub::new(work.path(), &me);
    hub.account(&me, "alice@hub.example");
    hub.account(&me, "carol@hub.example");
    let queue = work.path().join("queue");
    let seq = work.path().join("seq");
    let fspl = |args: &[&str], stdin: &[u8]| {
        let mut child = Command::new("/usr/bin/fspl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "fspl {args:?}: {}", common::stderr(&o));
        o.stdout
    };
    fspl(&["queue-init", "-q", queue.to_str().unwrap()], b"");
    for _ in 0..2 {
        let job = fspl(&["prepare", "-s", seq.to_str().unwrap(), "-i", "-"], BATCH);
        fspl(&["queue-write", "-q", queue.to_str().unwrap()], &job);
    }
    let mut args = vec!["queue-process", "-q", queue.to_str().unwrap()];
    let importer = hub.importer(None);
    args.push(&importer[0]);
    args.push("--");
    args.extend(importer[1..].iter().map(String::as_str));
    fspl(&args, b"");
    assert_eq!(hub.inbox("alice@hub.example").len(), 3);
    assert_eq!(hub.inbox("carol@hub.example").len(), 1);
    assert_eq!(
        std::fs::read_dir(queue.join("jobs")).unwrap().count(),
        0,
        "both jobs done"
    );
}

/// The seed of the `bsmtp_batch` fuzz target (a step byte, then a batch)
/// is a valid batch of two messages.
#[test]
fn the_fuzz_seed_is_a_valid_batch() {
    use cairn::relay::bsmtp::{Decoder, Event};
    let seed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus/bsmtp_batch/seed"),
    )
    .unwrap();
    let batch = &seed[1..];
    let mut d = Decoder::new();
    let mut used = 0;
    let mut messages = 0;
    loop {
        let (n, ev) = d.next(&batch[used..], true);
        used += n;
        match ev {
            Event::End => messages += 1,
            Event::Refused(p) => panic!("{p:?}"),
            Event::Truncated(e) => panic!("truncated: {e:?}"),
            Event::Finished => break,
            _ => {}
        }
    }
    assert_eq!(messages, 2);
}
