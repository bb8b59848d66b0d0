//! Accounts: address, password hash, quota.

use super::{Error, Result, Store, now};
use crate::domain::{AccountId, Address, Credential, Generation, PasswordHash};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub address: String,
    pub quota_bytes: Option<i64>,
    pub created_at: i64,
    pub password_changed_at: i64,
}

impl AccountRow {
    pub fn id(&self) -> AccountId {
        AccountId(self.id)
    }
}

const ACCOUNT_COLUMNS: &str = "id, address, quota_bytes, created_at, password_changed_at";

impl Store {
    /// Add an account; a second account with the same address is refused.
    pub async fn account_insert(
        &self,
        address: &Address,
        hash: &PasswordHash,
    ) -> Result<AccountId> {
        let t = now();
        let r = sqlx::query(
            "INSERT INTO accounts (address, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?)",
        )
        .bind(address.to_string())
        .bind(hash.as_str())
        .bind(t)
        .bind(t)
        .execute(self.pool())
        .await;
        match r {
            Ok(done) => Ok(AccountId(done.last_insert_rowid())),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(Error::AccountExists(address.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn account_list(&self) -> Result<Vec<AccountRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY address"
        )))
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn account_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn account_find(&self, address: &Address) -> Result<Option<AccountRow>> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE address = ?"
        )))
        .bind(address.to_string())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Give an account its own quota (bytes), or `None` for the hub's.
    /// Returns whether the account exists.
    pub async fn account_set_quota(&self, address: &Address, quota: Option<i64>) -> Result<bool> {
        let r = sqlx::query("UPDATE accounts SET quota_bytes = ? WHERE address = ?")
            .bind(quota)
            .bind(address.to_string())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// An account's own quota, if the admin set one.
    pub async fn account_quota(&self, id: AccountId) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT quota_bytes FROM accounts WHERE id = ?")
                .bind(id.0)
                .fetch_optional(self.pool())
                .await?
                .flatten(),
        )
    }

    /// The credential and stored hash, for a login check.
    pub async fn account_credentials(
        &self,
        address: &Address,
    ) -> Result<Option<(Credential, PasswordHash)>> {
        let row: Option<(i64, i64, String)> =
            sqlx::query_as("SELECT id, generation, password_hash FROM accounts WHERE address = ?")
                .bind(address.to_string())
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(id, generation, h)| {
            let credential = Credential {
                account: AccountId(id),
                generation: Generation(generation),
            };
            (credential, PasswordHash::from_stored(h))
        }))
    }

    /// Does a session's credential still hold: the account exists and its
    /// password has not changed since the login?
    pub async fn credential_current(&self, c: Credential) -> Result<bool> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT generation FROM accounts WHERE id = ?")
                .bind(c.account.0)
                .fetch_optional(self.pool())
                .await?
                == Some(c.generation.0),
        )
    }

    /// Replace the password hash; false when there is no such account.
    pub async fn account_set_password(
        &self,
        address: &Address,
        hash: &PasswordHash,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE accounts SET password_hash = ?, password_changed_at = ?, generation = generation + 1 WHERE address = ?",
        )
        .bind(hash.as_str())
        .bind(now())
        .bind(address.to_string())
        .execute(self.pool())
        .await?;
        let changed = r.rows_affected() > 0;
        if changed {
            self.credentials_changed().await;
        }
        Ok(changed)
    }

    /// Delete an account; false when there is no such account.
    pub async fn account_remove(&self, address: &Address) -> Result<bool> {
        let r = self
            .execute_with(
                "DELETE FROM accounts WHERE address = ?",
                address.to_string(),
            )
            .await?;
        let removed = r > 0;
        if removed {
            self.credentials_changed().await;
        }
        Ok(removed)
    }

    /// Tell every session to check its credential again: this process's
    /// at once, a hub running on the same data directory at its next
    /// wake-up poll (this may be a command-line process).
    async fn credentials_changed(&self) {
        self.bump_credentials();
        if let Err(e) = self.wake_hub().await {
            tracing::warn!(error = %e, "cannot tell the running hub that an account changed");
        }
    }

    /// Subscribe to "some account was removed or got a new password".
    pub fn credential_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.credentials.subscribe()
    }

    pub(crate) fn bump_credentials(&self) {
        self.credentials.send_modify(|n| *n = n.wrapping_add(1));
    }
}
