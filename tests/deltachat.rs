//! The real Delta Chat core against a hub on port 0.

mod common;
use common::deltachat::Rpc;
use common::smtp::{PASSWORD, hub};
use serde_json::json;

#[test]
fn two_accounts_exchange_encrypted_messages_both_ways() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, hub) = rt.block_on(hub(|_| {}));
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap().port();
    let smtp = hub
        .endpoint(cairn::app::SMTP_SUBMISSION_TLS)
        .unwrap()
        .port();

    let mut rpc = Rpc::spawn();
    let alice = rpc.account("alice@[127.0.0.1]", PASSWORD, imap, smtp);
    let bob = rpc.account("bob@[127.0.0.1]", PASSWORD, imap, smtp);
    let chat = rpc.chat_with(alice, bob);
    rpc.ok(
        "misc_send_text_message",
        json!([alice, chat, "hello from the campsite"]),
    );
    let msg = rpc.incoming(
        bob,
        "hello from the campsite",
        "bob receives alice's message",
    );
    assert_eq!(msg["text"], "hello from the campsite");
    assert_eq!(msg["showPadlock"], true, "end-to-end encrypted");
    assert_eq!(msg["sender"]["address"], "alice@[127.0.0.1]");

    // Bob answers in the same chat.
    let bob_chat = msg["chatId"].clone();
    rpc.ok("accept_chat", json!([bob, bob_chat]));
    rpc.ok(
        "misc_send_text_message",
        json!([bob, bob_chat, "hello back"]),
    );
    let reply = rpc.incoming(alice, "hello back", "alice receives bob's answer");
    assert_eq!(reply["text"], "hello back");
    assert_eq!(reply["showPadlock"], true);

    // With bcc_self off, Delta Chat deletes what it downloaded (chatmail):
    // UID STORE +FLAGS (\Deleted) and CLOSE, which must expunge.
    rt.block_on(async {
        for who in ["alice@[127.0.0.1]", "bob@[127.0.0.1]"] {
            let mut left = common::smtp::inbox(&hub, who).await.len();
            for _ in 0..300 {
                if left == 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                left = common::smtp::inbox(&hub, who).await.len();
            }
            assert_eq!(
                left, 0,
                "{who}'s INBOX should be emptied by Delta Chat within 30 s"
            );
        }
    });
    drop(rpc);
    rt.block_on(hub.shutdown());
}

#[test]
fn a_group_of_three_and_a_large_file() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, hub) = rt.block_on(hub(|_| {}));
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap().port();
    let smtp = hub
        .endpoint(cairn::app::SMTP_SUBMISSION_TLS)
        .unwrap()
        .port();
    let mut rpc = Rpc::spawn();
    let alice = rpc.account("alice@[127.0.0.1]", PASSWORD, imap, smtp);
    let bob = rpc.account("bob@[127.0.0.1]", PASSWORD, imap, smtp);
    let carol = rpc.account("carol@[127.0.0.1]", PASSWORD, imap, smtp);

    let group = rpc.ok("create_group_chat", json!([alice, "Campfire", false]));
    for other in [bob, carol] {
        let vcard = rpc.ok("make_vcard", json!([other, [1]]));
        let contact = rpc.ok("import_vcard_contents", json!([alice, vcard]))[0].clone();
        rpc.ok("add_contact_to_chat", json!([alice, group, contact]));
    }
    rpc.ok(
        "misc_send_text_message",
        json!([alice, group, "meet at the fire"]),
    );
    for (who, name) in [(bob, "bob"), (carol, "carol")] {
        let m = rpc.wait_message(who, &format!("{name} gets the group message"), |m| {
            m["text"] == "meet at the fire"
        });
        assert_eq!(m["showPadlock"], true);
    }

    // A 1 MB file: Delta Chat sends a small pre-message, then the rest.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trail-map.bin");
    let mut data = vec![0u8; 1 << 20];
    let mut x: u32 = 0x1234_5678;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&path, &data).unwrap();
    rpc.ok(
        "send_msg",
        json!([alice, group, {"text": "the trail map", "file": path.to_str().unwrap(), "viewtype": "File"}]),
    );
    for (who, name) in [(bob, "bob"), (carol, "carol")] {
        let m = rpc.wait_message(who, &format!("{name} gets the whole 1 MB file"), |m| {
            m["text"] == "the trail map"
                && m["downloadState"] == "Done"
                && m["fileBytes"] == json!(1 << 20)
        });
        let got = std::fs::read(m["file"].as_str().unwrap()).unwrap();
        assert!(got == data, "{name}'s copy of the file differs");
    }
    drop(rpc);
    rt.block_on(hub.shutdown());
}

/// Camp A → gateway G → camp B through folders, with the real Delta Chat
/// core on both ends, and the acknowledgements back. (Bounces are checked
/// in tests/relay.rs at the hub: Delta Chat 2.65 discards unencrypted mail,
/// bounces included, so it cannot show them yet.)
#[test]
fn across_two_hops_by_folder() {
    use common::relay::{carry, three_nodes};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, g, b) = rt.block_on(three_nodes());
    let ports = common::deltachat::ports;
    let (ai, asm) = ports(&a.hub);
    let (bi, bsm) = ports(&b.hub);
    let mut rpc = Rpc::spawn();
    let alice = rpc.account("alice@camp-a.example", PASSWORD, ai, asm);
    let bob = rpc.account("bob@camp-b.example", PASSWORD, bi, bsm);
    let chat = rpc.chat_with(alice, bob);
    rpc.ok(
        "misc_send_text_message",
        json!([alice, chat, "greetings from camp A"]),
    );
    let dirs = tempfile::tempdir().unwrap();
    let dir = |n: &str| {
        let d = dirs.path().join(n);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    rt.block_on(async {
        // Delta Chat sends in the background: wait for A to hold the item.
        common::relay::wait_queued(&a).await;
        assert_eq!(
            a.hub.store.outbox().await.unwrap().len(),
            1,
            "alice's message is in A's outbox"
        );
        carry(&a, "gw", &g, &dir("a-g")).await;
        common::relay::routed(&g).await;
        carry(&g, "camp-b", &b, &dir("g-b")).await;
    });
    let m = rpc.wait_message(bob, "bob gets alice's message from camp A", |m| {
        m["text"] == "greetings from camp A"
    });
    assert_eq!(m["showPadlock"], true, "end-to-end encrypted across hubs");
    rt.block_on(async {
        carry(&b, "gw", &g, &dir("b-g")).await;
        carry(&g, "camp-a", &a, &dir("g-a")).await;
        assert!(a.hub.store.outbox().await.unwrap().is_empty());
        assert!(g.hub.store.outbox().await.unwrap().is_empty());
    });

    drop(rpc);
    rt.block_on(async {
        for n in [a, g, b] {
            n.hub.shutdown().await;
        }
    });
}

/// An account made on the admin page: its `dclogin:` link alone sets up
/// the real Delta Chat core, which then receives a message.
#[test]
fn an_account_from_the_admin_page_is_set_up_by_its_link() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, hub) = rt.block_on(hub(|_| {}));
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let link = rt.block_on(async {
        let (jar, csrf) = common::web::admin_session(&hub).await;
        let r = common::web::request(
            web,
            "/admin/accounts/create",
            &jar,
            Some(&format!("csrf={csrf}&name=dora")),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let start = r.body.find("href=\"dclogin:").unwrap() + 6;
        let end = r.body[start..].find('"').unwrap() + start;
        r.body[start..end].replace("&#38;", "&")
    });
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap().port();
    let smtp = hub
        .endpoint(cairn::app::SMTP_SUBMISSION_TLS)
        .unwrap()
        .port();
    let mut rpc = Rpc::spawn();
    let dora = rpc.ok("add_account", json!([])).as_u64().unwrap();
    let qr = rpc.ok("check_qr", json!([dora, link]));
    assert_eq!(qr["kind"], "login", "{qr}");
    rpc.ok("add_transport_from_qr", json!([dora, link]));
    rpc.start(dora);
    let alice = rpc.account("alice@[127.0.0.1]", PASSWORD, imap, smtp);
    let chat = rpc.chat_with(alice, dora);
    rpc.ok(
        "misc_send_text_message",
        json!([alice, chat, "welcome, dora"]),
    );
    let m = rpc.wait_message(dora, "dora gets alice's welcome", |m| {
        m["text"] == "welcome, dora"
    });
    assert_eq!(m["showPadlock"], true);
    drop(rpc);
    rt.block_on(hub.shutdown());
}

/// An account a newcomer makes on the public join page: its `dclogin:`
/// link sets up the real Delta Chat core, which then receives a message.
#[test]
fn an_account_from_the_join_page_is_set_up_by_its_link() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, hub) = rt.block_on(hub(|_| {}));
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let link = rt.block_on(async {
        let page = common::web::request(web, "/join", "", None).await;
        let form = page.hidden("form").unwrap();
        let jar = format!("cairn_form={}", page.cookie("cairn_form").unwrap());
        let r = common::web::request(web, "/join", &jar, Some(&format!("form={form}"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let start = r.body.find("href=\"dclogin:").unwrap() + 6;
        let end = r.body[start..].find('"').unwrap() + start;
        r.body[start..end].replace("&#38;", "&")
    });
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap().port();
    let smtp = hub
        .endpoint(cairn::app::SMTP_SUBMISSION_TLS)
        .unwrap()
        .port();
    let mut rpc = Rpc::spawn();
    let newcomer = rpc.ok("add_account", json!([])).as_u64().unwrap();
    rpc.ok("add_transport_from_qr", json!([newcomer, link]));
    rpc.start(newcomer);
    let alice = rpc.account("alice@[127.0.0.1]", PASSWORD, imap, smtp);
    let chat = rpc.chat_with(alice, newcomer);
    rpc.ok(
        "misc_send_text_message",
        json!([alice, chat, "welcome to the camp"]),
    );
    let m = rpc.wait_message(newcomer, "the newcomer gets alice's welcome", |m| {
        m["text"] == "welcome to the camp"
    });
    assert_eq!(m["showPadlock"], true);
    drop(rpc);
    rt.block_on(hub.shutdown());
}

#[test]
fn an_account_created_on_first_login_works() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, hub) = rt.block_on(hub(|_| {}));
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap().port();
    let smtp = hub
        .endpoint(cairn::app::SMTP_SUBMISSION_TLS)
        .unwrap()
        .port();
    let mut rpc = Rpc::spawn();
    // Not provisioned: created by the hub when Delta Chat first logs in.
    let newbie = rpc.account("k7m2x9q4z@[127.0.0.1]", "newbie-password-1", imap, smtp);
    let alice = rpc.account("alice@[127.0.0.1]", PASSWORD, imap, smtp);
    let chat = rpc.chat_with(newbie, alice);
    rpc.ok(
        "misc_send_text_message",
        json!([newbie, chat, "hi from a new account"]),
    );
    let m = rpc.wait_message(alice, "alice receives from the new account", |m| {
        m["text"] == "hi from a new account"
    });
    assert_eq!(m["showPadlock"], true);
    rpc.ok("accept_chat", json!([alice, m["chatId"]]));
    rpc.ok(
        "misc_send_text_message",
        json!([alice, m["chatId"], "welcome"]),
    );
    rpc.wait_message(newbie, "the new account gets the answer", |m| {
        m["text"] == "welcome"
    });
    drop(rpc);
    rt.block_on(hub.shutdown());
}

#[test]
fn a_second_device_sees_sent_and_received_messages() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_tmp, hub) = rt.block_on(hub(|_| {}));
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap().port();
    let smtp = hub
        .endpoint(cairn::app::SMTP_SUBMISSION_TLS)
        .unwrap()
        .port();
    let mut rpc = Rpc::spawn();
    let bob = rpc.account("bob@[127.0.0.1]", PASSWORD, imap, smtp);
    let alice = rpc.account("alice@[127.0.0.1]", PASSWORD, imap, smtp);
    // Alice's second device: the same login and the same OpenPGP key.
    let keys = tempfile::tempdir().unwrap();
    let keys_path = keys.path().to_str().unwrap();
    rpc.ok("export_self_keys", json!([alice, keys_path, null]));
    let alice2 = rpc.ok("add_account", json!([])).as_u64().unwrap();
    rpc.ok("import_self_keys", json!([alice2, keys_path, null]));
    rpc.ok(
        "add_or_update_transport",
        json!([alice2, {
            "addr": "alice@[127.0.0.1]", "password": PASSWORD,
            "imapServer": "127.0.0.1", "imapPort": imap, "imapSecurity": "ssl",
            "smtpServer": "127.0.0.1", "smtpPort": smtp, "smtpSecurity": "ssl",
            "certificateChecks": "acceptInvalidCertificates",
        }]),
    );
    // bcc_self: each device copies what it sends to the account, and the
    // server keeps mail for the other device.
    for dev in [alice, alice2] {
        rpc.ok("set_config", json!([dev, "bcc_self", "1"]));
    }
    rpc.start(alice2);

    let chat = rpc.chat_with(bob, alice);
    rpc.ok(
        "misc_send_text_message",
        json!([bob, chat, "hi both devices"]),
    );
    let m = rpc.wait_message(alice, "alice's first device receives", |m| {
        m["text"] == "hi both devices"
    });
    rpc.wait_message(alice2, "alice's second device receives", |m| {
        m["text"] == "hi both devices"
    });
    rpc.ok("accept_chat", json!([alice, m["chatId"]]));
    rpc.ok(
        "misc_send_text_message",
        json!([alice, m["chatId"], "sent from the first"]),
    );
    rpc.wait_message(bob, "bob gets alice's answer", |m| {
        m["text"] == "sent from the first"
    });
    rpc.poll_message(alice2, "the second device shows what the first sent", |m| {
        m["text"] == "sent from the first" && m["fromId"] == json!(1)
    });
    drop(rpc);
    rt.block_on(hub.shutdown());
}

/// The campsite story: alice on camp hub A writes to carol on a mail
/// server out on the Internet (hub I), reachable only through gateway G.
/// Nothing leaves A until someone presses Sync now; then the gateway
/// delivers by itself, carol's answer comes back to G, and the next Sync
/// now brings it to alice. Real Delta Chat core on both ends.
#[test]
fn campsite_users_reach_the_internet_when_someone_presses_sync_now() {
    use common::relay::{Camp, campsite, routed, sync_now};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Camp { a, g, i, .. } = rt.block_on(async {
        let camp = campsite().await;
        // The gateway and the Internet server deliver on their own.
        for n in [&camp.g, &camp.i] {
            let up = n.hub.store.uplinks().await.unwrap()[0].id;
            n.hub.syncer.set_schedule(up, "always").await.unwrap();
        }
        camp
    });
    let ports = common::deltachat::ports;
    let (ai, asm) = ports(&a.hub);
    let (ii, ism) = ports(&i.hub);
    let mut rpc = Rpc::spawn();
    let alice = rpc.account("alice@camp-a.example", PASSWORD, ai, asm);
    let carol = rpc.account("carol@internet.example", PASSWORD, ii, ism);
    let chat = rpc.chat_with(alice, carol);
    rpc.ok(
        "misc_send_text_message",
        json!([alice, chat, "hello from the campsite"]),
    );
    rt.block_on(async {
        common::relay::wait_queued(&a).await;
        let out = a.hub.store.outbox().await.unwrap();
        assert_eq!(out.len(), 1, "alice's message waits on A");
        assert_eq!(out[0].next_hop.as_deref(), Some("gw"));
        // A while later, still nothing has left A.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        assert_eq!(a.hub.store.outbox().await.unwrap().len(), 1);
        assert!(g.hub.store.outbox().await.unwrap().is_empty());
        sync_now(&a, None).await;
        assert!(a.hub.store.outbox().await.unwrap().is_empty());
    });
    let m = rpc.wait_message(
        carol,
        "carol gets alice's message through the gateway",
        |m| m["text"] == "hello from the campsite",
    );
    assert_eq!(m["showPadlock"], true, "end-to-end encrypted all the way");

    let back = rpc.chat_with(carol, alice);
    rpc.ok(
        "misc_send_text_message",
        json!([carol, back, "hello from the Internet"]),
    );
    rt.block_on(async {
        // I delivers to G (camp-a.example's MX); G holds it for A.
        for _ in 0..600 {
            let out = g.hub.store.outbox().await.unwrap();
            if out.iter().any(|o| o.next_hop.as_deref() == Some("camp-a")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        routed(&g).await;
        sync_now(&a, None).await;
    });
    let m = rpc.wait_message(alice, "alice gets carol's answer at the camp", |m| {
        m["text"] == "hello from the Internet"
    });
    assert_eq!(m["showPadlock"], true);

    drop(rpc);
    rt.block_on(async {
        for n in [a, g, i] {
            n.hub.shutdown().await;
        }
    });
}

/// Two camps joined only by LoRa (simulated modems on pseudo-terminals, 10 %
/// of frames lost): Delta Chat users chat across, encrypted, on each modem.
#[test]
fn two_camps_chat_over_a_lossy_radio_on_each_modem() {
    use cairn::carriers::lora::modem::Model;
    use cairn::carriers::lora::sim::ether::Conditions;
    let rt = tokio::runtime::Runtime::new().unwrap();
    for model in [Model::Rnode, Model::Rylr] {
        let lossy = Conditions {
            loss: 0.1,
            ..Conditions::default()
        };
        let r = rt.block_on(common::radio::radio_pair(model, lossy, false));
        let (ai, asm) = common::deltachat::ports(&r.a.hub);
        let (bi, bsm) = common::deltachat::ports(&r.b.hub);
        let mut rpc = Rpc::spawn_patient(common::deltachat::RADIO_WAIT);
        let alice = rpc.account("alice@camp-a.example", PASSWORD, ai, asm);
        let bob = rpc.account("bob@camp-b.example", PASSWORD, bi, bsm);
        let chat = rpc.chat_with(alice, bob);
        let hello = format!("over the hills by {model:?}");
        rpc.ok("misc_send_text_message", json!([alice, chat, hello]));
        let m = rpc.wait_message(bob, "bob gets alice's message by radio", |m| {
            m["text"] == hello.as_str()
        });
        assert_eq!(m["showPadlock"], true, "end-to-end encrypted over the air");
        let bob_chat = m["chatId"].clone();
        rpc.ok("accept_chat", json!([bob, bob_chat]));
        rpc.ok(
            "misc_send_text_message",
            json!([bob, bob_chat, "heard you"]),
        );
        let back = rpc.wait_message(alice, "alice gets bob's answer by radio", |m| {
            m["text"] == "heard you"
        });
        assert_eq!(back["showPadlock"], true);
        let stats = r.sim.ether().stats();
        assert!(
            stats.lost > 0,
            "{model:?}: the channel lost nothing: {stats:?}"
        );
        if let Err(e) = r.sim.ether().check_duty(cairn::domain::lora::Region::Eu868) {
            panic!("{e}");
        }
        drop(rpc);
        rt.block_on(async {
            r.a.hub.shutdown().await;
            r.b.hub.shutdown().await;
        });
    }
}
