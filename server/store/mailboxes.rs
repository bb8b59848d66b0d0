//! Mailboxes and the messages in them, as a mail reader changes them:
//! flags, expunge, append, copy, and the per-account METADATA entries.
//! Every change bumps the mailbox's modseq and is published after commit.

use super::mail::Change;
use super::{Error, Result, Store};
use crate::domain::{AccountId, MailboxId, ModSeq, Uid};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailboxRow {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub uidvalidity: i64,
    pub uidnext: i64,
    pub highestmodseq: i64,
    pub subscribed: i64,
}

impl MailboxRow {
    pub fn id(&self) -> MailboxId {
        MailboxId(self.id)
    }
}

/// How STORE changes flags (RFC 3501 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// One message whose flags changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: Vec<String>,
}

/// Flags as stored: space-separated, system flags in canonical case.
pub fn parse_flags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn join_flags(flags: &[String]) -> String {
    flags.join(" ")
}

const MAILBOX_COLUMNS: &str =
    "id, account_id, name, uidvalidity, uidnext, highestmodseq, subscribed";

impl Store {
    pub async fn mailbox_get(&self, account: AccountId, name: &str) -> Result<Option<MailboxRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? AND name = ?"
        )))
        .bind(account.0)
        .bind(name)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Claim the messages up to `upto` as recent for the calling session
    /// (RFC 3501 §2.3.2): returns the highest UID claimed before, so the
    /// caller's recent messages are those above it — none when another
    /// session claimed them first.
    pub async fn claim_recent(&self, mailbox: MailboxId, upto: u32) -> Result<u32> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let before: Option<(i64,)> =
            sqlx::query_as("SELECT recent_uid FROM mailboxes WHERE id = ?")
                .bind(mailbox.0)
                .fetch_optional(&mut *tx)
                .await?;
        let before = before.map_or(0, |(u,)| u32::try_from(u).unwrap_or(0));
        if before < upto {
            sqlx::query("UPDATE mailboxes SET recent_uid = ? WHERE id = ?")
                .bind(i64::from(upto))
                .bind(mailbox.0)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(before.min(upto))
    }

    /// The highest UID claimed as recent (EXAMINE looks, it does not
    /// claim).
    pub async fn recent_claimed(&self, mailbox: MailboxId) -> Result<u32> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT recent_uid FROM mailboxes WHERE id = ?")
            .bind(mailbox.0)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map_or(0, |(u,)| u32::try_from(u).unwrap_or(0)))
    }

    pub async fn mailbox_by_id(&self, id: MailboxId) -> Result<Option<MailboxRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?"
        )))
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn mailbox_list(&self, account: AccountId) -> Result<Vec<MailboxRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? ORDER BY name"
        )))
        .bind(account.0)
        .fetch_all(self.pool())
        .await?)
    }

    /// Create a mailbox, not subscribed (RFC 3501 §6.3.3 leaves that to
    /// the client's SUBSCRIBE); `Ok(None)` when one of that name exists.
    pub async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<MailboxRow>> {
        // Its UIDVALIDITY is the next one never given (a trigger:
        // migrations/0013_uidvalidity_counter.sql).
        let r = sqlx::query(
            "INSERT INTO mailboxes (account_id, name, uidvalidity, subscribed) VALUES (?, ?, 0, 0)",
        )
        .bind(account.0)
        .bind(name)
        .execute(self.pool())
        .await;
        match r {
            Ok(_) => self.mailbox_get(account, name).await,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Delete a mailbox and its messages; false when it did not exist.
    pub async fn mailbox_delete(&self, id: MailboxId) -> Result<bool> {
        let r = self
            .execute_with("DELETE FROM mailboxes WHERE id = ?", id.0)
            .await?;
        Ok(r > 0)
    }

    /// Rename; false when the new name is taken.
    pub async fn mailbox_rename(&self, id: MailboxId, to: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE mailboxes SET name = ? WHERE id = ?")
            .bind(to)
            .bind(id.0)
            .execute(self.pool())
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn mailbox_subscribe(&self, id: MailboxId, on: bool) -> Result<()> {
        sqlx::query("UPDATE mailboxes SET subscribed = ? WHERE id = ?")
            .bind(i64::from(on))
            .bind(id.0)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// (messages, unseen, bytes, recent) of a mailbox; recent: those no
    /// session has claimed yet (RFC 3501 STATUS RECENT).
    pub async fn mailbox_counts(&self, id: MailboxId) -> Result<(i64, i64, i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT COUNT(*),
                    COALESCE(SUM(CASE WHEN (' ' || flags || ' ') LIKE '% \\Seen %' THEN 0 ELSE 1 END), 0),
                    COALESCE(SUM(size), 0),
                    COALESCE(SUM(uid > (SELECT recent_uid FROM mailboxes WHERE id = ?1)), 0)
             FROM messages WHERE mailbox_id = ?1",
        )
        .bind(id.0)
        .fetch_one(self.pool())
        .await?)
    }

    /// Bytes of mail every account holds (accounts without mail absent).
    pub async fn account_usage_all(&self) -> Result<std::collections::HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT b.account_id, COALESCE(SUM(m.size), 0) FROM messages m
             JOIN mailboxes b ON b.id = m.mailbox_id GROUP BY b.account_id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Bytes of mail an account holds, for QUOTA.
    pub async fn account_usage(&self, account: AccountId) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(SUM(m.size), 0) FROM messages m
             JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.account_id = ?",
        )
        .bind(account.0)
        .fetch_one(self.pool())
        .await?)
    }

    /// Change flags of the given UIDs. With `unchanged_since` (RFC 7162
    /// UNCHANGEDSINCE), messages modified later are left alone and returned
    /// in the second list. Only messages whose flags really change get a new
    /// modseq; all affected ones are returned with their flags.
    pub async fn set_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<u64>,
    ) -> Result<(Vec<FlagChange>, Vec<Uid>)> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut changed = Vec::new();
        let mut refused = Vec::new();
        let mut events = Vec::new();
        let account: i64 = sqlx::query_scalar("SELECT account_id FROM mailboxes WHERE id = ?")
            .bind(mailbox.0)
            .fetch_one(&mut *tx)
            .await?;
        for uid in uids {
            let row: Option<(String, i64)> = sqlx::query_as(
                "SELECT flags, modseq FROM messages WHERE mailbox_id = ? AND uid = ?",
            )
            .bind(mailbox.0)
            .bind(i64::from(uid.0))
            .fetch_optional(&mut *tx)
            .await?;
            let Some((old, modseq)) = row else { continue };
            if let Some(since) = unchanged_since
                && u64::try_from(modseq).unwrap_or(0) > since
            {
                refused.push(*uid);
                continue;
            }
            let old_flags = parse_flags(&old);
            let mut new_flags: Vec<String> = match op {
                FlagOp::Replace => Vec::new(),
                _ => old_flags.clone(),
            };
            match op {
                FlagOp::Add | FlagOp::Replace => {
                    for f in flags {
                        if !new_flags.iter().any(|x| x.eq_ignore_ascii_case(f)) {
                            new_flags.push(f.clone());
                        }
                    }
                }
                FlagOp::Remove => {
                    new_flags.retain(|x| !flags.iter().any(|f| f.eq_ignore_ascii_case(x)))
                }
            }
            let mut a = old_flags.clone();
            let mut b = new_flags.clone();
            a.sort();
            b.sort();
            if a == b {
                changed.push(FlagChange {
                    uid: *uid,
                    modseq: ModSeq(u64::try_from(modseq).unwrap_or(0)),
                    flags: old_flags,
                });
                continue;
            }
            let new_modseq: i64 = sqlx::query_scalar(
                "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq",
            )
            .bind(mailbox.0)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
            )
            .bind(join_flags(&new_flags))
            .bind(new_modseq)
            .bind(mailbox.0)
            .bind(i64::from(uid.0))
            .execute(&mut *tx)
            .await?;
            let modseq = ModSeq(u64::try_from(new_modseq).unwrap_or(0));
            events.push(Change::Flags {
                account: AccountId(account),
                mailbox,
                uid: *uid,
                modseq,
            });
            changed.push(FlagChange {
                uid: *uid,
                modseq,
                flags: new_flags,
            });
        }
        self.commit_publishing(tx, events).await?;
        Ok((changed, refused))
    }

    /// Remove messages flagged `\Deleted` (only those in `only`, if given).
    /// Returns the UIDs removed, ascending.
    pub async fn expunge(&self, mailbox: MailboxId, only: Option<&[Uid]>) -> Result<Vec<Uid>> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let candidates: Vec<(i64, String)> =
            sqlx::query_as("SELECT uid, flags FROM messages WHERE mailbox_id = ? ORDER BY uid")
                .bind(mailbox.0)
                .fetch_all(&mut *tx)
                .await?;
        let account: i64 = sqlx::query_scalar("SELECT account_id FROM mailboxes WHERE id = ?")
            .bind(mailbox.0)
            .fetch_one(&mut *tx)
            .await?;
        let mut removed = Vec::new();
        for (uid, flags) in candidates {
            let uid = Uid(u32::try_from(uid).unwrap_or(0));
            if !parse_flags(&flags)
                .iter()
                .any(|f| f.eq_ignore_ascii_case("\\Deleted"))
            {
                continue;
            }
            if only.is_some_and(|o| !o.contains(&uid)) {
                continue;
            }
            sqlx::query("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?")
                .bind(mailbox.0)
                .bind(i64::from(uid.0))
                .execute(&mut *tx)
                .await?;
            removed.push(uid);
        }
        if !removed.is_empty() {
            sqlx::query("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?")
                .bind(mailbox.0)
                .execute(&mut *tx)
                .await?;
        }
        let _in_order = self.publishing().await;
        tx.commit().await?;
        for uid in &removed {
            let _ = self.changes.send(Change::Expunged {
                account: AccountId(account),
                mailbox,
                uid: *uid,
            });
        }
        Ok(removed)
    }

    /// Add a message with flags and date (APPEND); returns its UID.
    pub async fn append(
        &self,
        mailbox: MailboxId,
        blob: &super::StagedBlob,
        flags: &[String],
        internal_date: i64,
    ) -> Result<Uid> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT OR IGNORE INTO blobs (hash, size) VALUES (?, ?)")
            .bind(&blob.hash)
            .bind(i64::try_from(blob.size).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        let (account, uid, modseq): (i64, i64, i64) = sqlx::query_as(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
             WHERE id = ? RETURNING account_id, uidnext - 1, highestmodseq",
        )
        .bind(mailbox.0)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO messages (mailbox_id, uid, modseq, flags, blob_hash, size, internal_date)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(mailbox.0)
        .bind(uid)
        .bind(modseq)
        .bind(join_flags(flags))
        .bind(&blob.hash)
        .bind(i64::try_from(blob.size).unwrap_or(i64::MAX))
        .bind(internal_date)
        .execute(&mut *tx)
        .await?;
        let _in_order = self.publishing().await;
        tx.commit().await?;
        let uid = Uid(u32::try_from(uid).unwrap_or(u32::MAX));
        let _ = self.changes.send(Change::Appended {
            account: AccountId(account),
            mailbox,
            uid,
            modseq: ModSeq(u64::try_from(modseq).unwrap_or(0)),
        });
        Ok(uid)
    }

    /// Copy messages to another mailbox of the same account; returns
    /// (source UID, new UID) pairs in source order. With `remove`, the
    /// originals are deleted in the same transaction (MOVE).
    pub async fn copy_messages(
        &self,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
        remove: bool,
    ) -> Result<Vec<(Uid, Uid)>> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let owner = |id: MailboxId| {
            sqlx::query_scalar::<_, i64>("SELECT account_id FROM mailboxes WHERE id = ?").bind(id.0)
        };
        let a = owner(from).fetch_one(&mut *tx).await?;
        let b = owner(to).fetch_one(&mut *tx).await?;
        if a != b {
            return Err(Error::CrossAccount);
        }
        let account = AccountId(a);
        let mut pairs = Vec::new();
        let mut events = Vec::new();
        for uid in uids {
            let row: Option<(String, String, i64, i64)> = sqlx::query_as(
                "SELECT flags, blob_hash, size, internal_date FROM messages WHERE mailbox_id = ? AND uid = ?",
            )
            .bind(from.0)
            .bind(i64::from(uid.0))
            .fetch_optional(&mut *tx)
            .await?;
            let Some((flags, hash, size, date)) = row else {
                continue;
            };
            let (new_uid, modseq): (i64, i64) = sqlx::query_as(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                 WHERE id = ? RETURNING uidnext - 1, highestmodseq",
            )
            .bind(to.0)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, blob_hash, size, internal_date)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(to.0)
            .bind(new_uid)
            .bind(modseq)
            .bind(&flags)
            .bind(&hash)
            .bind(size)
            .bind(date)
            .execute(&mut *tx)
            .await?;
            let new_uid = Uid(u32::try_from(new_uid).unwrap_or(u32::MAX));
            events.push(Change::Appended {
                account,
                mailbox: to,
                uid: new_uid,
                modseq: ModSeq(u64::try_from(modseq).unwrap_or(0)),
            });
            if remove {
                sqlx::query("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?")
                    .bind(from.0)
                    .bind(i64::from(uid.0))
                    .execute(&mut *tx)
                    .await?;
                events.push(Change::Expunged {
                    account,
                    mailbox: from,
                    uid: *uid,
                });
            }
            pairs.push((*uid, new_uid));
        }
        if remove && !pairs.is_empty() {
            sqlx::query("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?")
                .bind(from.0)
                .execute(&mut *tx)
                .await?;
        }
        self.commit_publishing(tx, events).await?;
        Ok(pairs)
    }

    pub async fn metadata_get(&self, account: AccountId, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM metadata WHERE account_id = ? AND name = ?")
                .bind(account.0)
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Set (or with `None`, remove) a private METADATA entry.
    pub async fn metadata_set(
        &self,
        account: AccountId,
        name: &str,
        value: Option<&str>,
    ) -> Result<()> {
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO metadata (account_id, name, value) VALUES (?, ?, ?)
                     ON CONFLICT (account_id, name) DO UPDATE SET value = excluded.value",
                )
                .bind(account.0)
                .bind(name)
                .bind(v)
                .execute(self.pool())
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM metadata WHERE account_id = ? AND name = ?")
                    .bind(account.0)
                    .bind(name)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::with_one_account;
    use super::*;

    /// RFC 3501 §2.3.1.1: a mailbox deleted and made again must not get
    /// its old UIDVALIDITY back. Fifty rounds in well under a second: the
    /// old rule (the highest existing + 1, or the time) gave the same
    /// value again within a second.
    #[tokio::test]
    async fn uidvalidity_is_never_given_twice() {
        let (_dir, store, alice) = with_one_account().await;
        let inbox = store.mailbox_get(alice, "INBOX").await.unwrap().unwrap();
        let mut last = inbox.uidvalidity;
        for round in 0..50 {
            let m = store
                .mailbox_create(alice, "Drafts")
                .await
                .unwrap()
                .unwrap();
            assert!(
                m.uidvalidity > last,
                "round {round}: UIDVALIDITY {} after {last}",
                m.uidvalidity
            );
            last = m.uidvalidity;
            assert!(store.mailbox_delete(MailboxId(m.id)).await.unwrap());
        }
        // An account made now: its INBOX too.
        let bob = super::super::add_test_account(&store, "b@[127.0.0.1]").await;
        let inbox = store.mailbox_get(bob, "INBOX").await.unwrap().unwrap();
        assert!(inbox.uidvalidity > last);
    }
}
