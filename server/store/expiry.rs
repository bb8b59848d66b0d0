//! Expiry like chatmail's: old mail goes, large mail sooner, and every
//! account is kept under its quota (oldest first, the last day spared).
//! Then blob files nobody references any more are removed.

use super::mail::Change;
use super::{Result, Store, now};
use crate::domain::{AccountId, MailboxId, Uid};

/// What counts as large mail for the shorter lifetime (chatmail: 200 kB).
pub const LARGE_MESSAGE: i64 = 200_000;
/// Quota trimming starts above this share of the quota…
pub const QUOTA_HIGH: f64 = 0.75;
/// …and deletes down to this share.
pub const QUOTA_LOW: f64 = 0.70;
/// Mail younger than this is never deleted for quota.
pub const QUOTA_PROTECT_SECS: i64 = 24 * 3600;

/// Expiry settings; a zero age switches that rule off.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    pub delete_after_days: u32,
    pub delete_large_after_days: u32,
    pub quota_bytes: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryReport {
    pub old: u64,
    pub large: u64,
    pub over_quota: u64,
    pub blobs_removed: u64,
}

impl Store {
    /// A writer that makes a blob file and then a row referring to it holds
    /// this from the file to the commit, so garbage collection never
    /// removes a file between the two.
    pub async fn blob_guard(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.gc.clone().read_owned().await
    }

    async fn delete_messages(&self, rows: &[(i64, i64, i64)]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut events = Vec::new();
        for (mailbox, uid, account) in rows {
            let r = sqlx::query("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?")
                .bind(mailbox)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() > 0 {
                sqlx::query("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?")
                    .bind(mailbox)
                    .execute(&mut *tx)
                    .await?;
                events.push(Change::Expunged {
                    account: AccountId(*account),
                    mailbox: MailboxId(*mailbox),
                    uid: Uid(u32::try_from(*uid).unwrap_or(0)),
                });
            }
        }
        let _in_order = self.publishing().await;
        tx.commit().await?;
        let n = events.len() as u64;
        for e in events {
            let _ = self.changes.send(e);
        }
        Ok(n)
    }

    /// Apply the expiry rules at time `at` (Unix seconds), then collect garbage.
    pub async fn expire(&self, rules: &Expiry, at: i64) -> Result<ExpiryReport> {
        let mut report = ExpiryReport::default();
        const SELECT: &str = "SELECT m.mailbox_id, m.uid, b.account_id FROM messages m
             JOIN mailboxes b ON b.id = m.mailbox_id";
        if rules.delete_after_days > 0 {
            let cutoff = at - i64::from(rules.delete_after_days) * 86_400;
            let rows: Vec<(i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE m.internal_date < ?"
            )))
            .bind(cutoff)
            .fetch_all(self.pool())
            .await?;
            report.old = self.delete_messages(&rows).await?;
        }
        if rules.delete_large_after_days > 0 {
            let cutoff = at - i64::from(rules.delete_large_after_days) * 86_400;
            let rows: Vec<(i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE m.internal_date < ? AND m.size > ?"
            )))
            .bind(cutoff)
            .bind(LARGE_MESSAGE)
            .fetch_all(self.pool())
            .await?;
            report.large = self.delete_messages(&rows).await?;
        }
        // Each account's own quota when the admin set one, else the hub's.
        let usage: Vec<(i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT b.account_id, COALESCE(SUM(m.size), 0), a.quota_bytes FROM messages m
             JOIN mailboxes b ON b.id = m.mailbox_id
             JOIN accounts a ON a.id = b.account_id GROUP BY b.account_id",
        )
        .fetch_all(self.pool())
        .await?;
        for (account, used, own) in usage {
            let quota = own.map_or(rules.quota_bytes as f64, |q| q.max(0) as f64);
            if (used as f64) <= quota * QUOTA_HIGH {
                continue;
            }
            let oldest: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
                "SELECT m.mailbox_id, m.uid, b.account_id, m.size FROM messages m
                 JOIN mailboxes b ON b.id = m.mailbox_id
                 WHERE b.account_id = ? AND m.internal_date < ?
                 ORDER BY m.internal_date, m.id",
            )
            .bind(account)
            .bind(at - QUOTA_PROTECT_SECS)
            .fetch_all(self.pool())
            .await?;
            let mut left = used as f64;
            let mut doomed = Vec::new();
            for (mailbox, uid, acc, size) in oldest {
                if left <= quota * QUOTA_LOW {
                    break;
                }
                left -= size as f64;
                doomed.push((mailbox, uid, acc));
            }
            report.over_quota += self.delete_messages(&doomed).await?;
        }
        report.blobs_removed = self.collect_garbage().await?;
        Ok(report)
    }

    /// Remove blob rows and files that nothing references.
    pub async fn collect_garbage(&self) -> Result<u64> {
        let _exclusive = self.gc.write().await;
        let hashes: Vec<String> =
            sqlx::query_scalar("DELETE FROM blobs WHERE refs <= 0 RETURNING hash")
                .fetch_all(self.pool())
                .await?;
        let mut removed = 0;
        for h in &hashes {
            if std::fs::remove_file(self.blob_path(h)).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Run expiry now and then every `every` until `stop`.
    pub async fn expire_periodically(
        self,
        rules: Expiry,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            match self.expire(&rules, now()).await {
                Ok(r) if r != ExpiryReport::default() => tracing::info!(?r, "expiry"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "expiry failed; will retry"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Delivery, StagedBlob};

    async fn message(store: &Store, account: AccountId, size: usize, at: i64) -> StagedBlob {
        let mut s = store.spool();
        let mut body = format!("Subject: {at}\r\n\r\n").into_bytes();
        body.resize(size, b'x');
        s.write(&body).unwrap();
        let blob = s.commit().await.unwrap();
        store
            .deliver(Delivery {
                blob: &blob,
                local: &[account],
                outbound: None,
            })
            .await
            .unwrap();
        sqlx::query("UPDATE messages SET internal_date = ? WHERE blob_hash = ?")
            .bind(at)
            .bind(&blob.hash)
            .execute(store.pool())
            .await
            .unwrap();
        blob
    }

    #[tokio::test]
    async fn old_large_and_over_quota_mail_goes_and_files_follow() {
        let (_dir, store, acc) = crate::store::with_one_account().await;
        let a = crate::domain::Address::parse("a@[127.0.0.1]").unwrap();
        let day = 86_400;
        let t = 2_000_000_000;
        let old = message(&store, acc, 1000, t - 30 * day).await;
        let large = message(&store, acc, 300_000, t - 10 * day).await;
        let fresh_large = message(&store, acc, 300_000, t - day / 2).await;
        let kept = message(&store, acc, 1000, t - 2 * day).await;
        let mut changes = store.changes();
        let rules = Expiry {
            delete_after_days: 20,
            delete_large_after_days: 7,
            quota_bytes: 1 << 30,
        };
        let r = store.expire(&rules, t).await.unwrap();
        assert_eq!(
            (r.old, r.large, r.over_quota, r.blobs_removed),
            (1, 1, 0, 2)
        );
        assert!(!store.blob_path(&old.hash).exists() && !store.blob_path(&large.hash).exists());
        assert!(
            store.blob_path(&fresh_large.hash).exists() && store.blob_path(&kept.hash).exists()
        );
        assert!(matches!(
            changes.recv().await.unwrap(),
            Change::Expunged { .. }
        ));

        // Quota 400 kB: 301 kB used is over 75 %; the 1 kB older message goes
        // first, but the large one is younger than a day and is spared.
        let rules = Expiry {
            delete_after_days: 0,
            delete_large_after_days: 0,
            quota_bytes: 400_000,
        };
        // The account's own quota wins over the hub's: with 1 MB, nothing goes.
        assert!(store.account_set_quota(&a, Some(1_000_000)).await.unwrap());
        let r = store.expire(&rules, t).await.unwrap();
        assert_eq!(r.over_quota, 0);
        assert!(store.account_set_quota(&a, None).await.unwrap());
        let r = store.expire(&rules, t).await.unwrap();
        assert_eq!(r.over_quota, 1);
        let inbox = store.inbox(acc).await.unwrap();
        assert_eq!(store.messages(inbox).await.unwrap().len(), 1);
    }
}
