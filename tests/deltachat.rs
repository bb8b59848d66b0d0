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
    let msg = rpc.incoming(bob, "bob receives alice's message");
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
    let reply = rpc.incoming(alice, "alice receives bob's answer");
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
