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
                    self.recent.remove(&self.uids[i]);
                    self.uids.remove(i);
                }
            }
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
