//! Messages: APPEND, EXPUNGE, STORE, COPY and MOVE (RFC 3501 §6.3.11,
//! §6.4; RFC 4315, RFC 6851, RFC 7162).

use crate::domain::Uid;
use crate::imap::session::*;
use crate::imap::view::View;
use crate::mail::transaction::MailError;
use crate::store::{FlagOp, MessageRow};
use imap_next::imap_types::command::StoreModifier;
use imap_next::imap_types::core::{Tag, Vec1};
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Code, Data, Status};
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_next::server::Server;
use std::num::NonZeroU64;

/// APPEND's work once the literal is in (RFC 3501 §6.3.11): the mail
/// rules' `append` checks quota and commits; the tagged OK carries RFC 4315
/// APPENDUID.
pub(crate) async fn append(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    name: &str,
    bytes: Vec<u8>,
    flags: Vec<String>,
    date: i64,
) -> Status<'static> {
    let account = s.account().unwrap();
    let Ok(Some(mb)) = s.store().mailbox_get(account, name).await else {
        return no(tag, Some(Code::TryCreate), format!("no mailbox {name}"));
    };
    match s
        .ctx
        .rules
        .append(account, mb.id(), &bytes, &flags, date)
        .await
    {
        Ok(uid) => {
            report_changes(s, server, true).await;
            ok(
                tag,
                Some(Code::AppendUid {
                    uid_validity: nz(mb.uidvalidity as u32),
                    uid: nz(uid.0),
                }),
                "APPEND completed",
            )
        }
        // RFC 9208 §4.3: [OVERQUOTA].
        Err(e @ MailError::OverQuota) => no(tag, Some(Code::OverQuota), e.to_string()),
        // RFC 5530 LIMIT: the hub keeps its disk reserve.
        Err(e @ MailError::StorageLow { .. }) => {
            no(tag, Some(Code::Other(code_other("LIMIT"))), e.to_string())
        }
        Err(e) => unavailable(tag, e),
    }
}

/// The messages a set names: (seq, row), in sequence order.
pub(crate) fn select_messages<'m>(
    view: &View,
    messages: &'m [MessageRow],
    set: &SequenceSet,
    uid: bool,
) -> Vec<(u32, &'m MessageRow)> {
    let largest_uid = view.uids.last().map_or(0, |u| u.0);
    let largest_seq = view.uids.len() as u32;
    messages
        .iter()
        .filter_map(|m| {
            let u = Uid(m.uid as u32);
            let seq = view.seq_of(u)?;
            let hit = if uid {
                set_contains(set, u.0, largest_uid)
            } else {
                set_contains(set, seq, largest_seq)
            };
            hit.then_some((seq, m))
        })
        .collect()
}

/// RFC 3501 §6.4.3 EXPUNGE, and RFC 4315 §2.1 UID EXPUNGE (`set`).
pub(crate) async fn expunge(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    set: Option<SequenceSet>,
) -> Status<'static> {
    let store = s.store().clone();
    let SessionState::Selected { view, .. } = &s.state else {
        unreachable!()
    };
    if view.read_only {
        return no(tag, None, "mailbox is read-only (EXAMINE)");
    }
    let only: Option<Vec<Uid>> = set.map(|set| {
        let largest = view.uids.last().map_or(0, |u| u.0);
        view.uids
            .iter()
            .copied()
            .filter(|u| set_contains(&set, u.0, largest))
            .collect()
    });
    if let Err(e) = store.expunge(view.mailbox, only.as_deref()).await {
        return unavailable(tag, e);
    }
    report_changes(s, server, true).await;
    ok(tag, None, "EXPUNGE completed")
}

/// What a STORE asks for.
pub(crate) struct StoreRequest<'a> {
    pub set: &'a SequenceSet,
    pub kind: StoreType,
    pub response: StoreResponse,
    pub flags: &'a [Flag<'static>],
    /// UID STORE.
    pub uid: bool,
    /// RFC 7162 UNCHANGEDSINCE.
    pub unchanged_since: Option<u64>,
}

impl<'a> StoreRequest<'a> {
    pub(crate) fn new(
        set: &'a SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &'a [Flag<'static>],
        uid: bool,
        modifiers: &[StoreModifier],
    ) -> Self {
        let unchanged_since = modifiers
            .iter()
            .map(|m| match m {
                StoreModifier::UnchangedSince(n) => *n,
            })
            .next();
        StoreRequest {
            set,
            kind,
            response,
            flags,
            uid,
            unchanged_since,
        }
    }
}

/// RFC 3501 §6.4.6 STORE (and UID STORE), RFC 7162 UNCHANGEDSINCE; a
/// keyword new to the mailbox is announced first (§7.2.6).
pub(crate) async fn store_cmd(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    request: StoreRequest<'_>,
) -> Status<'static> {
    let (set, uid, unchanged_since) = (request.set, request.uid, request.unchanged_since);
    let store = s.store().clone();
    let SessionState::Selected { view, .. } = &s.state else {
        unreachable!()
    };
    if view.read_only {
        return no(tag, None, "mailbox is read-only (EXAMINE)");
    }
    let mailbox = view.mailbox;
    let messages = match store.messages(mailbox).await {
        Ok(m) => m,
        Err(e) => return unavailable(tag, e),
    };
    let chosen: Vec<(u32, Uid)> = select_messages(view, &messages, set, uid)
        .into_iter()
        .map(|(seq, m)| (seq, Uid(m.uid as u32)))
        .collect();
    let uids: Vec<Uid> = chosen.iter().map(|(_, u)| *u).collect();
    let op = match request.kind {
        StoreType::Add => FlagOp::Add,
        StoreType::Remove => FlagOp::Remove,
        StoreType::Replace => FlagOp::Replace,
    };
    // \Recent is the server's to set (RFC 3501 §2.3.2), never stored.
    let flag_names: Vec<String> = request
        .flags
        .iter()
        .map(flag_text)
        .filter(|f| !f.eq_ignore_ascii_case(RECENT))
        .collect();
    let (changed, refused) = match store
        .set_flags(mailbox, &uids, op, &flag_names, unchanged_since)
        .await
    {
        Ok(x) => x,
        Err(e) => return unavailable(tag, e),
    };
    if let SessionState::Selected { view, .. } = &mut s.state {
        announce_keywords(server, view, changed.iter().flat_map(|c| &c.flags));
    }
    if request.response == StoreResponse::Answer {
        for c in &changed {
            let Some((seq, _)) = chosen.iter().find(|(_, u)| *u == c.uid) else {
                continue;
            };
            let mut items = vec![MessageDataItem::Flags(flags_fetch(&c.flags))];
            // RFC 7162 §3.2.4/§3.1.4: with QRESYNC (and so CONDSTORE)
            // enabled, every untagged FETCH carries UID and MODSEQ.
            if uid || s.qresync {
                items.insert(0, MessageDataItem::Uid(nz(c.uid.0)));
            }
            if unchanged_since.is_some() || s.qresync {
                items.push(MessageDataItem::ModSeq(
                    NonZeroU64::new(c.modseq.0).unwrap_or(NonZeroU64::MIN),
                ));
            }
            server.enqueue_data(Data::Fetch {
                seq: nz(*seq),
                items: Vec1::try_from(items).expect("non-empty"),
            });
        }
    }
    if let SessionState::Selected { view, .. } = &mut s.state
        && let Some(top) = changed.iter().map(|c| c.modseq.0).max()
    {
        view.seen_modseq = view.seen_modseq.max(top);
    }
    if !refused.is_empty() {
        // RFC 7162 §3.1.3: MODIFIED lists what was not changed.
        let list: Vec<Sequence> = refused
            .iter()
            .map(|u| {
                let n = if uid {
                    u.0
                } else {
                    chosen
                        .iter()
                        .find(|(_, x)| x == u)
                        .map_or(1, |(seq, _)| *seq)
                };
                Sequence::Single(SeqOrUid::Value(nz(n)))
            })
            .collect();
        if let Ok(v) = Vec1::try_from(list) {
            return ok(
                tag,
                Some(Code::Modified(SequenceSet(v))),
                "conditional STORE completed",
            );
        }
    }
    ok(tag, None, "STORE completed")
}

/// RFC 3501 §6.4.7 COPY and RFC 6851 MOVE (`remove`), by UID with `uid`;
/// the tagged OK carries RFC 4315 COPYUID.
pub(crate) async fn copy_move(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    set: &SequenceSet,
    target: &Mailbox<'static>,
    uid: bool,
    remove: bool,
) -> Status<'static> {
    let store = s.store().clone();
    let account = s.account().unwrap();
    let Ok(Some(dest)) = store.mailbox_get(account, &mailbox_name(target)).await else {
        return no(tag, Some(Code::TryCreate), "no such target mailbox");
    };
    let SessionState::Selected { view, .. } = &s.state else {
        unreachable!()
    };
    if remove && view.read_only {
        return no(tag, None, "mailbox is read-only (EXAMINE)");
    }
    let mailbox = view.mailbox;
    let messages = match store.messages(mailbox).await {
        Ok(m) => m,
        Err(e) => return unavailable(tag, e),
    };
    let uids: Vec<Uid> = select_messages(view, &messages, set, uid)
        .into_iter()
        .map(|(_, m)| Uid(m.uid as u32))
        .collect();
    if uids.is_empty() {
        return ok(tag, None, "nothing to copy");
    }
    let pairs = match store.copy_messages(mailbox, &uids, dest.id(), remove).await {
        Ok(p) => p,
        Err(e) => return unavailable(tag, e),
    };
    let to_set = |v: Vec<u32>| -> Option<imap_next::imap_types::extensions::uidplus::UidSet> {
        use imap_next::imap_types::extensions::uidplus::{UidElement, UidSet};
        let elems: Vec<UidElement> = v.into_iter().map(|n| UidElement::Single(nz(n))).collect();
        Vec1::try_from(elems).ok().map(UidSet)
    };
    let code = match (
        to_set(pairs.iter().map(|p| p.0.0).collect()),
        to_set(pairs.iter().map(|p| p.1.0).collect()),
    ) {
        (Some(source), Some(destination)) => Some(Code::CopyUid {
            uid_validity: nz(dest.uidvalidity as u32),
            source,
            destination,
        }),
        _ => None,
    };
    if remove {
        // RFC 6851 §4.3: COPYUID comes in an untagged OK before the EXPUNGEs.
        if let Some(code) = code {
            server.enqueue_status(Status::ok(None, Some(code), text("moved")).expect("status"));
        }
        report_changes(s, server, true).await;
        ok(tag, None, "MOVE completed")
    } else {
        ok(tag, code, "COPY completed")
    }
}

/// RFC 3501 §6.4.2 CLOSE: expunge silently, then leave.
pub(crate) async fn close(s: &mut Session, tag: &Tag<'static>) -> Status<'static> {
    if let SessionState::Selected { view, .. } = &s.state
        && !view.read_only
    {
        let _ = s.store().expunge(view.mailbox, None).await;
    }
    unselect(s);
    ok(tag, None, "CLOSE completed")
}

/// RFC 3501 §6.3.11 APPEND (a LITERAL8 too, RFC 3516).
pub(crate) async fn append_cmd(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    mailbox: &Mailbox<'static>,
    flags: &[Flag<'static>],
    date: Option<imap_next::imap_types::datetime::DateTime>,
    message: &imap_next::imap_types::extensions::binary::LiteralOrLiteral8<'static>,
) -> Status<'static> {
    let name = mailbox_name(mailbox);
    let bytes = match message {
        imap_next::imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => {
            l.data().to_vec()
        }
        imap_next::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => {
            l.data.to_vec()
        }
    };
    let flags: Vec<String> = flags
        .iter()
        .map(flag_text)
        .filter(|f| !f.eq_ignore_ascii_case(RECENT))
        .collect();
    let date = date
        .map(|d| d.as_ref().timestamp())
        .unwrap_or_else(crate::store::now);
    append(s, server, tag, &name, bytes, flags, date).await
}
