//! Uplinks: how and when this node syncs with each peer.

use super::{Result, Store, now};
use crate::domain::{PeerId, UplinkId};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UplinkRow {
    #[sqlx(try_from = "i64")]
    pub id: UplinkId,
    #[sqlx(try_from = "i64")]
    pub peer_id: PeerId,
    pub peer_name: String,
    pub carrier: String,
    pub target: String,
    pub schedule: String,
    pub last_run_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    pub last_error: Option<String>,
    /// A folder or USB uplink: the peer deleting a bundle acknowledges it.
    pub deletion_acks: bool,
}

/// A query for [`UplinkRow`]s; `$rest` is the WHERE and ORDER BY.
macro_rules! uplink_query {
    ($rest:literal) => {
        concat!(
            "SELECT u.id, u.peer_id, p.name AS peer_name, u.carrier, u.target,
                    u.schedule, u.last_run_at, u.last_ok_at, u.last_error, u.deletion_acks
             FROM uplinks u JOIN peers p ON p.id = u.peer_id ",
            $rest
        )
    };
}

impl Store {
    /// Add an uplink (or change the schedule and options of the same one);
    /// returns it.
    pub async fn uplink_set(
        &self,
        peer_id: PeerId,
        carrier: &str,
        target: &str,
        schedule: &str,
        deletion_acks: bool,
    ) -> Result<UplinkRow> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO uplinks (peer_id, carrier, target, schedule, deletion_acks) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (peer_id, carrier, target) DO UPDATE
               SET schedule = excluded.schedule, deletion_acks = excluded.deletion_acks
             RETURNING id",
        )
        .bind(peer_id.0)
        .bind(carrier)
        .bind(target)
        .bind(schedule)
        .bind(deletion_acks)
        .fetch_one(self.pool())
        .await?;
        Ok(self
            .uplink(UplinkId(id))
            .await?
            .expect("the uplink was just written"))
    }

    pub async fn uplink(&self, id: UplinkId) -> Result<Option<UplinkRow>> {
        Ok(sqlx::query_as(uplink_query!("WHERE u.id = ?"))
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Whether this node is a gateway: it has an uplink to the Internet.
    pub async fn is_gateway(&self) -> Result<bool> {
        let found: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM uplinks WHERE carrier = 'smtp' LIMIT 1")
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    /// Every uplink, by peer name.
    pub async fn uplinks(&self) -> Result<Vec<UplinkRow>> {
        Ok(
            sqlx::query_as(uplink_query!("ORDER BY p.name, u.carrier, u.target"))
                .fetch_all(self.pool())
                .await?,
        )
    }

    pub async fn uplink_schedule(&self, id: UplinkId, schedule: &str) -> Result<bool> {
        Ok(sqlx::query("UPDATE uplinks SET schedule = ? WHERE id = ?")
            .bind(schedule)
            .bind(id.0)
            .execute(self.pool())
            .await?
            .rows_affected()
            > 0)
    }

    pub async fn uplink_remove(&self, id: UplinkId) -> Result<bool> {
        Ok(self
            .execute_with("DELETE FROM uplinks WHERE id = ?", id.0)
            .await?
            > 0)
    }

    /// An uplink ran; `error` says why it failed.
    pub async fn uplink_ran(&self, id: UplinkId, error: Option<&str>) -> Result<()> {
        let t = now();
        sqlx::query(
            "UPDATE uplinks SET last_run_at = ?, last_error = ?,
                    last_ok_at = CASE WHEN ? IS NULL THEN ? ELSE last_ok_at END
             WHERE id = ?",
        )
        .bind(t)
        .bind(error)
        .bind(error)
        .bind(t)
        .bind(id.0)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// A bundle this node left in a folder, not yet seen taken.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FolderBundleRow {
    pub dir: String,
    pub name: String,
    pub peer_id: i64,
    pub folder_id: String,
    pub items: String,
    pub acks: String,
    pub written_at: i64,
}

impl FolderBundleRow {
    pub fn item_list(&self) -> Vec<String> {
        serde_json::from_str(&self.items).unwrap_or_default()
    }
    pub fn ack_list(&self) -> Vec<String> {
        serde_json::from_str(&self.acks).unwrap_or_default()
    }
}

impl Store {
    /// Remember a bundle left in `dir` for a peer.
    pub async fn folder_bundle_add(
        &self,
        dir: &str,
        name: &str,
        peer_id: PeerId,
        folder_id: &str,
        items: &[String],
        acks: &[String],
    ) -> Result<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO folder_bundles (dir, name, peer_id, folder_id, items, acks, written_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(dir)
        .bind(name)
        .bind(peer_id.0)
        .bind(folder_id)
        .bind(serde_json::to_string(items).expect("strings serialise"))
        .bind(serde_json::to_string(acks).expect("strings serialise"))
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The bundles left in `dir` for a peer, oldest first.
    pub async fn folder_bundles(&self, dir: &str, peer_id: PeerId) -> Result<Vec<FolderBundleRow>> {
        Ok(sqlx::query_as(
            "SELECT dir, name, peer_id, folder_id, items, acks, written_at FROM folder_bundles
             WHERE dir = ? AND peer_id = ? ORDER BY written_at, name",
        )
        .bind(dir)
        .bind(peer_id.0)
        .fetch_all(self.pool())
        .await?)
    }

    /// Forget a bundle left in a folder (replaced, or gone without proof).
    pub async fn folder_bundle_forget(&self, dir: &str, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM folder_bundles WHERE dir = ? AND name = ?")
            .bind(dir)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The peer took a bundle from a folder (deleted it after its import):
    /// the items it carried are acknowledged, in one transaction with
    /// forgetting the bundle. Returns how many items left the outbox.
    pub async fn folder_bundle_taken(&self, b: &FolderBundleRow) -> Result<usize> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut n = 0;
        for id in b.item_list() {
            let r = sqlx::query(
                "DELETE FROM outbox WHERE peer_id = ? AND item_id = ? AND state = 'in-flight'",
            )
            .bind(b.peer_id)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            n += r.rows_affected() as usize;
        }
        sqlx::query("DELETE FROM folder_bundles WHERE dir = ? AND name = ?")
            .bind(&b.dir)
            .bind(&b.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Forget bundle records older than `before` (Unix seconds): a stick
    /// that never came back.
    pub async fn folder_bundles_prune(&self, before: i64) -> Result<u64> {
        self.execute_with("DELETE FROM folder_bundles WHERE written_at < ?", before)
            .await
    }
}
