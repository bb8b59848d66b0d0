//! A second real mail client beside Delta Chat: isync's `mbsync`
//! (Debian's `isync`), the way people keep a local copy of their mail.
//! It syncs a mailbox both ways with flags, and notices when a mailbox was
//! recreated (a new UIDVALIDITY) instead of mixing up messages.

mod common;
use common::smtp::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const BOB: &str = "bob@[127.0.0.1]";
const ALICE: &str = "alice@[127.0.0.1]";
const MBSYNC: &str = "/usr/bin/mbsync";

/// An mbsync setup for `user` on `hub`: every mailbox of the hub, both
/// ways, into maildirs under `dir`.
fn config(dir: &Path, hub: &cairn::app::Hub, user: &str) -> PathBuf {
    let addr = hub.endpoint(cairn::app::IMAP_TLS).unwrap();
    let cert = hub.report.data_dir.join("tls/cert.pem");
    std::fs::create_dir_all(dir.join("mail")).unwrap();
    let rc = dir.join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount hub\nHost {ip}\nPort {port}\nUser {user}\nPass \"{PASSWORD}\"\nSSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore hub-far\nAccount hub\n\n\
             MaildirStore near\nPath {mail}/\nInbox {mail}/INBOX\nSubFolders Verbatim\n\n\
             Channel hub\nFar :hub-far:\nNear :near:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            ip = addr.ip(),
            port = addr.port(),
            cert = cert.display(),
            mail = dir.join("mail").display(),
        ),
    )
    .unwrap();
    rc
}

/// Run mbsync; (success, what it said).
fn mbsync(rc: &Path) -> (bool, String) {
    let o = Command::new(MBSYNC)
        .arg("-c")
        .arg(rc)
        .arg("-a")
        .output()
        .expect("run mbsync");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// [`mbsync`] off the async workers (the hub runs on them).
async fn run(rc: &Path) -> (bool, String) {
    let rc = rc.to_path_buf();
    tokio::task::spawn_blocking(move || mbsync(&rc))
        .await
        .unwrap()
}

/// The files of a maildir folder (new and cur), by name.
fn maildir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            out.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

fn flags_of(file: &Path) -> String {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    name.split_once(":2,")
        .map(|(_, f)| f.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn mbsync_syncs_both_ways_and_notices_a_recreated_mailbox() {
    common::debian_tool(MBSYNC, "isync");
    let (_t, hub) = hub(|_| {}).await;
    for _ in 0..2 {
        let (mut c, _) =
            Client::tls(hub.endpoint(cairn::app::SMTP_SUBMISSION_TLS).unwrap(), &hub).await;
        c.cmd("EHLO x").await;
        assert!(c.login(ALICE, PASSWORD).await.starts_with("235"));
        assert!(
            c.mail(ALICE, &[BOB], &encrypted(ALICE))
                .await
                .starts_with("250")
        );
    }
    let work = tempfile::tempdir().unwrap();
    let rc = config(work.path(), &hub, BOB);
    let inbox_dir = work.path().join("mail/INBOX");

    // Down: both messages arrive in the maildir.
    let (ok, said) = run(&rc).await;
    assert!(ok, "{said}");
    let local = maildir(&inbox_dir);
    assert_eq!(local.len(), 2, "{said}\n{local:?}");

    // Up: one read and flagged here, and a message written here (a draft
    // in a new folder).
    let first = &local[0];
    let base = first.file_name().unwrap().to_string_lossy().into_owned();
    let base = base.split(":2,").next().unwrap();
    let cur = inbox_dir.join("cur").join(format!("{base}:2,FS"));
    std::fs::rename(first, &cur).unwrap();
    let drafts = work.path().join("mail/Drafts");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(drafts.join(sub)).unwrap();
    }
    std::fs::write(
        drafts.join("new/1700000000.1.local"),
        "From: bob@[127.0.0.1]\r\nSubject: written offline\r\n\r\nhello\r\n",
    )
    .unwrap();
    let (ok, said) = run(&rc).await;
    assert!(ok, "{said}");
    let account = hub
        .store
        .account_find(&cairn::domain::Address::parse(BOB).unwrap())
        .await
        .unwrap()
        .unwrap();
    let boxes = hub.store.mailbox_list(account.id()).await.unwrap();
    let inbox = boxes.iter().find(|b| b.name == "INBOX").unwrap();
    let flagged: Vec<String> = hub
        .store
        .messages(inbox.id())
        .await
        .unwrap()
        .iter()
        .map(|m| m.flags.clone())
        .collect();
    assert!(
        flagged
            .iter()
            .any(|f| f.contains("\\Seen") && f.contains("\\Flagged")),
        "{flagged:?}"
    );
    let drafts_box = boxes
        .iter()
        .find(|b| b.name == "Drafts")
        .expect("Drafts made on the hub");
    let stored = hub.store.messages(drafts_box.id()).await.unwrap();
    assert_eq!(stored.len(), 1);
    let text = hub.store.blob_read(&stored[0].blob_hash).await.unwrap();
    assert!(String::from_utf8_lossy(&text).contains("written offline"));

    // Down again: a flag set on the hub (by another client) arrives.
    let mut imap = {
        let (mut c, _) =
            common::imap::Imap::tls(hub.endpoint(cairn::app::IMAP_TLS).unwrap(), &hub).await;
        assert!(c.login(BOB, PASSWORD).await.ok());
        c
    };
    assert!(imap.cmd("SELECT INBOX").await.ok());
    assert!(imap.cmd("STORE 2 +FLAGS (\\Answered)").await.ok());
    let (ok, said) = run(&rc).await;
    assert!(ok, "{said}");
    let local = maildir(&inbox_dir);
    assert!(
        local.iter().any(|f| flags_of(f).contains('R')),
        "\\Answered became R: {local:?}"
    );

    // The hub's Drafts is deleted and made again (a new UIDVALIDITY, UIDs
    // from 1): mbsync must notice rather than pair old and new messages.
    assert!(imap.cmd("DELETE Drafts").await.ok());
    assert!(imap.cmd("CREATE Drafts").await.ok());
    let msg = "Subject: another\r\n\r\nnew\r\n";
    imap.send(format!("A9 APPEND Drafts {{{}+}}\r\n{msg}\r\n", msg.len()).as_bytes())
        .await;
    assert!(imap.until_tagged("A9").await.ok());
    let (_, said) = run(&rc).await;
    assert!(said.contains("UIDVALIDITY"), "mbsync noticed: {said}");
    // The box was left alone rather than mixed up: the old draft only.
    let texts: Vec<String> = maildir(&drafts)
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("written offline"), "{texts:?}");
    hub.shutdown().await;
}
