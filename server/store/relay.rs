//! Outbox custody and seen items: the tables of store-and-forward (peers
//! and routes are in `peers.rs`). What goes where is decided in `relay/`; this module only makes
//! those decisions durable, each import or split in one transaction.

use super::blobs::StagedBlob;
use super::mail::Change;
pub use super::peers::{NewPeer, PeerRow};
use super::{Result, Store, now};
use crate::domain::PeerId;
use crate::domain::{AccountId, ModSeq, Uid};
use sqlx::SqliteConnection;

/// An outbox item with what a bundle needs to carry it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustodyRow {
    pub id: i64,
    pub item_id: Option<String>,
    pub peer_id: Option<i64>,
    pub blob_hash: String,
    pub mail_from: String,
    pub rcpts: String,
    pub state: String,
    pub created_at: i64,
    pub age_ms: i64,
    pub lifetime_ms: Option<i64>,
    pub hops: i64,
    pub attempts: i64,
    pub size: i64,
    /// Not before this (Unix seconds): an SMTP delivery's retry backoff.
    pub next_attempt_at: Option<i64>,
}

impl CustodyRow {
    pub fn recipients(&self) -> Vec<String> {
        serde_json::from_str(&self.rcpts).unwrap_or_default()
    }
}

/// Part of an unrouted item that now has a next hop.
pub struct RoutedPart {
    pub peer_id: PeerId,
    pub item_id: String,
    pub rcpts: Vec<String>,
}

/// An item leaving for another node (or waiting for a route).
#[derive(Debug, Clone)]
pub struct Onward {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub age_ms: i64,
    pub lifetime_ms: i64,
    pub hops: i64,
}

/// One message to store: into local INBOXes and/or onward.
#[derive(Debug, Clone)]
pub struct Placement {
    pub blob: StagedBlob,
    pub local: Vec<AccountId>,
    pub onward: Option<Onward>,
}

/// One item of an imported bundle, as `relay/` decided to place it.
#[derive(Debug, Clone)]
pub struct ImportedItem {
    pub item_id: String,
    /// `None`: the item is refused (e.g. a spoofed sender): acknowledged
    /// so the peer stops sending it, but stored nowhere.
    pub place: Option<Placement>,
    /// A bounce for the recipients that cannot be served.
    pub bounce: Option<Placement>,
}

/// What [`Store::import_items`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportApplied {
    pub delivered: usize,
    pub duplicates: usize,
    pub forwarded: usize,
    pub refused: usize,
    pub bounced: usize,
    pub acknowledged: usize,
}

/// A query for [`CustodyRow`]s; `$rest` is the WHERE and ORDER BY.
macro_rules! custody_query {
    ($rest:literal) => {
        concat!(
            "SELECT o.id, o.item_id, o.peer_id, o.blob_hash, o.mail_from, o.rcpts, o.state,
                    o.created_at, o.age_ms, o.lifetime_ms, o.hops, o.attempts, b.size,
                    o.next_attempt_at
             FROM outbox o JOIN blobs b ON b.hash = o.blob_hash ",
            $rest
        )
    };
}

/// Append one message to an account's INBOX inside a transaction.
pub(super) async fn append_inbox(
    tx: &mut SqliteConnection,
    account: AccountId,
    blob: &StagedBlob,
    t: i64,
) -> Result<Change> {
    let size = i64::try_from(blob.size).unwrap_or(i64::MAX);
    let (mailbox, uid, modseq): (i64, i64, i64) = sqlx::query_as(
        "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
         WHERE account_id = ? AND name = 'INBOX'
         RETURNING id, uidnext - 1, highestmodseq",
    )
    .bind(account.0)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO messages (mailbox_id, uid, modseq, blob_hash, size, internal_date)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(mailbox)
    .bind(uid)
    .bind(modseq)
    .bind(&blob.hash)
    .bind(size)
    .bind(t)
    .execute(&mut *tx)
    .await?;
    Ok(Change::Appended {
        account,
        mailbox: crate::domain::MailboxId(mailbox),
        uid: Uid(u32::try_from(uid).unwrap_or(u32::MAX)),
        modseq: ModSeq(u64::try_from(modseq).unwrap_or(0)),
    })
}

async fn insert_blob(tx: &mut SqliteConnection, blob: &StagedBlob) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO blobs (hash, size) VALUES (?, ?)")
        .bind(&blob.hash)
        .bind(i64::try_from(blob.size).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn place(
    tx: &mut SqliteConnection,
    p: &Placement,
    t: i64,
    events: &mut Vec<Change>,
) -> Result<()> {
    insert_blob(tx, &p.blob).await?;
    for account in &p.local {
        events.push(append_inbox(tx, *account, &p.blob, t).await?);
    }
    if let Some(o) = &p.onward {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (blob_hash, mail_from, rcpts, state, created_at, age_ms, lifetime_ms, hops)
             VALUES (?, ?, ?, 'no-route', ?, ?, ?, ?) RETURNING id",
        )
        .bind(&p.blob.hash)
        .bind(&o.mail_from)
        .bind(serde_json::to_string(&o.rcpts).expect("strings serialise"))
        .bind(t)
        .bind(o.age_ms)
        .bind(o.lifetime_ms)
        .bind(o.hops)
        .fetch_one(&mut *tx)
        .await?;
        events.push(Change::Queued {
            item: crate::domain::ItemId(id),
        });
    }
    Ok(())
}

/// Something came from `peer_id` at `t`.
async fn heard_from(tx: &mut SqliteConnection, peer_id: PeerId, t: i64) -> Result<()> {
    sqlx::query("UPDATE peers SET last_received_at = ? WHERE id = ?")
        .bind(t)
        .bind(peer_id.0)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Something went to `peer_id` just now.
async fn sent_to(tx: &mut SqliteConnection, peer_id: PeerId) -> Result<()> {
    sqlx::query("UPDATE peers SET last_sent_at = ? WHERE id = ?")
        .bind(now())
        .bind(peer_id.0)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn forget_acks(tx: &mut SqliteConnection, peer_id: PeerId, acks: &[String]) -> Result<()> {
    for a in acks {
        sqlx::query("DELETE FROM acks_due WHERE peer_id = ? AND item_id = ?")
            .bind(peer_id.0)
            .bind(a)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Take custody of one arriving item unless seen before: record it as
/// seen, place it and its bounce.
async fn take_item(
    tx: &mut SqliteConnection,
    peer_id: Option<PeerId>,
    it: &ImportedItem,
    t: i64,
    events: &mut Vec<Change>,
    out: &mut ImportApplied,
) -> Result<()> {
    let fresh = sqlx::query(
        "INSERT OR IGNORE INTO items_seen (item_id, peer_id, seen_at) VALUES (?, ?, ?)",
    )
    .bind(&it.item_id)
    .bind(peer_id.map(|p| p.0))
    .bind(t)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if !fresh {
        out.duplicates += 1;
        return Ok(());
    }
    let Some(p) = &it.place else {
        out.refused += 1;
        return Ok(());
    };
    place(tx, p, t, events).await?;
    if !p.local.is_empty() {
        out.delivered += 1;
    }
    if p.onward.is_some() {
        out.forwarded += 1;
    }
    if let Some(b) = &it.bounce {
        place(tx, b, t, events).await?;
        out.bounced += 1;
    }
    Ok(())
}

impl Store {
    /// Items waiting for a route.
    pub async fn outbox_unrouted(&self) -> Result<Vec<CustodyRow>> {
        Ok(
            sqlx::query_as(custody_query!("WHERE o.state = 'no-route' ORDER BY o.id"))
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Items in custody for one peer that a bundle should carry, smallest
    /// first (texts before attachments).
    pub async fn outbox_for_peer(&self, peer_id: PeerId) -> Result<Vec<CustodyRow>> {
        Ok(sqlx::query_as(custody_query!(
            "WHERE o.peer_id = ? AND o.state IN ('queued', 'in-flight') ORDER BY b.size, o.id"
        ))
        .bind(peer_id.0)
        .fetch_all(self.pool())
        .await?)
    }

    /// Items routed to a peer but never handed to a carrier: these may
    /// follow a changed route without any chance of arriving twice.
    pub async fn outbox_untouched(&self) -> Result<Vec<CustodyRow>> {
        Ok(sqlx::query_as(custody_query!(
            "WHERE o.state = 'queued' AND o.attempts = 0 AND o.peer_id IS NOT NULL ORDER BY o.id"
        ))
        .fetch_all(self.pool())
        .await?)
    }

    /// Send routed items back to routing (the routes changed). Only rows
    /// still queued and never attempted move; returns how many did.
    pub async fn outbox_unroute(&self, rows: &[i64]) -> Result<usize> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let mut n = 0;
        for id in rows {
            let r = sqlx::query(
                "UPDATE outbox SET peer_id = NULL, item_id = NULL, state = 'no-route'
                 WHERE id = ? AND state = 'queued' AND attempts = 0",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            n += r.rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Whether a peer has items not yet handed to any carrier (the
    /// scheduler asks for every uplink on every tick).
    pub async fn outbox_has_queued(&self, peer_id: PeerId) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE peer_id = ? AND state = 'queued')",
        )
        .bind(peer_id.0)
        .fetch_one(self.pool())
        .await?)
    }

    /// Every item not yet acknowledged or dropped (for expiry).
    pub async fn outbox_live(&self) -> Result<Vec<CustodyRow>> {
        Ok(sqlx::query_as(custody_query!(
            "WHERE o.state IN ('no-route', 'queued', 'in-flight', 'held') ORDER BY o.id"
        ))
        .fetch_all(self.pool())
        .await?)
    }

    /// Give unrouted items their next hops: per item (row, parts, rest),
    /// one row per hop, and what is left (`rest`) keeps waiting. One
    /// transaction for the whole batch.
    pub async fn outbox_route(&self, batch: &[(i64, Vec<RoutedPart>, Vec<String>)]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        for (row, parts, rest) in batch {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM outbox WHERE id = ?")
                .bind(row)
                .fetch_optional(&mut *tx)
                .await?;
            if state.as_deref() != Some("no-route") {
                // Routed or dropped meanwhile (another process): nothing to do.
                continue;
            }
            for p in parts {
                sqlx::query(
                    "INSERT OR IGNORE INTO outbox
                       (blob_hash, mail_from, rcpts, state, created_at, age_ms, lifetime_ms, hops, peer_id, item_id)
                     SELECT blob_hash, mail_from, ?, 'queued', created_at, age_ms, lifetime_ms, hops, ?, ?
                     FROM outbox WHERE id = ?",
                )
                .bind(serde_json::to_string(&p.rcpts).expect("strings serialise"))
                .bind(p.peer_id.0)
                .bind(&p.item_id)
                .bind(row)
                .execute(&mut *tx)
                .await?;
            }
            if rest.is_empty() {
                sqlx::query("DELETE FROM outbox WHERE id = ?")
                    .bind(row)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query("UPDATE outbox SET rcpts = ? WHERE id = ?")
                    .bind(serde_json::to_string(rest).expect("strings serialise"))
                    .bind(row)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Acknowledgements owed to a peer (hex content ids).
    pub async fn acks_due(&self, peer_id: PeerId) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT item_id FROM acks_due WHERE peer_id = ? ORDER BY item_id")
                .bind(peer_id.0)
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Take the sequence number for the next bundle to a peer.
    pub async fn peer_take_seq(&self, peer_id: PeerId) -> Result<u64> {
        let seq: i64 = sqlx::query_scalar(
            "UPDATE peers SET next_bundle_seq = next_bundle_seq + 1 WHERE id = ?
             RETURNING next_bundle_seq - 1",
        )
        .bind(peer_id.0)
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(seq).unwrap_or(0))
    }

    /// A bundle for a peer is complete on its carrier: its items are in
    /// flight and the acknowledgements it carried are no longer owed.
    pub async fn bundle_sent(&self, peer_id: PeerId, items: &[i64], acks: &[String]) -> Result<()> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        for id in items {
            sqlx::query(
                "UPDATE outbox SET state = 'in-flight', attempts = attempts + 1
                 WHERE id = ? AND state IN ('queued', 'in-flight')",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        forget_acks(&mut tx, peer_id, acks).await?;
        sent_to(&mut tx, peer_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Acknowledgements a live link delivered are no longer owed.
    pub async fn acks_delivered(&self, peer_id: PeerId, acks: &[String]) -> Result<()> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        forget_acks(&mut tx, peer_id, acks).await?;
        sent_to(&mut tx, peer_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forget items first seen before `before` (Unix seconds). Returns how
    /// many were forgotten.
    pub async fn items_seen_prune(&self, before: i64) -> Result<u64> {
        self.execute_with("DELETE FROM items_seen WHERE seen_at < ?", before)
            .await
    }

    /// Has this node already taken custody of these items?
    pub async fn items_seen(&self, ids: &[String]) -> Result<Vec<bool>> {
        let mut seen = std::collections::HashSet::new();
        // SQLite allows 32 766 parameters; ask in chunks far below that.
        for chunk in ids.chunks(500) {
            let mut q =
                sqlx::QueryBuilder::new("SELECT item_id FROM items_seen WHERE item_id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id);
            }
            q.push(")");
            let found: Vec<String> = q.build_query_scalar().fetch_all(self.pool()).await?;
            seen.extend(found);
        }
        Ok(ids.iter().map(|id| seen.contains(id)).collect())
    }

    /// Apply one authenticated bundle from `peer_id`, all or nothing:
    /// acknowledgements purge this node's outbox; each item not seen
    /// before is placed (and its bounce, if any); every item, seen or not,
    /// is acknowledged in the next bundle back.
    pub async fn import_items(
        &self,
        peer_id: PeerId,
        items: &[ImportedItem],
        acks: &[String],
    ) -> Result<ImportApplied> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let t = now();
        let mut out = ImportApplied::default();
        let mut events = Vec::new();
        for a in acks {
            // Keys the item carried in full over the radio: the peer holds
            // them now (relay::keyref).
            let marks: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT f.marks FROM item_forms f JOIN outbox o ON o.id = f.outbox_id
                 WHERE o.peer_id = ? AND o.item_id = ?",
            )
            .bind(peer_id.0)
            .bind(a)
            .fetch_optional(&mut *tx)
            .await?;
            for d in marks.as_deref().unwrap_or_default().chunks_exact(32) {
                sqlx::query("INSERT OR IGNORE INTO keys_held (peer_id, digest) VALUES (?, ?)")
                    .bind(peer_id.0)
                    .bind(d)
                    .execute(&mut *tx)
                    .await?;
            }
            let r = sqlx::query("DELETE FROM outbox WHERE peer_id = ? AND item_id = ?")
                .bind(peer_id.0)
                .bind(a)
                .execute(&mut *tx)
                .await?;
            out.acknowledged += r.rows_affected() as usize;
        }
        for it in items {
            sqlx::query("INSERT OR IGNORE INTO acks_due (peer_id, item_id) VALUES (?, ?)")
                .bind(peer_id.0)
                .bind(&it.item_id)
                .execute(&mut *tx)
                .await?;
            take_item(&mut tx, Some(peer_id), it, t, &mut events, &mut out).await?;
        }
        heard_from(&mut tx, peer_id, t).await?;
        self.commit_publishing(tx, events).await?;
        Ok(out)
    }

    /// Take one message that came by batch SMTP (from a classic peer, or
    /// anyone when `peer_id` is `None`): placed and its bounce queued in
    /// one transaction, unless its content id was seen before.
    pub async fn import_classic(
        &self,
        peer_id: Option<PeerId>,
        item: &ImportedItem,
    ) -> Result<ImportApplied> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let t = now();
        let mut out = ImportApplied::default();
        let mut events = Vec::new();
        take_item(&mut tx, peer_id, item, t, &mut events, &mut out).await?;
        if let Some(id) = peer_id {
            heard_from(&mut tx, id, t).await?;
        }
        self.commit_publishing(tx, events).await?;
        Ok(out)
    }

    /// What one SMTP delivery attempt of item `row` did: recipients still
    /// to try (`keep`, retried from `next_attempt_at`; none: the item is
    /// done and leaves the outbox), and the bounce for those refused.
    pub async fn smtp_attempted(
        &self,
        peer_id: PeerId,
        row: i64,
        keep: &[String],
        next_attempt_at: i64,
        error: Option<&str>,
        bounce: Option<&Placement>,
    ) -> Result<()> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if keep.is_empty() {
            sqlx::query("DELETE FROM outbox WHERE id = ? AND peer_id = ?")
                .bind(row)
                .bind(peer_id.0)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "UPDATE outbox SET rcpts = ?, attempts = attempts + 1, next_attempt_at = ?,
                        last_error = ?
                 WHERE id = ? AND peer_id = ?",
            )
            .bind(serde_json::to_string(keep).expect("strings serialise"))
            .bind(next_attempt_at)
            .bind(error)
            .bind(row)
            .bind(peer_id.0)
            .execute(&mut *tx)
            .await?;
        }
        let mut events = Vec::new();
        if let Some(b) = bounce {
            place(&mut tx, b, now(), &mut events).await?;
        }
        sent_to(&mut tx, peer_id).await?;
        self.commit_publishing(tx, events).await?;
        Ok(())
    }

    /// Items handed to a carrier that takes custody itself (a classic
    /// peer's NNCP spool or MTA): they leave the outbox.
    pub async fn handed_over(&self, peer_id: PeerId, items: &[i64]) -> Result<()> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        for id in items {
            sqlx::query("DELETE FROM outbox WHERE id = ? AND peer_id = ?")
                .bind(id)
                .bind(peer_id.0)
                .execute(&mut *tx)
                .await?;
        }
        sent_to(&mut tx, peer_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Place messages this node made itself (bounces), all or nothing.
    pub async fn place_generated(&self, placements: &[Placement]) -> Result<()> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let t = now();
        let mut events = Vec::new();
        for p in placements {
            place(&mut tx, p, t, &mut events).await?;
        }
        self.commit_publishing(tx, events).await?;
        Ok(())
    }

    /// Mark items expired and place their bounces, in one transaction.
    pub async fn outbox_expire(&self, rows: &[i64], bounces: &[Placement]) -> Result<()> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        for id in rows {
            sqlx::query(
                "UPDATE outbox SET state = 'expired', last_error = 'lifetime exceeded' WHERE id = ?",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let t = now();
        let mut events = Vec::new();
        for p in bounces {
            place(&mut tx, p, t, &mut events).await?;
        }
        self.commit_publishing(tx, events).await?;
        Ok(())
    }
}

impl Store {
    /// One outbox item.
    pub async fn outbox_item(&self, id: i64) -> Result<Option<CustodyRow>> {
        Ok(sqlx::query_as(custody_query!("WHERE o.id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Move an item from one of `from` states to `to`; returns whether it
    /// moved. `to` = 'queued' turns into 'no-route' for an item without a hop.
    pub async fn outbox_set_state(&self, id: i64, from: &[&str], to: &str) -> Result<bool> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT state, peer_id FROM outbox WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((state, peer)) = row else {
            return Ok(false);
        };
        if !from.contains(&state.as_str()) {
            return Ok(false);
        }
        let to = if to == "queued" && peer.is_none() {
            "no-route"
        } else {
            to
        };
        // Queued again by hand means at the next chance: the wait after a
        // failed attempt (the gateway's growing retry interval) is over.
        sqlx::query(
            "UPDATE outbox SET state = ?, last_error = NULL,
                    next_attempt_at = CASE WHEN ? = 'queued' THEN NULL ELSE next_attempt_at END
             WHERE id = ?",
        )
        .bind(to)
        .bind(to)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Remove an item, placing its bounce (if any) in the same transaction.
    pub async fn outbox_drop(&self, id: i64, bounce: Option<&Placement>) -> Result<bool> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let gone = sqlx::query("DELETE FROM outbox WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        let mut events = Vec::new();
        if gone && let Some(b) = bounce {
            place(&mut tx, b, now(), &mut events).await?;
        }
        self.commit_publishing(tx, events).await?;
        Ok(gone)
    }
}
