//! Admin sessions of the web pages.

use super::{Result, Store, now};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminSession {
    pub token_hash: String,
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ip: String,
}

impl Store {
    pub async fn admin_session_create(
        &self,
        token_hash: &str,
        csrf: &str,
        expires_at: i64,
        ip: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, csrf, created_at, expires_at, ip)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(csrf)
        .bind(now())
        .bind(expires_at)
        .bind(ip)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session with this token hash, if it exists (expired or not).
    pub async fn admin_session(&self, token_hash: &str) -> Result<Option<AdminSession>> {
        Ok(
            sqlx::query_as("SELECT * FROM admin_sessions WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    pub async fn admin_session_delete(&self, token_hash: &str) -> Result<()> {
        self.execute_with(
            "DELETE FROM admin_sessions WHERE token_hash = ?",
            token_hash,
        )
        .await?;
        Ok(())
    }

    /// Forget sessions that expired before `at`.
    pub async fn admin_sessions_purge(&self, at: i64) -> Result<u64> {
        self.execute_with("DELETE FROM admin_sessions WHERE expires_at < ?", at)
            .await
    }

    /// End every session but `keep` (the admin's own, after changing the
    /// password on the pages).
    pub async fn admin_sessions_clear_others(&self, keep: &str) -> Result<()> {
        self.execute_with("DELETE FROM admin_sessions WHERE token_hash <> ?", keep)
            .await?;
        Ok(())
    }

    /// End every session (after a password change).
    pub async fn admin_sessions_clear(&self) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions")
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
