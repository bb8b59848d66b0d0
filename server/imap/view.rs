//! The selected mailbox as one session sees it: sequence numbers mapped to
//! UIDs, and what has been reported so far, so changes by other sessions
//! (new mail, flags, expunges) become EXISTS / FETCH / EXPUNGE responses.

use crate::domain::{MailboxId, Uid};
use crate::store::{MessageRow, Store};

/// What a refresh found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Sequence numbers to report as EXPUNGE, in the order to send them.
    pub expunged: Vec<u32>,
    /// The same messages' UIDs, ascending (RFC 7162 VANISHED).
    pub expunged_uids: Vec<Uid>,
    /// New EXISTS count, if it changed.
    pub exists: Option<u32>,
    /// (seq, uid, flags, modseq) of messages whose flags changed.
    pub flags: Vec<(u32, Uid, Vec<String>, u64)>,
}

pub struct View {
    pub mailbox: MailboxId,
    pub read_only: bool,
    pub uidvalidity: u32,
    /// UIDs in sequence order (ascending).
    pub uids: Vec<Uid>,
    /// Highest modseq reported to the client.
    pub seen_modseq: u64,
    /// Expunges found while they could not be reported (RFC 3501 §7.4.1).
    pending_expunge: bool,
    /// Keywords the client was told the mailbox has (in FLAGS).
    pub keywords: std::collections::BTreeSet<String>,
    /// Messages recent to this session (RFC 3501 §2.3.2 \Recent).
    pub recent: std::collections::BTreeSet<Uid>,
    /// The highest UID whose recency this session has settled.
    settled: Uid,
}

impl View {
    pub async fn open(
        store: &Store,
        mailbox: MailboxId,
        read_only: bool,
    ) -> crate::store::Result<(View, Vec<MessageRow>)> {
        let row = store
            .mailbox_by_id(mailbox)
            .await?
            .expect("mailbox exists while selected");
        let messages = store.messages(mailbox).await?;
        let mut view = View {
            mailbox,
            read_only,
            uidvalidity: u32::try_from(row.uidvalidity).unwrap_or(1).max(1),
            uids: messages.iter().map(|m| Uid(m.uid as u32)).collect(),
            seen_modseq: u64::try_from(row.highestmodseq).unwrap_or(0),
            pending_expunge: false,
            keywords: messages
                .iter()
                .flat_map(|m| crate::store::mailboxes::parse_flags(&m.flags))
                .filter(|f| !f.starts_with('\\'))
                .collect(),
            recent: Default::default(),
            settled: Uid(0),
        };
        view.settle_recent(store).await?;
        Ok((view, messages))
    }

    /// Learn which of the messages this session knows are recent to it:
    /// a SELECT session claims those no session claimed before (the
    /// first session to see a message has it as \Recent, RFC 3501
    /// §2.3.2); an EXAMINE session only looks. Returns whether the
    /// recent set grew (an untagged RECENT is then due).
    pub async fn settle_recent(&mut self, store: &Store) -> crate::store::Result<bool> {
        let top = self.uids.last().copied().unwrap_or(Uid(0));
        if top <= self.settled {
            return Ok(false);
        }
        let before = if self.read_only {
            store.recent_claimed(self.mailbox).await?
        } else {
            store.claim_recent(self.mailbox, top.0).await?
        };
        let from = Uid(before.max(self.settled.0));
        let had = self.recent.len();
        self.recent
            .extend(self.uids.iter().copied().filter(|u| *u > from));
        self.settled = top;
        Ok(self.recent.len() > had)
    }

    /// Sequence number of a UID.
    pub fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// The next message arrived (by the change event), in order: note it
    /// without asking the store. Returns the new EXISTS count, or `None`
    /// when the UID is not the next one (a gap or a reordering of events),
    /// and a full [`View::refresh`] is needed.
    pub fn append_next(&mut self, uid: Uid, modseq: u64) -> Option<u32> {
        let max = self.uids.last().copied().unwrap_or(Uid(0));
        if self.pending_expunge || uid.0 != max.0 + 1 || modseq != self.seen_modseq + 1 {
            return None;
        }
        self.uids.push(uid);
        self.seen_modseq = modseq;
        Some(self.uids.len() as u32)
    }

    /// Compare with the store. `may_expunge`: EXPUNGE responses are allowed
    /// now (not during FETCH, STORE or SEARCH by sequence number).
    pub async fn refresh(
        &mut self,
        store: &Store,
        may_expunge: bool,
    ) -> crate::store::Result<(Refresh, Vec<MessageRow>)> {
        let messages = store.messages(self.mailbox).await?;
        let mut out = Refresh::default();
        let current: Vec<Uid> = messages.iter().map(|m| Uid(m.uid as u32)).collect();
        if may_expunge {
            // Report from the highest sequence number down, so each number
            // is valid when sent.
            for i in (0..self.uids.len()).rev() {
                if current.binary_search(&self.uids[i]).is_err() {
                    out.expunged.push(i as u32 + 1);
                    out.expunged_uids.push(self.uids[i]);
                    self.recent.remove(&self.uids[i]);
                    self.uids.remove(i);
                }
            }
            out.expunged_uids.reverse();
            self.pending_expunge = false;
        } else if self.uids.iter().any(|u| current.binary_search(u).is_err()) {
            self.pending_expunge = true;
        }
        let before = self.uids.len();
        let max = self.uids.last().copied().unwrap_or(Uid(0));
        for m in &messages {
            let uid = Uid(m.uid as u32);
            if uid > max {
                self.uids.push(uid);
            }
        }
        if self.uids.len() != before || !out.expunged.is_empty() {
            out.exists = Some(self.uids.len() as u32);
        }
        let mut top = self.seen_modseq;
        for m in &messages {
            let modseq = m.modseq as u64;
            let uid = Uid(m.uid as u32);
            if modseq > self.seen_modseq
                && uid <= max
                && let Some(seq) = self.seq_of(uid)
            {
                out.flags.push((
                    seq,
                    uid,
                    crate::store::mailboxes::parse_flags(&m.flags),
                    modseq,
                ));
            }
            top = top.max(modseq);
        }
        self.seen_modseq = top;
        Ok((out, messages))
    }
}

/// The UIDs within `ranges` (inclusive, in any order, clamped to
/// `1..=top`) that no message in `present` (ascending) has: what RFC 7162
/// reports as VANISHED (EARLIER), as ascending inclusive ranges.
///
/// The hub keeps no record of when a message was expunged, so this is
/// every missing UID in the ranges, not only those expunged since the
/// client's mod-sequence: more than needed, never less. A client ignores
/// UIDs it does not hold (RFC 7162 §3.2.10). The answer has at most one
/// range more than the messages in `present` per merged given range.
pub fn missing_uids(present: &[Uid], ranges: &[(u32, u32)], top: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for (a, b) in merge_ranges(ranges, top) {
        let mut next = a;
        let from = present.partition_point(|u| u.0 < a);
        for u in present[from..].iter().take_while(|u| u.0 <= b) {
            if u.0 > next {
                out.push((next, u.0 - 1));
            }
            next = u.0 + 1;
        }
        if next <= b {
            out.push((next, b));
        }
    }
    out
}

/// Inclusive UID ranges (in any order, reversed ones too) clamped to
/// `1..=top`, sorted and merged: a client's many small ranges cost one
/// sort, and [`in_ranges`] answers for each message by binary search.
pub fn merge_ranges(ranges: &[(u32, u32)], top: u32) -> Vec<(u32, u32)> {
    let mut wanted: Vec<(u32, u32)> = ranges
        .iter()
        .map(|&(a, b)| (a.min(b).max(1), a.max(b).min(top)))
        .filter(|(a, b)| a <= b)
        .collect();
    wanted.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(wanted.len());
    for (a, b) in wanted {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// Whether `uid` is in `merged` (from [`merge_ranges`]).
pub fn in_ranges(merged: &[(u32, u32)], uid: u32) -> bool {
    let i = merged.partition_point(|(_, b)| *b < uid);
    merged.get(i).is_some_and(|(a, _)| *a <= uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_uids_are_the_gaps_within_what_was_asked() {
        let present: Vec<Uid> = [2, 3, 7, 10].into_iter().map(Uid).collect();
        // RFC 7162 §3.2.5.1's shape: known UIDs 1:10 → the gaps.
        assert_eq!(
            missing_uids(&present, &[(1, 10)], 10),
            [(1, 1), (4, 6), (8, 9)]
        );
        // Overlapping and reversed ranges merge; UIDs past the mailbox's
        // highest ever (UIDNEXT - 1) are not reported.
        assert_eq!(
            missing_uids(&present, &[(9, 4), (5, 8), (10, 4_000_000_000)], 12),
            [(4, 6), (8, 9), (11, 12)]
        );
        assert_eq!(missing_uids(&present, &[(2, 3)], 10), []);
        assert_eq!(missing_uids(&[], &[(1, u32::MAX)], 3), [(1, 3)]);
        assert_eq!(missing_uids(&present, &[(1, 5)], 0), []);
        let merged = merge_ranges(&[(9, 7), (1, 2), (3, 3), (20, 30)], 25);
        assert_eq!(merged, [(1, 3), (7, 9), (20, 25)]);
        let hits: Vec<u32> = (0..=27).filter(|u| in_ranges(&merged, *u)).collect();
        assert_eq!(hits, [1, 2, 3, 7, 8, 9, 20, 21, 22, 23, 24, 25]);
    }
}
