//! Mailboxes: SELECT/EXAMINE, CREATE/DELETE/RENAME, SUBSCRIBE, LIST/LSUB,
//! STATUS (RFC 3501 §6.3).

use crate::imap::session::*;
use crate::imap::view::{View, in_ranges, merge_ranges, missing_uids};
use crate::store::MailboxRow;
use imap_next::imap_types::command::SelectParameter;
use imap_next::imap_types::core::{Atom, Tag, Vec1};
use imap_next::imap_types::core::{IString, Quoted};
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::FlagNameAttribute;
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{Code, Data, Status};
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};
use imap_next::server::Server;
use std::num::NonZeroU64;

/// The account's mailbox `name`, or the tagged NO that says why not
/// (RFC 5530 NONEXISTENT, or the store's trouble).
async fn existing(
    s: &Session,
    tag: &Tag<'static>,
    name: &str,
    missing: impl Into<String>,
) -> Result<MailboxRow, Status<'static>> {
    match s.store().mailbox_get(s.account().unwrap(), name).await {
        Ok(Some(mb)) => Ok(mb),
        Ok(None) => Err(no(
            tag,
            Some(Code::Other(code_other("NONEXISTENT"))),
            missing,
        )),
        Err(e) => Err(unavailable(tag, e)),
    }
}

/// RFC 3501 §6.3.6-7 SUBSCRIBE and UNSUBSCRIBE (`on`: subscribe).
pub(crate) async fn subscribe(
    s: &mut Session,
    tag: &Tag<'static>,
    mailbox: &Mailbox<'_>,
    on: bool,
) -> Status<'static> {
    let mb = match existing(s, tag, &mailbox_name(mailbox), "no such mailbox").await {
        Ok(mb) => mb,
        Err(why) => return why,
    };
    match s.store().mailbox_subscribe(mb.id(), on).await {
        Ok(()) => ok(tag, None, "completed"),
        Err(e) => unavailable(tag, e),
    }
}

/// RFC 3501 §6.3.1-2 SELECT and EXAMINE (`read_only`), with RFC 7162
/// §3.1.2 HIGHESTMODSEQ and §3.2.5 QRESYNC.
pub(crate) async fn select(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    name: &str,
    read_only: bool,
    parameters: &[SelectParameter],
) -> Status<'static> {
    let resync = parameters.iter().find_map(|p| match p {
        SelectParameter::QResync {
            uid_validity,
            mod_sequence_value,
            known_uids,
            ..
        } => Some((uid_validity.get(), mod_sequence_value.get(), known_uids)),
        SelectParameter::CondStore => None,
    });
    // RFC 7162 §3.2.5: QRESYNC only after ENABLE QRESYNC.
    if resync.is_some() && !s.qresync {
        return bad(tag, "QRESYNC needs ENABLE QRESYNC first");
    }
    unselect(s);
    let mb = match existing(s, tag, name, format!("no mailbox {name}")).await {
        Ok(mb) => mb,
        Err(why) => return why,
    };
    let (view, messages) = match View::open(s.store(), mb.id(), read_only).await {
        Ok(x) => x,
        Err(e) => return unavailable(tag, e),
    };
    enqueue_flag_lists(server, &view);
    server.enqueue_data(Data::Exists(view.uids.len() as u32));
    // RFC 3501 §7.3.2: the messages recent to this session (SELECT
    // claims them; EXAMINE only counts those nobody claimed).
    server.enqueue_data(Data::Recent(view.recent.len() as u32));
    if let Some(first_unseen) = messages.iter().position(|m| {
        !crate::store::mailboxes::parse_flags(&m.flags)
            .iter()
            .any(|f| f == "\\Seen")
    }) {
        server.enqueue_status(
            Status::ok(
                None,
                Some(Code::Unseen(nz(first_unseen as u32 + 1))),
                text("first unseen"),
            )
            .expect("status"),
        );
    }
    server.enqueue_status(
        Status::ok(
            None,
            Some(Code::UidValidity(nz(view.uidvalidity))),
            text("UIDs valid"),
        )
        .expect("status"),
    );
    server.enqueue_status(
        Status::ok(
            None,
            Some(Code::UidNext(nz(u32::try_from(mb.uidnext).unwrap_or(1)))),
            text("predicted next UID"),
        )
        .expect("status"),
    );
    if let Some(m) = NonZeroU64::new(u64::try_from(mb.highestmodseq).unwrap_or(1)) {
        server.enqueue_status(
            Status::ok(None, Some(Code::HighestModSeq(m)), text("highest")).expect("status"),
        );
    }
    // RFC 7162 §3.2.5.1: with the UIDVALIDITY the client knew, what it
    // missed: the UIDs gone (VANISHED (EARLIER)), then every message
    // changed since its mod-sequence (UID, FLAGS, MODSEQ), limited to the
    // UIDs it said it knows. Another UIDVALIDITY: a plain SELECT, the
    // client starts over.
    if let Some((validity, since, known)) = resync
        && validity == view.uidvalidity
    {
        let top = u32::try_from(mb.uidnext - 1).unwrap_or(0);
        let known = merge_ranges(
            &match known {
                Some(set) => set_ranges(set, top),
                None => vec![(1, top)],
            },
            top,
        );
        if let Some(data) = vanished_data(&missing_uids(&view.uids, &known, top), true) {
            server.enqueue_data(data);
        }
        for m in &messages {
            let uid = m.uid as u32;
            if m.modseq as u64 > since
                && in_ranges(&known, uid)
                && let Some(seq) = view.seq_of(crate::domain::Uid(uid))
            {
                let flags = with_recent(
                    crate::store::mailboxes::parse_flags(&m.flags),
                    view.recent.contains(&crate::domain::Uid(uid)),
                );
                server.enqueue_data(Data::Fetch {
                    seq: nz(seq),
                    items: Vec1::try_from(vec![
                        MessageDataItem::Uid(nz(uid)),
                        MessageDataItem::Flags(flags_fetch(&flags)),
                        MessageDataItem::ModSeq(
                            NonZeroU64::new(m.modseq as u64).unwrap_or(NonZeroU64::MIN),
                        ),
                    ])
                    .expect("three items"),
                });
            }
        }
    }
    let (account, address) = match std::mem::replace(&mut s.state, SessionState::NotAuthenticated) {
        SessionState::Authenticated { account, address }
        | SessionState::Selected {
            account, address, ..
        } => (account, address),
        SessionState::NotAuthenticated => unreachable!("checked by the caller"),
    };
    s.state = SessionState::Selected {
        account,
        address,
        view,
    };
    let code = if read_only {
        Code::ReadOnly
    } else {
        Code::ReadWrite
    };
    ok(
        tag,
        Some(code),
        if read_only {
            "EXAMINE completed"
        } else {
            "SELECT completed"
        },
    )
}

/// A name CREATE or RENAME may give: not empty, not too long.
pub(crate) fn name_fits(tag: &Tag<'static>, name: &str) -> Result<(), Status<'static>> {
    if name.is_empty() {
        return Err(no(
            tag,
            Some(Code::Other(code_other("CANNOT"))),
            "a mailbox needs a name",
        ));
    }
    if name.len() > crate::imap::MAX_MAILBOX_NAME {
        return Err(no(
            tag,
            Some(Code::Other(code_other("LIMIT"))),
            format!(
                "mailbox names are at most {} bytes",
                crate::imap::MAX_MAILBOX_NAME
            ),
        ));
    }
    Ok(())
}

/// CREATE: the name fits, and the account has room for one more mailbox.
pub(crate) async fn new_name_allowed(
    s: &Session,
    tag: &Tag<'static>,
    name: &str,
) -> Result<(), Status<'static>> {
    name_fits(tag, name)?;
    match s.store().mailbox_list(s.account().unwrap()).await {
        Ok(boxes) if boxes.len() >= crate::imap::MAX_MAILBOXES => Err(no(
            tag,
            Some(Code::Other(code_other("LIMIT"))),
            format!(
                "an account has at most {} mailboxes: delete one first",
                crate::imap::MAX_MAILBOXES
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(unavailable(tag, e)),
    }
}

/// RFC 3501 §6.3.8-9 LIST and LSUB
pub(crate) async fn list(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    reference: &Mailbox<'_>,
    wildcard: &ListMailbox<'_>,
    lsub: bool,
) -> Status<'static> {
    let pattern: Vec<u8> = match wildcard {
        ListMailbox::Token(t) => t.as_ref().to_vec(),
        ListMailbox::String(st) => st.as_ref().to_vec(),
    };
    let delimiter = Some(imap_next::imap_types::core::QuotedChar::try_from('/').unwrap());
    if pattern.is_empty() {
        // RFC 3501 §6.3.8: an empty name asks for the hierarchy delimiter.
        server.enqueue_data(Data::List {
            items: vec![FlagNameAttribute::Noselect],
            delimiter,
            mailbox: Mailbox::try_from("").unwrap_or(Mailbox::Inbox),
        });
        return ok(tag, None, "LIST completed");
    }
    let mut full = mailbox_name(reference)
        .trim_end_matches('/')
        .as_bytes()
        .to_vec();
    if !full.is_empty() {
        full.push(b'/');
    }
    full.extend_from_slice(&pattern);
    let matcher = match crate::imap::pattern::Pattern::new(&full) {
        Ok(m) => m,
        Err(e) => return no(tag, Some(Code::Other(code_other("LIMIT"))), e.to_string()),
    };
    let boxes = match s.store().mailbox_list(s.account().unwrap()).await {
        Ok(b) => b,
        Err(e) => return unavailable(tag, e),
    };
    // RFC 3501 §6.3.9: in LSUB, a subscribed mailbox the pattern does not
    // match (its "%" stops at a level above) is stood for by its nearest
    // ancestor the pattern does match, as \Noselect, unless that
    // ancestor is subscribed and listed itself.
    let subscribed: std::collections::HashSet<&str> = boxes
        .iter()
        .filter(|mb| mb.subscribed != 0)
        .map(|mb| mb.name.as_str())
        .collect();
    let mut stood_for = std::collections::HashSet::new();
    for mb in &boxes {
        if lsub && mb.subscribed == 0 {
            continue;
        }
        if matcher.matches(mb.name.as_bytes()) {
            // Deviation: RFC 3348 child information: every mailbox says
            // \HasNoChildren, also one with children (the hub does not
            // announce CHILDREN, and Delta Chat keeps a flat list).
            let items = vec![FlagNameAttribute::from(
                Atom::try_from("HasNoChildren").unwrap(),
            )];
            server.enqueue_data(list_data(lsub, items, &mb.name));
        } else if lsub {
            let parent = ancestors(&mb.name).find(|a| matcher.matches(a.as_bytes()));
            if let Some(p) = parent
                && !subscribed.contains(p)
                && stood_for.insert(p)
            {
                server.enqueue_data(list_data(lsub, vec![FlagNameAttribute::Noselect], p));
            }
        }
    }
    ok(
        tag,
        None,
        if lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        },
    )
}

/// One LIST or LSUB line for mailbox `name`.
fn list_data(lsub: bool, items: Vec<FlagNameAttribute<'static>>, name: &str) -> Data<'static> {
    let delimiter = Some(imap_next::imap_types::core::QuotedChar::try_from('/').unwrap());
    let mailbox = mailbox_of(name);
    if lsub {
        Data::Lsub {
            items,
            delimiter,
            mailbox,
        }
    } else {
        Data::List {
            items,
            delimiter,
            mailbox,
        }
    }
}

/// "a/b/c" → "a/b", "a": the mailboxes above, nearest first.
fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    let mut rest = name;
    std::iter::from_fn(move || {
        let i = rest.rfind('/')?;
        rest = &rest[..i];
        Some(rest)
    })
}

/// RFC 3501 §6.3.10 STATUS, with RFC 7162 HIGHESTMODSEQ.
pub(crate) async fn status(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    mailbox: &Mailbox<'static>,
    names: &[StatusDataItemName],
) -> Status<'static> {
    let mb = match existing(s, tag, &mailbox_name(mailbox), "no such mailbox").await {
        Ok(mb) => mb,
        Err(why) => return why,
    };
    let (messages, unseen, _bytes, recent) = match s.store().mailbox_counts(mb.id()).await {
        Ok(c) => c,
        Err(e) => return unavailable(tag, e),
    };
    let mut items = Vec::new();
    for n in names {
        items.push(match n {
            StatusDataItemName::Messages => StatusDataItem::Messages(messages as u32),
            // Those no session has seen yet (STATUS claims nothing).
            StatusDataItemName::Recent => StatusDataItem::Recent(recent as u32),
            StatusDataItemName::UidNext => StatusDataItem::UidNext(nz(mb.uidnext as u32)),
            StatusDataItemName::UidValidity => {
                StatusDataItem::UidValidity(nz(mb.uidvalidity as u32))
            }
            StatusDataItemName::Unseen => StatusDataItem::Unseen(unseen as u32),
            StatusDataItemName::HighestModSeq => {
                StatusDataItem::HighestModSeq(mb.highestmodseq as u64)
            }
            StatusDataItemName::Deleted | StatusDataItemName::DeletedStorage => continue,
        });
    }
    server.enqueue_data(Data::Status {
        mailbox: mailbox.clone(),
        items: items.into(),
    });
    ok(tag, None, "STATUS completed")
}

/// RFC 3501 §6.3.3 CREATE: the new mailbox is not subscribed (the
/// client subscribes it if it wants, §6.3.6).
pub(crate) async fn create(
    s: &mut Session,
    tag: &Tag<'static>,
    mailbox: &Mailbox<'static>,
) -> Status<'static> {
    let name = mailbox_name(mailbox);
    let name = name.trim_end_matches('/').to_string();
    if let Err(why) = new_name_allowed(s, tag, &name).await {
        why
    } else {
        match s.store().mailbox_create(s.account().unwrap(), &name).await {
            Ok(Some(_)) => ok(tag, None, "CREATE completed"),
            Ok(None) => no(
                tag,
                Some(Code::Other(code_other("ALREADYEXISTS"))),
                "mailbox exists",
            ),
            Err(e) => unavailable(tag, e),
        }
    }
}

/// RFC 3501 §6.3.4 DELETE
pub(crate) async fn delete(
    s: &mut Session,
    tag: &Tag<'static>,
    mailbox: &Mailbox<'static>,
) -> Status<'static> {
    let name = mailbox_name(mailbox);
    if name == "INBOX" {
        return no(tag, None, "INBOX cannot be deleted");
    }
    let mb = match existing(s, tag, &name, "no such mailbox").await {
        Ok(mb) => mb,
        Err(why) => return why,
    };
    if let SessionState::Selected { view, .. } = &s.state
        && view.mailbox == mb.id()
    {
        unselect(s);
    }
    match s.store().mailbox_delete(mb.id()).await {
        Ok(_) => ok(tag, None, "DELETE completed"),
        Err(e) => unavailable(tag, e),
    }
}

/// RFC 3501 §6.3.5 RENAME
pub(crate) async fn rename(
    s: &mut Session,
    tag: &Tag<'static>,
    from: &Mailbox<'static>,
    to: &Mailbox<'static>,
) -> Status<'static> {
    let (from, to) = (mailbox_name(from), mailbox_name(to));
    if from == "INBOX" || to == "INBOX" {
        return no(tag, None, "renaming INBOX is not supported");
    }
    if let Err(why) = name_fits(tag, &to) {
        return why;
    }
    let mb = match existing(s, tag, &from, "no such mailbox").await {
        Ok(mb) => mb,
        Err(why) => return why,
    };
    match s.store().mailbox_rename(mb.id(), &to).await {
        Ok(true) => ok(tag, None, "RENAME completed"),
        Ok(false) => no(
            tag,
            Some(Code::Other(code_other("ALREADYEXISTS"))),
            "target exists",
        ),
        Err(e) => unavailable(tag, e),
    }
}

/// RFC 2342 NAMESPACE: one personal namespace, `/` between levels.
pub(crate) fn namespace(server: &mut Server, tag: &Tag<'static>) -> Status<'static> {
    server.enqueue_data(Data::Namespace {
        personal: vec![imap_next::imap_types::extensions::namespace::Namespace {
            prefix: IString::from(Quoted::try_from("").unwrap()),
            delimiter: Some(imap_next::imap_types::core::QuotedChar::try_from('/').unwrap()),
            extensions: vec![],
        }],
        other: vec![],
        shared: vec![],
    });
    ok(tag, None, "NAMESPACE completed")
}
