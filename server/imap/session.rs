//! One IMAP session's state machine (RFC 3501 §3): who it is logged in
//! as, what it has selected, the dispatch of each command to its handler
//! in `cmd/`, the reporting of other sessions' changes, and the small
//! builders of replies that every handler uses. The I/O is in
//! `connection`.

use crate::domain::{AccountId, Address, Credential, Uid};
use crate::imap::cmd::{
    auth::*, fetch::*, general::*, mailbox::*, message::*, metadata::*, search::*,
};
use crate::imap::connection::*;
use crate::imap::server::ImapContext;
use crate::imap::view::View;
use crate::store::Store;
use bounded_static::ToBoundedStatic;
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{AString, Atom, IString, Literal, NString, Tag, Text, Vec1};
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::flag::{Flag, FlagFetch, FlagPerm};
use imap_next::imap_types::mailbox::Mailbox;
use imap_next::imap_types::response::{Capability, Code, Data, Status};
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_next::server::Server;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;

/// Bad commands before the connection is closed.
pub const MAX_ERRORS: u32 = 20;

pub(crate) fn text(s: impl Into<String>) -> Text<'static> {
    let s: String = s.into();
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Text::try_from(if s.is_empty() { "ok".to_string() } else { s })
        .unwrap_or_else(|_| Text::try_from("ok").unwrap())
}

pub(crate) fn ok(
    tag: &Tag<'static>,
    code: Option<Code<'static>>,
    t: impl Into<String>,
) -> Status<'static> {
    Status::ok(Some(tag.clone()), code, text(t)).expect("valid status")
}

pub(crate) fn no(
    tag: &Tag<'static>,
    code: Option<Code<'static>>,
    t: impl Into<String>,
) -> Status<'static> {
    Status::no(Some(tag.clone()), code, text(t)).expect("valid status")
}

/// The one answer to a failure of the store or the disk: a tagged NO
/// that says the problem is temporary (RFC 3501 §7.1.2), so the client
/// tries again later and its data stays as it was.
pub(crate) fn unavailable(tag: &Tag<'static>, e: impl std::fmt::Display) -> Status<'static> {
    no(tag, None, format!("temporary problem: {e}"))
}

pub(crate) fn bad(tag: &Tag<'static>, t: impl Into<String>) -> Status<'static> {
    Status::bad(Some(tag.clone()), None, text(t)).expect("valid status")
}

pub(crate) fn capability(name: &str) -> Capability<'static> {
    Capability::from(Atom::try_from(name.to_string()).expect("capability atom"))
}

pub(crate) fn caps(list: &[&str]) -> Vec1<Capability<'static>> {
    Vec1::try_from(list.iter().map(|c| capability(c)).collect::<Vec<_>>()).expect("non-empty")
}

pub(crate) fn astr(a: &AString<'_>) -> String {
    String::from_utf8_lossy(a.as_ref()).into_owned()
}

pub(crate) fn mailbox_name(m: &Mailbox<'_>) -> String {
    match m {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(o) => {
            let s = astr(o.inner());
            if s.eq_ignore_ascii_case("inbox") {
                "INBOX".into()
            } else {
                s
            }
        }
    }
}

pub(crate) fn mailbox_of(name: &str) -> Mailbox<'static> {
    Mailbox::try_from(name.to_string()).unwrap_or(Mailbox::Inbox)
}

pub(crate) fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

pub(crate) fn literal(bytes: Vec<u8>) -> NString<'static> {
    NString(Some(IString::Literal(Literal::unvalidated(bytes))))
}

/// Canonical spelling of system flags; keywords as given.
pub(crate) fn flag_text(f: &Flag<'_>) -> String {
    f.to_string()
}

pub(crate) fn flag_of(s: &str) -> Option<Flag<'static>> {
    Flag::try_from(s).ok().map(|f| f.to_static())
}

/// `\Recent` among a message's flags when it is recent to this session
/// (the store never holds it: it belongs to one session, RFC 3501 §2.3.2).
pub(crate) const RECENT: &str = "\\Recent";

pub(crate) fn flags_fetch(flags: &[String]) -> Vec<FlagFetch<'static>> {
    flags
        .iter()
        .filter_map(|f| {
            if f == RECENT {
                Some(FlagFetch::Recent)
            } else {
                flag_of(f).map(FlagFetch::Flag)
            }
        })
        .collect()
}

/// A message's stored flags, with `\Recent` when `recent`.
pub(crate) fn with_recent(mut flags: Vec<String>, recent: bool) -> Vec<String> {
    if recent && !flags.iter().any(|f| f == RECENT) {
        flags.push(RECENT.to_string());
    }
    flags
}

/// Does a sequence set (of sequence numbers or UIDs) contain `n`? `largest`
/// is what `*` means. Checks membership without expanding ranges, so
/// `1:4294967295` costs nothing.
pub(crate) fn set_contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
    let v = |s: &SeqOrUid| match s {
        SeqOrUid::Value(x) => x.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(s) => v(s) == n,
        Sequence::Range(a, b) => {
            let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
            (lo..=hi).contains(&n)
        }
    })
}

/// A sequence set as inclusive ranges, `*` as `largest`.
pub(crate) fn set_ranges(set: &SequenceSet, largest: u32) -> Vec<(u32, u32)> {
    let v = |s: &SeqOrUid| match s {
        SeqOrUid::Value(x) => x.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0
        .as_ref()
        .iter()
        .map(|seq| match seq {
            Sequence::Single(s) => (v(s), v(s)),
            Sequence::Range(a, b) => (v(a).min(v(b)), v(a).max(v(b))),
        })
        .collect()
}

/// RFC 7162 §3.2.10 VANISHED for UID ranges (none when there are none).
pub(crate) fn vanished_data(ranges: &[(u32, u32)], earlier: bool) -> Option<Data<'static>> {
    let seqs: Vec<Sequence> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                Sequence::Single(SeqOrUid::Value(nz(a)))
            } else {
                Sequence::Range(SeqOrUid::Value(nz(a)), SeqOrUid::Value(nz(b)))
            }
        })
        .collect();
    let known_uids = SequenceSet(Vec1::try_from(seqs).ok()?);
    Some(Data::Vanished {
        earlier,
        known_uids,
    })
}

pub(crate) enum SessionState {
    NotAuthenticated,
    Authenticated {
        account: AccountId,
        address: Address,
    },
    Selected {
        account: AccountId,
        address: Address,
        view: View,
    },
}

pub(crate) struct Session {
    pub(crate) ctx: Arc<ImapContext>,
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) state: SessionState,
    /// Whom the session logged in as, checked again when accounts change.
    pub(crate) credential: Option<Credential>,
    pub(crate) credential_changes: tokio::sync::watch::Receiver<u64>,
    pub(crate) errors: u32,
    pub(crate) starttls: bool,
    pub(crate) logout: bool,
    pub(crate) idle_tag: Option<Tag<'static>>,
    pub(crate) pending_auth: Option<Tag<'static>>,
    /// RFC 7162 §3.2.3: the client enabled QRESYNC, so expunges are
    /// reported as VANISHED (by UID) instead of EXPUNGE.
    pub(crate) qresync: bool,
}

impl Session {
    pub(crate) fn store(&self) -> &Store {
        &self.ctx.rules.store
    }

    pub(crate) fn account(&self) -> Option<AccountId> {
        match &self.state {
            SessionState::Authenticated { account, .. }
            | SessionState::Selected { account, .. } => Some(*account),
            SessionState::NotAuthenticated => None,
        }
    }

    /// After an account was removed or a password changed somewhere: does
    /// this session's login still hold? A session whose login does not is
    /// over (the caller says BYE); so is one whose check fails.
    pub(crate) async fn login_revoked(&mut self) -> bool {
        self.credential_changes.borrow_and_update();
        let Some(credential) = self.credential else {
            return false;
        };
        match self.ctx.rules.still_valid(credential).await {
            Ok(valid) => !valid,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the session's account: ending it");
                true
            }
        }
    }

    pub(crate) fn login_allowed(&self) -> bool {
        self.tls || self.ctx.allow_plaintext_auth
    }

    pub(crate) fn pre_auth_caps(&self) -> Vec<&'static str> {
        let mut c = crate::imap::CAPABILITIES_BEFORE_LOGIN.to_vec();
        if !self.tls {
            c.push("STARTTLS");
        }
        if self.login_allowed() {
            c.push("AUTH=PLAIN");
        } else {
            c.push("LOGINDISABLED");
        }
        c
    }
}

pub(crate) fn code_other(s: &str) -> imap_next::imap_types::response::CodeOther<'static> {
    imap_next::imap_types::response::CodeOther::unvalidated(s.as_bytes().to_vec())
}

/// Tell the client what changed in the selected mailbox since it last looked.
/// Flag changes a refresh found: (seq, uid, flags, modseq).
pub(crate) type FlagUpdates = Vec<(u32, Uid, Vec<String>, u64)>;

pub(crate) async fn report_changes(s: &mut Session, server: &mut Server, may_expunge: bool) {
    let flags = report_structure(s, server, may_expunge).await;
    emit_flags(server, flags);
}

/// Report EXPUNGE and EXISTS now; return the flag changes for the caller to
/// send when it suits (FETCH sends them after its own responses, so a
/// client never gets a body-less FETCH for a message it is fetching).
pub(crate) async fn report_structure(
    s: &mut Session,
    server: &mut Server,
    may_expunge: bool,
) -> FlagUpdates {
    let store = s.store().clone();
    let qresync = s.qresync;
    let SessionState::Selected { view, .. } = &mut s.state else {
        return Vec::new();
    };
    let Ok((r, _)) = view.refresh(&store, may_expunge).await else {
        return Vec::new();
    };
    if qresync {
        // RFC 7162 §3.2.10: one VANISHED by UID instead of EXPUNGEs.
        let uids: Vec<(u32, u32)> = r.expunged_uids.iter().map(|u| (u.0, u.0)).collect();
        let ranges = crate::imap::view::merge_ranges(&uids, u32::MAX);
        if let Some(data) = vanished_data(&ranges, false) {
            server.enqueue_data(data);
        }
    } else {
        for seq in r.expunged {
            server.enqueue_data(Data::Expunge(nz(seq)));
        }
    }
    if let Some(n) = r.exists {
        server.enqueue_data(Data::Exists(n));
    }
    // New messages this session is the first to see are recent to it
    // (RFC 3501 §7.3.2: RECENT follows EXISTS).
    if matches!(view.settle_recent(&store).await, Ok(true)) {
        server.enqueue_data(Data::Recent(view.recent.len() as u32));
    }
    announce_keywords(server, view, r.flags.iter().flat_map(|(_, _, f, _)| f));
    r.flags
        .into_iter()
        .map(|(seq, uid, flags, modseq)| {
            let recent = view.recent.contains(&uid);
            (seq, uid, with_recent(flags, recent), modseq)
        })
        .collect()
}

/// RFC 3501 §7.2.6: FLAGS lists the system flags and the keywords the
/// mailbox has; PERMANENTFLAGS the same and `\*` (none when read-only).
pub(crate) fn enqueue_flag_lists(server: &mut Server, view: &View) {
    let flags: Vec<Flag<'static>> = SYSTEM_FLAGS
        .iter()
        .copied()
        .chain(view.keywords.iter().map(String::as_str))
        .filter_map(flag_of)
        .collect();
    server.enqueue_data(Data::Flags(flags.clone()));
    let mut perm: Vec<FlagPerm<'static>> = flags.into_iter().map(FlagPerm::Flag).collect();
    perm.push(FlagPerm::Asterisk);
    server.enqueue_status(
        Status::ok(
            None,
            Some(Code::PermanentFlags(if view.read_only {
                vec![]
            } else {
                perm
            })),
            text("flags permitted"),
        )
        .expect("status"),
    );
}

/// A keyword new to the selected mailbox is announced (FLAGS and
/// PERMANENTFLAGS, §7.2.6) before any FETCH that shows it.
pub(crate) fn announce_keywords<'a>(
    server: &mut Server,
    view: &mut View,
    flags: impl IntoIterator<Item = &'a String>,
) {
    let mut new = false;
    for f in flags {
        if !f.starts_with('\\') && !view.keywords.contains(f) {
            view.keywords.insert(f.clone());
            new = true;
        }
    }
    if new {
        enqueue_flag_lists(server, view);
    }
}

pub(crate) fn emit_flags(server: &mut Server, updates: FlagUpdates) {
    for (seq, uid, flags, modseq) in updates {
        let mut items = vec![
            MessageDataItem::Uid(nz(uid.0)),
            MessageDataItem::Flags(flags_fetch(&flags)),
        ];
        if let Some(m) = NonZeroU64::new(modseq) {
            items.push(MessageDataItem::ModSeq(m));
        }
        server.enqueue_data(Data::Fetch {
            seq: nz(seq),
            items: Vec1::try_from(items).expect("non-empty"),
        });
    }
}

/// The state a command needs (RFC 3501 §3).
enum Required {
    Any,
    Login,
    Selected,
}

fn required_state(body: &CommandBody<'_>) -> Required {
    use CommandBody as C;
    match body {
        C::Capability | C::Noop | C::Logout | C::Id { .. } | C::Enable { .. } => Required::Any,
        C::StartTLS | C::Login { .. } | C::Authenticate { .. } => Required::Any,
        C::Check
        | C::Close
        | C::Unselect
        | C::Expunge
        | C::ExpungeUid { .. }
        | C::Search { .. }
        | C::Fetch { .. }
        | C::Store { .. }
        | C::Copy { .. }
        | C::Move { .. }
        | C::Sort { .. }
        | C::Thread { .. } => Required::Selected,
        _ => Required::Login,
    }
}

/// Run one command and queue its tagged answer.
pub(crate) async fn command_received(
    s: &mut Session,
    server: &mut Server,
    out: Out<'_>,
    command: Command<'static>,
) {
    let tag = command.tag.clone();
    use CommandBody as C;
    let refusal = match required_state(&command.body) {
        Required::Login if s.account().is_none() => Some("log in first"),
        Required::Selected if s.account().is_none() => Some("log in first"),
        Required::Selected if !matches!(s.state, SessionState::Selected { .. }) => {
            Some("select a mailbox first")
        }
        _ => None,
    };
    if let Some(why) = refusal {
        s.errors += 1;
        server.enqueue_status(bad(&tag, why));
        return;
    }
    let status = match command.body {
        // RFC 3501 §6.1.1 CAPABILITY
        C::Capability => capability_cmd(s, server, &tag),
        // RFC 3501 §6.1.2 NOOP: also the moment to report changes.
        C::Noop => noop(s, server, &tag, "NOOP completed").await,
        // RFC 3501 §6.1.3 LOGOUT
        C::Logout => logout(s, server, &tag),
        // RFC 2971 ID
        C::Id { .. } => id(server, &tag),
        // RFC 5161 ENABLE (QRESYNC; CONDSTORE works always)
        C::Enable { capabilities } => enable(s, server, &tag, capabilities.as_ref()),
        // RFC 3501 §6.2.1 STARTTLS
        C::StartTLS => starttls(s, &tag),
        // RFC 3501 §6.2.3 LOGIN
        C::Login { username, password } => login_cmd(s, &tag, &username, password).await,
        C::Authenticate { .. } => bad(&tag, "unexpected AUTHENTICATE"),
        // RFC 3501 §6.3.1-2 SELECT / EXAMINE
        C::Select {
            mailbox,
            parameters,
        } => select(s, server, &tag, &mailbox_name(&mailbox), false, &parameters).await,
        C::Examine {
            mailbox,
            parameters,
        } => select(s, server, &tag, &mailbox_name(&mailbox), true, &parameters).await,
        // RFC 3691 UNSELECT
        C::Unselect => {
            unselect(s);
            ok(&tag, None, "UNSELECT completed")
        }
        // RFC 3501 §6.3.3 CREATE
        C::Create { mailbox } => create(s, &tag, &mailbox).await,
        // RFC 3501 §6.3.4 DELETE
        C::Delete { mailbox } => delete(s, &tag, &mailbox).await,
        // RFC 3501 §6.3.5 RENAME
        C::Rename { from, to } => rename(s, &tag, &from, &to).await,
        // RFC 3501 §6.3.6-7 SUBSCRIBE / UNSUBSCRIBE
        C::Subscribe { mailbox } => subscribe(s, &tag, &mailbox, true).await,
        C::Unsubscribe { mailbox } => subscribe(s, &tag, &mailbox, false).await,
        // RFC 3501 §6.3.8-9 LIST / LSUB
        C::List {
            reference,
            mailbox_wildcard,
        } => list(s, server, &tag, &reference, &mailbox_wildcard, false).await,
        C::Lsub {
            reference,
            mailbox_wildcard,
        } => list(s, server, &tag, &reference, &mailbox_wildcard, true).await,
        // RFC 2342 NAMESPACE
        C::Namespace => namespace(server, &tag),
        // RFC 3501 §6.3.10 STATUS
        C::Status {
            mailbox,
            item_names,
        } => status(s, server, &tag, &mailbox, &item_names).await,
        // RFC 3501 §6.3.11 APPEND
        C::Append {
            mailbox,
            flags,
            date,
            message,
        } => append_cmd(s, server, &tag, &mailbox, &flags, date, &message).await,
        // RFC 3501 §6.4.1 CHECK: as NOOP.
        C::Check => noop(s, server, &tag, "CHECK completed").await,
        // RFC 3501 §6.4.2 CLOSE: expunge silently, then leave.
        C::Close => close(s, &tag).await,
        // RFC 3501 §6.4.3 EXPUNGE, RFC 4315 §2.1 UID EXPUNGE
        C::Expunge => expunge(s, server, &tag, None).await,
        C::ExpungeUid { sequence_set } => expunge(s, server, &tag, Some(sequence_set)).await,
        // RFC 3501 §6.4.5 FETCH (and UID FETCH)
        C::Fetch {
            sequence_set,
            macro_or_item_names,
            uid,
            modifiers,
        } => {
            let request = FetchRequest::new(&sequence_set, macro_or_item_names, uid, &modifiers);
            fetch_cmd(s, server, out, &tag, request).await
        }
        // RFC 3501 §6.4.6 STORE (and UID STORE), RFC 7162 UNCHANGEDSINCE
        C::Store {
            sequence_set,
            kind,
            response,
            flags,
            uid,
            modifiers,
        } => {
            let request = StoreRequest::new(&sequence_set, kind, response, &flags, uid, &modifiers);
            store_cmd(s, server, &tag, request).await
        }
        // RFC 3501 §6.4.7 COPY, RFC 6851 MOVE, RFC 4315 COPYUID
        C::Copy {
            sequence_set,
            mailbox,
            uid,
        } => copy_move(s, server, &tag, &sequence_set, &mailbox, uid, false).await,
        C::Move {
            sequence_set,
            mailbox,
            uid,
        } => copy_move(s, server, &tag, &sequence_set, &mailbox, uid, true).await,
        // RFC 3501 §6.4.4 SEARCH (and UID SEARCH)
        C::Search { criteria, uid, .. } => {
            search_cmd(s, server, &tag, criteria.into_inner(), uid).await
        }
        // RFC 5256 §3 SORT
        C::Sort {
            sort_criteria,
            charset,
            search_criteria,
            uid,
        } => {
            sort_cmd(
                s,
                server,
                &tag,
                sort_criteria.as_ref(),
                charset.as_ref(),
                search_criteria.into_inner(),
                uid,
            )
            .await
        }
        C::Thread { .. } => no(
            &tag,
            Some(Code::Other(code_other("CANNOT"))),
            "THREAD is not supported",
        ),
        // RFC 9208 GETQUOTAROOT / GETQUOTA
        C::GetQuotaRoot { mailbox } => get_quota_root(s, server, &tag, mailbox).await,
        C::GetQuota { .. } => get_quota(s, server, &tag).await,
        C::SetQuota { .. } => no(&tag, None, "quotas are set by the hub's admin"),
        // RFC 5464 GETMETADATA / SETMETADATA
        C::GetMetadata {
            mailbox, entries, ..
        } => get_metadata(s, server, &tag, mailbox, entries.as_ref()).await,
        C::SetMetadata { entry_values, .. } => set_metadata(s, &tag, entry_values.as_ref()).await,
        C::Compress { .. } => no(&tag, None, "COMPRESS is not offered"),
        C::Idle => bad(&tag, "unexpected IDLE"),
    };
    if matches!(status, Status::Tagged(ref t) if t.body.kind == imap_next::imap_types::response::StatusKind::Bad)
    {
        s.errors += 1;
    }
    server.enqueue_status(status);
}

pub(crate) fn unselect(s: &mut Session) {
    if !matches!(s.state, SessionState::Selected { .. }) {
        return;
    }
    if let SessionState::Selected {
        account, address, ..
    } = std::mem::replace(&mut s.state, SessionState::NotAuthenticated)
    {
        s.state = SessionState::Authenticated { account, address };
    }
}

pub(crate) const SYSTEM_FLAGS: [&str; 5] =
    ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];
