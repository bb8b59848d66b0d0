//! One sync over an open channel, both sides alike: offer what is in
//! custody and the acknowledgements owed, answer with what is wanted,
//! move items both ways at once, say done.

use super::channel::Channel;
use super::msg::{Msg, Offered, Start, Wanted};
use super::{ExchangeOptions, HEAD_READ, LinkError, LinkProgress, LinkResult, LinkState};
use crate::domain::hex;
use crate::relay::bundle::{ContentId, Item};
use crate::relay::{Arrived, Relay, RelayError, header_section, item_id, unhex};
use crate::store::relay::{CustodyRow, PeerRow};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{mpsc, watch};

/// Ids per inventory message (41 bytes each, well inside a frame).
const INVENTORY_PIECE: usize = 1000;

/// Most ids one side may offer or want in one sync; more waits for the next.
pub const MAX_INVENTORY: usize = 100_000;

/// Limits on the envelope of one item.
const MAX_RCPTS: usize = 1000;

const MAX_ADDRESS: usize = 512;

/// The name of an item's partial body from `peer`.
/// Wire-form copies have their own name: the bytes differ.
fn partial_name(peer: &PeerRow, id: &ContentId, keyrefs: bool) -> String {
    let form = if keyrefs { "-k" } else { "" };
    format!("link-{}-{}{form}", peer.id, hex(id))
}

/// What a message may grow by in wire form (its list of keys).
fn wire_slack(keyrefs: bool) -> u64 {
    if keyrefs {
        crate::relay::keyref::MAX_PREFIX as u64
    } else {
        0
    }
}

fn check_start(s: &Start, max_size: u64) -> Result<(), String> {
    if s.size > max_size {
        return Err(format!(
            "an item of {} bytes is larger than the {max_size} allowed",
            s.size
        ));
    }
    if s.rcpts.is_empty() || s.rcpts.len() > MAX_RCPTS {
        return Err(format!("an item has {} recipients", s.rcpts.len()));
    }
    if s.mail_from.len() > MAX_ADDRESS || s.rcpts.iter().any(|r| r.len() > MAX_ADDRESS) {
        return Err("an item's envelope has an address too long".into());
    }
    if s.from > s.size {
        return Err("an item starts past its end".into());
    }
    Ok(())
}

/// The item being received.
struct Incoming {
    start: Start,
    spool: crate::store::Spool,
}

/// One sync over an open channel with `peer`, both sides alike.
pub(crate) async fn exchange(
    relay: &Relay,
    peer: &PeerRow,
    mut ch: Channel,
    progress: &watch::Sender<LinkProgress>,
    options: &ExchangeOptions,
) -> LinkResult<()> {
    let r = exchange_steps(relay, peer, &mut ch, progress, options).await;
    if let Err(LinkError::Relay(e)) = &r {
        // Our own trouble (a full disk, say): tell the other side why.
        let _ = ch.send(Msg::Refuse(format!("{}: {e}", relay.config.hub_name)));
    }
    // Let the last acknowledgements, `Done` or the refusal go out.
    ch.close().await;
    r
}

async fn exchange_steps(
    relay: &Relay,
    peer: &PeerRow,
    ch: &mut Channel,
    progress: &watch::Sender<LinkProgress>,
    options: &ExchangeOptions,
) -> LinkResult<()> {
    relay.route_pending().await?;
    relay.expire().await?;
    progress.send_modify(|p| p.state = LinkState::Inventory);
    let ours = offer(relay, peer, ch, options).await?;
    let (wanted, mut acks_sent) = want(relay, peer, ch, options, &ours.owed).await?;
    let sends = wants_of_theirs(relay, peer, ch, progress, ours.offered.len()).await?;
    // Send in our order (smallest first), only what was offered.
    let order: HashMap<ContentId, u64> = sends.iter().map(|w| (w.id, w.from)).collect();
    let plan: Vec<(CustodyRow, u64)> = ours
        .offered
        .iter()
        .filter_map(|o| Some((ours.rows.get(&o.id)?.clone(), *order.get(&o.id)?)))
        .collect();
    let awaiting: HashSet<ContentId> = plan
        .iter()
        .filter_map(|(r, _)| r.item_id.as_deref().and_then(unhex))
        .collect();
    let expecting: HashSet<ContentId> = wanted.iter().map(|w| w.id).collect();
    progress.send_modify(|p| {
        p.state = LinkState::Transfer;
        p.to_send = awaiting.len() as u64;
        p.to_receive = expecting.len() as u64;
    });

    // 4. Items both ways at once.
    let data = ch.data.clone();
    let sender = send_items(relay, peer, plan, data, progress, options);
    let mut transfer = Transfer {
        awaiting,
        expecting,
        acks_sent: &mut acks_sent,
    };
    let receiver = receive_items(relay, peer, ch, progress, options, &mut transfer);
    let (sent, received) = tokio::join!(sender, receiver);
    let mut done_received = match (received, sent) {
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(d), Ok(())) => d,
    };

    // 5. Both sides done.
    ch.send(Msg::Done)?;
    while !done_received {
        match ch.recv().await? {
            Msg::Done => done_received = true,
            Msg::Acks(_) => {}
            other => return Err(unexpected(ch, &other, "done")),
        }
    }
    relay
        .store()
        .acks_delivered(peer.id, &acks_sent)
        .await
        .map_err(RelayError::from)?;
    progress.send_modify(|p| p.state = LinkState::Done);
    Ok(())
}

/// What this side offers: the items in custody for the peer (by content
/// id, in the order offered) and the acknowledgements it owes.
struct Ours {
    rows: HashMap<ContentId, CustodyRow>,
    offered: Vec<Offered>,
    owed: Vec<String>,
}

/// Step 1: offer what is in custody for the peer, and the acknowledgements owed.
async fn offer(
    relay: &Relay,
    peer: &PeerRow,
    ch: &Channel,
    options: &ExchangeOptions,
) -> LinkResult<Ours> {
    let store = relay.store();
    let rows = store
        .outbox_for_peer(peer.id)
        .await
        .map_err(RelayError::from)?;
    let mut ours: HashMap<ContentId, CustodyRow> = HashMap::new();
    let mut offered = Vec::new();
    let fits = |r: &CustodyRow| {
        options
            .max_item
            .is_none_or(|max| u64::try_from(r.size).unwrap_or(u64::MAX) <= max)
    };
    for r in rows.into_iter().filter(fits).take(MAX_INVENTORY) {
        if let Some(id) = r.item_id.as_deref().and_then(unhex) {
            offered.push(Offered {
                id,
                size: u64::try_from(r.size).unwrap_or(0),
            });
            ours.insert(id, r);
        }
    }
    let owed = store.acks_due(peer.id).await.map_err(RelayError::from)?;
    let owed_ids: Vec<ContentId> = owed.iter().filter_map(|a| unhex(a)).collect();
    let pieces = offered
        .len()
        .max(owed_ids.len())
        .div_ceil(INVENTORY_PIECE)
        .max(1);
    for i in 0..pieces {
        let slice = |v: &[ContentId]| -> Vec<ContentId> {
            v.iter()
                .skip(i * INVENTORY_PIECE)
                .take(INVENTORY_PIECE)
                .copied()
                .collect()
        };
        ch.send(Msg::Offer {
            items: offered
                .iter()
                .skip(i * INVENTORY_PIECE)
                .take(INVENTORY_PIECE)
                .cloned()
                .collect(),
            acks: slice(&owed_ids),
            more: i + 1 < pieces,
        })?;
    }
    Ok(Ours {
        rows: ours,
        offered,
        owed,
    })
}

/// Step 2, their offer: purge what they acknowledge, acknowledge what we have,
/// want the rest (from where a partial copy ends). Returns the wants and
/// the acknowledgements sent so far (those owed, and the ones for items
/// already here).
async fn want(
    relay: &Relay,
    peer: &PeerRow,
    ch: &mut Channel,
    options: &ExchangeOptions,
    owed: &[String],
) -> LinkResult<(Vec<Wanted>, Vec<String>)> {
    let store = relay.store();
    let mut theirs: Vec<Offered> = Vec::new();
    let mut their_acks: Vec<String> = Vec::new();
    let mut pending_acks: Vec<String> = Vec::new();
    loop {
        match ch.recv().await? {
            Msg::Offer { items, acks, more } => {
                theirs.extend(items);
                their_acks.extend(acks.iter().map(|a| hex(a)));
                if theirs.len() > MAX_INVENTORY || their_acks.len() > MAX_INVENTORY {
                    return Err(refuse(ch, "the inventory is larger than allowed"));
                }
                if !more {
                    break;
                }
            }
            Msg::Acks(ids) => pending_acks.extend(ids.iter().map(|a| hex(a))),
            other => return Err(unexpected(ch, &other, "an offer")),
        }
    }
    their_acks.extend(pending_acks);
    if !their_acks.is_empty() {
        relay.admit(peer, Vec::new(), &their_acks).await?;
    }
    let ids: Vec<String> = theirs.iter().map(|o| hex(&o.id)).collect();
    let seen = store.items_seen(&ids).await.map_err(RelayError::from)?;
    let max_size = relay.config.max_message_size;
    // Short of disk: nothing new is asked for; it stays with the peer.
    let room = relay.room();
    if let Err(e) = &room {
        tracing::warn!(peer = %peer.name, error = %e, "taking no items from the peer");
    }
    let mut have = Vec::new();
    let mut wanted: Vec<Wanted> = Vec::new();
    for (o, seen) in theirs.iter().zip(seen) {
        if seen {
            have.push(o.id);
            continue;
        }
        if room.is_err() {
            continue;
        }
        if o.size > max_size {
            tracing::warn!(peer = %peer.name, size = o.size, "not taking an item larger than limits.max_message_size; it stays with the peer");
        } else if !wanted.iter().any(|w| w.id == o.id) {
            let name = partial_name(peer, &o.id, options.keyrefs);
            let mut from = store.partial_len(&name);
            if from > o.size + wire_slack(options.keyrefs) {
                store.partial_remove(&name);
                from = 0;
            }
            wanted.push(Wanted { id: o.id, from });
        }
    }
    let mut acks_sent: Vec<String> = owed.to_vec();
    for piece in have.chunks(INVENTORY_PIECE) {
        acks_sent.extend(piece.iter().map(|i| hex(i)));
        ch.send(Msg::Acks(piece.to_vec()))?;
    }
    let pieces = wanted.len().div_ceil(INVENTORY_PIECE).max(1);
    for i in 0..pieces {
        ch.send(Msg::Want {
            items: wanted
                .iter()
                .skip(i * INVENTORY_PIECE)
                .take(INVENTORY_PIECE)
                .cloned()
                .collect(),
            more: i + 1 < pieces,
        })?;
    }
    Ok((wanted, acks_sent))
}

/// Step 3: what they want of ours (never more than was offered); their
/// acknowledgements meanwhile are taken as they come.
async fn wants_of_theirs(
    relay: &Relay,
    peer: &PeerRow,
    ch: &mut Channel,
    progress: &watch::Sender<LinkProgress>,
    offered: usize,
) -> LinkResult<Vec<Wanted>> {
    let mut sends: Vec<Wanted> = Vec::new();
    loop {
        match ch.recv().await? {
            Msg::Want { items, more } => {
                sends.extend(items);
                if sends.len() > offered {
                    return Err(refuse(ch, "more items wanted than offered"));
                }
                if !more {
                    break;
                }
            }
            Msg::Acks(ids) => {
                let acks: Vec<String> = ids.iter().map(|a| hex(a)).collect();
                let n = relay.admit(peer, Vec::new(), &acks).await?.acknowledged;
                progress.send_modify(|p| p.items_out += n as u64);
            }
            other => return Err(unexpected(ch, &other, "a want list")),
        }
    }
    Ok(sends)
}

/// The state of the transfer the receiving side keeps.
struct Transfer<'a> {
    /// Items sent and not yet acknowledged.
    awaiting: HashSet<ContentId>,
    /// Items wanted and not yet here.
    expecting: HashSet<ContentId>,
    acks_sent: &'a mut Vec<String>,
}

impl Transfer<'_> {
    /// An item is done with: no longer expected, and acknowledged when it
    /// was taken.
    fn item_done(
        &mut self,
        done: Option<(ContentId, bool)>,
        progress: &watch::Sender<LinkProgress>,
    ) {
        if let Some((id, taken)) = done {
            self.expecting.remove(&id);
            if taken {
                self.acks_sent.push(hex(&id));
                progress.send_modify(|p| p.items_in += 1);
            }
        }
    }
}

/// Step 4: receive items (and acknowledgements of ours) until everything sent
/// is acknowledged and everything wanted is here. Returns whether the
/// other side already said `Done`.
async fn receive_items(
    relay: &Relay,
    peer: &PeerRow,
    ch: &mut Channel,
    progress: &watch::Sender<LinkProgress>,
    options: &ExchangeOptions,
    t: &mut Transfer<'_>,
) -> LinkResult<bool> {
    let store = relay.store();
    let max_size = relay.config.max_message_size;
    let mut current: Option<Incoming> = None;
    let mut done_received = false;
    while !(t.awaiting.is_empty() && t.expecting.is_empty() && current.is_none()) {
        let msg = ch.recv().await?;
        match msg {
            Msg::Acks(ids) => {
                let acks: Vec<String> = ids.iter().map(|a| hex(a)).collect();
                let n = relay.admit(peer, Vec::new(), &acks).await?.acknowledged;
                for id in &ids {
                    t.awaiting.remove(id);
                }
                progress.send_modify(|p| p.items_out += n as u64);
            }
            Msg::Start(s) => {
                if current.is_some() || !t.expecting.contains(&s.id) {
                    return Err(refuse(
                        ch,
                        "an item that was not wanted, or one inside another",
                    ));
                }
                if let Err(why) = check_start(&s, max_size + wire_slack(options.keyrefs)) {
                    return Err(refuse(ch, &why));
                }
                let name = partial_name(peer, &s.id, options.keyrefs);
                let have = store.partial_len(&name);
                if have != s.from {
                    // Our partial copy changed since the want list
                    // (another sync): start it again next time.
                    store.partial_remove(&name);
                    return Err(refuse(
                        ch,
                        "an item resumed at the wrong place; it restarts at the next sync",
                    ));
                }
                let st = store.clone();
                let spool = tokio::task::spawn_blocking(move || st.spool_resume(&name))
                    .await
                    .map_err(|e| LinkError::Relay(RelayError::BadItem(e.to_string())))?
                    .map_err(RelayError::from)?;
                current = Some(Incoming { start: s, spool });
                let done =
                    finish_if_complete(relay, peer, &mut current, ch, options.keyrefs).await?;
                t.item_done(done, progress);
            }
            Msg::Data(bytes) => {
                let Some(cur) = current.as_mut() else {
                    return Err(refuse(ch, "data outside an item"));
                };
                if cur.spool.size() + bytes.len() as u64 > cur.start.size {
                    return Err(refuse(ch, "an item is longer than it said"));
                }
                if let Err(e) = cur.spool.write(&bytes) {
                    // Most likely a full disk: the partial copy cannot
                    // grow, so it goes (and frees what it took).
                    let name = partial_name(peer, &cur.start.id, options.keyrefs);
                    drop(current.take());
                    store.partial_remove(&name);
                    return Err(RelayError::from(e).into());
                }
                progress.send_modify(|p| p.bytes_in += bytes.len() as u64);
                let done =
                    finish_if_complete(relay, peer, &mut current, ch, options.keyrefs).await?;
                t.item_done(done, progress);
            }
            Msg::Unresolved(id) if options.keyrefs && t.awaiting.remove(&id) => {
                // It lost a key we thought it held: forget them all,
                // and the item goes again in full next time.
                tracing::warn!(peer = %peer.name, item = %hex(&id), "the peer does not hold a key an item named; it goes in full at the next sync");
                store
                    .keys_held_forget(peer.id)
                    .await
                    .map_err(RelayError::from)?;
            }
            Msg::Gone(id) => {
                if current.as_ref().is_some_and(|c| c.start.id == id) {
                    current = None;
                }
                t.expecting.remove(&id);
            }
            Msg::Done => {
                done_received = true;
                if !(t.awaiting.is_empty() && t.expecting.is_empty() && current.is_none()) {
                    return Err(LinkError::Protocol(
                        "it said done before the exchange was complete".into(),
                    ));
                }
            }
            other => return Err(unexpected(ch, &other, "items")),
        }
    }
    Ok(done_received)
}

/// Tell the other side why the sync stops, and return the error for here.
fn refuse(ch: &Channel, why: &str) -> LinkError {
    let _ = ch.send(Msg::Refuse(why.to_string()));
    LinkError::Protocol(why.to_string())
}

fn unexpected(ch: &Channel, got: &Msg, wanted: &str) -> LinkError {
    let name = match got {
        Msg::Offer { .. } => "an offer",
        Msg::Want { .. } => "a want list",
        Msg::Acks(_) => "acknowledgements",
        Msg::Start(_) => "an item",
        Msg::Data(_) => "item data",
        Msg::Gone(_) => "a withdrawn item",
        Msg::Ping => "a ping",
        Msg::Done => "done",
        Msg::Refuse(_) => "a refusal",
        Msg::Unresolved(_) => "an unresolved key",
    };
    refuse(ch, &format!("{name} came where {wanted} belonged"))
}

/// If the item being received is complete: check it, commit it, and
/// acknowledge it. Returns its id when it is done with, and whether it was
/// taken (not: it named a key we do not hold, and was answered
/// [`Msg::Unresolved`]).
async fn finish_if_complete(
    relay: &Relay,
    peer: &PeerRow,
    current: &mut Option<Incoming>,
    ch: &Channel,
    keyrefs: bool,
) -> LinkResult<Option<(ContentId, bool)>> {
    let complete = current
        .as_ref()
        .is_some_and(|c| c.spool.size() == c.start.size);
    if !complete {
        return Ok(None);
    }
    let Incoming { start, spool } = current.take().expect("checked above");
    let store = relay.store();
    let name = partial_name(peer, &start.id, keyrefs);
    let (spool, learned) = if keyrefs {
        match rebuild(relay, peer, &spool).await? {
            Ok(x) => x,
            Err(crate::relay::keyref::RebuildError::Form(
                crate::relay::keyref::KeyrefError::Unresolved,
            )) => {
                store.partial_remove(&name);
                ch.send(Msg::Unresolved(start.id))?;
                return Ok(Some((start.id, false)));
            }
            Err(e) => {
                store.partial_remove(&name);
                return Err(refuse(
                    ch,
                    &format!("an item's wire form is unusable ({e}); it restarts at the next sync"),
                ));
            }
        }
    } else {
        (spool, Vec::new())
    };
    let id = item_id(&start.mail_from, &start.rcpts, &spool.hash());
    if unhex(&id) != Some(start.id) {
        store.partial_remove(&name);
        return Err(refuse(
            ch,
            "an item's content does not match its content id; it restarts at the next sync",
        ));
    }
    store
        .keys_learn(peer.id, &learned)
        .await
        .map_err(RelayError::from)?;
    let head = {
        let r = spool.reader().map_err(RelayError::from)?;
        let mut buf = Vec::new();
        r.take(HEAD_READ as u64)
            .read_to_end(&mut buf)
            .map_err(|e| partial_io(&name, e))?;
        header_section(&buf).to_vec()
    };
    let arrived = Arrived {
        item: Item {
            id: start.id,
            mail_from: start.mail_from,
            rcpts: start.rcpts,
            age_ms: start.age_ms,
            lifetime_ms: start.lifetime_ms,
            hops: start.hops,
            message: Vec::new(),
        },
        id,
        spool,
        head,
    };
    relay.admit(peer, vec![arrived], &[]).await?;
    if keyrefs {
        // The message was rebuilt into a spool of its own.
        store.partial_remove(&name);
    }
    ch.send(Msg::Acks(vec![start.id]))?;
    Ok(Some((start.id, true)))
}

fn partial_io(name: &str, source: std::io::Error) -> LinkError {
    LinkError::Relay(RelayError::Io {
        path: format!("partial item {name}"),
        source,
    })
}

/// The message of a complete wire-form item, with the keys it carried;
/// the inner result says what is wrong with the form itself.
async fn rebuild(
    relay: &Relay,
    peer: &PeerRow,
    wire: &crate::store::Spool,
) -> LinkResult<
    Result<
        (
            crate::store::Spool,
            Vec<(crate::relay::keyref::Digest, Vec<u8>)>,
        ),
        crate::relay::keyref::RebuildError,
    >,
> {
    use crate::relay::keyref::{Entry, MAX_PREFIX, RebuildError, read_entries};
    let store = relay.store();
    let mut r = wire.reader().map_err(RelayError::from)?;
    let mut prefix = Vec::new();
    (&mut r)
        .take(MAX_PREFIX as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| partial_io("(wire form)", e))?;
    let (entries, used) = match read_entries(&prefix) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e.into())),
    };
    let wanted: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Referenced { digest, .. } => Some(*digest),
            Entry::Carried { .. } => None,
        })
        .collect();
    let keys = store
        .keys_learned(peer.id, &wanted)
        .await
        .map_err(RelayError::from)?;
    // The message starts after the entries: what was read past them,
    // then the rest.
    let mut r = Read::chain(&prefix[used..], r);
    let mut message = store.spool();
    let max = relay.config.max_message_size;
    let mut write = |b: &[u8]| -> std::io::Result<()> {
        if message.size() + b.len() as u64 > max {
            return Err(std::io::Error::other(
                "the rebuilt message is larger than limits.max_message_size",
            ));
        }
        message.write(b).map_err(std::io::Error::other)
    };
    let carried = crate::relay::keyref::rebuild(&entries, &keys, &mut r, &mut write);
    drop(r);
    Ok(match carried {
        Ok(carried) => Ok((message, carried)),
        Err(RebuildError::Io(e)) => return Err(partial_io("(rebuilt)", e)),
        Err(e) => Err(e),
    })
}

/// Send the planned items in order, each from where the peer's copy ends.
async fn send_items(
    relay: &Relay,
    peer: &PeerRow,
    plan: Vec<(CustodyRow, u64)>,
    data: mpsc::Sender<Msg>,
    progress: &watch::Sender<LinkProgress>,
    options: &ExchangeOptions,
) -> LinkResult<()> {
    let t = crate::store::now();
    for (row, mut from) in plan {
        let Some(id) = row.item_id.as_deref().and_then(unhex) else {
            continue;
        };
        let path = relay.store().blob_path(&row.blob_hash);
        let size = u64::try_from(row.size).unwrap_or(0);
        // In wire form the header section is rewritten here; the rest of
        // the message follows from the file as it is.
        let form = match tokio::fs::File::open(&path).await {
            Err(_) => None,
            Ok(f) if !options.keyrefs => Some((f, Vec::new(), 0)),
            Ok(mut f) => wire_head(relay, peer, &row, &mut f, from)
                .await?
                .map(|(head, head_len)| (f, head, head_len)),
        };
        let mut opened = None;
        if let Some((mut f, head, head_len)) = form
            && let Some(wire_size) = (head.len() as u64 + size).checked_sub(head_len)
        {
            if options.keyrefs && from > wire_size {
                // A copy made from another form: the peer drops it.
                from = 0;
            }
            let skip = from.saturating_sub(head.len() as u64);
            if f.seek(std::io::SeekFrom::Start(head_len + skip))
                .await
                .is_ok()
                && from <= wire_size
            {
                opened = Some((head, f, wire_size));
            }
        }
        let Some((head, file, wire_size)) = opened else {
            tracing::error!(path = %path.display(), "an outbox item's message is missing; withdrawn from this sync");
            data.send(Msg::Gone(id))
                .await
                .map_err(|_| LinkError::Closed)?;
            continue;
        };
        let start = Start {
            id,
            mail_from: row.mail_from.clone(),
            rcpts: row.recipients(),
            age_ms: relay.age_now(&row, t),
            lifetime_ms: relay.lifetime(&row),
            hops: u8::try_from(row.hops).unwrap_or(u8::MAX),
            size: wire_size,
            from,
        };
        data.send(Msg::Start(start))
            .await
            .map_err(|_| LinkError::Closed)?;
        let in_head = usize::try_from(from).unwrap_or(usize::MAX).min(head.len());
        let mut src = AsyncReadExt::chain(&head[in_head..], file);
        let mut left = wire_size - from;
        while left > 0 {
            let mut buf = vec![0u8; options.data_chunk.min(left as usize)];
            src.read_exact(&mut buf).await.map_err(|e| RelayError::Io {
                path: path.display().to_string(),
                source: e,
            })?;
            left -= buf.len() as u64;
            let n = buf.len() as u64;
            data.send(Msg::Data(buf))
                .await
                .map_err(|_| LinkError::Closed)?;
            progress.send_modify(|p| p.bytes_out += n);
        }
    }
    Ok(())
}

/// An item's header section in wire form for `peer`, read from its
/// message `file`, and how long the header section is in the message;
/// `None` when the message cannot be read.
/// A transfer that starts records the form; one that resumes reuses it,
/// so the bytes continue where the peer's copy ends.
async fn wire_head(
    relay: &Relay,
    peer: &PeerRow,
    row: &CustodyRow,
    file: &mut tokio::fs::File,
    from: u64,
) -> LinkResult<Option<(Vec<u8>, u64)>> {
    let store = relay.store();
    let mut buf = Vec::new();
    if file
        .take(HEAD_READ as u64)
        .read_to_end(&mut buf)
        .await
        .is_err()
    {
        return Ok(None);
    }
    let head = header_section(&buf);
    let recorded = if from > 0 {
        store
            .item_form_refs(row.id)
            .await
            .map_err(RelayError::from)?
    } else {
        None
    };
    let w = match &recorded {
        Some(refs) => crate::relay::keyref::write_head(head, &|d| refs.contains(d)),
        None => {
            let held = store.keys_held(peer.id).await.map_err(RelayError::from)?;
            let w = crate::relay::keyref::write_head(head, &|d| held.contains(d));
            store
                .item_form_set(row.id, &w.refs, &w.marks)
                .await
                .map_err(RelayError::from)?;
            w
        }
    };
    Ok(Some((w.bytes, head.len() as u64)))
}
