//! Items in custody: hold, retry, drop, and the expiry that bounces
//! what outlived its lifetime.

use super::*;

impl Relay {
    pub(crate) fn item_state_error(&self, id: i64, state: Option<&str>, want: &str) -> RelayError {
        RelayError::Outbox(match state {
            None => format!("there is no outbox item {id}: see `cairn outbox list`"),
            Some(s) => {
                format!("outbox item {id} is {s}; only {want} items can be changed that way")
            }
        })
    }

    /// Keep an item from leaving until [`Relay::retry`].
    pub async fn hold(&self, id: i64) -> Result<()> {
        if self
            .store
            .outbox_set_state(id, &["no-route", "queued", "in-flight"], "held")
            .await?
        {
            return Ok(());
        }
        let state = self.store.outbox_item(id).await?.map(|r| r.state);
        Err(self.item_state_error(id, state.as_deref(), "waiting or in-flight"))
    }

    /// Send a held or in-flight item again at the next chance.
    pub async fn retry(&self, id: i64) -> Result<()> {
        if self
            .store
            .outbox_set_state(id, &["held", "in-flight", "queued"], "queued")
            .await?
        {
            self.route_pending().await?;
            return Ok(());
        }
        let state = self.store.outbox_item(id).await?.map(|r| r.state);
        Err(self.item_state_error(id, state.as_deref(), "held, queued or in-flight"))
    }

    /// Remove an item; unless `quietly`, its sender gets a bounce saying so.
    pub async fn drop_item(&self, id: i64, quietly: bool) -> Result<()> {
        let Some(row) = self.store.outbox_item(id).await? else {
            return Err(self.item_state_error(id, None, ""));
        };
        let _guard = self.store.blob_guard().await;
        let bounce = if quietly
            || !matches!(
                row.state.as_str(),
                "no-route" | "queued" | "in-flight" | "held"
            ) {
            None
        } else {
            let failures: Vec<Failure> = row
                .recipients()
                .into_iter()
                .map(|rcpt| Failure {
                    recipient: rcpt,
                    status: "5.3.0".into(),
                    diagnostic: "the hub's operator removed it from the outbox".into(),
                })
                .collect();
            let head = header_section(&self.store.blob_read(&row.blob_hash).await?).to_vec();
            self.bounce_for(&row.mail_from, &failures, &head).await?
        };
        self.store.outbox_drop(id, bounce.as_ref()).await?;
        Ok(())
    }

    /// Items whose lifetime ran out become bounces. Returns how many.
    pub async fn expire(&self) -> Result<usize> {
        self.expire_at(now()).await
    }

    /// [`Relay::expire`] as if the clock said `t` (Unix seconds). Content
    /// ids older than [`SEEN_LIFETIMES`] lifetimes are forgotten too, so
    /// the seen-set does not grow for ever.
    pub async fn expire_at(&self, t: i64) -> Result<usize> {
        let horizon = self.config.lifetime_ms / 1000 * SEEN_LIFETIMES;
        let forgotten = self
            .store
            .items_seen_prune(t.saturating_sub(i64::try_from(horizon).unwrap_or(i64::MAX)))
            .await?;
        if forgotten > 0 {
            tracing::info!(
                items = forgotten,
                "forgot content ids older than {SEEN_LIFETIMES} lifetimes"
            );
        }
        // Bundles left on a stick that never came back: whatever they
        // carried has expired here by now.
        self.store
            .folder_bundles_prune(
                t.saturating_sub(i64::try_from(self.config.lifetime_ms / 1000).unwrap_or(i64::MAX)),
            )
            .await?;
        // Half-received link items nobody resumed within a lifetime.
        let stale = self.store.partial_prune(
            t.saturating_sub(i64::try_from(self.config.lifetime_ms / 1000).unwrap_or(i64::MAX)),
        );
        if stale > 0 {
            tracing::info!(
                items = stale,
                "removed half-received link items not resumed within a lifetime"
            );
        }
        let rows = self.store.outbox_live().await?;
        let mut expired = Vec::new();
        let mut bounces = Vec::new();
        let _guard = self.store.blob_guard().await;
        for r in rows {
            if self.age_now(&r, t) < self.lifetime(&r) {
                continue;
            }
            let days = self.lifetime(&r) / (24 * 3600 * 1000);
            let failures: Vec<Failure> = r
                .recipients()
                .into_iter()
                .map(|rcpt| Failure {
                    recipient: rcpt,
                    status: "5.4.7".into(),
                    diagnostic: match r.state.as_str() {
                        "no-route" => format!("no route to its domain appeared within {days} days"),
                        _ => format!("no carrier took it on within {days} days"),
                    },
                })
                .collect();
            let head = header_section(&self.store.blob_read(&r.blob_hash).await?).to_vec();
            if let Some(b) = self.bounce_for(&r.mail_from, &failures, &head).await? {
                bounces.push(b);
            }
            expired.push(r.id);
        }
        if expired.is_empty() {
            return Ok(0);
        }
        self.store.outbox_expire(&expired, &bounces).await?;
        drop(_guard);
        self.route_pending().await?;
        Ok(expired.len())
    }
}
