//! Store-and-forward between real hubs: camp A → gateway G → camp B, with
//! bundles carried through directories, and every kind of bad bundle.

mod common;
use cairn::relay::bundle::{BundleWriter, Header, Item};
use cairn::relay::{RelayError, folder, node};
use common::relay::*;
use common::smtp::{encrypted, inbox};
use std::path::Path;

#[tokio::test]
async fn a_message_crosses_two_hops_and_the_acknowledgements_come_back() {
    let (a, g, b) = three_nodes().await;
    let dirs = tempfile::tempdir().unwrap();
    let dir = |n: &str| {
        let d = dirs.path().join(n);
        std::fs::create_dir_all(&d).unwrap();
        d
    };

    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    let out = a.hub.store.outbox().await.unwrap();
    let sent = a.hub.store.blob_read(&out[0].blob_hash).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].state.as_str(), out[0].next_hop.as_deref()),
        ("queued", Some("gw"))
    );

    // A → G: G takes custody and routes it on to B.
    let r = carry(&a, "gw", &g, &dir("a-to-g")).await;
    assert_eq!(
        (r.items, r.applied.forwarded, r.applied.delivered),
        (1, 1, 0),
        "{r}"
    );
    assert_eq!(a.hub.store.outbox().await.unwrap()[0].state, "in-flight");
    routed(&g).await;

    // G → B: delivered to bob, byte for byte.
    let gb = dir("g-to-b");
    let r = carry(&g, "camp-b", &b, &gb).await;
    assert_eq!((r.items, r.applied.delivered), (1, 1), "{r}");
    let got = inbox(&b.hub, "bob@camp-b.example").await;
    assert_eq!(got.len(), 1);
    let stored = b.hub.store.blob_read(&got[0].blob_hash).await.unwrap();
    assert!(stored == sent, "bob's copy differs from what alice sent");

    // Acknowledgements flow back: B → G purges G's outbox, G → A purges A's.
    let r = carry(&b, "gw", &g, &dir("b-to-g")).await;
    assert_eq!(r.applied.acknowledged, 1, "{r}");
    assert!(g.hub.store.outbox().await.unwrap().is_empty());
    let r = carry(&g, "camp-a", &a, &dir("g-to-a")).await;
    assert_eq!(r.applied.acknowledged, 1, "{r}");
    assert!(a.hub.store.outbox().await.unwrap().is_empty());

    // The same bundle again, and a copy through another folder: no change.
    let again = folder::import(&b.hub.relay, &gb, false).await.unwrap();
    assert_eq!(again.imported.len(), 1);
    assert_eq!(again.imported[0].1.applied.duplicates, 1);
    assert_eq!(again.imported[0].1.applied.delivered, 0);
    let other = dir("another-stick");
    for p in bundles(&gb) {
        std::fs::copy(&p, other.join(p.file_name().unwrap())).unwrap();
    }
    let copy = folder::import(&b.hub.relay, &other, true).await.unwrap();
    assert_eq!(copy.imported[0].1.applied.duplicates, 1);
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    assert!(
        bundles(&other).is_empty(),
        "--delete removes imported bundles"
    );

    // A reply goes the other way through the same nodes.
    send(&b, "bob@camp-b.example", "alice@camp-a.example", "m2").await;
    routed(&b).await;
    carry(&b, "gw", &g, &dir("b-to-g-2")).await;
    routed(&g).await;
    let r = carry(&g, "camp-a", &a, &dir("g-to-a-2")).await;
    assert_eq!(r.applied.delivered, 1, "{r}");
    assert_eq!(inbox(&a.hub, "alice@camp-a.example").await.len(), 1);

    for n in [a, g, b] {
        n.hub.shutdown().await;
    }
}

#[tokio::test]
async fn an_item_past_its_lifetime_bounces_to_its_sender() {
    let (a, g, b) = three_nodes().await;
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "late").await;
    routed(&a).await;
    // Nothing for 15 days: no carrier came.
    let later = cairn::store::now() + 15 * 24 * 3600;
    assert_eq!(a.hub.relay.expire_at(later).await.unwrap(), 1);
    let mail = inbox(&a.hub, "alice@camp-a.example").await;
    assert_eq!(mail.len(), 1, "the bounce is in alice's INBOX");
    let bounce =
        String::from_utf8(a.hub.store.blob_read(&mail[0].blob_hash).await.unwrap()).unwrap();
    assert!(bounce.contains("multipart/report"), "{bounce}");
    assert!(bounce.contains("Status: 5.4.7"), "{bounce}");
    assert!(
        bounce.contains("Message-ID: <late@test>"),
        "the original headers come back: {bounce}"
    );
    let out = a.hub.store.outbox().await.unwrap();
    assert_eq!(out[0].state, "expired");
    // An expired item is not exported any more.
    let dir = tempfile::tempdir().unwrap();
    let (_, e) = folder::export(&a.hub.relay, "gw", dir.path())
        .await
        .unwrap();
    assert!(e.rows.is_empty());

    // An item that arrives already past its lifetime bounces back along the route.
    send(&b, "bob@camp-b.example", "carol@camp-a.example", "old").await;
    routed(&b).await;
    b.hub.relay.expire_at(later).await.unwrap();
    // B bounced it locally to bob.
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    for n in [a, g, b] {
        n.hub.shutdown().await;
    }
}

/// Content ids are remembered for three lifetimes, then forgotten: the
/// seen-set of a hub that runs for years stays bounded.
#[tokio::test]
async fn content_ids_are_forgotten_after_three_lifetimes() {
    let (a, g, b) = three_nodes().await;
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "seen").await;
    routed(&a).await;
    let row = a.hub.store.outbox().await.unwrap().remove(0);
    let rcpts: Vec<String> = serde_json::from_str(&row.rcpts).unwrap();
    let id = cairn::relay::item_id(&row.mail_from, &rcpts, &row.blob_hash);
    let dir = tempfile::tempdir().unwrap();
    carry(&a, "gw", &g, dir.path()).await;
    assert_eq!(
        g.hub
            .store
            .items_seen(std::slice::from_ref(&id))
            .await
            .unwrap(),
        [true]
    );
    let day = 24 * 3600;
    let now = cairn::store::now();
    g.hub.relay.expire_at(now + 41 * day).await.unwrap();
    assert_eq!(
        g.hub
            .store
            .items_seen(std::slice::from_ref(&id))
            .await
            .unwrap(),
        [true],
        "kept for 42 days (3 × 14)"
    );
    g.hub.relay.expire_at(now + 43 * day).await.unwrap();
    assert_eq!(
        g.hub
            .store
            .items_seen(std::slice::from_ref(&id))
            .await
            .unwrap(),
        [false],
        "forgotten after"
    );
    for n in [a, g, b] {
        n.hub.shutdown().await;
    }
}

/// Write a bundle by hand, as a node with the key in `key_file`.
fn craft(key_file: &Path, to: &node::Card, items: &[Item]) -> Vec<u8> {
    let (me, _) = node::ensure(key_file).unwrap();
    let header = Header {
        from: me.public,
        to: to.key,
        seq: 99,
    };
    let mut w = BundleWriter::new(Vec::new(), &header, &me.private).unwrap();
    for i in items {
        w.item(i).unwrap();
    }
    w.finish().unwrap()
}

fn item_for(rcpt: &str, from: &str, message: Vec<u8>) -> Item {
    let hash = {
        use aws_lc_rs::digest;
        digest::digest(&digest::SHA256, &message)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let id = cairn::relay::item_id(from, &[rcpt.to_string()], &hash);
    let mut raw = [0u8; 32];
    for i in 0..32 {
        raw[i] = u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap();
    }
    Item {
        id: raw,
        mail_from: from.into(),
        rcpts: vec![rcpt.into()],
        age_ms: 0,
        lifetime_ms: 14 * 24 * 3600 * 1000,
        hops: 1,
        message,
    }
}

async fn import_bytes(n: &Node, bytes: Vec<u8>) -> Result<cairn::relay::Imported, RelayError> {
    n.hub.relay.import(std::io::Cursor::new(bytes)).await
}

#[tokio::test]
async fn bad_bundles_are_refused_and_change_nothing() {
    let g = node_for("gw", "gw.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |c| {
        c.limits.max_bundle_size = cairn::config::ByteSize(1 << 20);
        c.limits.max_message_size = cairn::config::ByteSize(256 << 10);
    })
    .await;
    b.add(&g).await;
    g.add(&b).await;
    b.hub.relay.add_route("*", "gw").await.unwrap();
    let users = ["bob@camp-b.example"];
    let good = || {
        item_for(
            "bob@camp-b.example",
            "x@gw.example",
            encrypted("x@gw.example").into_bytes(),
        )
    };
    let valid = craft(&g.key_path(), &b.card(), &[good()]);
    let before = b.snapshot(&users).await;

    let check = |what: &str, r: Result<cairn::relay::Imported, RelayError>, needle: &str| {
        let e = r.expect_err(what).to_string();
        assert!(e.contains(needle), "{what}: {e}");
    };

    // From a node B does not know.
    let stranger = tempfile::tempdir().unwrap();
    let bytes = craft(&stranger.path().join("node.key"), &b.card(), &[good()]);
    check(
        "unknown node",
        import_bytes(&b, bytes).await,
        "cairn peer add",
    );
    // Claims to be G but is signed by another key.
    let mut forged = craft(&stranger.path().join("node.key"), &b.card(), &[good()]);
    forged[9..41].copy_from_slice(&g.card().key);
    check(
        "forged sender",
        import_bytes(&b, forged).await,
        "authentication",
    );
    // One flipped bit in the middle.
    let mut flipped = valid.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    check(
        "flipped bit",
        import_bytes(&b, flipped).await,
        "authentication",
    );
    // For another node.
    let other = craft(&g.key_path(), &g.card(), &[good()]);
    check(
        "wrong recipient",
        import_bytes(&b, other).await,
        "not this node",
    );
    // Truncated.
    check(
        "truncated",
        import_bytes(&b, valid[..valid.len() - 10].to_vec()).await,
        "truncated",
    );
    // A decompression bomb: 8 records of 200 KB (each allowed) that
    // expand past B's 1 MiB bundle limit from a few KB.
    let bomb: Vec<Item> = (0..8u8)
        .map(|n| {
            item_for(
                "bob@camp-b.example",
                "x@gw.example",
                vec![b'a' + n; 200 << 10],
            )
        })
        .collect();
    let bytes = craft(&g.key_path(), &b.card(), &bomb);
    assert!(bytes.len() < 64 << 10);
    check("bomb", import_bytes(&b, bytes).await, "decompression bomb");
    // An item over B's message size limit.
    let mut big = good();
    big.message = (0..600_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    let bytes = craft(&g.key_path(), &b.card(), &[big]);
    check("oversized item", import_bytes(&b, bytes).await, "allowed");
    // Malformed headers.
    check(
        "not a bundle",
        import_bytes(&b, b"hello, this is a text file".to_vec()).await,
        "not a cairn bundle",
    );
    let mut newer = valid.clone();
    newer[8] = 2;
    check(
        "newer version",
        import_bytes(&b, newer).await,
        "update cairn",
    );
    // An item whose content does not match its id.
    let mut lying = good();
    lying.message.extend_from_slice(b"tampered by the sender");
    let bytes = craft(&g.key_path(), &b.card(), &[lying]);
    check(
        "content id mismatch",
        import_bytes(&b, bytes).await,
        "content id",
    );

    assert_eq!(b.snapshot(&users).await, before, "nothing changed");

    // A USB stick pulled mid-write: only a temp file is left, never imported.
    let stick = tempfile::tempdir().unwrap();
    std::fs::write(
        stick
            .path()
            .join(format!("{}0011", cairn::carriers::folder::TEMP_PREFIX)),
        &valid[..valid.len() / 2],
    )
    .unwrap();
    std::fs::write(stick.path().join(".syncthing.x.cairn.tmp"), &valid).unwrap();
    let r = folder::import(&b.hub.relay, stick.path(), false)
        .await
        .unwrap();
    assert!(r.imported.is_empty() && r.refused.is_empty(), "{r:?}");
    assert_eq!(b.snapshot(&users).await, before, "nothing changed");

    // And the valid bundle still goes in.
    let r = import_bytes(&b, valid).await.unwrap();
    assert_eq!(r.applied.delivered, 1);
    for n in [g, b] {
        n.hub.shutdown().await;
    }
}

/// A route change moves queued items that no carrier has taken yet; an
/// item already carried stays with the peer that has it (moving it could
/// deliver it twice).
#[tokio::test]
async fn a_changed_route_takes_the_items_no_carrier_has_taken() {
    let (a, g, b) = three_nodes().await;
    let hops = |n: &Node| {
        let store = n.hub.store.clone();
        async move {
            let mut v: Vec<(String, String)> = store
                .outbox()
                .await
                .unwrap()
                .into_iter()
                .map(|o| (o.next_hop.unwrap_or_default(), o.state))
                .collect();
            v.sort();
            v
        }
    };
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "carried").await;
    routed(&a).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, e) = folder::export(&a.hub.relay, "gw", dir.path())
        .await
        .unwrap();
    assert_eq!(e.rows.len(), 1);
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "waiting").await;
    routed(&a).await;
    assert_eq!(
        hops(&a).await,
        [
            ("gw".into(), "in-flight".into()),
            ("gw".into(), "queued".into())
        ]
    );

    // A meets B directly: B's domain is routed to it, and the waiting item
    // follows; the carried one stays with the gateway.
    a.add(&b).await;
    assert_eq!(
        hops(&a).await,
        [
            ("camp-b".into(), "queued".into()),
            ("gw".into(), "in-flight".into())
        ]
    );
    // The route goes again: the item falls back to the default route.
    a.hub.relay.remove_route("camp-b.example").await.unwrap();
    assert_eq!(
        hops(&a).await,
        [
            ("gw".into(), "in-flight".into()),
            ("gw".into(), "queued".into())
        ]
    );
    // A route to B again by hand; removing the default route afterwards
    // moves nothing.
    a.hub
        .relay
        .add_route("camp-b.example", "camp-b")
        .await
        .unwrap();
    a.hub.relay.remove_route("*").await.unwrap();
    assert_eq!(
        hops(&a).await,
        [
            ("camp-b".into(), "queued".into()),
            ("gw".into(), "in-flight".into())
        ]
    );
    // The moved item carries the same content id: B takes it once, even
    // if the gateway's copy of the other one comes round too.
    b.add(&a).await;
    let r = carry(&a, "camp-b", &b, dir.path()).await;
    assert_eq!(r.applied.delivered, 1, "{r}");
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    for n in [a, g, b] {
        n.hub.shutdown().await;
    }
}

#[tokio::test]
async fn a_peer_cannot_speak_for_domains_that_are_not_behind_it() {
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    a.add(&b).await;
    b.add(&a).await;
    // B has no default route: only camp-a.example is behind A.
    let spoof = item_for(
        "bob@camp-b.example",
        "ceo@bank.example",
        encrypted("ceo@bank.example").into_bytes(),
    );
    let honest = item_for(
        "bob@camp-b.example",
        "alice@camp-a.example",
        encrypted("alice@camp-a.example").into_bytes(),
    );
    let bytes = craft(&a.key_path(), &b.card(), &[spoof, honest]);
    let r = import_bytes(&b, bytes).await.unwrap();
    assert_eq!((r.applied.refused, r.applied.delivered), (1, 1), "{r}");
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    for n in [a, b] {
        n.hub.shutdown().await;
    }
}

#[tokio::test]
async fn unknown_local_users_bounce_back_along_the_route() {
    let (a, g, b) = three_nodes().await;
    let dirs = tempfile::tempdir().unwrap();
    send(&a, "alice@camp-a.example", "nobody@camp-b.example", "lost").await;
    routed(&a).await;
    carry(&a, "gw", &g, dirs.path()).await;
    routed(&g).await;
    let gb = dirs.path().join("gb");
    std::fs::create_dir(&gb).unwrap();
    let r = carry(&g, "camp-b", &b, &gb).await;
    assert_eq!(r.applied.bounced, 1, "{r}");
    // The bounce travels B → G → A like any mail.
    routed(&b).await;
    let bg = dirs.path().join("bg");
    std::fs::create_dir(&bg).unwrap();
    carry(&b, "gw", &g, &bg).await;
    routed(&g).await;
    let ga = dirs.path().join("ga");
    std::fs::create_dir(&ga).unwrap();
    carry(&g, "camp-a", &a, &ga).await;
    let mail = inbox(&a.hub, "alice@camp-a.example").await;
    assert_eq!(mail.len(), 1);
    let bounce =
        String::from_utf8(a.hub.store.blob_read(&mail[0].blob_hash).await.unwrap()).unwrap();
    assert!(bounce.contains("Status: 5.1.1"), "{bounce}");
    for n in [a, g, b] {
        n.hub.shutdown().await;
    }
}

/// The command line, run beside two running hubs: cards, peers, routes,
/// the outbox, bundle export and import.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_moves_bundles_between_running_hubs() {
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    let work = tempfile::tempdir().unwrap();
    let a_cfg = config_file(work.path(), "camp-a", "camp-a.example");
    let b_cfg = config_file(work.path(), "camp-b", "camp-b.example");
    let run = |cfg: &Path, n: &Node, args: &[&str], stdin: &[u8]| {
        let o = tokio::task::block_in_place(|| cli(cfg, n, args, stdin));
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let ok = |r: (Option<i32>, String, String)| {
        assert_eq!(r.0, Some(0), "{}{}", r.1, r.2);
        format!("{}{}", r.1, r.2)
    };

    let card_a = ok(run(&a_cfg, &a, &["node", "card"], b""));
    let card_b = ok(run(&b_cfg, &b, &["node", "card"], b""));
    assert!(card_a.starts_with("cairn-node:v1;name=camp-a;"), "{card_a}");
    // `--qr` prints the same card as a terminal QR code above it.
    let with_qr = ok(run(&a_cfg, &a, &["node", "card", "--qr"], b""));
    assert!(with_qr.trim_end().ends_with(card_a.trim()), "{with_qr}");
    assert_eq!(common::qr::decode_text(&with_qr), card_a.trim());
    let out = ok(run(&a_cfg, &a, &["peer", "add", card_b.trim()], b""));
    assert!(
        out.contains("added peer camp-b") && out.contains("route: camp-b.example -> camp-b"),
        "{out}"
    );
    ok(run(&b_cfg, &b, &["peer", "add", card_a.trim()], b""));
    let again = run(&b_cfg, &b, &["peer", "add", card_a.trim()], b"");
    assert_eq!(again.0, Some(1));
    assert!(again.2.contains("already exists"), "{}", again.2);
    let bad = run(&b_cfg, &b, &["peer", "add", "cairn-node:v1;name=x"], b"");
    assert!(bad.0 == Some(1) && bad.2.contains("no key"), "{}", bad.2);
    assert!(ok(run(&a_cfg, &a, &["route", "list"], b"")).contains("camp-b.example -> camp-b"));
    assert!(ok(run(&a_cfg, &a, &["peer", "list"], b"")).contains("camp-b  node "));

    // A lora uplink needs radio.port in the configuration, not a radio in
    // this process: the command line adds one beside the running hub,
    // which owns the modem.
    let no_radio = run(&a_cfg, &a, &["uplink", "add", "camp-b", "lora"], b"");
    assert_eq!(no_radio.0, Some(1), "{}", no_radio.1);
    assert!(no_radio.2.contains("set radio.port"), "{}", no_radio.2);
    let radio_cfg = work.path().join("camp-a-radio.toml");
    let with_radio =
        std::fs::read_to_string(&a_cfg).unwrap() + "[radio]\nport = \"/dev/ttyUSB9\"\n";
    std::fs::write(&radio_cfg, with_radio).unwrap();
    let args = ["uplink", "add", "camp-b", "lora", "--schedule", "manual"];
    let out = ok(run(&radio_cfg, &a, &args, b""));
    assert!(out.contains("camp-b lora"), "{out}");
    // (Beside the live-link uplink that adding the peer made.)
    let ups = a.hub.store.uplinks().await.unwrap();
    let lora = ups
        .iter()
        .find(|u| u.carrier == "lora")
        .expect("a lora uplink");
    assert_eq!(lora.schedule, "manual", "{ups:?}");
    ok(run(
        &a_cfg,
        &a,
        &["uplink", "remove", &lora.id.to_string()],
        b"",
    ));
    let ups = a.hub.store.uplinks().await.unwrap();
    assert!(ups.iter().all(|u| u.carrier != "lora"), "{ups:?}");

    send(&a, "alice@camp-a.example", "bob@camp-b.example", "cli-1").await;
    routed(&a).await;
    let list = ok(run(&a_cfg, &a, &["outbox", "list"], b""));
    assert!(list.contains("queued") && list.contains("camp-b"), "{list}");
    let id = a.hub.store.outbox().await.unwrap()[0].id.to_string();

    // Held: the next bundle leaves it out; retried: it goes.
    ok(run(&a_cfg, &a, &["outbox", "hold", &id], b""));
    let dir = work.path().join("stick");
    std::fs::create_dir(&dir).unwrap();
    let dir_s = dir.to_str().unwrap();
    let out = ok(run(
        &a_cfg,
        &a,
        &["bundle", "export", "--peer", "camp-b", "--out", dir_s],
        b"",
    ));
    assert!(out.contains(": 0 items"), "{out}");
    ok(run(&a_cfg, &a, &["outbox", "retry", &id], b""));
    let out = ok(run(
        &a_cfg,
        &a,
        &["bundle", "export", "--peer", "camp-b", "--out", dir_s],
        b"",
    ));
    assert!(out.contains(": 1 items"), "{out}");

    // B imports the folder: the empty bundle and the one with the message.
    let out = ok(run(&b_cfg, &b, &["bundle", "import", dir_s], b""));
    assert!(out.contains("2 bundles imported, 0 refused"), "{out}");
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    // The same file through standard input: a duplicate, nothing new.
    let file = bundles(&dir).pop().unwrap();
    let out = ok(run(
        &b_cfg,
        &b,
        &["bundle", "import", "-"],
        &std::fs::read(&file).unwrap(),
    ));
    assert!(out.contains("1 already had"), "{out}");
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 1);
    // Garbage on standard input: one clear line, exit 1 (not 75: retrying will not help).
    let (code, _, err) = run(&b_cfg, &b, &["bundle", "import", "-"], b"garbage");
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: not a cairn bundle"), "{err}");
    // A damaged bundle file: its reason once, on one line (it was printed
    // twice, the error and then its source again).
    let damaged = work.path().join("damaged.cairn");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, _, err) = run(
        &b_cfg,
        &b,
        &["bundle", "import", damaged.to_str().unwrap()],
        b"",
    );
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("export it again").count(), 1, "{err}");

    // B's acknowledgement via stdout → A's stdin empties A's outbox.
    let o = tokio::task::block_in_place(|| {
        cli(
            &b_cfg,
            &b,
            &["bundle", "export", "--peer", "camp-a", "--out", "-"],
            b"",
        )
    });
    assert!(o.status.success());
    let out = ok(run(&a_cfg, &a, &["bundle", "import", "-"], &o.stdout));
    assert!(out.contains("1 of our items acknowledged"), "{out}");
    assert!(a.hub.store.outbox().await.unwrap().is_empty());

    // Dropping an item bounces it to its sender.
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "cli-2").await;
    routed(&a).await;
    let id = a.hub.store.outbox().await.unwrap()[0].id.to_string();
    let out = ok(run(&a_cfg, &a, &["outbox", "drop", &id], b""));
    assert!(out.contains("gets a bounce"), "{out}");
    assert_eq!(inbox(&a.hub, "alice@camp-a.example").await.len(), 1);
    let (code, _, err) = run(&a_cfg, &a, &["outbox", "retry", &id], b"");
    assert!(code == Some(1) && err.contains("no outbox item"), "{err}");

    ok(run(&a_cfg, &a, &["route", "remove", "camp-b.example"], b""));
    ok(run(&a_cfg, &a, &["peer", "remove", "camp-b"], b""));
    assert!(ok(run(&a_cfg, &a, &["peer", "list"], b"")).contains("no peers yet"));
    for n in [a, b] {
        n.hub.shutdown().await;
    }
}

/// Filespooler (Debian's `filespooler`): a bundle becomes a queue job, and
/// `fspl queue-process` runs `cairn bundle import -` on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filespooler_queues_carry_bundles_in_sequence() {
    common::debian_tool("/usr/bin/fspl", "filespooler");
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    a.add(&b).await;
    b.add(&a).await;
    let work = tempfile::tempdir().unwrap();
    let a_cfg = config_file(work.path(), "camp-a", "camp-a.example");
    let b_cfg = config_file(work.path(), "camp-b", "camp-b.example");
    // B's queue; in the field its jobs/ folder is synced from A.
    let queue = work.path().join("queue-for-b");
    let fspl = |args: &[&str]| {
        let o = std::process::Command::new("/usr/bin/fspl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "fspl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    fspl(&["queue-init", "-q", queue.to_str().unwrap()]);
    for tag in ["f1", "f2"] {
        send(&a, "alice@camp-a.example", "bob@camp-b.example", tag).await;
        routed(&a).await;
        let o = tokio::task::block_in_place(|| {
            cli(
                &a_cfg,
                &a,
                &[
                    "bundle",
                    "export",
                    "--peer",
                    "camp-b",
                    "--fspl-queue",
                    queue.to_str().unwrap(),
                ],
                b"",
            )
        });
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let jobs = std::fs::read_dir(queue.join("jobs")).unwrap().count();
    assert_eq!(jobs, 2, "two jobs in the queue");
    let data = b.hub.report.data_dir.to_str().unwrap().to_string();
    tokio::task::block_in_place(|| {
        fspl(&[
            "queue-process",
            "-q",
            queue.to_str().unwrap(),
            env!("CARGO_BIN_EXE_cairn"),
            "--",
            "--config",
            b_cfg.to_str().unwrap(),
            "--data",
            &data,
            "bundle",
            "import",
            "-",
        ])
    });
    // The second bundle repeats the first item (not yet acknowledged): still two messages.
    assert_eq!(inbox(&b.hub, "bob@camp-b.example").await.len(), 2);
    assert_eq!(
        std::fs::read_dir(queue.join("jobs")).unwrap().count(),
        0,
        "processed jobs are gone"
    );
    for n in [a, b] {
        n.hub.shutdown().await;
    }
}

/// The seeds of the fuzz targets in tests/fuzz/corpus are valid inputs:
/// regenerate them with `CAIRN_WRITE_FUZZ_SEEDS=tests/fuzz/corpus cargo
/// test --test relay fuzz_seeds` after a format change.
#[test]
fn fuzz_seeds_are_valid_inputs() {
    use cairn::relay::bundle::{Limits, Record, RecordReader, RecordWriter};
    let items = [
        item_for(
            "bob@b.example",
            "alice@a.example",
            b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
        ),
        item_for("carol@b.example", "", vec![7; 3000]),
    ];
    let mut w = RecordWriter::new(Vec::new()).unwrap();
    for i in &items {
        w.item(i).unwrap();
    }
    w.acks(&[[3; 32]]).unwrap();
    let records = w.finish().unwrap();
    // The fuzz target's fixed keys: sender [1; 32], recipient [2; 32].
    let header = Header {
        from: node::public_of(&[1; 32]),
        to: node::public_of(&[2; 32]),
        seq: 1,
    };
    let mut w = BundleWriter::new(Vec::new(), &header, &[1; 32]).unwrap();
    for i in &items {
        w.item(i).unwrap();
    }
    let file = w.finish().unwrap();
    let limits = Limits {
        max_plain: 1 << 20,
        max_record: 64 << 10,
    };
    let check = |records: &[u8], file: &[u8]| {
        let mut r = RecordReader::new(records, limits).unwrap();
        assert!(matches!(r.next_record(), Ok(Some(Record::Item(_)))));
        let mut input = file;
        let h = Header::read(&mut input).unwrap();
        let mut r = cairn::relay::bundle::BundleReader::open(input, &h, &[2; 32], limits).unwrap();
        assert!(matches!(r.next_record(), Ok(Some(Record::Item(_)))));
    };
    check(&records, &file);
    if let Ok(dir) = std::env::var("CAIRN_WRITE_FUZZ_SEEDS") {
        let dir = Path::new(&dir);
        for (name, bytes) in [("bundle_records", &records), ("bundle_file", &file)] {
            let d = dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("seed"), bytes).unwrap();
        }
    }
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    check(
        &std::fs::read(corpus.join("bundle_records/seed")).unwrap(),
        &std::fs::read(corpus.join("bundle_file/seed")).unwrap(),
    );
}
