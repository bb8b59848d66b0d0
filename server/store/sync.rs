//! Sync history: what each sync with a peer moved, and how it ended.

use super::{Result, Store, now};
use crate::domain::PeerId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncRow {
    pub id: i64,
    pub peer_id: Option<i64>,
    pub peer_name: String,
    pub carrier: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub items_out: i64,
    pub items_in: i64,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub error: Option<String>,
}

/// What a finished sync moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub items_out: u64,
    pub items_in: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What the history says of a sync the hub stopped during.
pub const INTERRUPTED: &str =
    "interrupted: the hub stopped during this sync (what it had committed is kept)";

/// Rows kept in the history; older ones go as new ones come.
pub const SYNC_HISTORY_KEPT: i64 = 1000;

impl Store {
    /// A sync with a peer began; returns its row id.
    pub async fn sync_started(
        &self,
        peer_id: Option<PeerId>,
        peer_name: &str,
        carrier: &str,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO sync_runs (peer_id, peer_name, carrier, started_at)
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(peer_id.map(|p| p.0))
        .bind(peer_name)
        .bind(carrier)
        .bind(now())
        .fetch_one(self.pool())
        .await?)
    }

    /// A sync ended, with what it moved and its error if it failed.
    pub async fn sync_finished(
        &self,
        id: i64,
        counts: &SyncCounts,
        error: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE sync_runs SET finished_at = ?, items_out = ?, items_in = ?,
                    bytes_out = ?, bytes_in = ?, error = ?
             WHERE id = ?",
        )
        .bind(now())
        .bind(int(counts.items_out))
        .bind(int(counts.items_in))
        .bind(int(counts.bytes_out))
        .bind(int(counts.bytes_in))
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM sync_runs WHERE id <= ?")
            .bind(id - SYNC_HISTORY_KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Syncs an earlier run left unfinished (the hub stopped during them)
    /// say so instead of looking as if they were still going. Call it at
    /// start, before any sync begins; returns how many there were.
    pub async fn syncs_interrupted(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE sync_runs SET error = ? WHERE finished_at IS NULL AND error IS NULL",
        )
        .bind(INTERRUPTED)
        .execute(self.pool())
        .await?
        .rows_affected())
    }

    /// The newest syncs first.
    pub async fn sync_history(&self, limit: u32) -> Result<Vec<SyncRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM sync_runs ORDER BY id DESC LIMIT ?")
                .bind(limit)
                .fetch_all(self.pool())
                .await?,
        )
    }
}
