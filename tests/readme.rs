//! The README's "Between hubs" and "By radio (LoRa)" sections followed as
//! a user would: every step is one of the README's `cairn` commands, run
//! as the command-line binary beside running hubs, and the mail is
//! written and read by phones (SMTP submission, IMAP) as Delta Chat does,
//! encrypted. Camp A → gateway G → camp B by bundles in folders and back;
//! A → B by radio with each modem of `cairn radio sim`.

mod common;

use common::relay::{Node, config_file, node_for, send};
use common::smtp::inbox;
use std::path::Path;
use std::time::Duration;

/// A hub's side of the README: its configuration file and the hub.
struct Camp<'a> {
    cfg: std::path::PathBuf,
    node: &'a Node,
}

impl Camp<'_> {
    /// `cairn ARGS…`, which must succeed; what it printed.
    fn ok(&self, args: &[&str]) -> String {
        let o = tokio::task::block_in_place(|| common::relay::cli(&self.cfg, self.node, args, b""));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success(),
            "{}: cairn {}: {said}",
            self.node.hub.name,
            args.join(" ")
        );
        said
    }

    fn card(&self) -> String {
        self.ok(&["node", "card"]).trim().to_string()
    }
}

/// Wait (up to two minutes: a radio at SF9 is slow) until `user` on `n`
/// has `count` messages.
async fn arrives(n: &Node, user: &str, count: usize) {
    for _ in 0..1200 {
        if inbox(&n.hub, user).await.len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{user} on {} never got message {count}", n.hub.name);
}

async fn outbox_empty(n: &Node) -> bool {
    n.hub.store.outbox().await.unwrap().is_empty()
}

/// "Between hubs": cards, peers, the default route to the gateway, and
/// bundles carried in folders (a USB stick) — A → G → B, the answer back,
/// and the acknowledgements until every outbox is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_hubs_by_folders_as_the_readme_says() {
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let g = node_for("gw", "gw.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    let work = tempfile::tempdir().unwrap();
    let camp = |name: &str, domain: &str, node| Camp {
        cfg: config_file(work.path(), name, domain),
        node,
    };
    let (ca, cg, cb) = (
        camp("camp-a", "camp-a.example", &a),
        camp("gw", "gw.example", &g),
        camp("camp-b", "camp-b.example", &b),
    );

    // Each hub adds the cards of those it exchanges mail with; a card
    // carries the link address, so each peer also gets a link uplink:
    // with --schedule manual it runs only on Sync now, and bundles carry
    // the mail (the README's way to carry only by bundles).
    let (card_a, card_g, card_b) = (ca.card(), cg.card(), cb.card());
    let manual = ["--schedule", "manual"];
    for (who, card) in [
        (&ca, &card_g),
        (&cg, &card_a),
        (&cg, &card_b),
        (&cb, &card_g),
    ] {
        let mut args = vec!["peer", "add", card.as_str()];
        args.extend(manual);
        who.ok(&args);
    }
    ca.ok(&["route", "add", "*", "gw"]);
    cb.ok(&["route", "add", "*", "gw"]);
    assert!(ca.ok(&["uplink", "list"]).contains("manual"));

    send(&a, "alice@camp-a.example", "bob@camp-b.example", "readme-1").await;
    let mut queued = String::new();
    for _ in 0..100 {
        queued = ca.ok(&["outbox", "list"]);
        if queued.contains("gw") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(queued.contains("gw"), "{queued}");

    // A stick goes A → G → B, then back B → G → A, twice: the message,
    // the answer, and the acknowledgements of both.
    let stick = work.path().join("stick");
    std::fs::create_dir(&stick).unwrap();
    let stick = stick.to_str().unwrap();
    let carry = |from: &Camp, peer: &str, to: &Camp| {
        from.ok(&["bundle", "export", "--peer", peer, "--out", stick]);
        to.ok(&["bundle", "import", stick, "--delete"]);
    };
    carry(&ca, "gw", &cg);
    carry(&cg, "camp-b", &cb);
    arrives(&b, "bob@camp-b.example", 1).await;
    send(&b, "bob@camp-b.example", "alice@camp-a.example", "readme-2").await;
    common::relay::routed(&b).await;
    carry(&cb, "gw", &cg);
    carry(&cg, "camp-a", &ca);
    arrives(&a, "alice@camp-a.example", 1).await;
    carry(&ca, "gw", &cg);
    carry(&cg, "camp-b", &cb);
    for n in [&a, &g, &b] {
        assert!(
            outbox_empty(n).await,
            "{} still holds {:?}",
            n.hub.name,
            n.hub.store.outbox().await.unwrap()
        );
    }
    assert!(
        std::fs::read_dir(stick).unwrap().all(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "--delete leaves no bundle on the stick"
    );
    // Each message arrived once.
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    assert_eq!(inbox(&a.hub, "alice@camp-a.example").await.len(), 1);
}

/// `cairn radio sim` as the README runs it: the devices it made, once
/// it printed them.
struct RadioSim {
    child: std::process::Child,
}

impl RadioSim {
    fn start(modem: &str, dir: &Path) -> RadioSim {
        let mut c = common::cairn(dir);
        c.args(["radio", "sim", "--modem", modem, "--radios", "a,b", "--dir"])
            .arg(dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // Stopped when dropped, also when the devices never come.
        let sim = RadioSim {
            child: c.spawn().expect("run cairn radio sim"),
        };
        for _ in 0..100 {
            if dir.join("a").exists() && dir.join("b").exists() {
                return sim;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cairn radio sim made no devices in {}", dir.display());
    }
}

impl Drop for RadioSim {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// "By radio (LoRa)": the simulator's two modems, the `[radio]` settings
/// of the README on both hubs, a `lora` uplink each, and a message A → B
/// and its answer, with each modem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_radio_as_the_readme_says_with_each_modem() {
    for modem in ["rnode", "rylr"] {
        let work = tempfile::tempdir().unwrap();
        let radios = work.path().join("radios");
        std::fs::create_dir(&radios).unwrap();
        let _sim = RadioSim::start(modem, &radios);
        let radio_toml = |name: &str, domain: &str, radio: &str| {
            let cfg = config_file(work.path(), name, domain);
            let text = std::fs::read_to_string(&cfg).unwrap()
                + &format!(
                    "[radio]\nport = \"{}\"\nmodem = \"{modem}\"\nregion = \"eu868\"\nsf = 9\n",
                    radios.join(radio).display()
                );
            std::fs::write(&cfg, text).unwrap();
            cfg
        };
        let cfg_a = radio_toml("camp-a", "camp-a.example", "a");
        let cfg_b = radio_toml("camp-b", "camp-b.example", "b");
        // The hubs run with the same file's settings.
        let from_file = |cfg: &Path| {
            let c =
                cairn::config::Config::load(Some(cfg), &Default::default(), &Default::default())
                    .unwrap();
            c.radio
        };
        let (ra, rb) = (from_file(&cfg_a), from_file(&cfg_b));
        let a = node_for("camp-a", "camp-a.example", |c| c.radio = ra).await;
        let b = node_for("camp-b", "camp-b.example", |c| c.radio = rb).await;
        let ca = Camp {
            cfg: cfg_a,
            node: &a,
        };
        let cb = Camp {
            cfg: cfg_b,
            node: &b,
        };
        let (card_a, card_b) = (ca.card(), cb.card());
        ca.ok(&["peer", "add", &card_b, "--schedule", "manual"]);
        cb.ok(&["peer", "add", &card_a, "--schedule", "manual"]);
        ca.ok(&["uplink", "add", "camp-b", "lora", "--schedule", "always"]);
        cb.ok(&["uplink", "add", "camp-a", "lora", "--schedule", "always"]);

        send(
            &a,
            "alice@camp-a.example",
            "bob@camp-b.example",
            "over the air",
        )
        .await;
        arrives(&b, "bob@camp-b.example", 1).await;
        send(&b, "bob@camp-b.example", "alice@camp-a.example", "and back").await;
        arrives(&a, "alice@camp-a.example", 1).await;
        let mut empty = false;
        for _ in 0..300 {
            if outbox_empty(&a).await && outbox_empty(&b).await {
                empty = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            empty,
            "{modem}: the acknowledgements did not empty the outboxes"
        );
        let history = ca.ok(&["uplink", "list"]);
        assert!(history.contains("lora"), "{modem}: {history}");
    }
}
