//! Uplinks and their schedules, driven by a clock the test sets; "Sync
//! now" and `cairn sync` over every ready uplink.

mod common;
use common::relay::*;
use common::smtp::inbox;

/// Monday 2026-11-23 00:00 UTC.
const MONDAY: i64 = 1_795_392_000;
const MIN: i64 = 60;
const HOUR: i64 = 3600;

#[tokio::test]
async fn a_window_opens_a_sync_runs_and_after_it_closes_nothing_syncs() {
    let (a, b) = pair(|_| {}).await;
    let syncer = &a.hub.syncer;
    let up = syncer
        .add("camp-b", "link", "", "Mon 03:00-03:30", false)
        .await
        .unwrap();
    assert_eq!(up.schedule, "mon 03:00-03:30");
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;

    // Before the window: nothing starts.
    assert!(
        syncer
            .tick(MONDAY + 2 * HOUR + 59 * MIN)
            .await
            .unwrap()
            .is_empty()
    );
    syncer.idle().await;
    assert!(inbox(&b.hub, "bob@camp-b.example").await.is_empty());

    // The window opens: the queued mail goes.
    let started = syncer.tick(MONDAY + 3 * HOUR).await.unwrap();
    assert_eq!(started, vec![up.id]);
    syncer.idle().await;
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    let runs = a.hub.store.sync_history(10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].items_out, runs[0].error.as_deref()), (1, None));
    let row = a.hub.store.uplink(up.id).await.unwrap().unwrap();
    assert!(row.last_ok_at.is_some() && row.last_error.is_none());

    // Inside the window, with nothing new, the next tick waits.
    assert!(
        syncer
            .tick(MONDAY + 3 * HOUR + MIN / 2)
            .await
            .unwrap()
            .is_empty()
    );

    // After the window, new mail waits for the next one.
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m2").await;
    routed(&a).await;
    for t in [3 * HOUR + 30 * MIN, 4 * HOUR, 24 * HOUR + 3 * HOUR] {
        assert!(syncer.tick(MONDAY + t).await.unwrap().is_empty(), "{t}");
    }
    syncer.idle().await;
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    assert_eq!(a.hub.store.sync_history(10).await.unwrap().len(), 1);

    // A week later the window opens again.
    let next = MONDAY + 7 * 24 * HOUR + 3 * HOUR + 10 * MIN;
    assert_eq!(syncer.tick(next).await.unwrap(), vec![up.id]);
    syncer.idle().await;
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 2);

    // Manual: never by the clock; Sync now still runs it.
    syncer.set_schedule(up.id, "manual").await.unwrap();
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m3").await;
    routed(&a).await;
    assert!(syncer.tick(next + HOUR).await.unwrap().is_empty());
    let round = syncer.sync_now(None).await.unwrap();
    let mut board = syncer.board();
    let b_now = board
        .wait_for(|b| b.round == round && !b.round_running)
        .await
        .unwrap()
        .clone();
    let (ok, failed, counts) = b_now.round_summary();
    assert_eq!((ok, failed, counts.items_out), (1, 0, 1));
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 3);

    a.hub.shutdown().await;
    b.hub.shutdown().await;
}

#[tokio::test]
async fn an_appearing_folder_is_synced_when_it_appears() {
    let (a, b) = pair(|_| {}).await;
    let stick = tempfile::tempdir().unwrap();
    let mount = stick.path().join("stick");
    let up = a
        .hub
        .syncer
        .add("camp-b", "folder", mount.to_str().unwrap(), "appear", false)
        .await
        .unwrap();
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    assert!(a.hub.syncer.tick(MONDAY).await.unwrap().is_empty());

    std::fs::create_dir(&mount).unwrap();
    assert_eq!(a.hub.syncer.tick(MONDAY + MIN).await.unwrap(), vec![up.id]);
    a.hub.syncer.idle().await;
    let left = bundles(&mount);
    assert_eq!(left.len(), 1, "a bundle for B is on the stick");
    // Still there, nothing new: no second bundle.
    assert!(
        a.hub
            .syncer
            .tick(MONDAY + 10 * MIN)
            .await
            .unwrap()
            .is_empty()
    );

    // B takes the stick: the bundle is imported and removed.
    let on_b = b
        .hub
        .syncer
        .add("camp-a", "folder", mount.to_str().unwrap(), "manual", false)
        .await
        .unwrap();
    b.hub.syncer.sync_now(Some("camp-a")).await.unwrap();
    b.hub.syncer.idle().await;
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    let history = b.hub.store.sync_history(1).await.unwrap();
    assert_eq!(history[0].items_in, 1, "{history:?}");
    assert!(history[0].carrier.starts_with("folder "));
    // B's acknowledgement went back onto the stick for A.
    let back = bundles(&mount);
    assert_eq!(back.len(), 1);
    assert_ne!(back, left);
    b.hub.syncer.remove(on_b.id).await.unwrap();

    // Bad input changes nothing.
    for (carrier, target, schedule, want) in [
        ("folder", "relative/dir", "always", "absolute path"),
        ("pigeon", "", "always", "no carrier"),
        ("link", "", "sometimes", "mon-fri 08:00-18:00"),
        ("link", "host:1", "always", "give no target"),
    ] {
        let e = a
            .hub
            .syncer
            .add("camp-b", carrier, target, schedule, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{carrier}: {e}");
    }
    assert_eq!(a.hub.store.uplinks().await.unwrap().len(), 1);

    a.hub.shutdown().await;
    b.hub.shutdown().await;
}

/// A shared folder (Syncthing, a stick that goes back and forth) holds one
/// bundle per direction: a new one replaces the old and carries its
/// acknowledgements again. With `deletion_acks` the peer deleting a bundle
/// acknowledges what it carried — but not when the folder is another one
/// (an empty mount point), where a missing bundle proves nothing.
#[tokio::test]
async fn a_folder_holds_one_bundle_per_peer_and_a_taken_bundle_can_acknowledge() {
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    a.add(&b).await;
    b.add(&a).await;
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().join("sync");
    std::fs::create_dir(&dir).unwrap();
    let target = dir.to_str().unwrap();
    let sync = |n: &Node, peer: &'static str| {
        let syncer = n.hub.syncer.clone();
        async move {
            syncer.sync_now(Some(peer)).await.unwrap();
            syncer.idle().await;
        }
    };
    let outbox = |n: &Node| {
        let store = n.hub.store.clone();
        async move {
            store
                .outbox()
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.state)
                .collect::<Vec<_>>()
        }
    };
    let from = |dir: &std::path::Path, fp: &str| -> Vec<std::path::PathBuf> {
        bundles(dir)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&format!("-from-{fp}-")))
            .collect()
    };
    let fp_a = cairn::relay::node::fingerprint(&a.hub.relay.identity().public);
    let fp_b = cairn::relay::node::fingerprint(&b.hub.relay.identity().public);
    a.hub
        .syncer
        .add("camp-b", "folder", target, "manual", false)
        .await
        .unwrap();
    b.hub
        .syncer
        .add("camp-a", "folder", target, "manual", false)
        .await
        .unwrap();

    // Two trips with new mail: one bundle from A, the newer.
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    sync(&a, "camp-b").await;
    let first = from(&dir, &fp_a);
    assert_eq!(first.len(), 1);
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m2").await;
    routed(&a).await;
    sync(&a, "camp-b").await;
    let second = from(&dir, &fp_a);
    assert_eq!(second.len(), 1, "the newer bundle replaced the older");
    assert_ne!(first, second);
    assert_eq!(outbox(&a).await, ["in-flight", "in-flight"]);

    // B takes both messages and leaves its acknowledgements; then a reply
    // to alice: still one bundle from B, carrying those acknowledgements.
    sync(&b, "camp-a").await;
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 2);
    assert!(from(&dir, &fp_a).is_empty(), "B deleted what it imported");
    let acks_only = from(&dir, &fp_b);
    assert_eq!(acks_only.len(), 1);
    send(&b, "bob@camp-b.example", "alice@camp-a.example", "r1").await;
    routed(&b).await;
    sync(&b, "camp-a").await;
    let reply = from(&dir, &fp_b);
    assert_eq!(reply.len(), 1);
    assert_ne!(reply, acks_only);
    // Without deletion acknowledgements, A learned nothing from the
    // deletion; the replacing bundle brings the acknowledgements.
    assert_eq!(outbox(&a).await, ["in-flight", "in-flight"]);
    sync(&a, "camp-b").await;
    assert_eq!(inbox(&a.hub, "alice@camp-a.example").await.len(), 1);
    assert!(outbox(&a).await.is_empty(), "acknowledged by B's bundle");

    // Now with deletion acknowledgements, and B importing by hand (no
    // bundle back): the deletion alone empties A's outbox.
    a.hub
        .syncer
        .add("camp-b", "folder", target, "manual", true)
        .await
        .unwrap();
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m3").await;
    routed(&a).await;
    sync(&a, "camp-b").await;
    assert_eq!(outbox(&a).await, ["in-flight"]);
    let got = cairn::relay::folder::import(&b.hub.relay, &dir, true)
        .await
        .unwrap();
    assert_eq!(got.imported.len(), 1);
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 3);
    sync(&a, "camp-b").await;
    assert!(outbox(&a).await.is_empty(), "the deletion acknowledged m3");

    // Another folder at the same path (an empty mount point): the bundle
    // is not there, and that proves nothing.
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m4").await;
    routed(&a).await;
    sync(&a, "camp-b").await;
    let away = shared.path().join("away");
    std::fs::rename(&dir, &away).unwrap();
    std::fs::create_dir(&dir).unwrap();
    sync(&a, "camp-b").await;
    assert_eq!(outbox(&a).await, ["in-flight"]);
    assert!(bundles(&dir).is_empty(), "nothing new to leave");
    std::fs::remove_dir(&dir).unwrap();
    std::fs::rename(&away, &dir).unwrap();
    sync(&a, "camp-b").await;
    assert_eq!(outbox(&a).await, ["in-flight"], "still there: not taken");
    cairn::relay::folder::import(&b.hub.relay, &dir, true)
        .await
        .unwrap();
    sync(&a, "camp-b").await;
    assert!(outbox(&a).await.is_empty());
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 4);

    a.hub.shutdown().await;
    b.hub.shutdown().await;
}

/// Run `cairn --config CFG --data DATA ARGS…` on `node`'s data directory
/// off the async workers (the hubs in this process must keep answering).
async fn cairn_cli(node: &Node, cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    let cfg = cfg.to_path_buf();
    let data = node.hub.report.data_dir.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut c = common::cairn(cfg.parent().unwrap());
        c.arg("--config")
            .arg(&cfg)
            .arg("--data")
            .arg(&data)
            .args(&args);
        common::run(&mut c)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn cairn_sync_runs_every_ready_uplink_and_reports() {
    let (a, b) = pair(|_| {}).await;
    a.hub
        .syncer
        .add("camp-b", "link", "", "manual", false)
        .await
        .unwrap();
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "camp-a", "camp-a.example");
    let out = cairn_cli(&a, &cfg, &["sync"]).await;
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}\n{}", common::stderr(&out));
    assert!(text.contains("camp-b link: done — sent 1 item ("), "{text}");
    assert!(text.contains("1 uplink synced, 0 failed"), "{text}");
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);

    // A peer with no ready uplink: a clear error, exit 1.
    let out = cairn_cli(&a, &cfg, &["sync", "--peer", "nobody"]).await;
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("no peer named nobody"));

    a.hub.shutdown().await;
    b.hub.shutdown().await;
}

#[tokio::test]
async fn a_scheduled_sync_stops_when_its_window_closes() {
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let c = node_for("camp-c", "camp-c.example", |_| {}).await;
    // C's card points at a listener that takes connections and says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let card = c.hub.relay.card(vec![addr.to_string()]);
    a.hub.relay.add_peer(&card, None).await.unwrap();
    let up = a
        .hub
        .syncer
        .add("camp-c", "link", "", "mon 03:00-03:30", false)
        .await
        .unwrap();
    assert_eq!(
        a.hub.syncer.tick(MONDAY + 3 * HOUR).await.unwrap(),
        vec![up.id]
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(a.hub.syncer.busy(), "the sync waits for the silent peer");

    // The window closes: the sync stops (its error says so, where a
    // timeout of its own would say the peer went quiet).
    a.hub
        .syncer
        .tick(MONDAY + 3 * HOUR + 30 * MIN)
        .await
        .unwrap();
    a.hub.syncer.idle().await;
    let row = a.hub.store.uplink(up.id).await.unwrap().unwrap();
    let why = row.last_error.unwrap_or_default();
    assert!(why.contains("time window closed"), "{why}");
    a.hub.shutdown().await;
    c.hub.shutdown().await;
}

/// Forward every connection to `port` of loopback on to `to`.
async fn forward(port: u16, to: std::net::SocketAddr) {
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = l.accept().await {
            tokio::spawn(async move {
                if let Ok(mut up) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
}

#[tokio::test]
async fn a_peer_that_appears_on_the_network_is_synced() {
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    let port = free_port();
    let card = b.hub.relay.card(vec![format!("127.0.0.1:{port}")]);
    a.hub.relay.add_peer(&card, None).await.unwrap();
    b.add(&a).await;
    let up = a
        .hub
        .syncer
        .add("camp-b", "link", "", "appear", false)
        .await
        .unwrap();
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    assert!(a.hub.syncer.tick(MONDAY).await.unwrap().is_empty());

    // B comes into reach (its link port answers now).
    forward(port, link_addr(&b)).await;
    assert_eq!(a.hub.syncer.tick(MONDAY + MIN).await.unwrap(), vec![up.id]);
    a.hub.syncer.idle().await;
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    a.hub.shutdown().await;
    b.hub.shutdown().await;
}

#[tokio::test]
async fn a_usb_uplink_counts_only_while_a_stick_is_mounted() {
    let (a, _b) = pair(|_| {}).await;
    let disk = common::SmallDisk::mount("16m");
    let mount = disk.path.join("media-usb");
    std::fs::create_dir(&mount).unwrap();
    let up = a
        .hub
        .syncer
        .add("camp-b", "usb", mount.to_str().unwrap(), "appear", false)
        .await
        .unwrap();
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    // An empty mount point: nothing is written onto the disk under it.
    assert!(a.hub.syncer.tick(MONDAY).await.unwrap().is_empty());
    assert!(a.hub.syncer.sync_now(Some("camp-b")).await.is_err());
    assert!(bundles(&mount).is_empty());

    // A stick is plugged in: the bundle goes onto it.
    assert!(common::SmallDisk::plug(&mount, "8m").success());
    let started = a.hub.syncer.tick(MONDAY + MIN).await.unwrap();
    a.hub.syncer.idle().await;
    let on_stick = bundles(&mount);
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(&mount)
        .status();
    assert_eq!(started, vec![up.id]);
    assert_eq!(on_stick.len(), 1, "{on_stick:?}");
    a.hub.shutdown().await;
}

/// A folder uplink whose folder is not there is skipped by "Sync now",
/// which says so, and the uplink keeps the reason until its next run
/// (it no longer stays "never" without a word).
#[tokio::test]
async fn a_missing_folder_is_skipped_and_says_why() {
    let (a, _b) = pair(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("sync");
    let up = a
        .hub
        .syncer
        .add(
            "camp-b",
            "folder",
            folder.to_str().unwrap(),
            "manual",
            false,
        )
        .await
        .unwrap();
    let e = a
        .hub
        .syncer
        .sync_now(Some("camp-b"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has no ready uplink") && e.contains("does not exist: create it"),
        "{e}"
    );
    let row = a.hub.store.uplink(up.id).await.unwrap().unwrap();
    let why = row.last_error.unwrap_or_default();
    assert!(why.starts_with("skipped: the folder"), "{why}");
    assert!(why.contains(folder.to_str().unwrap()), "{why}");

    // The folder appears: the next "Sync now" runs and the reason goes.
    std::fs::create_dir(&folder).unwrap();
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    a.hub.syncer.sync_now(Some("camp-b")).await.unwrap();
    a.hub.syncer.idle().await;
    let row = a.hub.store.uplink(up.id).await.unwrap().unwrap();
    assert_eq!(row.last_error, None);
    assert_eq!(bundles(&folder).len(), 1);
}
