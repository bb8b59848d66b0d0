//! IMAP against a hub on port 0: Delta Chat's exact command sequence,
//! IDLE pushes, several sessions of one account, bad input, isolation.

mod common;
// The session fuzz targets' small hub, shared so their seeds are checked.
#[path = "fuzz/fuzz_targets/hub/mod.rs"]
#[allow(dead_code)]
mod fuzz_hub;
use common::imap::Imap;
use common::smtp::*;
use std::time::Duration;

const ALICE: &str = "alice@[127.0.0.1]";
const BOB: &str = "bob@[127.0.0.1]";

async fn send(hub: &cairn::app::Hub, from: &str, to: &[&str], body: &str) {
    let (mut c, _) = Client::tls(hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap(), hub).await;
    c.cmd("EHLO x").await;
    assert!(c.login(from, PASSWORD).await.starts_with("235"));
    let r = c.mail(from, to, body).await;
    assert!(r.starts_with("250"), "{r}");
}

async fn imap_login(hub: &cairn::app::Hub, who: &str) -> Imap {
    let (mut c, greeting) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), hub).await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let r = c.login(who, PASSWORD).await;
    assert!(r.ok(), "{}", r.all());
    c
}

/// The runtime loop of Delta Chat 2.65 (reference sequence), step by step.
#[tokio::test(flavor = "multi_thread")]
async fn delta_chat_command_sequence() {
    let (_t, hub) = hub(|_| {}).await;
    let (mut c, greeting) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
    assert!(greeting.contains("AUTH=PLAIN"), "{greeting}");
    let r = c.login(BOB, PASSWORD).await;
    // Delta Chat reads capabilities only from the LOGIN reply.
    for cap in [
        "IDLE",
        "QUOTA",
        "METADATA",
        "XCHATMAIL",
        "ID",
        "MOVE",
        "UIDPLUS",
        "LITERAL+",
    ] {
        assert!(r.tagged.contains(cap), "{cap} missing: {}", r.tagged);
    }
    let r = c.cmd("ID (\"name\" \"Delta Chat\")").await;
    assert!(
        r.ok() && r.untagged[0].starts_with("* ID (\"name\" \"cairn\""),
        "{}",
        r.all()
    );
    let r = c.cmd("GETQUOTAROOT \"INBOX\"").await;
    assert!(r.ok(), "{}", r.all());
    assert!(
        r.untagged
            .iter()
            .any(|l| l.starts_with("* QUOTA \"\" (STORAGE 0 ")),
        "{}",
        r.all()
    );
    let r = c
        .cmd("GETMETADATA \"\" (/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay)")
        .await;
    assert!(
        r.ok() && r.untagged[0].contains("/shared/comment \"cairn hub cairn\""),
        "{}",
        r.all()
    );
    let r = c.cmd("SELECT \"INBOX\"").await;
    let all = r.all();
    assert!(r.ok() && r.tagged.contains("[READ-WRITE]"), "{all}");
    for want in ["* 0 EXISTS", "[UIDVALIDITY ", "[UIDNEXT 1]"] {
        assert!(all.contains(want), "{want} missing:\n{all}");
    }
    let prefetch = "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE X-MICROSOFT-ORIGINAL-MESSAGE-ID FROM CONTENT-TYPE SECURE-JOIN CHAT-VERSION CHAT-IS-POST-MESSAGE AUTOCRYPT-SETUP-MESSAGE)])";
    let r = c.cmd(&format!("UID FETCH 1:500 {prefetch}")).await;
    assert!(r.ok() && r.untagged.is_empty(), "{}", r.all());

    // IDLE; a message arrives by SMTP; EXISTS is pushed at once.
    let idle = c.idle().await;
    let body = encrypted(ALICE).replacen("Subject", "Message-ID: <m1@localhost>\r\nSubject", 1);
    send(&hub, ALICE, &[BOB], &body).await;
    c.wait_for("* 1 EXISTS", "IDLE push after delivery").await;
    let r = c.done(&idle).await;
    assert!(r.ok(), "{}", r.all());

    let r = c.cmd(&format!("UID FETCH 1:500 {prefetch}")).await;
    let fetched = r.all();
    assert!(
        fetched.contains("* 1 FETCH (UID 1 RFC822.SIZE "),
        "{fetched}"
    );
    assert!(
        fetched.contains("Message-ID: <m1@localhost>")
            && fetched.contains("Content-Type: multipart/encrypted"),
        "{fetched}"
    );
    assert!(
        !fetched.contains("Subject:"),
        "only the asked-for fields: {fetched}"
    );

    let r = c.cmd("UID FETCH 1 (FLAGS BODY.PEEK[])").await;
    let stored = inbox(&hub, BOB).await;
    let raw = hub.store.blob_read(&stored[0].blob_hash).await.unwrap();
    assert!(
        r.untagged[0].starts_with(&format!(
            // The first session to see the message has it as \Recent.
            "* 1 FETCH (UID 1 FLAGS (\\Recent) BODY[] {{{}}}",
            raw.len()
        )),
        "{}",
        r.all()
    );
    assert!(r.untagged[0].contains("-----BEGIN PGP MESSAGE-----"));

    let r = c.cmd("UID STORE 1 +FLAGS (\\Deleted)").await;
    assert!(
        r.ok() && r.untagged[0].contains("FLAGS (\\Deleted)"),
        "{}",
        r.all()
    );
    let r = c.cmd("CLOSE").await;
    assert!(r.ok(), "{}", r.all());
    assert!(inbox(&hub, BOB).await.is_empty(), "CLOSE expunges");
    let r = c.cmd("SELECT \"INBOX\"").await;
    assert!(
        r.all().contains("[UIDNEXT 2]") && r.all().contains("* 0 EXISTS"),
        "UIDs never reused: {}",
        r.all()
    );
    c.cmd("LOGOUT").await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sessions_see_each_others_changes() {
    let (_t, hub) = hub(|_| {}).await;
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    let mut a = imap_login(&hub, BOB).await;
    let mut b = imap_login(&hub, BOB).await;
    assert!(a.cmd("SELECT INBOX").await.ok());
    assert!(b.cmd("SELECT INBOX").await.ok());
    let idle = b.idle().await;
    assert!(a.cmd("UID STORE 1 +FLAGS.SILENT (\\Seen)").await.ok());
    let l = b
        .wait_for("FETCH", "flag change pushed to the other session")
        .await;
    assert!(l.contains("UID 1") && l.contains("\\Seen"), "{l}");
    assert!(a.cmd("UID STORE 2 +FLAGS.SILENT (\\Deleted)").await.ok());
    b.wait_for("FETCH", "deleted flag").await;
    assert!(a.cmd("EXPUNGE").await.ok());
    b.wait_for("* 2 EXPUNGE", "expunge pushed").await;
    assert!(b.done(&idle).await.ok());
    // New mail shows in a session that only polls with NOOP.
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    let r = a.cmd("NOOP").await;
    assert!(r.untagged.iter().any(|l| l == "* 2 EXISTS"), "{}", r.all());
    // And with CHECK (issue 23 point 8: it reported nothing): another
    // session's flag change and expunge.
    assert!(b.cmd("NOOP").await.ok());
    assert!(b.cmd("UID STORE 3 +FLAGS.SILENT (\\Flagged)").await.ok());
    let r = a.cmd("CHECK").await;
    assert!(
        r.ok()
            && r.untagged
                .iter()
                .any(|l| l.contains("FETCH") && l.contains("\\Flagged")),
        "{}",
        r.all()
    );
    assert!(b.cmd("UID STORE 3 +FLAGS.SILENT (\\Deleted)").await.ok());
    assert!(b.cmd("EXPUNGE").await.ok());
    let r = a.cmd("CHECK").await;
    assert!(r.untagged.iter().any(|l| l == "* 2 EXPUNGE"), "{}", r.all());
    hub.shutdown().await;
}

/// Issue 23 point 3 (RFC 3501 §7.2.6): a keyword new to the mailbox is
/// announced with FLAGS and PERMANENTFLAGS before any FETCH shows it, in
/// the session that stored it and in the others; SELECT lists it after.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_keyword_is_announced_before_it_is_shown() {
    let (_t, hub) = hub(|_| {}).await;
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    let mut a = imap_login(&hub, BOB).await;
    let mut b = imap_login(&hub, BOB).await;
    let r = a.cmd("SELECT INBOX").await;
    assert!(!r.all().contains("$Camp"), "{}", r.all());
    assert!(b.cmd("SELECT INBOX").await.ok());
    let r = a.cmd("STORE 1 +FLAGS ($Camp)").await;
    let at =
        |r: &common::imap::Reply, what: &str| r.untagged.iter().position(|l| l.starts_with(what));
    let (flags, perm, fetch) = (
        at(&r, "* FLAGS"),
        at(&r, "* OK [PERMANENTFLAGS"),
        at(&r, "* 1 FETCH"),
    );
    assert!(
        r.ok() && flags.is_some() && perm.is_some() && flags < fetch && perm < fetch,
        "{}",
        r.all()
    );
    assert!(r.untagged[flags.unwrap()].contains("$Camp"), "{}", r.all());
    assert!(r.untagged[perm.unwrap()].contains("$Camp"), "{}", r.all());
    // The same keyword again: nothing new to announce.
    let r = a.cmd("STORE 1 -FLAGS ($Camp)").await;
    assert!(at(&r, "* FLAGS").is_none(), "{}", r.all());
    assert!(a.cmd("STORE 1 +FLAGS ($Camp)").await.ok());
    // The other session learns of it before the FETCH.
    let r = b.cmd("NOOP").await;
    let (flags, fetch) = (at(&r, "* FLAGS"), at(&r, "* 1 FETCH"));
    assert!(flags.is_some() && flags < fetch, "{}", r.all());
    let r = b.cmd("SELECT INBOX").await;
    assert!(
        r.untagged
            .iter()
            .any(|l| l.starts_with("* FLAGS") && l.contains("$Camp")),
        "{}",
        r.all()
    );
    // A FETCH that shows a keyword another session just gave (before this
    // session polled) announces it first. (imaptest's stress run once hit
    // the race where the keyword comes between the session's look at the
    // mailbox and its FETCH; this test cannot force that timing, it checks
    // the ordinary path.)
    assert!(a.cmd("STORE 1 +FLAGS ($Tent)").await.ok());
    let r = b.cmd("FETCH 1 (FLAGS)").await;
    let (flags, fetch) = (at(&r, "* FLAGS"), at(&r, "* 1 FETCH"));
    assert!(
        r.ok() && flags.is_some() && flags < fetch && r.untagged[flags.unwrap()].contains("$Tent"),
        "{}",
        r.all()
    );
    hub.shutdown().await;
}

/// Issue 23 point 6 (RFC 3501 §6.3.3, §6.3.9): CREATE does not subscribe;
/// LSUB with `%` stands for a subscribed child by its parent, \Noselect.
#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_the_clients_and_lsub_shows_parents() {
    let (_t, hub) = hub(|_| {}).await;
    let mut c = imap_login(&hub, BOB).await;
    assert!(c.cmd("CREATE Trips/Summer").await.ok());
    let r = c.cmd("LSUB \"\" \"*\"").await;
    assert!(
        r.ok() && !r.all().contains("Trips"),
        "CREATE subscribed: {}",
        r.all()
    );
    assert!(c.cmd("SUBSCRIBE Trips/Summer").await.ok());
    let r = c.cmd("LSUB \"\" \"%\"").await;
    assert!(
        r.untagged
            .iter()
            .any(|l| l.contains("\\Noselect") && l.ends_with(" Trips")),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("Trips/Summer"), "{}", r.all());
    let r = c.cmd("LSUB \"\" \"*\"").await;
    assert!(
        r.all().contains("Trips/Summer") && !r.all().contains("Noselect"),
        "{}",
        r.all()
    );
    // Subscribed itself (a mailbox now), the parent is listed as such.
    assert!(c.cmd("CREATE Trips").await.ok());
    assert!(c.cmd("SUBSCRIBE Trips").await.ok());
    let r = c.cmd("LSUB \"\" \"%\"").await;
    assert!(
        r.untagged.iter().any(|l| l.ends_with(" Trips")) && !r.all().contains("Noselect"),
        "{}",
        r.all()
    );
    // LIST shows mailboxes whatever their subscription.
    let r = c.cmd("LIST \"\" \"*\"").await;
    assert!(
        r.all().contains("Trips/Summer") && r.all().contains("INBOX"),
        "{}",
        r.all()
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keeps_many_sessions_and_pushes_to_all() {
    let (_t, hub) = hub(|_| {}).await;
    let mut sessions = Vec::new();
    for _ in 0..20 {
        let mut s = imap_login(&hub, BOB).await;
        assert!(s.cmd("SELECT INBOX").await.ok());
        let tag = s.idle().await;
        sessions.push((s, tag));
    }
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    for (s, tag) in sessions.iter_mut() {
        s.wait_for("* 1 EXISTS", "push to every idling session")
            .await;
        assert!(s.done(tag).await.ok());
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_keeps_the_connection_usable() {
    let (_t, hub) = hub(|c| c.limits.max_message_size = cairn::config::ByteSize(64 << 10)).await;
    let (mut c, _) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
    // Wrong state: nothing but login works before login.
    let r = c.cmd("SELECT INBOX").await;
    assert!(r.tagged.starts_with("A0001 BAD"), "{}", r.all());
    // Malformed.
    c.send(b"A0002 FETCH ((((\r\n").await;
    let r = c.until_tagged("A0002").await;
    assert!(r.tagged.contains("BAD"), "{}", r.all());
    c.send(b"garbage without a tag\r\n").await;
    let l = c.line().await.unwrap();
    assert!(l.contains("BAD"), "{l}");
    let r = c.cmd("NOOP").await;
    assert!(r.ok(), "still usable: {}", r.all());
    // Wrong password.
    let r = c.login(BOB, "wrong").await;
    assert!(
        r.tagged.contains("NO [AUTHENTICATIONFAILED]"),
        "{}",
        r.all()
    );
    let r = c.login(BOB, PASSWORD).await;
    assert!(r.ok());
    let r = c.cmd("FETCH 1 FLAGS").await;
    assert!(r.tagged.contains("BAD"), "FETCH before SELECT: {}", r.all());
    // A literal above the limit is refused before it is sent.
    c.send(b"A0100 APPEND INBOX {1000000}\r\n").await;
    let r = c.until_tagged("A0100").await;
    assert!(r.tagged.contains("BAD"), "{}", r.all());
    let r = c.cmd("NOOP").await;
    assert!(r.ok(), "{}", r.all());
    // A literal within the limit (synchronising) works.
    let msg = b"Subject: appended\r\n\r\nhello\r\n";
    c.send(format!("A0101 APPEND INBOX (\\Seen) {{{}}}\r\n", msg.len()).as_bytes())
        .await;
    assert!(c.line().await.unwrap().starts_with('+'));
    c.send(msg).await;
    c.send(b"\r\n").await;
    let r = c.until_tagged("A0101").await;
    assert!(r.tagged.contains("[APPENDUID "), "{}", r.all());
    // Non-synchronising literal (LITERAL+).
    c.send(format!("A0102 APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes())
        .await;
    c.send(msg).await;
    c.send(b"\r\n").await;
    assert!(c.until_tagged("A0102").await.ok());
    assert_eq!(inbox(&hub, BOB).await.len(), 2);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_see_only_their_own_mail() {
    let (_t, hub) = hub(|_| {}).await;
    send(&hub, BOB, &[ALICE], &encrypted(BOB)).await;
    let mut bob = imap_login(&hub, BOB).await;
    let r = bob.cmd("SELECT INBOX").await;
    assert!(r.all().contains("* 0 EXISTS"), "{}", r.all());
    let r = bob.cmd("UID FETCH 1:* (UID BODY.PEEK[])").await;
    assert!(r.untagged.is_empty(), "{}", r.all());
    let r = bob.cmd("LIST \"\" \"*\"").await;
    assert_eq!(r.untagged, ["* LIST (\\HasNoChildren) \"/\" INBOX"]);
    // No name reaches another account's mailbox.
    for name in ["alice@[127.0.0.1]/INBOX", "../alice/INBOX", "#alice"] {
        let r = bob.cmd(&format!("SELECT \"{name}\"")).await;
        assert!(r.tagged.contains("NO"), "{name}: {}", r.all());
    }
    let r = bob.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(r.untagged[0].contains("MESSAGES 0"), "{}", r.all());
    let mut alice = imap_login(&hub, ALICE).await;
    let r = alice.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(r.untagged[0].contains("MESSAGES 1"), "{}", r.all());
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_and_plaintext_login_rules() {
    let (_t, hub) = hub(|_| {}).await;
    let (mut c, greeting) = Imap::plain(hub.endpoint(cairn::app::IMAP_STARTTLS).unwrap()).await;
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    let r = c.login(BOB, PASSWORD).await;
    assert!(r.tagged.contains("NO [PRIVACYREQUIRED]"), "{}", r.all());
    let r = c.cmd("STARTTLS").await;
    assert!(r.ok(), "{}", r.all());
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_vanishing_during_idle_or_a_literal_hurts_no_one() {
    let (_t, hub) = hub(|_| {}).await;
    let mut a = imap_login(&hub, BOB).await;
    assert!(a.cmd("SELECT INBOX").await.ok());
    a.idle().await;
    drop(a);
    let (mut b, _) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
    assert!(b.login(BOB, PASSWORD).await.ok());
    b.send(b"A0009 APPEND INBOX {100}\r\n").await;
    assert!(b.line().await.unwrap().starts_with('+'));
    b.send(b"only part of it").await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    let mut c = imap_login(&hub, BOB).await;
    let r = c.cmd("SELECT INBOX").await;
    assert!(r.all().contains("* 1 EXISTS"), "{}", r.all());
    hub.shutdown().await;
}

/// Thunderbird- and K-9-style use, through Python's imaplib.
#[tokio::test(flavor = "multi_thread")]
async fn imaplib_covers_what_delta_chat_does_not() {
    let (_t, hub) = hub(|c| c.mail.require_encryption = false).await;
    let port = hub
        .endpoint(cairn::app::IMAP_TLS)
        .unwrap()
        .port()
        .to_string();
    let o = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/imap_client.py"
            ))
            .args([&port, BOB, PASSWORD])
            .output()
            .expect("python3 is needed for this test: apt-get install python3")
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.trim() == "ok",
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    hub.shutdown().await;
}

/// Chatmail-style self-service: the first login creates the account.
#[tokio::test(flavor = "multi_thread")]
async fn first_login_creates_an_account() {
    let (_t, hub) = hub(|_| {}).await;
    let addr = hub.endpoint(cairn::app::IMAP_TLS).unwrap();
    let (mut c, _) = Imap::tls(addr, &hub).await;
    let r = c.login("k3x9q2m7p@[127.0.0.1]", "a long enough pw").await;
    assert!(r.ok() && r.tagged.contains("XCHATMAIL"), "{}", r.all());
    assert!(c.cmd("SELECT INBOX").await.ok());
    // The password is now fixed: a different one is refused.
    let (mut d, _) = Imap::tls(addr, &hub).await;
    assert!(
        !d.login("k3x9q2m7p@[127.0.0.1]", "another long pw")
            .await
            .ok()
    );
    // SMTP works with the same credentials right away.
    let (mut s, _) =
        Client::tls(hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap(), &hub).await;
    s.cmd("EHLO x").await;
    assert!(
        s.login("k3x9q2m7p@[127.0.0.1]", "a long enough pw")
            .await
            .starts_with("235")
    );
    // Not created: short password, upper case or odd characters, foreign domain.
    for (user, pw) in [
        ("short@[127.0.0.1]", "8chars!!"),
        ("dot..dot@[127.0.0.1]", "a long enough pw"),
        ("sp+ace@[127.0.0.1]", "a long enough pw"),
        ("someone@elsewhere.example", "a long enough pw"),
    ] {
        let (mut e, _) = Imap::tls(addr, &hub).await;
        assert!(!e.login(user, pw).await.ok(), "{user} must not be created");
    }
    let names: Vec<String> = hub
        .store
        .account_list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.address)
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    hub.shutdown().await;
}

/// Delta Chat logs in over IMAP and SMTP at the same moment; whichever
/// creates the account, the other login must still succeed (a login that
/// looked before the account existed and after it appeared once failed).
#[tokio::test(flavor = "multi_thread")]
async fn simultaneous_first_logins_all_succeed() {
    let (_t, hub) = hub(|_| {}).await;
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap();
    let smtp = hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap();
    for round in 0..4 {
        let user = format!("racer{round}@[127.0.0.1]");
        let mut logins = tokio::task::JoinSet::new();
        for i in 0..6 {
            let (cert, user) = (hub_cert(&hub), user.clone());
            logins.spawn(async move {
                if i % 2 == 0 {
                    let (mut c, _) = Imap::tls_with(imap, cert).await;
                    let r = c.login(&user, "a long enough pw").await;
                    (r.ok(), r.all())
                } else {
                    let (mut s, _) = Client::tls_with(smtp, cert).await;
                    s.cmd("EHLO x").await;
                    let r = s.login(&user, "a long enough pw").await;
                    (r.starts_with("235"), r)
                }
            });
        }
        while let Some(r) = logins.join_next().await {
            let (ok, said) = r.unwrap();
            assert!(ok, "{user}: a simultaneous first login failed: {said}");
        }
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn self_service_can_be_switched_off() {
    let (_t, hub) = hub(|c| c.mail.create_on_login = false).await;
    let (mut c, _) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
    assert!(
        !c.login("k3x9q2m7p@[127.0.0.1]", "a long enough pw")
            .await
            .ok()
    );
    assert_eq!(hub.store.account_list().await.unwrap().len(), 3);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_imap_logins_are_cut_off_per_address() {
    let (_t, hub) = hub(|_| {}).await;
    let addr = hub.endpoint(cairn::app::IMAP_TLS).unwrap();
    let mut last = String::new();
    for _ in 0..(cairn::mail::transaction::LOGIN_FAILURE_BURST + 1) {
        let (mut c, _) = Imap::tls(addr, &hub).await;
        last = c.login(BOB, "guessing").await.tagged;
    }
    assert!(
        last.contains("NO [UNAVAILABLE]") && last.contains("try again in"),
        "{last}"
    );
    // The right password waits too, so guessing does not pay off.
    let (mut c, _) = Imap::tls(addr, &hub).await;
    assert!(!c.login(BOB, PASSWORD).await.ok());
    hub.shutdown().await;
}

/// Another session marks a message seen while this one is about to fetch
/// it: the flag change rides in the one FETCH response that carries the
/// body. (A separate body-less FETCH for the same UID inside the command's
/// responses made Delta Chat skip the message: "Not processing message
/// without a BODY".)
#[tokio::test(flavor = "multi_thread")]
async fn a_flag_change_never_splits_a_fetched_message() {
    let (_t, hub) = hub(|_| {}).await;
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    let mut a = imap_login(&hub, BOB).await;
    let mut b = imap_login(&hub, BOB).await;
    assert!(a.cmd("SELECT INBOX").await.ok());
    assert!(b.cmd("SELECT INBOX").await.ok());
    assert!(b.cmd("UID STORE 1:2 +FLAGS.SILENT (\\Seen)").await.ok());
    let r = a.cmd("UID FETCH 1 (UID RFC822.SIZE BODY.PEEK[])").await;
    assert!(r.ok(), "{}", r.all());
    let fetches: Vec<&String> = r
        .untagged
        .iter()
        .filter(|l| l.starts_with("* 1 FETCH"))
        .collect();
    assert_eq!(fetches.len(), 1, "one FETCH for UID 1: {}", r.all());
    assert!(
        fetches[0].contains("BODY[]") && fetches[0].contains("\\Seen"),
        "{}",
        r.all()
    );
    // The other message's change comes after, on its own.
    let i1 = r
        .untagged
        .iter()
        .position(|l| l.starts_with("* 1 FETCH"))
        .unwrap();
    let i2 = r
        .untagged
        .iter()
        .position(|l| l.starts_with("* 2 FETCH"))
        .expect("UID 2's flag change is reported");
    assert!(i2 > i1, "{}", r.all());
    hub.shutdown().await;
}

/// The seed of the `imap_session` fuzz target logs in and gets every
/// command answered OK, so fuzzing starts deep inside a session.
#[test]
fn the_imap_fuzz_seed_is_a_whole_good_session() {
    let seed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fuzz/corpus/imap_session/seed"
    ))
    .unwrap();
    let out = fuzz_hub::imap(seed[0] & 1 == 0, &seed[1..]);
    let out = String::from_utf8_lossy(&out);
    for tag in 'a'..='u' {
        assert!(
            out.contains(&format!("\r\n{tag} OK")),
            "{tag} was not answered OK:\n{out}"
        );
    }
    assert!(
        out.contains("APPENDUID") && out.contains("hello from the seed"),
        "{out}"
    );
}

/// A client that makes too many errors is told BYE once and disconnected
/// (the BYE used to answer its own sending, forever: found by fuzzing).
#[tokio::test(flavor = "multi_thread")]
async fn too_many_errors_end_in_one_bye_and_a_closed_connection() {
    let (_t, hub) = hub(|_| {}).await;
    let (mut c, _) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
    let garbage: String = (0..40).map(|i| format!("x{i} NOSUCHCOMMAND\r\n")).collect();
    c.send(garbage.as_bytes()).await;
    let mut byes = 0;
    while let Some(line) = c.line().await {
        if line.starts_with("* BYE") {
            byes += 1;
            assert!(byes == 1, "more than one BYE: {line}");
        }
    }
    assert_eq!(byes, 1, "the server closed without a BYE");
    hub.shutdown().await;
}

/// A phone that walks out of range while fetching a large message leaves
/// the hub's session stuck writing; when the hub stops, it waits
/// `DRAIN_TIMEOUT` for it and then closes that connection, so nothing of
/// a stopped hub (one restarting in the same process) goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_hub_closes_a_session_stuck_writing_to_a_gone_phone() {
    let (_t, hub) = hub(|c| c.mail.require_encryption = false).await;
    let size = 16 << 20;
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-\r\n";
    let body = format!(
        "From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: big\r\n\r\n{}",
        line.repeat(size / line.len())
    );
    send(&hub, ALICE, &[BOB], &body).await;
    let mut c = imap_login(&hub, BOB).await;
    assert!(c.cmd("SELECT INBOX").await.ok());
    // Ask for 16 MB and read none of it: more than the socket buffers
    // hold, so the session blocks in its write.
    c.send(b"F1 FETCH 1 BODY[]\r\n").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::timeout(
        cairn::app::DRAIN_TIMEOUT + Duration::from_secs(30),
        hub.shutdown(),
    )
    .await
    .expect("the hub stops");
    // What had been sent can still be read, then the connection ends
    // without the FETCH ever completing.
    let mut lines = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), c.line()).await {
            Ok(Some(l)) => lines.push(l.chars().take(80).collect::<String>()),
            Ok(None) => break,
            Err(_) => panic!("the stopped hub kept the connection open: {lines:?}"),
        }
    }
    assert!(
        !lines.iter().any(|l| l.starts_with("F1 OK")),
        "the session went on writing after the hub stopped: {lines:?}"
    );
}

/// RFC 3501 §6.4.5 on a forwarded mail: the parts of a message/rfc822
/// part are entered by the numbers after it, and `n.HEADER`/`n.TEXT`
/// address the encapsulated message (issue 23 point 2).
#[tokio::test(flavor = "multi_thread")]
async fn sections_inside_an_attached_message() {
    let (_t, hub) = hub(|_| {}).await;
    let mut c = imap_login(&hub, BOB).await;
    let msg = "From: a@b\r\nSubject: outer\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\ncover\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\ninner one\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>inner two</p>\r\n--i--\r\n--o--\r\n";
    c.send(format!("A1 APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()).as_bytes())
        .await;
    assert!(c.until_tagged("A1").await.ok());
    assert!(c.cmd("SELECT INBOX").await.ok());
    for (section, want) in [
        ("2.HEADER", "From: c@d\r\nSubject: inner\r\n"),
        ("2.HEADER.FIELDS (SUBJECT)", "Subject: inner\r\n\r\n"),
        ("2.TEXT", "--i\r\nContent-Type: text/plain\r\n\r\ninner one"),
        ("2.1", "inner one"),
        ("2.2", "<p>inner two</p>"),
        ("2.1.MIME", "Content-Type: text/plain\r\n\r\n"),
        ("2.MIME", "Content-Type: message/rfc822\r\n\r\n"),
        (
            "2",
            "From: c@d\r\nSubject: inner\r\nContent-Type: multipart/alternative",
        ),
        ("1", "cover"),
        ("HEADER.FIELDS (SUBJECT)", "Subject: outer\r\n\r\n"),
    ] {
        let r = c.cmd(&format!("FETCH 1 BODY.PEEK[{section}]")).await;
        assert!(r.ok(), "{section}: {}", r.all());
        assert!(
            r.all().contains(want),
            "BODY[{section}] should hold {want:?}:\n{}",
            r.all()
        );
    }
    // Beyond what exists: empty, not the outer part.
    let r = c.cmd("FETCH 1 BODY.PEEK[2.3]").await;
    assert!(r.all().contains("BODY[2.3] {0}"), "{}", r.all());
    hub.shutdown().await;
}

/// RFC 3501 §2.3.2 \Recent: a new message is recent to the one session
/// that sees it first (SELECT claims; EXAMINE and STATUS only count what
/// nobody claimed); SEARCH RECENT/NEW/OLD follow it; a client cannot set
/// it (issue 23 point 7).
#[tokio::test(flavor = "multi_thread")]
async fn recent_belongs_to_the_first_session() {
    let (_t, hub) = hub(|_| {}).await;
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    let mut c = imap_login(&hub, BOB).await;
    let r = c.cmd("STATUS INBOX (MESSAGES RECENT)").await;
    assert!(r.all().contains("(MESSAGES 1 RECENT 1)"), "{}", r.all());
    let r = c.cmd("EXAMINE INBOX").await;
    assert!(
        r.all().contains("* 1 RECENT"),
        "EXAMINE counts: {}",
        r.all()
    );
    let mut a = imap_login(&hub, BOB).await;
    let r = a.cmd("SELECT INBOX").await;
    assert!(r.all().contains("* 1 RECENT"), "{}", r.all());
    let r = a.cmd("FETCH 1 FLAGS").await;
    assert!(r.all().contains("\\Recent"), "{}", r.all());
    assert!(a.cmd("SEARCH RECENT").await.untagged == ["* SEARCH 1"]);
    assert!(a.cmd("SEARCH NEW").await.untagged == ["* SEARCH 1"]);
    assert!(a.cmd("SEARCH OLD").await.untagged == ["* SEARCH"]);

    // The second session to look has it as old.
    let mut b = imap_login(&hub, BOB).await;
    let r = b.cmd("SELECT INBOX").await;
    assert!(r.all().contains("* 0 RECENT"), "{}", r.all());
    let r = b.cmd("FETCH 1 FLAGS").await;
    assert!(!r.all().contains("\\Recent"), "{}", r.all());
    assert!(b.cmd("SEARCH OLD").await.untagged == ["* SEARCH 1"]);
    assert!(
        c.cmd("STATUS INBOX (RECENT)")
            .await
            .all()
            .contains("(RECENT 0)")
    );

    // New mail: whoever looks first gets it; the other sees it as old.
    send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    let r = b.cmd("NOOP").await;
    assert!(
        r.all().contains("* 2 EXISTS") && r.all().contains("* 1 RECENT"),
        "{}",
        r.all()
    );
    let r = a.cmd("NOOP").await;
    assert!(r.all().contains("* 2 EXISTS"), "{}", r.all());
    let r = a.cmd("FETCH 2 FLAGS").await;
    assert!(!r.all().contains("\\Recent"), "{}", r.all());
    let r = b.cmd("FETCH 1:2 FLAGS").await;
    assert!(
        r.all().contains("* 2 FETCH (FLAGS (\\Recent))")
            && !r.all().contains("* 1 FETCH (FLAGS (\\Recent"),
        "{}",
        r.all()
    );
    // A client's \Recent is not stored.
    assert!(a.cmd("STORE 1 +FLAGS (\\Recent \\Flagged)").await.ok());
    let r = b.cmd("FETCH 1 FLAGS").await;
    assert!(
        r.all().contains("\\Flagged") && !r.all().contains("\\Recent"),
        "{}",
        r.all()
    );
    hub.shutdown().await;
}

/// RFC 2971 lets a client's ID name 30 fields of up to 30 octets with
/// values of up to 1024 octets, and clients send it before login
/// (imaptest's `id` group): the largest one is answered, and the session
/// goes on to log in.
#[tokio::test(flavor = "multi_thread")]
async fn the_largest_id_is_answered_before_login() {
    let (_tmp, hub) = hub(|_| {}).await;
    let (mut c, _) = Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
    let fields: Vec<String> = (0..30)
        .map(|i| format!("\"{:x<30}\" \"{}\"", format!("f{i:02}"), "v".repeat(1024)))
        .collect();
    let command = format!("ID ({})", fields.join(" "));
    assert!(command.len() > 31_000, "{}", command.len());
    let r = c.cmd(&command).await;
    assert!(r.ok(), "{}", r.all());
    assert!(c.login("alice@[127.0.0.1]", PASSWORD).await.ok());
    hub.shutdown().await;
}

/// Issue 23 point 9, RFC 7162 §3.2 QRESYNC: after ENABLE QRESYNC another
/// session's expunge comes as VANISHED; a client coming back with the
/// UIDVALIDITY and mod-sequence it had learns in its SELECT which of its
/// UIDs are gone (VANISHED (EARLIER)) and which messages changed, and UID
/// FETCH … (CHANGEDSINCE … VANISHED) says the same. Without ENABLE, both
/// are refused (§3.2.5, §3.2.6).
#[tokio::test(flavor = "multi_thread")]
async fn qresync_tells_a_returning_client_what_vanished_and_changed() {
    let (_t, hub) = hub(|_| {}).await;
    for _ in 0..5 {
        send(&hub, ALICE, &[BOB], &encrypted(ALICE)).await;
    }
    let mut a = imap_login(&hub, BOB).await;
    let r = a.cmd("CAPABILITY").await;
    assert!(r.all().contains(" QRESYNC"), "{}", r.all());
    let r = a.cmd("SELECT INBOX (QRESYNC (1 1))").await;
    assert_eq!(r.tagged.split(' ').nth(1), Some("BAD"), "{}", r.all());
    let r = a.cmd("ENABLE QRESYNC").await;
    assert!(
        r.untagged.iter().any(|l| l == "* ENABLED QRESYNC"),
        "{}",
        r.all()
    );
    let r = a.cmd("SELECT INBOX").await;
    let number = |r: &common::imap::Reply, code: &str| -> u64 {
        let l = r.all();
        let at = l.find(code).unwrap_or_else(|| panic!("no {code} in {l}")) + code.len() + 1;
        l[at..].split(']').next().unwrap().trim().parse().unwrap()
    };
    let validity = number(&r, "UIDVALIDITY");
    let modseq = number(&r, "HIGHESTMODSEQ");

    // Meanwhile another client reads message 2 and deletes message 4.
    let mut b = imap_login(&hub, BOB).await;
    assert!(b.cmd("SELECT INBOX").await.ok());
    assert!(b.cmd("UID STORE 2 +FLAGS.SILENT (\\Seen)").await.ok());
    assert!(b.cmd("UID STORE 4 +FLAGS.SILENT (\\Deleted)").await.ok());
    assert!(b.cmd("EXPUNGE").await.ok());
    let r = a.cmd("NOOP").await;
    assert!(
        r.untagged.iter().any(|l| l == "* VANISHED 4"),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("EXPUNGE"), "{}", r.all());

    // A client that comes back.
    let mut c = imap_login(&hub, BOB).await;
    assert!(c.cmd("ENABLE QRESYNC").await.ok());
    let r = c
        .cmd(&format!("SELECT INBOX (QRESYNC ({validity} {modseq} 1:5))"))
        .await;
    assert!(r.ok(), "{}", r.all());
    assert!(number(&r, "HIGHESTMODSEQ") > modseq, "{}", r.all());
    assert!(
        r.untagged.iter().any(|l| l == "* VANISHED (EARLIER) 4"),
        "{}",
        r.all()
    );
    let changed: Vec<&String> = r.untagged.iter().filter(|l| l.contains("FETCH")).collect();
    assert_eq!(changed.len(), 1, "{}", r.all());
    assert!(
        changed[0].starts_with("* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ ("),
        "{}",
        r.all()
    );
    let r = c
        .cmd(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"
        ))
        .await;
    assert!(r.ok(), "{}", r.all());
    assert!(
        r.untagged.iter().any(|l| l == "* VANISHED (EARLIER) 4"),
        "{}",
        r.all()
    );
    let changed: Vec<&String> = r.untagged.iter().filter(|l| l.contains("FETCH")).collect();
    assert!(
        changed.len() == 1 && changed[0].contains("UID 2"),
        "{}",
        r.all()
    );
    // Once QRESYNC is on, every FETCH carries UID and MODSEQ, even those
    // of STORE and FETCH by sequence number (RFC 7162 §3.2.4).
    let r = c.cmd("STORE 1 +FLAGS (\\Flagged)").await;
    assert!(
        r.untagged
            .iter()
            .any(|l| l.starts_with("* 1 FETCH (UID 1 FLAGS (") && l.contains("MODSEQ (")),
        "{}",
        r.all()
    );
    let r = c.cmd("FETCH 2 (FLAGS)").await;
    assert!(
        r.untagged
            .iter()
            .any(|l| l.starts_with("* 2 FETCH (UID 2 FLAGS (") && l.contains("MODSEQ (")),
        "{}",
        r.all()
    );
    // Another UIDVALIDITY: a plain SELECT (the client starts over).
    let r = c
        .cmd(&format!(
            "SELECT INBOX (QRESYNC ({} {modseq} 1:5))",
            validity + 1
        ))
        .await;
    assert!(r.ok() && !r.all().contains("VANISHED"), "{}", r.all());

    // Without ENABLE QRESYNC: VANISHED is refused.
    let mut d = imap_login(&hub, BOB).await;
    assert!(d.cmd("SELECT INBOX").await.ok());
    let r = d
        .cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
        .await;
    assert_eq!(r.tagged.split(' ').nth(1), Some("BAD"), "{}", r.all());
    hub.shutdown().await;
}

/// Issue 23 point 9, RFC 5256 §3 SORT (with RFC 5957's DISPLAYFROM): the
/// messages SEARCH finds, ordered by base subject, sent date, sender,
/// size or arrival, REVERSE turning one key round, ties by sequence
/// number; another charset is refused with the ones the hub takes.
#[tokio::test(flavor = "multi_thread")]
async fn sort_orders_what_search_finds() {
    let (_t, hub) = hub(|_| {}).await;
    let mut c = imap_login(&hub, BOB).await;
    let r = c.cmd("CAPABILITY").await;
    assert!(
        r.all().contains(" SORT ") && r.all().contains(" SORT=DISPLAY"),
        "{}",
        r.all()
    );
    let messages = [
        "From: Carol <carol@x.example>\r\nSubject: Re: b topic\r\nDate: Sat, 3 Jan 2026 10:00:00 +0000\r\n\r\nshort\r\n",
        "From: alice@x.example\r\nSubject: a topic\r\nDate: Mon, 5 Jan 2026 10:00:00 +0000\r\n\r\nshort\r\n",
        "From: \"Bob B\" <bob@x.example>\r\nSubject: [list] Fwd: C topic (fwd)\r\nDate: Thu, 1 Jan 2026 23:00:00 -0300\r\n\r\na longer body than the others\r\n",
        "From: dave@x.example\r\nSubject: unrelated\r\n\r\nno date\r\n",
    ];
    // Arrival (INTERNALDATE) in another order than the Date headers.
    let arrived = ["04", "02", "03", "01"];
    for (i, m) in messages.iter().enumerate() {
        let tag = format!("A{}", 900 + i);
        let date = format!("\"{}-Feb-2026 12:00:00 +0000\"", arrived[i]);
        c.send(format!("{tag} APPEND INBOX {date} {{{}+}}\r\n", m.len()).as_bytes())
            .await;
        c.send(m.as_bytes()).await;
        c.send(b"\r\n").await;
        assert!(c.until_tagged(&tag).await.ok());
    }
    assert!(c.cmd("SELECT INBOX").await.ok());
    let sorted = |r: &common::imap::Reply| -> String {
        assert!(r.ok(), "{}", r.all());
        r.untagged
            .iter()
            .find_map(|l| l.strip_prefix("* SORT"))
            .unwrap_or_else(|| panic!("no SORT in {}", r.all()))
            .trim()
            .to_string()
    };
    let topic = "SUBJECT topic";
    assert_eq!(
        sorted(&c.cmd(&format!("SORT (SUBJECT) UTF-8 {topic}")).await),
        "2 1 3"
    );
    // The third was sent 1 Jan 23:00 -0300, which is 2 Jan in UTC.
    assert_eq!(
        sorted(&c.cmd(&format!("SORT (DATE) UTF-8 {topic}")).await),
        "3 1 2"
    );
    assert_eq!(
        sorted(&c.cmd("SORT (REVERSE FROM) UTF-8 ALL").await),
        "4 1 3 2"
    );
    assert_eq!(
        sorted(&c.cmd("SORT (DISPLAYFROM) US-ASCII ALL").await),
        "2 3 1 4"
    );
    assert_eq!(
        sorted(&c.cmd("SORT (SIZE REVERSE ARRIVAL) UTF-8 ALL").await),
        "4 2 1 3"
    );
    assert_eq!(
        sorted(&c.cmd("UID SORT (REVERSE ARRIVAL) UTF-8 ALL").await),
        "1 3 2 4"
    );
    assert_eq!(
        sorted(&c.cmd("SORT (SUBJECT) UTF-8 SUBJECT nothing").await),
        ""
    );
    let r = c.cmd("SORT (SUBJECT) KOI8-R ALL").await;
    assert!(
        r.tagged.contains("NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{}",
        r.all()
    );
    hub.shutdown().await;
}
