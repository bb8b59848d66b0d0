//! Uplinks: how and when this node syncs with each peer.

use super::{Result, Store, now};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UplinkRow {
    pub id: i64,
    pub peer_id: i64,
    pub peer_name: String,
    pub carrier: String,
    pub target: String,
    pub schedule: String,
    pub last_run_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    pub last_error: Option<String>,
}

/// A query for [`UplinkRow`]s; `$rest` is the WHERE and ORDER BY.
macro_rules! uplink_query {
    ($rest:literal) => {
        concat!(
            "SELECT u.id, u.peer_id, p.name AS peer_name, u.carrier, u.target,
                    u.schedule, u.last_run_at, u.last_ok_at, u.last_error
             FROM uplinks u JOIN peers p ON p.id = u.peer_id ",
            $rest
        )
    };
}

impl Store {
    /// Add an uplink (or change the schedule of the same one); returns it.
    pub async fn uplink_set(
        &self,
        peer_id: i64,
        carrier: &str,
        target: &str,
        schedule: &str,
    ) -> Result<UplinkRow> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO uplinks (peer_id, carrier, target, schedule) VALUES (?, ?, ?, ?)
             ON CONFLICT (peer_id, carrier, target) DO UPDATE SET schedule = excluded.schedule
             RETURNING id",
        )
        .bind(peer_id)
        .bind(carrier)
        .bind(target)
        .bind(schedule)
        .fetch_one(self.pool())
        .await?;
        Ok(self.uplink(id).await?.expect("the uplink was just written"))
    }

    pub async fn uplink(&self, id: i64) -> Result<Option<UplinkRow>> {
        Ok(sqlx::query_as(uplink_query!("WHERE u.id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Every uplink, by peer name.
    pub async fn uplinks(&self) -> Result<Vec<UplinkRow>> {
        Ok(
            sqlx::query_as(uplink_query!("ORDER BY p.name, u.carrier, u.target"))
                .fetch_all(self.pool())
                .await?,
        )
    }

    pub async fn uplink_schedule(&self, id: i64, schedule: &str) -> Result<bool> {
        Ok(sqlx::query("UPDATE uplinks SET schedule = ? WHERE id = ?")
            .bind(schedule)
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected()
            > 0)
    }

    pub async fn uplink_remove(&self, id: i64) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM uplinks WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected()
            > 0)
    }

    /// An uplink ran; `error` says why it failed.
    pub async fn uplink_ran(&self, id: i64, error: Option<&str>) -> Result<()> {
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
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
