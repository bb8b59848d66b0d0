//! Key/value settings changed at run time (admin password hash, setup code, …).

use super::{Result, Store, now};

impl Store {
    pub async fn settings_get(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn settings_set(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every setting whose key starts with `prefix`, by key.
    pub async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT key, value FROM settings WHERE substr(key, 1, length(?)) = ? ORDER BY key",
        )
        .bind(prefix)
        .bind(prefix)
        .fetch_all(self.pool())
        .await?)
    }

    /// Remove a setting; true when it existed.
    pub async fn settings_delete(&self, key: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM settings WHERE key = ?")
            .bind(key)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
