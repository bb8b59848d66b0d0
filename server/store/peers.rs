//! Peers and routes: who this hub exchanges mail with, and which peer is
//! the next hop for a domain.

use super::{Error, Result, Store, now};
use crate::domain::PeerId;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PeerRow {
    #[sqlx(try_from = "i64")]
    pub id: PeerId,
    pub name: String,
    /// The node key; `None` for a classic peer.
    pub public_key: Option<Vec<u8>>,
    pub domains: String,
    pub addresses: String,
    pub kind: String,
    pub added_at: i64,
    pub next_bundle_seq: i64,
    pub last_sent_at: Option<i64>,
    pub last_received_at: Option<i64>,
    pub nncp_node: Option<String>,
}

impl PeerRow {
    /// The node key of a cairn peer.
    pub fn key(&self) -> Option<[u8; 32]> {
        self.public_key.as_deref().and_then(|k| k.try_into().ok())
    }
    pub fn is_classic(&self) -> bool {
        self.kind == "classic"
    }
    pub fn domain_list(&self) -> Vec<String> {
        serde_json::from_str(&self.domains).unwrap_or_default()
    }
    pub fn address_list(&self) -> Vec<String> {
        serde_json::from_str(&self.addresses).unwrap_or_default()
    }
}

/// A new peer: a cairn node from its card (with its key), or a classic
/// one (no key, maybe an NNCP node).
pub struct NewPeer<'a> {
    pub name: &'a str,
    pub public_key: Option<&'a [u8; 32]>,
    pub domains: &'a [String],
    pub addresses: &'a [String],
    pub nncp_node: Option<&'a str>,
}

impl Store {
    pub async fn peer_add(&self, p: &NewPeer<'_>) -> Result<PeerRow> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let clash: Option<String> =
            sqlx::query_scalar("SELECT name FROM peers WHERE name = ? OR public_key = ?")
                .bind(p.name)
                .bind(p.public_key.map(|k| &k[..]))
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(name) = clash {
            return Err(Error::PeerExists(name));
        }
        let row: PeerRow = sqlx::query_as(
            "INSERT INTO peers (name, public_key, domains, addresses, added_at, kind, nncp_node)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
        )
        .bind(p.name)
        .bind(p.public_key.map(|k| &k[..]))
        .bind(serde_json::to_string(p.domains).expect("strings serialise"))
        .bind(serde_json::to_string(p.addresses).expect("strings serialise"))
        .bind(now())
        .bind(if p.public_key.is_some() {
            "cairn"
        } else {
            "classic"
        })
        .bind(p.nncp_node)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn peer_list(&self) -> Result<Vec<PeerRow>> {
        Ok(sqlx::query_as("SELECT * FROM peers ORDER BY name")
            .fetch_all(self.pool())
            .await?)
    }

    pub async fn peer_by_name(&self, name: &str) -> Result<Option<PeerRow>> {
        Ok(sqlx::query_as("SELECT * FROM peers WHERE name = ?")
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn peer_by_key(&self, key: &[u8; 32]) -> Result<Option<PeerRow>> {
        Ok(sqlx::query_as("SELECT * FROM peers WHERE public_key = ?")
            .bind(&key[..])
            .fetch_optional(self.pool())
            .await?)
    }

    /// Remove a peer and its routes; its queued items wait for a new route.
    pub async fn peer_remove(&self, name: &str) -> Result<bool> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let Some(id) = sqlx::query_scalar::<_, i64>("SELECT id FROM peers WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        // Its items wait for another route; history rows just forget it.
        sqlx::query(
            "UPDATE outbox SET peer_id = NULL, item_id = NULL,
                    state = CASE WHEN state IN ('queued', 'in-flight') THEN 'no-route' ELSE state END
             WHERE peer_id = ?",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE items_seen SET peer_id = NULL WHERE peer_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM peers WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Point `domain` ('*' for the default route) at a peer.
    pub async fn route_set(&self, domain: &str, peer_id: PeerId) -> Result<()> {
        sqlx::query(
            "INSERT INTO routes (domain, peer_id) VALUES (?, ?)
             ON CONFLICT (domain) DO UPDATE SET peer_id = excluded.peer_id",
        )
        .bind(domain)
        .bind(peer_id.0)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn route_remove(&self, domain: &str) -> Result<bool> {
        let r = self
            .execute_with("DELETE FROM routes WHERE domain = ?", domain)
            .await?;
        Ok(r > 0)
    }

    /// Whether `domain` has a route of its own (the default route does not count).
    pub async fn route_exists(&self, domain: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT 1 FROM routes WHERE domain = ? AND domain <> '*'")
                .bind(domain)
                .fetch_optional(self.pool())
                .await?
                .is_some(),
        )
    }

    /// (domain, peer id, peer name), the default route '*' last.
    pub async fn routes(&self) -> Result<Vec<(String, PeerId, String)>> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT r.domain, p.id, p.name FROM routes r JOIN peers p ON p.id = r.peer_id
             ORDER BY r.domain = '*', r.domain",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(d, p, n)| (d, PeerId(p), n))
            .collect())
    }
}
