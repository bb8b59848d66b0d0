//! The audit log: account changes, admin actions, later syncs and errors.

use super::{Result, Store, now};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
}

impl Store {
    pub async fn event(
        &self,
        kind: &str,
        subject: Option<&str>,
        detail: Option<&str>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO events (at, kind, subject, detail) VALUES (?, ?, ?, ?)")
            .bind(now())
            .bind(kind)
            .bind(subject)
            .bind(detail)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The newest events first.
    pub async fn recent_events(&self, limit: u32) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, at, kind, subject, detail FROM events ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }
}
