//! The radio's records: the duty-cycle ledger and link-quality samples.

use super::{Result, Store};
use crate::domain::PeerId;

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
        self.execute_with("DELETE FROM radio_airtime WHERE at_ms < ?", since_ms)
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

/// Keys kept per peer to put back into its items (each at most
/// `relay::keyref::MAX_KEY` bytes: 32 MiB per peer at worst).
pub const KEYS_LEARNED_KEPT: i64 = 1024;

/// A digest as stored: 32 bytes.
fn digests(blob: &[u8]) -> Vec<[u8; 32]> {
    blob.chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect()
}

impl Store {
    /// The Autocrypt keys `peer_id` is known to hold.
    pub async fn keys_held(&self, peer_id: PeerId) -> Result<std::collections::HashSet<[u8; 32]>> {
        let rows: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT digest FROM keys_held WHERE peer_id = ?")
                .bind(peer_id.0)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.iter().flat_map(|d| digests(d)).collect())
    }

    /// Forget which keys `peer_id` holds (it could not resolve one).
    pub async fn keys_held_forget(&self, peer_id: PeerId) -> Result<()> {
        self.execute_with("DELETE FROM keys_held WHERE peer_id = ?", peer_id.0)
            .await?;
        Ok(())
    }

    /// Record how outbox item `outbox_id` is written for the radio.
    pub async fn item_form_set(
        &self,
        outbox_id: i64,
        refs: &[[u8; 32]],
        marks: &[[u8; 32]],
    ) -> Result<()> {
        sqlx::query("INSERT OR REPLACE INTO item_forms (outbox_id, refs, marks) VALUES (?, ?, ?)")
            .bind(outbox_id)
            .bind(refs.concat())
            .bind(marks.concat())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The keys outbox item `outbox_id` names by reference, if its
    /// transfer began over the radio.
    pub async fn item_form_refs(&self, outbox_id: i64) -> Result<Option<Vec<[u8; 32]>>> {
        let refs: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT refs FROM item_forms WHERE outbox_id = ?")
                .bind(outbox_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(refs.map(|r| digests(&r)))
    }

    /// The keys `peer_id` sent in full among `wanted`, by digest; they
    /// count as used now.
    pub async fn keys_learned(
        &self,
        peer_id: PeerId,
        wanted: &[[u8; 32]],
    ) -> Result<std::collections::HashMap<[u8; 32], Vec<u8>>> {
        let mut out = std::collections::HashMap::new();
        let t = super::now();
        for d in wanted {
            let key: Option<Vec<u8>> = sqlx::query_scalar(
                "UPDATE keys_learned SET used_at = ? WHERE peer_id = ? AND digest = ? RETURNING keydata",
            )
            .bind(t)
            .bind(peer_id.0)
            .bind(&d[..])
            .fetch_optional(self.pool())
            .await?;
            if let Some(k) = key {
                out.insert(*d, k);
            }
        }
        Ok(out)
    }

    /// Keep keys `peer_id` sent in full, dropping its least recently used
    /// beyond [`KEYS_LEARNED_KEPT`].
    pub async fn keys_learn(&self, peer_id: PeerId, keys: &[([u8; 32], Vec<u8>)]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        let t = super::now();
        for (d, k) in keys {
            sqlx::query(
                "INSERT INTO keys_learned (peer_id, digest, keydata, used_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (peer_id, digest) DO UPDATE SET used_at = excluded.used_at",
            )
            .bind(peer_id.0)
            .bind(&d[..])
            .bind(k)
            .bind(t)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "DELETE FROM keys_learned WHERE peer_id = ?1 AND digest NOT IN
             (SELECT digest FROM keys_learned WHERE peer_id = ?1 ORDER BY used_at DESC, rowid DESC LIMIT ?2)",
        )
        .bind(peer_id.0)
        .bind(KEYS_LEARNED_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
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

    #[tokio::test]
    async fn learned_keys_are_bounded_and_the_used_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let peer = store
            .peer_add(&crate::store::relay::NewPeer {
                name: "b",
                public_key: Some(&[9; 32]),
                domains: &[],
                addresses: &[],
                nncp_node: None,
            })
            .await
            .unwrap();
        let key = |i: u32| -> ([u8; 32], Vec<u8>) {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&i.to_be_bytes());
            (d, i.to_string().into_bytes())
        };
        let first: Vec<_> = (0..10).map(key).collect();
        store.keys_learn(peer.id, &first).await.unwrap();
        // Key 3 is used later; then more keys than are kept arrive.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let got = store
            .keys_learned(peer.id, &[key(3).0, key(5000).0])
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[&key(3).0], b"3");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let more: Vec<_> = (10..8 + KEYS_LEARNED_KEPT as u32).map(key).collect();
        store.keys_learn(peer.id, &more).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM keys_learned")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, KEYS_LEARNED_KEPT);
        let got = store
            .keys_learned(peer.id, &[key(3).0, key(4).0, key(10).0])
            .await
            .unwrap();
        assert!(got.contains_key(&key(10).0));
        assert!(got.contains_key(&key(3).0), "the key used last stays");
        assert!(!got.contains_key(&key(4).0), "an unused old key went");
        // Removing the peer removes its keys.
        store.peer_remove("b").await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM keys_learned")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
