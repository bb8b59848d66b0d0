//! SEARCH (RFC 3501 §6.4.4) over a mailbox; the keys are evaluated in
//! `imap::search`.

use crate::domain::Uid;
use crate::imap::session::*;
use imap_next::imap_types::core::{Tag, Vec1};
use imap_next::imap_types::response::{Data, Status};
use imap_next::server::Server;
use std::num::NonZeroU64;
use std::sync::Arc;

/// RFC 3501 §6.4.4 SEARCH (and UID SEARCH), with RFC 7162 MODSEQ.
pub(crate) async fn search_cmd(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    criteria: Vec<imap_next::imap_types::search::SearchKey<'static>>,
    uid: bool,
) -> Status<'static> {
    use crate::imap::search::{Candidate, matches, needs_content};
    use imap_next::imap_types::search::SearchKey;
    let key = if criteria.len() == 1 {
        criteria.into_iter().next().expect("one")
    } else {
        SearchKey::And(Vec1::try_from(criteria).expect("non-empty"))
    };
    let store = s.store().clone();
    if uid {
        report_changes(s, server, true).await;
    }
    if let SessionState::Selected { view, .. } = &mut s.state
        && let Err(e) = view.settle_recent(&store).await
    {
        return unavailable(tag, e);
    }
    let SessionState::Selected { view, .. } = &s.state else {
        unreachable!()
    };
    let messages = match store.messages(view.mailbox).await {
        Ok(m) => m,
        Err(e) => return unavailable(tag, e),
    };
    let content = needs_content(&key);
    let largest_seq = view.uids.len() as u32;
    let largest_uid = view.uids.last().map_or(0, |u| u.0);
    let mut hits = Vec::new();
    let mut top_modseq = 0u64;
    let key = Arc::new(key);
    for m in &messages {
        let Some(seq) = view.seq_of(Uid(m.uid as u32)) else {
            continue;
        };
        let raw = if content {
            store.blob_read(&m.blob_hash).await.ok()
        } else {
            None
        };
        let (message_uid, modseq) = (m.uid as u32, m.modseq as u64);
        let flags = crate::store::mailboxes::parse_flags(&m.flags);
        let (size, internal_date) = (m.size as u64, m.internal_date);
        let recent = view.recent.contains(&Uid(message_uid));
        let check = {
            let key = key.clone();
            move || {
                let c = Candidate {
                    seq,
                    uid: message_uid,
                    flags,
                    size,
                    internal_date,
                    modseq,
                    recent,
                    raw: raw.as_deref(),
                };
                matches(&key, &c, largest_seq, largest_uid)
            }
        };
        // Reading a message's text costs time in its size: off the async
        // workers, as the other sessions' work must go on meanwhile.
        let hit = if content {
            tokio::task::spawn_blocking(check).await.unwrap_or(false)
        } else {
            check()
        };
        if hit {
            hits.push(nz(if uid { message_uid } else { seq }));
            top_modseq = top_modseq.max(modseq);
        }
    }
    // RFC 7162 §3.1.5: with MODSEQ in the criteria, report the highest.
    let modseq = if crate::imap::search::uses_modseq(&key) {
        NonZeroU64::new(top_modseq)
    } else {
        None
    };
    server.enqueue_data(Data::Search(hits, modseq));
    ok(tag, None, "SEARCH completed")
}
