//! Two hubs carry mail through two local NNCP nodes (Debian's `nncp`):
//! `cairn bundle export --nncp` queues a bundle with nncp-exec, a "USB
//! stick" directory carries the packets (nncp-xfer), and nncp-toss runs
//! `cairn bundle import -` as the exec handle beside the running hub.

mod common;
use common::imap::Imap;
use common::relay::{config_file, node_for, routed, send};
use common::smtp::{PASSWORD, inbox};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nncp_tools() {
    common::debian_tool("/usr/bin/nncp-exec", "nncp");
}

fn run(args: &[&str], what: &str) -> Output {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {}: {e}", args[0]));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// One NNCP node: its keys (from nncp-cfgnew) and its directory.
struct NncpNode {
    dir: PathBuf,
    keys: HashMap<String, String>,
}

impl NncpNode {
    fn new(dir: PathBuf) -> NncpNode {
        std::fs::create_dir_all(dir.join("spool")).unwrap();
        let o = run(&["/usr/bin/nncp-cfgnew", "-nocomments"], "nncp-cfgnew");
        let text = String::from_utf8(o.stdout).unwrap();
        // The `self:` block holds every key as `name: value`.
        let block = &text[text.find("self:").unwrap()..text.find("neigh:").unwrap()];
        let keys = block
            .lines()
            .filter_map(|l| l.trim().split_once(": "))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();
        NncpNode { dir, keys }
    }
    fn cfg(&self) -> PathBuf {
        self.dir.join("nncp.hjson")
    }
    fn public(&self) -> String {
        ["id", "exchpub", "signpub", "noisepub"]
            .iter()
            .map(|k| format!("{k}: \"{}\"", self.keys[*k]))
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// Write the config: `peer` is the other node, whose bundles this one
    /// imports into the hub at `data` with `config`.
    fn write(&self, peer_name: &str, peer: &NncpNode, config: &Path, data: &Path) {
        let private = [
            "id", "exchpub", "exchprv", "signpub", "signprv", "noiseprv", "noisepub",
        ]
        .iter()
        .map(|k| format!("{k}: \"{}\"", self.keys[*k]))
        .collect::<Vec<_>>()
        .join(", ");
        let handle = serde_json::to_string(&[
            env!("CARGO_BIN_EXE_cairn"),
            "--config",
            config.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "bundle",
            "import",
            "-",
        ])
        .unwrap();
        let text = format!(
            "{{ spool: \"{spool}\", log: \"{log}\", noprogress: true,\n  self: {{ {private} }},\n  neigh: {{\n    self: {{ {me} }},\n    {peer_name}: {{ {them}, exec: {{ \"cairn-bundle\": {handle} }} }}\n  }}\n}}\n",
            spool = self.dir.join("spool").display(),
            log = self.dir.join("log").display(),
            me = self.public(),
            them = peer.public(),
        );
        std::fs::write(self.cfg(), text).unwrap();
    }
    fn cfg_str(&self) -> String {
        self.cfg().to_str().unwrap().to_string()
    }
}

/// Move everything `from` has queued for `to` through a directory, then
/// let `to` toss it (which runs the exec handle).
fn carry(from: &NncpNode, to: &NncpNode, stick: &Path) {
    std::fs::create_dir_all(stick).unwrap();
    let (f, t) = (from.cfg_str(), to.cfg_str());
    let stick = stick.to_str().unwrap();
    run(
        &[
            "/usr/bin/nncp-xfer",
            "-cfg",
            &f,
            "-quiet",
            "-mkdir",
            "-tx",
            stick,
        ],
        "nncp-xfer -tx",
    );
    run(
        &["/usr/bin/nncp-xfer", "-cfg", &t, "-quiet", "-rx", stick],
        "nncp-xfer -rx",
    );
    run(
        &["/usr/bin/nncp-toss", "-cfg", &t, "-quiet", "-seen"],
        "nncp-toss",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nncp_carries_bundles_both_ways_into_running_hubs() {
    nncp_tools();
    let work = tempfile::tempdir().unwrap();
    let a_node = node_for("camp-a", "camp-a.example", |_| {}).await;
    let b_node = node_for("camp-b", "camp-b.example", |_| {}).await;
    let (a, b) = (&a_node.hub, &b_node.hub);
    a.relay.add_peer(&b.relay.card(vec![]), None).await.unwrap();
    b.relay.add_peer(&a.relay.card(vec![]), None).await.unwrap();
    let a_cfg = config_file(work.path(), "camp-a", "camp-a.example");
    let b_cfg = config_file(work.path(), "camp-b", "camp-b.example");

    let na = NncpNode::new(work.path().join("nncp-a"));
    let nb = NncpNode::new(work.path().join("nncp-b"));
    na.write("b", &nb, &a_cfg, &a.report.data_dir);
    nb.write("a", &na, &b_cfg, &b.report.data_dir);

    // alice on A writes to bob on B.
    send(&a_node, "alice@camp-a.example", "bob@camp-b.example", "n1").await;
    routed(&a_node).await;

    // bob sits in IDLE on B while the bundle arrives through NNCP.
    let imap = b.endpoint(cairn::app::IMAP_TLS).unwrap();
    let (mut bob, _) = Imap::tls(imap, b).await;
    assert!(bob.login("bob@camp-b.example", PASSWORD).await.ok());
    assert!(bob.cmd("SELECT INBOX").await.ok());
    bob.idle().await;

    let cli = |cfg: &Path, data: &Path, args: &[&str]| {
        let mut c = common::cairn(work.path());
        c.arg("--config")
            .arg(cfg)
            .arg("--data")
            .arg(data)
            .args(args);
        common::run(&mut c)
    };
    let o = tokio::task::block_in_place(|| {
        cli(
            &a_cfg,
            &a.report.data_dir,
            &[
                "bundle",
                "export",
                "--peer",
                "camp-b",
                "--nncp",
                "b",
                "--nncp-cfg",
                &na.cfg_str(),
            ],
        )
    });
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("1 items"),
        "{}",
        common::stderr(&o)
    );
    assert_eq!(a.store.outbox().await.unwrap()[0].state, "in-flight");

    tokio::task::block_in_place(|| carry(&na, &nb, &work.path().join("stick-1")));
    bob.wait_for("* 1 EXISTS", "bob's IDLE sees the mail NNCP brought")
        .await;
    assert_eq!(inbox(b, "bob@camp-b.example").await.len(), 1);

    // The acknowledgement goes back the same way and empties A's outbox.
    let o = tokio::task::block_in_place(|| {
        cli(
            &b_cfg,
            &b.report.data_dir,
            &[
                "bundle",
                "export",
                "--peer",
                "camp-a",
                "--nncp",
                "a",
                "--nncp-cfg",
                &nb.cfg_str(),
            ],
        )
    });
    assert!(o.status.success(), "{}", common::stderr(&o));
    tokio::task::block_in_place(|| carry(&nb, &na, &work.path().join("stick-2")));
    assert!(
        a.store.outbox().await.unwrap().is_empty(),
        "A's outbox is empty"
    );

    // nncp-exec failing (an unknown node) leaves the items queued for next time.
    send(&a_node, "alice@camp-a.example", "bob@camp-b.example", "n2").await;
    routed(&a_node).await;
    let o = tokio::task::block_in_place(|| {
        cli(
            &a_cfg,
            &a.report.data_dir,
            &[
                "bundle",
                "export",
                "--peer",
                "camp-b",
                "--nncp",
                "nobody",
                "--nncp-cfg",
                &na.cfg_str(),
            ],
        )
    });
    assert_eq!(o.status.code(), Some(75), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("nncp-exec nobody"),
        "{}",
        common::stderr(&o)
    );
    assert_eq!(a.store.outbox().await.unwrap()[0].state, "queued");

    for n in [a_node, b_node] {
        n.hub.shutdown().await;
    }
}
