//! Mailboxes, messages and the outbox, and the change events that IMAP IDLE
//! and the dashboard subscribe to.

use super::blobs::StagedBlob;
use super::{Result, Store, now};
use crate::domain::{AccountId, ItemId, MailboxId, ModSeq, Uid};

/// Something that changed in a mailbox, published after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A message was added.
    Appended {
        account: AccountId,
        mailbox: MailboxId,
        uid: Uid,
        modseq: ModSeq,
    },
    /// A message's flags changed.
    Flags {
        account: AccountId,
        mailbox: MailboxId,
        uid: Uid,
        modseq: ModSeq,
    },
    /// A message was removed.
    Expunged {
        account: AccountId,
        mailbox: MailboxId,
        uid: Uid,
    },
    /// Items were added to the outbox.
    Queued { item: ItemId },
    /// Another process (a CLI command) changed mail: anything may differ.
    External,
}

impl Change {
    /// The mailbox a change is about, if any.
    pub fn mailbox(&self) -> Option<MailboxId> {
        match self {
            Change::Appended { mailbox, .. }
            | Change::Flags { mailbox, .. }
            | Change::Expunged { mailbox, .. } => Some(*mailbox),
            Change::Queued { .. } | Change::External => None,
        }
    }
}

/// What leaves this node: the envelope of the non-local recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEnvelope {
    /// Empty for the null reverse-path.
    pub mail_from: String,
    pub rcpts: Vec<String>,
}

/// Where one message goes: local INBOXes and at most one outbox item.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub blob: &'a StagedBlob,
    pub local: &'a [AccountId],
    pub outbound: Option<&'a OutboundEnvelope>,
}

/// What a committed delivery made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub appended: Vec<(AccountId, MailboxId, Uid)>,
    pub queued: Option<ItemId>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub uid: i64,
    pub modseq: i64,
    pub flags: String,
    pub blob_hash: String,
    pub size: i64,
    pub internal_date: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub blob_hash: String,
    pub mail_from: String,
    pub rcpts: String,
    pub next_hop: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Size of the message in bytes.
    pub size: i64,
}

impl OutboxRow {
    pub fn recipients(&self) -> Vec<String> {
        serde_json::from_str(&self.rcpts).unwrap_or_default()
    }
}

impl Store {
    /// Tell a hub running on this data directory that this process
    /// changed mail (see [`Store::watch_other_processes`]).
    pub async fn wake_hub(&self) -> Result<()> {
        sqlx::query("UPDATE wakeups SET n = n + 1 WHERE id = 1")
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Poll for [`Store::wake_hub`] from other processes every `every` and
    /// publish [`Change::External`] when it happened, until `stop`.
    pub async fn watch_other_processes(
        self,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let read = |s: Store| async move {
            sqlx::query_scalar::<_, i64>("SELECT n FROM wakeups WHERE id = 1")
                .fetch_one(s.pool())
                .await
                .ok()
        };
        let mut last = read(self.clone()).await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let now = read(self.clone()).await;
            if now.is_some() && now != last {
                last = now;
                let _ = self.changes.send(Change::External);
                // It may have removed an account or changed a password.
                self.bump_credentials();
            }
        }
    }

    /// Hold while committing a transaction and publishing its changes.
    pub(crate) async fn publishing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.publish.lock().await
    }

    /// Commits `tx`, then publishes `events`: in the order of commits,
    /// whoever commits them.
    pub(crate) async fn commit_publishing(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Sqlite>,
        events: Vec<Change>,
    ) -> Result<()> {
        let _in_order = self.publishing().await;
        tx.commit().await?;
        for e in events {
            // No subscriber is fine: nobody is idling.
            let _ = self.changes.send(e);
        }
        Ok(())
    }

    /// Subscribe to changes committed from now on.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Commit one message to every local INBOX and the outbox, all or nothing.
    pub async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let t = now();
        let size = i64::try_from(d.blob.size).unwrap_or(i64::MAX);
        sqlx::query("INSERT OR IGNORE INTO blobs (hash, size) VALUES (?, ?)")
            .bind(&d.blob.hash)
            .bind(size)
            .execute(&mut *tx)
            .await?;
        let mut out = Delivered::default();
        let mut events = Vec::new();
        for account in d.local {
            let change = super::relay::append_inbox(&mut tx, *account, d.blob, t).await?;
            if let Change::Appended { mailbox, uid, .. } = &change {
                out.appended.push((*account, *mailbox, *uid));
            }
            events.push(change);
        }
        if let Some(env) = d.outbound {
            let rcpts = serde_json::to_string(&env.rcpts).expect("strings serialise");
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO outbox (blob_hash, mail_from, rcpts, state, created_at)
                 VALUES (?, ?, ?, 'no-route', ?) RETURNING id",
            )
            .bind(&d.blob.hash)
            .bind(&env.mail_from)
            .bind(rcpts)
            .bind(t)
            .fetch_one(&mut *tx)
            .await?;
            out.queued = Some(ItemId(id));
            events.push(Change::Queued { item: ItemId(id) });
        }
        self.commit_publishing(tx, events).await?;
        Ok(out)
    }

    /// The INBOX of an account.
    pub async fn inbox(&self, account: AccountId) -> Result<MailboxId> {
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM mailboxes WHERE account_id = ? AND name = 'INBOX'")
                .bind(account.0)
                .fetch_one(self.pool())
                .await?;
        Ok(MailboxId(id))
    }

    /// Messages of a mailbox in UID order.
    pub async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageRow>> {
        Ok(sqlx::query_as(
            "SELECT id, uid, modseq, flags, blob_hash, size, internal_date
             FROM messages WHERE mailbox_id = ? ORDER BY uid",
        )
        .bind(mailbox.0)
        .fetch_all(self.pool())
        .await?)
    }

    /// Outbox items, oldest first.
    pub async fn outbox(&self) -> Result<Vec<OutboxRow>> {
        Ok(sqlx::query_as(
            "SELECT o.id, o.blob_hash, o.mail_from, o.rcpts,
                    (SELECT name FROM peers WHERE id = o.peer_id) AS next_hop, o.state, o.created_at,
                    o.attempts, o.last_error, b.size
             FROM outbox o JOIN blobs b ON b.hash = o.blob_hash ORDER BY o.id",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_alice() -> (tempfile::TempDir, Store, AccountId) {
        crate::store::with_one_account().await
    }

    /// A delivery that fails half-way leaves nothing: no message in the
    /// first INBOX, no outbox item.
    #[tokio::test]
    async fn delivery_is_all_or_nothing() {
        let (_dir, store, alice) = store_with_alice().await;
        let mut spool = store.spool();
        spool.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let blob = spool.commit().await.unwrap();
        let env = OutboundEnvelope {
            mail_from: "a@[127.0.0.1]".into(),
            rcpts: vec!["z@far.example".into()],
        };
        // The second recipient does not exist (no INBOX): the whole delivery fails.
        let r = store
            .deliver(Delivery {
                blob: &blob,
                local: &[alice, AccountId(9999)],
                outbound: Some(&env),
            })
            .await;
        assert!(r.is_err());
        let inbox = store.inbox(alice).await.unwrap();
        assert!(store.messages(inbox).await.unwrap().is_empty());
        assert!(store.outbox().await.unwrap().is_empty());
        // The same delivery without the bad recipient works, and UIDs start at 1.
        let d = store
            .deliver(Delivery {
                blob: &blob,
                local: &[alice],
                outbound: Some(&env),
            })
            .await
            .unwrap();
        assert_eq!(d.appended[0].2, Uid(1));
        let refs: i64 = sqlx::query_scalar("SELECT refs FROM blobs WHERE hash = ?")
            .bind(&blob.hash)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(refs, 2, "one message row and one outbox row");
    }

    /// Deliveries that race each other still publish their changes in
    /// commit (UID) order, so IDLE sessions never fall back to re-reading
    /// the mailbox (with 100 sessions idling that cut delivery to a fifth).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn changes_are_published_in_uid_order() {
        let (_dir, store, alice) = store_with_alice().await;
        let mut changes = store.changes();
        // A busy runtime, as with many IDLE sessions: a task woken after
        // its commit may run late.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for _ in 0..8 {
            let done = done.clone();
            tokio::spawn(async move {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::task::yield_now().await;
                }
            });
        }
        let mut tasks = Vec::new();
        for n in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for k in 0..10 {
                    let mut spool = store.spool();
                    spool
                        .write(format!("Subject: {n}.{k}\r\n\r\nbody\r\n").as_bytes())
                        .unwrap();
                    let blob = spool.commit().await.unwrap();
                    store
                        .deliver(Delivery {
                            blob: &blob,
                            local: &[alice],
                            outbound: None,
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut last = 0;
        for _ in 0..160 {
            match changes.recv().await.unwrap() {
                Change::Appended { uid, .. } => {
                    assert_eq!(uid.0, last + 1, "published out of order");
                    last = uid.0;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
