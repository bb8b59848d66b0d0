//! FETCH (RFC 3501 §6.4.5): what each item asks for, and the responses,
//! sent message by message.

use crate::domain::Uid;
use crate::imap::cmd::message::*;
use crate::imap::connection::*;
use crate::imap::fetch;
use crate::imap::session::*;
use crate::store::{FlagOp, MessageRow};
use bounded_static::ToBoundedStatic;
use imap_next::imap_types::command::FetchModifier;
use imap_next::imap_types::core::{Tag, Vec1};
use imap_next::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_next::imap_types::response::{Code, Data, Status};
use imap_next::imap_types::sequence::SequenceSet;
use imap_next::server::Server;
use std::num::{NonZeroU32, NonZeroU64};

/// Distinct data items one FETCH may ask for; real clients ask for fewer
/// than twenty.
pub const MAX_FETCH_ITEMS: usize = 100;

/// What one FETCH item asks for, flattened.
pub(crate) enum Want {
    Uid,
    Flags,
    Size,
    InternalDate,
    ModSeq,
    /// BODY[section]<partial>, or RFC822 / RFC822.HEADER / RFC822.TEXT.
    Body {
        section: Option<Section<'static>>,
        partial: Option<(u32, NonZeroU32)>,
        peek: bool,
        legacy: Option<u8>,
    },
    Envelope,
    Structure {
        extended: bool,
    },
    Unsupported(&'static str),
}

/// The items a FETCH asks for, each once (a repeated item is answered
/// once: `BODY.PEEK[]` three hundred times built 300 copies of the body).
/// `None`: more than [`MAX_FETCH_ITEMS`] distinct items.
pub(crate) fn wants(items: MacroOrMessageDataItemNames<'static>) -> Option<Vec<Want>> {
    let names: Vec<MessageDataItemName<'static>> = match items {
        MacroOrMessageDataItemNames::Macro(m) => {
            m.expand().into_iter().map(|n| n.to_static()).collect()
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    let mut seen = std::collections::HashSet::new();
    let names: Vec<_> = names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect();
    if names.len() > MAX_FETCH_ITEMS {
        return None;
    }
    Some(
        names
            .into_iter()
            .map(|n| match n {
                MessageDataItemName::Uid => Want::Uid,
                MessageDataItemName::Flags => Want::Flags,
                MessageDataItemName::Rfc822Size => Want::Size,
                MessageDataItemName::InternalDate => Want::InternalDate,
                MessageDataItemName::ModSeq => Want::ModSeq,
                MessageDataItemName::BodyExt {
                    section,
                    partial,
                    peek,
                } => Want::Body {
                    section,
                    partial,
                    peek,
                    legacy: None,
                },
                MessageDataItemName::Rfc822 => Want::Body {
                    section: None,
                    partial: None,
                    peek: false,
                    legacy: Some(0),
                },
                MessageDataItemName::Rfc822Header => Want::Body {
                    section: Some(Section::Header(None)),
                    partial: None,
                    peek: true,
                    legacy: Some(1),
                },
                MessageDataItemName::Rfc822Text => Want::Body {
                    section: Some(Section::Text(None)),
                    partial: None,
                    peek: false,
                    legacy: Some(2),
                },
                MessageDataItemName::Envelope => Want::Envelope,
                MessageDataItemName::BodyStructure => Want::Structure { extended: true },
                MessageDataItemName::Body => Want::Structure { extended: false },
                MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. } => {
                    Want::Unsupported("BINARY")
                }
            })
            .collect(),
    )
}

/// The bytes of a section of `raw` (RFC 3501 §6.4.5 BODY[section]); empty
/// if the part does not exist. `n.HEADER`, `n.HEADER.FIELDS` and `n.TEXT`
/// address the message a message/rfc822 part encapsulates; of any other
/// part they give its MIME header and body (clients ask so at times).
pub(crate) fn section_bytes(raw: &[u8], section: &Option<Section<'static>>) -> Vec<u8> {
    type Part = imap_next::imap_types::fetch::Part;
    /// Bytes made of a (header, text) pair.
    type Pick<'f> = &'f dyn Fn(&[u8], &[u8]) -> Vec<u8>;
    let path = |p: &Part| -> Vec<u32> { p.0.as_ref().iter().map(|n| n.get()).collect() };
    // `f` of the (header, text) of the message or part addressed.
    let on = |part: &Option<Part>, f: Pick<'_>| match part {
        None => {
            let end = fetch::header_end(raw);
            f(&raw[..end], &raw[end..])
        }
        Some(p) => fetch::with_part(raw, &path(p), |l| {
            let (h, t) = l.message.unwrap_or((l.mime, l.body));
            f(h, t)
        })
        .unwrap_or_default(),
    };
    match section {
        None => raw.to_vec(),
        Some(Section::Part(p)) => {
            fetch::with_part(raw, &path(p), |l| l.body.to_vec()).unwrap_or_default()
        }
        Some(Section::Mime(p)) => {
            fetch::with_part(raw, &path(p), |l| l.mime.to_vec()).unwrap_or_default()
        }
        Some(Section::Header(part)) => on(part, &|h, _| h.to_vec()),
        Some(Section::Text(part)) => on(part, &|_, t| t.to_vec()),
        Some(Section::HeaderFields(part, names)) | Some(Section::HeaderFieldsNot(part, names)) => {
            let not = matches!(section, Some(Section::HeaderFieldsNot(..)));
            let names: Vec<String> = names.as_ref().iter().map(astr).collect();
            on(part, &|h, _| fetch::header_fields(h, &names, not))
        }
    }
}

pub(crate) fn internal_date(t: i64) -> imap_next::imap_types::datetime::DateTime {
    let dt = chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .fixed_offset();
    imap_next::imap_types::datetime::DateTime::unvalidated(dt)
}

/// RFC 3501 §6.4.5 FETCH. Each message's response is sent before the
/// next message is read, so a FETCH of a whole mailbox holds one message
/// at a time, and waits while the client is slow to read.
/// What a FETCH asks for.
pub(crate) struct FetchRequest<'a> {
    pub set: &'a SequenceSet,
    pub items: MacroOrMessageDataItemNames<'static>,
    /// UID FETCH.
    pub uid: bool,
    /// RFC 7162 CHANGEDSINCE.
    pub changed_since: Option<u64>,
    /// RFC 7162 §3.2.6 VANISHED (UID FETCH with CHANGEDSINCE, QRESYNC).
    pub vanished: bool,
}

impl<'a> FetchRequest<'a> {
    pub(crate) fn new(
        set: &'a SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: &[FetchModifier],
    ) -> Self {
        let changed_since = modifiers.iter().find_map(|m| match m {
            FetchModifier::ChangedSince(n) => Some(n.get()),
            _ => None,
        });
        let vanished = modifiers
            .iter()
            .any(|m| matches!(m, FetchModifier::Vanished));
        FetchRequest {
            set,
            items,
            uid,
            changed_since,
            vanished,
        }
    }
}

/// RFC 3501 §6.4.5 FETCH (and §6.4.8 UID FETCH), with RFC 7162 CHANGEDSINCE
/// and MODSEQ. A repeated item is answered once, and one message's
/// sections are bounded (see `wants` and `message_items`).
pub(crate) async fn fetch_cmd(
    s: &mut Session,
    server: &mut Server,
    out: Out<'_>,
    tag: &Tag<'static>,
    request: FetchRequest<'_>,
) -> Status<'static> {
    let FetchRequest {
        set,
        items,
        uid,
        changed_since,
        vanished,
    } = request;
    // RFC 7162 §3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE,
    // after ENABLE QRESYNC.
    if vanished && !(uid && changed_since.is_some() && s.qresync) {
        return bad(
            tag,
            "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC",
        );
    }
    let Some(wants) = wants(items) else {
        return bad(
            tag,
            format!("too many items: ask for at most {MAX_FETCH_ITEMS} at once"),
        );
    };
    // One message's response: its sections, however many, add up to at
    // most twice the largest message (plus headers and structure).
    let max_response = usize::try_from(s.ctx.max_message_size)
        .unwrap_or(usize::MAX)
        .saturating_mul(2)
        .saturating_add(1 << 20);
    if let Some(Want::Unsupported(what)) = wants.iter().find(|w| matches!(w, Want::Unsupported(_)))
    {
        return no(
            tag,
            Some(Code::Other(code_other("CANNOT"))),
            format!("{what} is not supported by this version yet"),
        );
    }
    let store = s.store().clone();
    let qresync = s.qresync;
    // Report new mail first so the client's sequence numbers are current;
    // flag changes wait until after this command's own FETCH responses.
    let deferred = report_structure(s, server, uid).await;
    let SessionState::Selected { view, .. } = &s.state else {
        unreachable!()
    };
    let read_only = view.read_only;
    let mailbox = view.mailbox;
    let messages = match store.messages(mailbox).await {
        Ok(m) => m,
        Err(e) => return unavailable(tag, e),
    };
    // RFC 7162 §3.2.6: the UIDs of the set that are gone, before the
    // FETCH responses (see `missing_uids` for which).
    if vanished {
        let top = match store.mailbox_by_id(mailbox).await {
            Ok(Some(mb)) => u32::try_from(mb.uidnext - 1).unwrap_or(0),
            Ok(None) => 0,
            Err(e) => return unavailable(tag, e),
        };
        let gone = crate::imap::view::missing_uids(&view.uids, &set_ranges(set, top), top);
        if let Some(data) = vanished_data(&gone, true) {
            server.enqueue_data(data);
        }
    }
    let chosen: Vec<(u32, MessageRow)> = select_messages(view, &messages, set, uid)
        .into_iter()
        .filter(|(_, m)| changed_since.is_none_or(|c| m.modseq as u64 > c))
        .map(|(seq, m)| (seq, m.clone()))
        .collect();
    let sets_seen = !read_only
        && wants
            .iter()
            .any(|w| matches!(w, Want::Body { peek: false, .. }));
    let fetched: std::collections::HashSet<u32> =
        chosen.iter().map(|(_, m)| m.uid as u32).collect();
    let recent: std::collections::HashSet<u32> = fetched
        .iter()
        .copied()
        .filter(|u| view.recent.contains(&crate::domain::Uid(*u)))
        .collect();
    for (seq, m) in chosen {
        let flag_news = deferred.iter().any(|(_, u, _, _)| u.0 == m.uid as u32);
        let (flags, modseq) = flags_after(&store, mailbox, &m, sets_seen).await;
        let flags = with_recent(flags, recent.contains(&(m.uid as u32)));
        // A keyword another session gave it since this session last
        // looked is announced (FLAGS, PERMANENTFLAGS) before it is shown
        // (RFC 3501 §7.2.6; imaptest's stress run found this one).
        if let SessionState::Selected { view, .. } = &mut s.state {
            announce_keywords(server, view, &flags);
        }
        let needs_body = wants.iter().any(|w| {
            matches!(
                w,
                Want::Body { .. } | Want::Envelope | Want::Structure { .. }
            )
        });
        let raw = if needs_body {
            match store.blob_read(&m.blob_hash).await {
                Ok(r) => r,
                Err(e) => {
                    return no(
                        tag,
                        None,
                        format!("temporary problem reading a message: {e}"),
                    );
                }
            }
        } else {
            Vec::new()
        };
        let mut items = Vec::new();
        // RFC 3501 §6.4.8: UID FETCH always includes UID; so does every
        // FETCH once QRESYNC is enabled (RFC 7162 §3.2.4).
        if (uid || qresync) && !wants.iter().any(|w| matches!(w, Want::Uid)) {
            items.push(MessageDataItem::Uid(nz(m.uid as u32)));
        }
        if message_items(&wants, &m, &raw, (&flags, modseq), max_response, &mut items).is_none() {
            return no(
                tag,
                Some(Code::Other(code_other("LIMIT"))),
                "these sections add up to too much for one response: fetch fewer at once",
            );
        }
        // Changed flags (ours or another session's) ride along in the
        // same response rather than in a second, body-less one.
        if (sets_seen || flag_news) && !wants.iter().any(|w| matches!(w, Want::Flags)) {
            items.push(MessageDataItem::Flags(flags_fetch(&flags)));
        }
        if (changed_since.is_some() || flag_news || qresync)
            && !wants.iter().any(|w| matches!(w, Want::ModSeq))
        {
            items.push(MessageDataItem::ModSeq(
                NonZeroU64::new(modseq).unwrap_or(NonZeroU64::MIN),
            ));
        }
        drop(raw);
        if let Ok(items) = Vec1::try_from(items) {
            let sent = server.enqueue_data(Data::Fetch {
                seq: nz(seq),
                items,
            });
            if let Err(e) = send_through(server, out, sent).await {
                tracing::debug!(error = %e, "FETCH: the client went away");
                s.logout = true;
                return no(tag, None, "connection lost");
            }
        }
    }
    // Other messages' flag changes, after this command's responses.
    emit_flags(
        server,
        deferred
            .into_iter()
            .filter(|(_, u, _, _)| !fetched.contains(&u.0))
            .collect(),
    );
    // Our own \Seen changes are already reported.
    if let SessionState::Selected { view, .. } = &mut s.state
        && let Ok(Some(mb)) = store.mailbox_by_id(mailbox).await
        && sets_seen
    {
        view.seen_modseq = view.seen_modseq.max(mb.highestmodseq as u64);
    }
    ok(tag, None, "FETCH completed")
}

/// A message's flags and modseq as this FETCH reports them: with
/// `\\Seen` set first when the fetch reads a body without PEEK
/// (RFC 3501 §6.4.5).
async fn flags_after(
    store: &crate::store::Store,
    mailbox: crate::domain::MailboxId,
    m: &MessageRow,
    sets_seen: bool,
) -> (Vec<String>, u64) {
    let flags = crate::store::mailboxes::parse_flags(&m.flags);
    let modseq = m.modseq as u64;
    if sets_seen
        && !flags.iter().any(|f| f == "\\Seen")
        && let Ok((changed, _)) = store
            .set_flags(
                mailbox,
                &[Uid(m.uid as u32)],
                FlagOp::Add,
                &["\\Seen".into()],
                None,
            )
            .await
        && let Some(c) = changed.first()
    {
        return (c.flags.clone(), c.modseq.0);
    }
    (flags, modseq)
}

/// One message's data items, in the order asked, after `items` (UID
/// first in a UID FETCH). `None` when its body sections add up to more
/// than `max_response` bytes.
fn message_items(
    wants: &[Want],
    m: &MessageRow,
    raw: &[u8],
    (flags, modseq): (&[String], u64),
    max_response: usize,
    items: &mut Vec<MessageDataItem<'static>>,
) -> Option<()> {
    let mut body_bytes = 0usize;
    for w in wants {
        items.push(match w {
            Want::Uid => MessageDataItem::Uid(nz(m.uid as u32)),
            Want::Flags => MessageDataItem::Flags(flags_fetch(flags)),
            Want::Size => MessageDataItem::Rfc822Size(m.size as u32),
            Want::InternalDate => MessageDataItem::InternalDate(internal_date(m.internal_date)),
            Want::ModSeq => {
                MessageDataItem::ModSeq(NonZeroU64::new(modseq).unwrap_or(NonZeroU64::MIN))
            }
            Want::Body {
                section,
                partial,
                legacy,
                ..
            } => {
                let bytes = section_bytes(raw, section);
                let range = partial.map(|(o, l)| (o, l.get()));
                let data = fetch::partial(&bytes, range).to_vec();
                body_bytes = body_bytes.saturating_add(data.len());
                if body_bytes > max_response {
                    return None;
                }
                match legacy {
                    Some(0) => MessageDataItem::Rfc822(literal(data)),
                    Some(1) => MessageDataItem::Rfc822Header(literal(data)),
                    Some(2) => MessageDataItem::Rfc822Text(literal(data)),
                    _ => MessageDataItem::BodyExt {
                        section: section.clone(),
                        origin: partial.map(|(o, _)| o),
                        data: literal(data),
                    },
                }
            }
            Want::Envelope => MessageDataItem::Envelope(crate::imap::structure::envelope_of(raw)),
            Want::Structure { extended: true } => {
                MessageDataItem::BodyStructure(crate::imap::structure::body_structure_of(raw))
            }
            Want::Structure { extended: false } => {
                MessageDataItem::Body(crate::imap::structure::body_structure_of(raw))
            }
            Want::Unsupported(_) => unreachable!("refused above"),
        });
    }
    Some(())
}
