//! Key/value settings changed at run time (admin password hash, setup code, …).
//! Their names live here, so the admin pages, the start-up and the
//! appliance share them without importing each other.

use super::{Result, Store, now};

/// The admin password's hash (PHC string).
pub const ADMIN_PASSWORD: &str = "admin.password_hash";
/// The one-time setup code, until the admin password is set.
pub const SETUP_CODE: &str = "setup.code";
/// Set once the first-boot wizard was completed.
pub const SETUP_DONE: &str = "setup.done";
/// The hub's name as the admin changed it (overrides the file's).
pub const HUB_NAME: &str = "hub.name";
/// JSON list of mail domains (overrides the file's).
pub const HUB_DOMAINS: &str = "hub.domains";
/// "0" when the join page and `/new` hand out no accounts.
pub const JOIN_ENABLED: &str = "join.enabled";
/// The Wi-Fi shown to newcomers (and, on the appliance, the access point).
pub const WIFI_SSID: &str = "wifi.ssid";
pub const WIFI_PASSPHRASE: &str = "wifi.passphrase";
/// ISO 3166-1 alpha-2 country of the Wi-Fi (regulatory domain).
pub const WIFI_COUNTRY: &str = "wifi.country";
/// Settings named `config.KEY` hold values of configuration field KEY
/// (`config.limits.max_message_size`) that the admin pages changed, as TOML
/// values (`"30 MiB"`, `true`, `14`); they override the file's.
pub const CONFIG_PREFIX: &str = "config.";

/// The setting that overrides configuration field `key`.
pub fn config_key(key: &str) -> String {
    format!("{CONFIG_PREFIX}{key}")
}

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
        let r = self
            .execute_with("DELETE FROM settings WHERE key = ?", key)
            .await?;
        Ok(r > 0)
    }
}
