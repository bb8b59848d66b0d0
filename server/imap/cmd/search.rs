//! SEARCH (RFC 3501 §6.4.4) and SORT (RFC 5256) over a mailbox; the keys
//! are evaluated in `imap::search`, the order in `imap::sort`.

use crate::domain::Uid;
use crate::imap::session::*;
use crate::store::MessageRow;
use imap_next::imap_types::core::{Charset, Tag, Vec1};
use imap_next::imap_types::extensions::sort::SortCriterion;
use imap_next::imap_types::response::{Code, Data, Status};
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
    let (hits, modseq) = match matching(s, server, tag, criteria, uid).await {
        Ok(x) => x,
        Err(why) => return why,
    };
    let ids = hits
        .iter()
        .map(|(seq, m)| nz(if uid { m.uid as u32 } else { *seq }))
        .collect();
    server.enqueue_data(Data::Search(ids, modseq));
    ok(tag, None, "SEARCH completed")
}

/// RFC 5256 §3 SORT (and UID SORT), with the RFC 5957 DISPLAY keys and
/// RFC 7162 MODSEQ: the messages SEARCH would find, in the order the
/// criteria give (see `imap::sort`). UTF-8 and US-ASCII only.
pub(crate) async fn sort_cmd(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    sort: &[SortCriterion],
    charset: &str,
    criteria: Vec<imap_next::imap_types::search::SearchKey<'static>>,
    uid: bool,
) -> Status<'static> {
    use crate::imap::sort::{SortFields, compare};
    if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("US-ASCII") {
        return no(
            tag,
            Some(Code::BadCharset {
                allowed: vec![
                    Charset::try_from("UTF-8").expect("charset"),
                    Charset::try_from("US-ASCII").expect("charset"),
                ],
            }),
            "sorts in UTF-8 or US-ASCII",
        );
    }
    let (hits, modseq) = match matching(s, server, tag, criteria, uid).await {
        Ok(x) => x,
        Err(why) => return why,
    };
    let store = s.store().clone();
    let headers = SortFields::need_headers(sort);
    let mut keyed = Vec::with_capacity(hits.len());
    for (seq, m) in &hits {
        let (arrival, size) = (m.internal_date, m.size as u64);
        let fields = if headers {
            let raw = match store.blob_read(&m.blob_hash).await {
                Ok(r) => r,
                Err(e) => return unavailable(tag, e),
            };
            let seq = *seq;
            tokio::task::spawn_blocking(move || SortFields::of(&raw, seq, arrival, size))
                .await
                .unwrap_or_default()
        } else {
            SortFields::bare(*seq, arrival, size)
        };
        keyed.push((fields, if uid { m.uid as u32 } else { *seq }));
    }
    keyed.sort_by(|a, b| compare(sort, &a.0, &b.0));
    let ids = keyed.into_iter().map(|(_, id)| nz(id)).collect();
    server.enqueue_data(Data::Sort(ids, modseq));
    ok(tag, None, "SORT completed")
}

/// The messages of the selected mailbox that `criteria` match, in
/// sequence order as (seq, row), and the highest mod-sequence among them
/// when the criteria name MODSEQ (RFC 7162 §3.1.5).
async fn matching(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    criteria: Vec<imap_next::imap_types::search::SearchKey<'static>>,
    uid: bool,
) -> Result<(Vec<(u32, MessageRow)>, Option<NonZeroU64>), Status<'static>> {
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
        return Err(unavailable(tag, e));
    }
    let SessionState::Selected { view, .. } = &s.state else {
        unreachable!()
    };
    let messages = match store.messages(view.mailbox).await {
        Ok(m) => m,
        Err(e) => return Err(unavailable(tag, e)),
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
            hits.push((seq, m.clone()));
            top_modseq = top_modseq.max(modseq);
        }
    }
    // RFC 7162 §3.1.5: with MODSEQ in the criteria, report the highest.
    let modseq = if crate::imap::search::uses_modseq(&key) {
        NonZeroU64::new(top_modseq)
    } else {
        None
    };
    Ok((hits, modseq))
}
