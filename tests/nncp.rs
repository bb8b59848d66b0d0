//! Two hubs carry mail through two local NNCP nodes (Debian's `nncp`):
//! `cairn bundle export --nncp` queues a bundle with nncp-exec, a "USB
//! stick" directory carries the packets (nncp-xfer), and nncp-toss runs
//! `cairn bundle import -` as the exec handle beside the running hub.

mod common;
use common::RunAs;
use common::imap::Imap;
use common::nncp::{NncpNode, carry, nncp_tools};
use common::relay::{config_file, node_for, routed, send};
use common::smtp::{PASSWORD, inbox};
use std::path::Path;

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
    // Each node imports the other's bundles into its hub.
    let importer = |cfg: &Path, data: &Path| {
        let argv = [
            env!("CARGO_BIN_EXE_cairn"),
            "--config",
            cfg.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "bundle",
            "import",
            "-",
        ];
        vec![("cairn-bundle", argv.map(String::from).to_vec())]
    };
    na.write("b", &nb, &importer(&a_cfg, &a.report.data_dir));
    nb.write("a", &na, &importer(&b_cfg, &b.report.data_dir));

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

    tokio::task::block_in_place(|| {
        carry(&RunAs::current(), &na, &nb, &work.path().join("stick-1"))
    });
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
    tokio::task::block_in_place(|| {
        carry(&RunAs::current(), &nb, &na, &work.path().join("stick-2"))
    });
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
