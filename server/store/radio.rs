//! The radio's records: the duty-cycle ledger and link-quality samples.

use super::{Result, Store};

/// Link-quality samples kept for the radio page.
pub const SIGNAL_KEPT: i64 = 5000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignalRow {
    pub at_ms: i64,
    pub peer_id: Option<i64>,
    pub rssi: i64,
    pub snr: f64,
}

impl Store {
    /// Records transmissions in `band` (start in Unix ms, air time in µs)
    /// in one transaction, before they go on the air.
    pub async fn airtime_add(&self, band: &str, entries: &[(i64, i64)]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        for (at, us) in entries {
            sqlx::query("INSERT INTO radio_airtime (band, at_ms, airtime_us) VALUES (?, ?, ?)")
                .bind(band)
                .bind(at)
                .bind(us)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Transmissions in `band` since `since_ms`, oldest first; older rows
    /// are pruned (the ledger's window is an hour).
    pub async fn airtime_since(&self, band: &str, since_ms: i64) -> Result<Vec<(i64, i64)>> {
        sqlx::query("DELETE FROM radio_airtime WHERE at_ms < ?")
            .bind(since_ms)
            .execute(self.pool())
            .await?;
        Ok(sqlx::query_as(
            "SELECT at_ms, airtime_us FROM radio_airtime WHERE band = ? AND at_ms >= ? ORDER BY at_ms",
        )
        .bind(band)
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?)
    }

    /// Air time per band since `since_ms`, in µs, for the radio page.
    pub async fn airtime_by_band(&self, since_ms: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT band, SUM(airtime_us) FROM radio_airtime WHERE at_ms >= ? GROUP BY band ORDER BY band",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?)
    }

    /// Adds link-quality samples, keeping the newest [`SIGNAL_KEPT`].
    pub async fn signal_add(&self, samples: &[(i64, Option<i64>, i64, f64)]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for (at, peer, rssi, snr) in samples {
            sqlx::query("INSERT INTO radio_signal (at_ms, peer_id, rssi, snr) VALUES (?, ?, ?, ?)")
                .bind(at)
                .bind(peer)
                .bind(rssi)
                .bind(snr)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM radio_signal WHERE id <= (SELECT MAX(id) FROM radio_signal) - ?")
            .bind(SIGNAL_KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Samples since `since_ms`, oldest first.
    pub async fn signal_since(&self, since_ms: i64) -> Result<Vec<SignalRow>> {
        Ok(sqlx::query_as(
            "SELECT at_ms, peer_id, rssi, snr FROM radio_signal WHERE at_ms >= ? ORDER BY at_ms",
        )
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_ledger_survives_a_reopen_and_prunes_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        store
            .airtime_add("eu868-g3", &[(1_000, 400_000), (2_000, 500_000)])
            .await
            .unwrap();
        store.airtime_add("eu868-g1", &[(1_500, 9)]).await.unwrap();
        drop(store);
        let store = Store::open(dir.path()).await.unwrap();
        assert_eq!(
            store.airtime_since("eu868-g3", 0).await.unwrap(),
            vec![(1_000, 400_000), (2_000, 500_000)]
        );
        assert_eq!(
            store.airtime_since("eu868-g3", 1_500).await.unwrap(),
            vec![(2_000, 500_000)]
        );
        // The older rows are gone for good.
        assert_eq!(
            store.airtime_since("eu868-g3", 0).await.unwrap(),
            vec![(2_000, 500_000)]
        );
    }

    #[tokio::test]
    async fn signal_samples_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let many: Vec<_> = (0..(SIGNAL_KEPT + 10))
            .map(|i| (i, None, -90, 7.5))
            .collect();
        store.signal_add(&many).await.unwrap();
        let rows = store.signal_since(0).await.unwrap();
        assert_eq!(rows.len() as i64, SIGNAL_KEPT);
        assert_eq!(rows[0].at_ms, 10);
    }
}
