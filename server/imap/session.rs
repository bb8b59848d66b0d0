//! One IMAP connection: the I/O loop around imap-next's `Server`, the
//! protocol state, and the command handlers (each starts with its RFC).

use super::CAPABILITIES_AUTHENTICATED;
use super::fetch;
use super::server::ImapContext;
use super::view::View;
use crate::domain::{AccountId, Address, Credential, Uid};
use crate::mail::transaction::{MailError, Origin};
use crate::store::{FlagOp, MessageRow, Store};
use bounded_static::ToBoundedStatic;
use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{
    AString, Atom, IString, Literal, NString, Quoted, Tag, Text, Vec1,
};
use imap_next::imap_types::extensions::metadata::{EntryValue, MetadataResponse};
use imap_next::imap_types::extensions::quota::{QuotaGet, Resource};
use imap_next::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_next::imap_types::flag::{
    Flag, FlagFetch, FlagNameAttribute, FlagPerm, StoreResponse, StoreType,
};
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::response::{
    Capability, Code, CommandContinuationRequest, Data, Greeting, Status,
};
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};
use imap_next::server::{Error as ServerError, Event, Options, ResponseHandle, Server};
use imap_next::{Interrupt, Io, State};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// RFC 3501 §5.4: the autologout timer must be at least 30 minutes.
pub const AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);
/// Keepalive while idling: Delta Chat gives up after 5 minutes of silence.
pub const IDLE_KEEPALIVE: Duration = Duration::from_secs(120);
/// Longest non-literal part of a command.
pub const MAX_COMMAND_EXTRA: u32 = 64 << 10;
/// Before login a command carries at most a user name and a password:
/// literals up to 4 KiB, commands up to 8 KiB. Anyone on the Wi-Fi can
/// connect, and with the message size here 20 connections announcing
/// 30 MB literals took 600 MB.
pub const PRE_AUTH_MAX_LITERAL: u32 = 4 << 10;
pub const PRE_AUTH_MAX_COMMAND: u32 = 8 << 10;
/// Bad commands before the connection is closed.
pub const MAX_ERRORS: u32 = 20;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 << 10;
/// Distinct data items one FETCH may ask for; real clients ask for fewer
/// than twenty.
pub const MAX_FETCH_ITEMS: usize = 100;

fn text(s: impl Into<String>) -> Text<'static> {
    let s: String = s.into();
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Text::try_from(if s.is_empty() { "ok".to_string() } else { s })
        .unwrap_or_else(|_| Text::try_from("ok").unwrap())
}

fn ok(tag: &Tag<'static>, code: Option<Code<'static>>, t: impl Into<String>) -> Status<'static> {
    Status::ok(Some(tag.clone()), code, text(t)).expect("valid status")
}
fn no(tag: &Tag<'static>, code: Option<Code<'static>>, t: impl Into<String>) -> Status<'static> {
    Status::no(Some(tag.clone()), code, text(t)).expect("valid status")
}
fn bad(tag: &Tag<'static>, t: impl Into<String>) -> Status<'static> {
    Status::bad(Some(tag.clone()), None, text(t)).expect("valid status")
}

fn capability(name: &str) -> Capability<'static> {
    Capability::from(Atom::try_from(name.to_string()).expect("capability atom"))
}

fn caps(list: &[&str]) -> Vec1<Capability<'static>> {
    Vec1::try_from(list.iter().map(|c| capability(c)).collect::<Vec<_>>()).expect("non-empty")
}

fn astr(a: &AString<'_>) -> String {
    String::from_utf8_lossy(a.as_ref()).into_owned()
}

fn mailbox_name(m: &Mailbox<'_>) -> String {
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

fn mailbox_of(name: &str) -> Mailbox<'static> {
    Mailbox::try_from(name.to_string()).unwrap_or(Mailbox::Inbox)
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn literal(bytes: Vec<u8>) -> NString<'static> {
    NString(Some(IString::Literal(Literal::unvalidated(bytes))))
}

/// Canonical spelling of system flags; keywords as given.
fn flag_text(f: &Flag<'_>) -> String {
    f.to_string()
}

fn flag_of(s: &str) -> Option<Flag<'static>> {
    Flag::try_from(s).ok().map(|f| f.to_static())
}

fn flags_fetch(flags: &[String]) -> Vec<FlagFetch<'static>> {
    flags
        .iter()
        .filter_map(|f| flag_of(f))
        .map(FlagFetch::Flag)
        .collect()
}

/// Does a sequence set (of sequence numbers or UIDs) contain `n`? `largest`
/// is what `*` means. Checks membership without expanding ranges, so
/// `1:4294967295` costs nothing.
fn set_contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
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

/// Where responses go when a command sends them as it goes (FETCH).
type Out<'a> = &'a mut (dyn AsyncWrite + Unpin + Send);

enum SessionState {
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

struct Session {
    ctx: Arc<ImapContext>,
    peer: SocketAddr,
    tls: bool,
    state: SessionState,
    /// Whom the session logged in as, checked again when accounts change.
    credential: Option<Credential>,
    credential_changes: tokio::sync::watch::Receiver<u64>,
    errors: u32,
    starttls: bool,
    logout: bool,
    idle_tag: Option<Tag<'static>>,
    pending_auth: Option<Tag<'static>>,
}

impl Session {
    fn store(&self) -> &Store {
        &self.ctx.rules.store
    }

    fn account(&self) -> Option<AccountId> {
        match &self.state {
            SessionState::Authenticated { account, .. }
            | SessionState::Selected { account, .. } => Some(*account),
            SessionState::NotAuthenticated => None,
        }
    }

    /// After an account was removed or a password changed somewhere: does
    /// this session's login still hold? A session whose login does not is
    /// over (the caller says BYE); so is one whose check fails.
    async fn login_revoked(&mut self) -> bool {
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

    fn login_allowed(&self) -> bool {
        self.tls || self.ctx.allow_plaintext_auth
    }

    fn pre_auth_caps(&self) -> Vec<&'static str> {
        let mut c = vec!["IMAP4rev1", "ID", "ENABLE", "LITERAL+", "SASL-IR"];
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

/// Serve one connection. Returns the stream when the client asked for
/// STARTTLS (the caller upgrades it and calls again with `tls = true`).
pub async fn run<S>(
    mut stream: S,
    peer: SocketAddr,
    ctx: Arc<ImapContext>,
    tls: bool,
    stop: CancellationToken,
) -> std::io::Result<Option<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let credential_changes = ctx.rules.store.credential_changes();
    let mut s = Session {
        ctx,
        peer,
        tls,
        state: SessionState::NotAuthenticated,
        credential: None,
        credential_changes,
        errors: 0,
        starttls: false,
        logout: false,
        idle_tag: None,
        pending_auth: None,
    };
    let greeting_code = Code::Capability(caps(&s.pre_auth_caps()));
    let greeting = Greeting::ok(Some(greeting_code), "cairn ready").expect("greeting");
    let mut server = Server::new(
        limits(PRE_AUTH_MAX_LITERAL, PRE_AUTH_MAX_COMMAND),
        greeting.to_static(),
    );
    let mut logged_in_limits = false;
    let mut changes = s.store().changes();
    let mut buf = vec![0u8; READ_CHUNK];
    // Read but not yet given to `server`. Before login it gets one line
    // at a time, so when a login succeeds it holds nothing past that
    // command and can be replaced by one with the logged-in limits.
    let mut pending: Vec<u8> = Vec::new();
    loop {
        match server.next() {
            // After BYE nothing more runs: what is queued goes out, and the
            // connection closes when the input runs dry. (Answering the
            // BYE's own "sent" event with another BYE looped forever.)
            Ok(_) | Err(Interrupt::Error(_)) if s.logout => {}
            Ok(event) => {
                handle_event(&mut s, &mut server, &mut stream, event).await;
                if s.errors >= MAX_ERRORS {
                    server.enqueue_status(Status::bye(None, text("too many errors")).expect("bye"));
                    s.logout = true;
                }
            }
            Err(Interrupt::Io(Io::Output(bytes))) => {
                stream.write_all(&bytes).await?;
                stream.flush().await?;
            }
            Err(Interrupt::Io(Io::NeedMoreInput)) => {
                if s.logout {
                    let _ = stream.shutdown().await;
                    return Ok(None);
                }
                if s.starttls {
                    return Ok(Some(stream));
                }
                if s.credential.is_some() && !logged_in_limits {
                    // Everything it owed is sent and it holds no input.
                    server = logged_in_server(s.ctx.max_message_size);
                    logged_in_limits = true;
                }
                if !pending.is_empty() {
                    let take = if logged_in_limits {
                        pending.len()
                    } else {
                        pending
                            .iter()
                            .position(|&b| b == b'\n')
                            .map_or(pending.len(), |i| i + 1)
                    };
                    server.enqueue_input(&pending[..take]);
                    pending.drain(..take);
                    continue;
                }
                let idling = s.idle_tag.is_some();
                let authenticated = s.credential.is_some();
                tokio::select! {
                    r = tokio::time::timeout(AUTOLOGOUT, stream.read(&mut buf)) => match r {
                        Ok(Ok(0)) | Err(_) => return Ok(None),
                        Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
                        Ok(Err(e)) => return Err(e),
                    },
                    _ = s.credential_changes.changed(), if authenticated => {
                        if s.login_revoked().await {
                            end_revoked(&mut s, &mut server);
                        }
                    }
                    c = changes.recv(), if idling => {
                        let relevant = match (&c, &s.state) {
                            (Ok(crate::store::Change::External), SessionState::Selected { .. }) => true,
                            (Ok(change), SessionState::Selected { view, .. }) => change.mailbox() == Some(view.mailbox),
                            (Err(_), _) => true,
                            _ => false,
                        };
                        if relevant {
                            // The common case, a new message: no store query.
                            let fast = match (&c, &mut s.state) {
                                (Ok(crate::store::Change::Appended { uid, modseq, .. }), SessionState::Selected { view, .. }) => {
                                    view.append_next(*uid, modseq.0)
                                }
                                _ => None,
                            };
                            match fast {
                                Some(exists) => {
                                    server.enqueue_data(Data::Exists(exists));
                                }
                                None => report_changes(&mut s, &mut server, true).await,
                            }
                        }
                    }
                    _ = tokio::time::sleep(IDLE_KEEPALIVE), if idling => {
                        server.enqueue_status(Status::ok(None, None, text("still here")).expect("status"));
                    }
                    _ = stop.cancelled() => {
                        server.enqueue_status(Status::bye(None, text("hub shutting down")).expect("bye"));
                        s.logout = true;
                    }
                }
            }
            Err(Interrupt::Error(e)) => {
                s.errors += 1;
                match e {
                    ServerError::LiteralTooLong { .. } => {
                        // imap-next already answered the tagged BAD.
                    }
                    ServerError::MalformedMessage { discarded_bytes }
                    | ServerError::ExpectedCrlfGotLf { discarded_bytes }
                    | ServerError::CommandTooLong { discarded_bytes } => {
                        let raw = discarded_bytes.declassify();
                        let tag = raw
                            .split(|&b| b == b' ')
                            .next()
                            .and_then(|t| std::str::from_utf8(t).ok())
                            .and_then(|t| Tag::try_from(t.to_string()).ok());
                        let status =
                            Status::bad(tag, None, text("malformed command")).expect("bad");
                        server.enqueue_status(status);
                    }
                }
            }
        }
    }
}

/// imap-next's limits: the longest literal, and the longest command.
fn limits(max_literal: u32, max_command: u32) -> Options {
    let mut options = Options::default();
    options.max_literal_size = max_literal;
    options.max_command_size = max_command;
    options
}

/// The protocol machine for a session that has logged in: literals up to
/// the message size (APPEND). It takes over from the one that greeted the
/// client, so its own greeting is sent nowhere.
fn logged_in_server(max_message_size: u64) -> Server {
    let literal = u32::try_from(max_message_size).unwrap_or(u32::MAX - MAX_COMMAND_EXTRA);
    let options = limits(literal, literal.saturating_add(MAX_COMMAND_EXTRA));
    let greeting = Greeting::ok(None, "unused").expect("greeting");
    let mut server = Server::new(options, greeting);
    loop {
        match server.next() {
            Ok(_) | Err(Interrupt::Io(Io::Output(_))) => {}
            Err(_) => return server,
        }
    }
}

/// The account behind this session was removed or its password changed:
/// say so and end the session.
fn end_revoked(s: &mut Session, server: &mut Server) {
    tracing::info!("account removed or password changed: ending the session");
    server.enqueue_status(
        Status::bye(
            None,
            text("your account was removed or its password changed: log in again"),
        )
        .expect("bye"),
    );
    s.state = SessionState::NotAuthenticated;
    s.credential = None;
    s.idle_tag = None;
    s.logout = true;
}

/// Send what is queued up to and including `last`, and nothing more: the
/// queue is sent in order before any further input is read, so no
/// command of the client's is taken in meanwhile.
async fn send_through(
    server: &mut Server,
    out: Out<'_>,
    last: ResponseHandle,
) -> std::io::Result<()> {
    loop {
        match server.next() {
            Err(Interrupt::Io(Io::Output(bytes))) => out.write_all(&bytes).await?,
            Ok(Event::ResponseSent { handle, .. }) if handle == last => return out.flush().await,
            Ok(Event::ResponseSent { .. } | Event::GreetingSent { .. }) => {}
            other => {
                debug_assert!(false, "input read while sending: {other:?}");
                return Ok(());
            }
        }
    }
}

async fn handle_event(s: &mut Session, server: &mut Server, out: Out<'_>, event: Event) {
    if s.credential_changes.has_changed().unwrap_or(false) && s.login_revoked().await {
        end_revoked(s, server);
        return;
    }
    match event {
        Event::GreetingSent { .. } | Event::ResponseSent { .. } => {}
        Event::CommandReceived { command } => command_received(s, server, out, command).await,
        Event::CommandAuthenticateReceived {
            command_authenticate,
        } => {
            let tag = command_authenticate.tag;
            if s.account().is_some() {
                let _ = server.authenticate_finish(bad(&tag, "already logged in"));
            } else if !s.login_allowed() {
                let _ = server.authenticate_finish(no(
                    &tag,
                    Some(Code::Other(code_other("PRIVACYREQUIRED"))),
                    "use TLS first (STARTTLS or the implicit-TLS port)",
                ));
            } else if command_authenticate.mechanism != AuthMechanism::Plain {
                let _ = server.authenticate_finish(no(
                    &tag,
                    None,
                    "only AUTHENTICATE PLAIN is supported",
                ));
            } else if let Some(ir) = command_authenticate.initial_response {
                let status = auth_plain(s, &tag, ir.declassify()).await;
                let _ = server.authenticate_finish(status);
            } else {
                s.idle_tag = None;
                let cont = CommandContinuationRequest::basic(None, text("")).expect("continuation");
                let _ = server.authenticate_continue(cont);
                s.pending_auth = Some(tag);
            }
        }
        Event::AuthenticateDataReceived { authenticate_data } => {
            let tag = s
                .pending_auth
                .take()
                .unwrap_or_else(|| Tag::try_from("*".to_string()).unwrap());
            let status = match authenticate_data {
                AuthenticateData::Continue(data) => auth_plain(s, &tag, data.declassify()).await,
                AuthenticateData::Cancel => bad(&tag, "authentication cancelled"),
            };
            let _ = server.authenticate_finish(status);
        }
        Event::IdleCommandReceived { tag } => {
            // RFC 2177 IDLE
            if matches!(s.state, SessionState::Selected { .. })
                || matches!(s.state, SessionState::Authenticated { .. })
            {
                let cont =
                    CommandContinuationRequest::basic(None, text("idling")).expect("continuation");
                if server.idle_accept(cont).is_ok() {
                    report_changes(s, server, true).await;
                    s.idle_tag = Some(tag);
                }
            } else {
                let _ = server.idle_reject(no(&tag, None, "log in first"));
            }
        }
        Event::IdleDoneReceived => {
            if let Some(tag) = s.idle_tag.take() {
                server.enqueue_status(ok(&tag, None, "IDLE terminated"));
            }
        }
    }
}

fn code_other(s: &str) -> imap_next::imap_types::response::CodeOther<'static> {
    imap_next::imap_types::response::CodeOther::unvalidated(s.as_bytes().to_vec())
}

/// RFC 4616 PLAIN: authzid NUL authcid NUL passwd (already base64-decoded).
async fn auth_plain(s: &mut Session, tag: &Tag<'static>, raw: &[u8]) -> Status<'static> {
    let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    if parts.len() != 3 {
        return bad(tag, "PLAIN wants authzid NUL user NUL password");
    }
    let authz = String::from_utf8_lossy(parts[0]).to_string();
    let user = String::from_utf8_lossy(parts[1]).to_string();
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(&user) {
        return no(
            tag,
            Some(Code::Other(code_other("AUTHORIZATIONFAILED"))),
            "acting for another user is not allowed",
        );
    }
    let pass = String::from_utf8_lossy(parts[2]).to_string();
    login(s, tag, &user, &pass).await
}

/// Check credentials; on success the tagged OK carries the capabilities
/// (Delta Chat reads them only there).
async fn login(s: &mut Session, tag: &Tag<'static>, user: &str, pass: &str) -> Status<'static> {
    match s.ctx.rules.login(s.peer.ip(), user, pass).await {
        Ok(Some(Origin::User {
            credential,
            address,
        })) => {
            s.state = SessionState::Authenticated {
                account: credential.account,
                address,
            };
            s.credential = Some(credential);
            ok(
                tag,
                Some(Code::Capability(caps(CAPABILITIES_AUTHENTICATED))),
                "logged in",
            )
        }
        Ok(_) => {
            s.errors += 1;
            no(
                tag,
                Some(Code::Other(code_other("AUTHENTICATIONFAILED"))),
                "wrong user name or password",
            )
        }
        Err(MailError::LoginsBlocked { wait, .. }) => no(
            tag,
            Some(Code::Other(code_other("UNAVAILABLE"))),
            format!(
                "too many failed logins from your address: try again in {} s",
                wait.as_secs().max(1)
            ),
        ),
        Err(e) => no(
            tag,
            Some(Code::Other(code_other("UNAVAILABLE"))),
            format!("temporary problem: {e}"),
        ),
    }
}

/// Tell the client what changed in the selected mailbox since it last looked.
/// Flag changes a refresh found: (seq, uid, flags, modseq).
type FlagUpdates = Vec<(u32, Uid, Vec<String>, u64)>;

async fn report_changes(s: &mut Session, server: &mut Server, may_expunge: bool) {
    let flags = report_structure(s, server, may_expunge).await;
    emit_flags(server, flags);
}

/// Report EXPUNGE and EXISTS now; return the flag changes for the caller to
/// send when it suits (FETCH sends them after its own responses, so a
/// client never gets a body-less FETCH for a message it is fetching).
async fn report_structure(s: &mut Session, server: &mut Server, may_expunge: bool) -> FlagUpdates {
    let store = s.store().clone();
    let SessionState::Selected { view, .. } = &mut s.state else {
        return Vec::new();
    };
    let Ok((r, _)) = view.refresh(&store, may_expunge).await else {
        return Vec::new();
    };
    for seq in r.expunged {
        server.enqueue_data(Data::Expunge(nz(seq)));
    }
    if let Some(n) = r.exists {
        server.enqueue_data(Data::Exists(n));
    }
    r.flags
}

fn emit_flags(server: &mut Server, updates: FlagUpdates) {
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

async fn command_received(
    s: &mut Session,
    server: &mut Server,
    out: Out<'_>,
    command: Command<'static>,
) {
    let tag = command.tag.clone();
    let authenticated = s.account().is_some();
    let selected = matches!(s.state, SessionState::Selected { .. });
    use CommandBody as C;
    let needs = match &command.body {
        C::Capability | C::Noop | C::Logout | C::Id { .. } | C::Enable { .. } => 0,
        C::StartTLS | C::Login { .. } | C::Authenticate { .. } => 0,
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
        | C::Thread { .. } => 2,
        _ => 1,
    };
    if needs >= 1 && !authenticated {
        s.errors += 1;
        server.enqueue_status(bad(&tag, "log in first"));
        return;
    }
    if needs == 2 && !selected {
        s.errors += 1;
        server.enqueue_status(bad(&tag, "select a mailbox first"));
        return;
    }
    let status = match command.body {
        // RFC 3501 §6.1.1 CAPABILITY
        C::Capability => {
            let list = if authenticated {
                CAPABILITIES_AUTHENTICATED.to_vec()
            } else {
                s.pre_auth_caps()
            };
            server.enqueue_data(Data::Capability(caps(&list)));
            ok(&tag, None, "CAPABILITY completed")
        }
        // RFC 3501 §6.1.2 NOOP: also the moment to report changes.
        C::Noop => {
            report_changes(s, server, true).await;
            ok(&tag, None, "NOOP completed")
        }
        // RFC 3501 §6.1.3 LOGOUT
        C::Logout => {
            server.enqueue_status(Status::bye(None, text("logging out")).expect("bye"));
            s.logout = true;
            ok(&tag, None, "LOGOUT completed")
        }
        // RFC 2971 ID
        C::Id { .. } => {
            let params = vec![
                (
                    IString::from(Quoted::try_from("name").unwrap()),
                    NString::try_from("cairn").unwrap(),
                ),
                (
                    IString::from(Quoted::try_from("version").unwrap()),
                    NString::try_from(env!("CARGO_PKG_VERSION")).unwrap(),
                ),
            ];
            server.enqueue_data(Data::Id {
                parameters: Some(params),
            });
            ok(&tag, None, "ID completed")
        }
        // RFC 5161 ENABLE: nothing we must switch on; CONDSTORE works always.
        C::Enable { .. } => {
            server.enqueue_data(Data::Enabled {
                capabilities: vec![],
            });
            ok(&tag, None, "ENABLE completed")
        }
        // RFC 3501 §6.2.1 STARTTLS
        C::StartTLS => {
            if s.tls {
                bad(&tag, "TLS is already active")
            } else if authenticated {
                bad(&tag, "STARTTLS only before login")
            } else {
                s.starttls = true;
                ok(&tag, None, "begin TLS negotiation now")
            }
        }
        // RFC 3501 §6.2.3 LOGIN
        C::Login { username, password } => {
            if authenticated {
                bad(&tag, "already logged in")
            } else if !s.login_allowed() {
                no(
                    &tag,
                    Some(Code::Other(code_other("PRIVACYREQUIRED"))),
                    "use TLS first (STARTTLS or the implicit-TLS port)",
                )
            } else {
                let user = astr(&username);
                let pass = astr(password.declassify());
                login(s, &tag, &user, &pass).await
            }
        }
        C::Authenticate { .. } => bad(&tag, "unexpected AUTHENTICATE"),
        // RFC 3501 §6.3.1-2 SELECT / EXAMINE
        C::Select { mailbox, .. } => select(s, server, &tag, &mailbox_name(&mailbox), false).await,
        C::Examine { mailbox, .. } => select(s, server, &tag, &mailbox_name(&mailbox), true).await,
        // RFC 3691 UNSELECT
        C::Unselect => {
            unselect(s);
            ok(&tag, None, "UNSELECT completed")
        }
        // RFC 3501 §6.3.3 CREATE
        C::Create { mailbox } => {
            let name = mailbox_name(&mailbox);
            let name = name.trim_end_matches('/').to_string();
            if let Err(why) = new_name_allowed(s, &tag, &name).await {
                why
            } else {
                match s.store().mailbox_create(s.account().unwrap(), &name).await {
                    Ok(Some(_)) => ok(&tag, None, "CREATE completed"),
                    Ok(None) => no(
                        &tag,
                        Some(Code::Other(code_other("ALREADYEXISTS"))),
                        "mailbox exists",
                    ),
                    Err(e) => no(&tag, None, format!("temporary problem: {e}")),
                }
            }
        }
        // RFC 3501 §6.3.4 DELETE
        C::Delete { mailbox } => {
            let name = mailbox_name(&mailbox);
            if name == "INBOX" {
                no(&tag, None, "INBOX cannot be deleted")
            } else {
                match s.store().mailbox_get(s.account().unwrap(), &name).await {
                    Ok(Some(mb)) => {
                        if let SessionState::Selected { view, .. } = &s.state
                            && view.mailbox == mb.id()
                        {
                            unselect(s);
                        }
                        match s.store().mailbox_delete(mb.id()).await {
                            Ok(_) => ok(&tag, None, "DELETE completed"),
                            Err(e) => no(&tag, None, format!("temporary problem: {e}")),
                        }
                    }
                    Ok(None) => no(
                        &tag,
                        Some(Code::Other(code_other("NONEXISTENT"))),
                        "no such mailbox",
                    ),
                    Err(e) => no(&tag, None, format!("temporary problem: {e}")),
                }
            }
        }
        // RFC 3501 §6.3.5 RENAME
        C::Rename { from, to } => {
            let (from, to) = (mailbox_name(&from), mailbox_name(&to));
            if from == "INBOX" || to == "INBOX" {
                no(&tag, None, "renaming INBOX is not supported")
            } else if let Err(why) = name_fits(&tag, &to) {
                why
            } else {
                match s.store().mailbox_get(s.account().unwrap(), &from).await {
                    Ok(Some(mb)) => match s.store().mailbox_rename(mb.id(), &to).await {
                        Ok(true) => ok(&tag, None, "RENAME completed"),
                        Ok(false) => no(
                            &tag,
                            Some(Code::Other(code_other("ALREADYEXISTS"))),
                            "target exists",
                        ),
                        Err(e) => no(&tag, None, format!("temporary problem: {e}")),
                    },
                    Ok(None) => no(
                        &tag,
                        Some(Code::Other(code_other("NONEXISTENT"))),
                        "no such mailbox",
                    ),
                    Err(e) => no(&tag, None, format!("temporary problem: {e}")),
                }
            }
        }
        // RFC 3501 §6.3.6-7 SUBSCRIBE / UNSUBSCRIBE
        C::Subscribe { mailbox } => subscribe(s, &tag, &mailbox, true).await,
        C::Unsubscribe { mailbox } => subscribe(s, &tag, &mailbox, false).await,
        // RFC 3501 §6.3.8-9 LIST / LSUB
        C::List {
            reference,
            mailbox_wildcard,
        } => {
            list(
                s,
                server,
                &tag,
                &mailbox_name(&reference),
                &mailbox_wildcard,
                false,
            )
            .await
        }
        C::Lsub {
            reference,
            mailbox_wildcard,
        } => {
            list(
                s,
                server,
                &tag,
                &mailbox_name(&reference),
                &mailbox_wildcard,
                true,
            )
            .await
        }
        // RFC 2342 NAMESPACE
        C::Namespace => {
            server.enqueue_data(Data::Namespace {
                personal: vec![imap_next::imap_types::extensions::namespace::Namespace {
                    prefix: IString::from(Quoted::try_from("").unwrap()),
                    delimiter: Some(
                        imap_next::imap_types::core::QuotedChar::try_from('/').unwrap(),
                    ),
                    extensions: vec![],
                }],
                other: vec![],
                shared: vec![],
            });
            ok(&tag, None, "NAMESPACE completed")
        }
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
        } => {
            let name = mailbox_name(&mailbox);
            let bytes = match &message {
                imap_next::imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => {
                    l.data().to_vec()
                }
                imap_next::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => {
                    l.data.to_vec()
                }
            };
            let flags: Vec<String> = flags.iter().map(flag_text).collect();
            let date = date
                .map(|d| d.as_ref().timestamp())
                .unwrap_or_else(crate::store::now);
            append(s, server, &tag, &name, bytes, flags, date).await
        }
        // RFC 3501 §6.4.1 CHECK
        C::Check => ok(&tag, None, "CHECK completed"),
        // RFC 3501 §6.4.2 CLOSE: expunge silently, then leave.
        C::Close => {
            if let SessionState::Selected { view, .. } = &s.state
                && !view.read_only
            {
                let _ = s.store().expunge(view.mailbox, None).await;
            }
            unselect(s);
            ok(&tag, None, "CLOSE completed")
        }
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
            let changed_since = modifiers.iter().find_map(|m| match m {
                imap_next::imap_types::command::FetchModifier::ChangedSince(n) => Some(n.get()),
                _ => None,
            });
            fetch_cmd(
                s,
                server,
                out,
                &tag,
                &sequence_set,
                macro_or_item_names,
                uid,
                changed_since,
            )
            .await
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
            let unchanged = modifiers
                .iter()
                .map(|m| match m {
                    imap_next::imap_types::command::StoreModifier::UnchangedSince(n) => *n,
                })
                .next();
            store_cmd(
                s,
                server,
                &tag,
                &sequence_set,
                kind,
                response,
                &flags,
                uid,
                unchanged,
            )
            .await
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
        C::Sort { .. } | C::Thread { .. } => no(
            &tag,
            Some(Code::Other(code_other("CANNOT"))),
            "SORT and THREAD are not supported",
        ),
        // RFC 9208 GETQUOTAROOT / GETQUOTA
        C::GetQuotaRoot { mailbox } => {
            server.enqueue_data(Data::QuotaRoot {
                mailbox,
                roots: vec![AString::try_from("").unwrap()],
            });
            quota(s, server).await;
            ok(&tag, None, "GETQUOTAROOT completed")
        }
        C::GetQuota { .. } => {
            quota(s, server).await;
            ok(&tag, None, "GETQUOTA completed")
        }
        C::SetQuota { .. } => no(&tag, None, "quotas are set by the hub's admin"),
        // RFC 5464 GETMETADATA / SETMETADATA
        C::GetMetadata {
            mailbox, entries, ..
        } => {
            let names: Vec<String> = entries.as_ref().iter().map(|e| astr(e.inner())).collect();
            get_metadata(s, server, &tag, mailbox, &names).await
        }
        C::SetMetadata { entry_values, .. } => {
            let mut st = ok(&tag, None, "SETMETADATA completed");
            for ev in entry_values.as_ref() {
                let name = astr(ev.entry.inner());
                if !name.starts_with("/private/") {
                    st = no(
                        &tag,
                        Some(Code::Metadata(
                            imap_next::imap_types::extensions::metadata::MetadataCode::NoPrivate,
                        )),
                        "only /private/ entries can be set",
                    );
                    break;
                }
                let value = match &ev.value {
                    imap_next::imap_types::core::NString8::NString(n) => {
                        n.0.as_ref()
                            .map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
                    }
                    imap_next::imap_types::core::NString8::Literal8(l) => {
                        Some(String::from_utf8_lossy(&l.data).into_owned())
                    }
                };
                if value.as_ref().is_some_and(|v| v.len() > 64 << 10) {
                    st = no(
                        &tag,
                        Some(Code::Metadata(
                            imap_next::imap_types::extensions::metadata::MetadataCode::MaxSize(
                                64 << 10,
                            ),
                        )),
                        "value too large",
                    );
                    break;
                }
                if let Err(e) = s
                    .store()
                    .metadata_set(s.account().unwrap(), &name, value.as_deref())
                    .await
                {
                    st = no(&tag, None, format!("temporary problem: {e}"));
                    break;
                }
            }
            st
        }
        C::Compress { .. } => no(&tag, None, "COMPRESS is not offered"),
        C::Idle => bad(&tag, "unexpected IDLE"),
    };
    if matches!(status, Status::Tagged(ref t) if t.body.kind == imap_next::imap_types::response::StatusKind::Bad)
    {
        s.errors += 1;
    }
    server.enqueue_status(status);
}

fn unselect(s: &mut Session) {
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

async fn subscribe(
    s: &mut Session,
    tag: &Tag<'static>,
    mailbox: &Mailbox<'_>,
    on: bool,
) -> Status<'static> {
    match s
        .store()
        .mailbox_get(s.account().unwrap(), &mailbox_name(mailbox))
        .await
    {
        Ok(Some(mb)) => match s.store().mailbox_subscribe(mb.id(), on).await {
            Ok(()) => ok(tag, None, "completed"),
            Err(e) => no(tag, None, format!("temporary problem: {e}")),
        },
        Ok(None) => no(
            tag,
            Some(Code::Other(code_other("NONEXISTENT"))),
            "no such mailbox",
        ),
        Err(e) => no(tag, None, format!("temporary problem: {e}")),
    }
}

const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

async fn select(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    name: &str,
    read_only: bool,
) -> Status<'static> {
    unselect(s);
    let account = s.account().unwrap();
    let mb = match s.store().mailbox_get(account, name).await {
        Ok(Some(mb)) => mb,
        Ok(None) => {
            return no(
                tag,
                Some(Code::Other(code_other("NONEXISTENT"))),
                format!("no mailbox {name}"),
            );
        }
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
    };
    let (view, messages) = match View::open(s.store(), mb.id(), read_only).await {
        Ok(x) => x,
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
    };
    let flags: Vec<Flag<'static>> = SYSTEM_FLAGS.iter().filter_map(|f| flag_of(f)).collect();
    server.enqueue_data(Data::Flags(flags.clone()));
    let mut perm: Vec<FlagPerm<'static>> = flags.into_iter().map(FlagPerm::Flag).collect();
    perm.push(FlagPerm::Asterisk);
    server.enqueue_status(
        Status::ok(
            None,
            Some(Code::PermanentFlags(if read_only { vec![] } else { perm })),
            text("flags permitted"),
        )
        .expect("status"),
    );
    server.enqueue_data(Data::Exists(view.uids.len() as u32));
    server.enqueue_data(Data::Recent(0));
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
fn name_fits(tag: &Tag<'static>, name: &str) -> Result<(), Status<'static>> {
    if name.is_empty() {
        return Err(no(
            tag,
            Some(Code::Other(code_other("CANNOT"))),
            "a mailbox needs a name",
        ));
    }
    if name.len() > super::MAX_MAILBOX_NAME {
        return Err(no(
            tag,
            Some(Code::Other(code_other("LIMIT"))),
            format!(
                "mailbox names are at most {} bytes",
                super::MAX_MAILBOX_NAME
            ),
        ));
    }
    Ok(())
}

/// CREATE: the name fits, and the account has room for one more mailbox.
async fn new_name_allowed(
    s: &Session,
    tag: &Tag<'static>,
    name: &str,
) -> Result<(), Status<'static>> {
    name_fits(tag, name)?;
    match s.store().mailbox_list(s.account().unwrap()).await {
        Ok(boxes) if boxes.len() >= super::MAX_MAILBOXES => Err(no(
            tag,
            Some(Code::Other(code_other("LIMIT"))),
            format!(
                "an account has at most {} mailboxes: delete one first",
                super::MAX_MAILBOXES
            ),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(no(tag, None, format!("temporary problem: {e}"))),
    }
}

async fn list(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    reference: &str,
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
    let mut full = reference.trim_end_matches('/').as_bytes().to_vec();
    if !full.is_empty() {
        full.push(b'/');
    }
    full.extend_from_slice(&pattern);
    let matcher = match super::pattern::Pattern::new(&full) {
        Ok(m) => m,
        Err(e) => return no(tag, Some(Code::Other(code_other("LIMIT"))), e.to_string()),
    };
    let boxes = match s.store().mailbox_list(s.account().unwrap()).await {
        Ok(b) => b,
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
    };
    for mb in boxes {
        if lsub && mb.subscribed == 0 {
            continue;
        }
        if !matcher.matches(mb.name.as_bytes()) {
            continue;
        }
        let items = vec![FlagNameAttribute::from(
            Atom::try_from("HasNoChildren").unwrap(),
        )];
        let mailbox = mailbox_of(&mb.name);
        let data = if lsub {
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
        };
        server.enqueue_data(data);
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

async fn status(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    mailbox: &Mailbox<'static>,
    names: &[StatusDataItemName],
) -> Status<'static> {
    let Ok(Some(mb)) = s
        .store()
        .mailbox_get(s.account().unwrap(), &mailbox_name(mailbox))
        .await
    else {
        return no(
            tag,
            Some(Code::Other(code_other("NONEXISTENT"))),
            "no such mailbox",
        );
    };
    let Ok((messages, unseen, _bytes)) = s.store().mailbox_counts(mb.id()).await else {
        return no(tag, None, "temporary problem");
    };
    let mut items = Vec::new();
    for n in names {
        items.push(match n {
            StatusDataItemName::Messages => StatusDataItem::Messages(messages as u32),
            StatusDataItemName::Recent => StatusDataItem::Recent(0),
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

async fn append(
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
    // The account's own quota if the admin set one, else the hub's.
    match s.ctx.rules.quota_left(account).await {
        Ok(left) if (bytes.len() as u64) > left => {
            return no(
                tag,
                Some(Code::OverQuota),
                "over quota: delete some mail first",
            );
        }
        Ok(_) => {}
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
    }
    let _guard = s.store().blob_guard().await;
    let mut spool = s.store().spool();
    if let Err(e) = spool.write(&bytes) {
        return no(tag, None, format!("temporary problem: {e}"));
    }
    let blob = match spool.commit().await {
        Ok(b) => b,
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
    };
    match s.store().append(mb.id(), &blob, &flags, date).await {
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
        Err(e) => no(tag, None, format!("temporary problem: {e}")),
    }
}

/// The messages a set names: (seq, row), in sequence order.
fn select_messages<'m>(
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

async fn expunge(
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
        return no(tag, None, format!("temporary problem: {e}"));
    }
    report_changes(s, server, true).await;
    ok(tag, None, "EXPUNGE completed")
}

async fn quota(s: &mut Session, server: &mut Server) {
    let account = s.account().unwrap();
    let used = s.store().account_usage(account).await.unwrap_or(0) as u64;
    // The account's own quota if the admin set one, else the hub's.
    let limit = match s.store().account_quota(account).await {
        Ok(Some(q)) => q.max(0) as u64,
        _ => s.ctx.quota,
    };
    server.enqueue_data(Data::Quota {
        root: AString::try_from("").unwrap(),
        quotas: Vec1::from(QuotaGet {
            resource: Resource::Storage,
            usage: used / 1024,
            limit: limit / 1024,
        }),
    });
}

async fn get_metadata(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    mailbox: Mailbox<'static>,
    names: &[String],
) -> Status<'static> {
    let server_level = matches!(&mailbox, Mailbox::Other(o) if o.inner().as_ref().is_empty());
    let mut values = Vec::new();
    for name in names {
        let value = if server_level && name == "/shared/comment" {
            s.ctx.comment.clone()
        } else if server_level && name == "/shared/admin" {
            s.ctx.admin.clone()
        } else if name.starts_with("/private/") {
            s.store()
                .metadata_get(s.account().unwrap(), name)
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        if let Some(v) = value {
            let Ok(entry) = imap_next::imap_types::extensions::metadata::Entry::try_from(
                AString::try_from(name.clone()).unwrap(),
            ) else {
                continue;
            };
            let nstring = NString::try_from(v.clone()).unwrap_or_else(|_| literal(v.into_bytes()));
            values.push(EntryValue {
                entry,
                value: imap_next::imap_types::core::NString8::NString(nstring),
            });
        }
    }
    if let Ok(v) = Vec1::try_from(values) {
        server.enqueue_data(Data::Metadata {
            mailbox,
            items: MetadataResponse::WithValues(v),
        });
    }
    ok(tag, None, "GETMETADATA completed")
}

/// What one FETCH item asks for, flattened.
enum Want {
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
fn wants(items: MacroOrMessageDataItemNames<'static>) -> Option<Vec<Want>> {
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

/// The bytes of a section of `raw`; `None` if the part does not exist.
fn section_bytes(raw: &[u8], section: &Option<Section<'static>>) -> Vec<u8> {
    let part_path = |p: &imap_next::imap_types::fetch::Part| -> Vec<u32> {
        p.0.as_ref().iter().map(|n| n.get()).collect()
    };
    // (start of header, start of body, end) of the addressed entity.
    let whole = || (0usize, fetch::header_end(raw), raw.len());
    let locate =
        |part: &Option<imap_next::imap_types::fetch::Part>| -> Option<(usize, usize, usize)> {
            match part {
                None => Some(whole()),
                Some(p) => fetch::find_part(raw, &part_path(p)).map(|r| (r.header, r.body, r.end)),
            }
        };
    match section {
        None => raw.to_vec(),
        Some(Section::Part(p)) => match fetch::find_part(raw, &part_path(p)) {
            Some(r) => raw[r.body..r.end].to_vec(),
            None => Vec::new(),
        },
        Some(Section::Header(part)) => locate(part)
            .map(|(h, b, _)| raw[h..b].to_vec())
            .unwrap_or_default(),
        Some(Section::HeaderFields(part, names)) | Some(Section::HeaderFieldsNot(part, names)) => {
            let not = matches!(section, Some(Section::HeaderFieldsNot(..)));
            let names: Vec<String> = names.as_ref().iter().map(astr).collect();
            locate(part)
                .map(|(h, b, _)| fetch::header_fields(&raw[h..b], &names, not))
                .unwrap_or_default()
        }
        Some(Section::Text(part)) => locate(part)
            .map(|(_, b, e)| raw[b..e].to_vec())
            .unwrap_or_default(),
        Some(Section::Mime(p)) => match fetch::find_part(raw, &part_path(p)) {
            Some(r) => raw[r.header..r.body].to_vec(),
            None => Vec::new(),
        },
    }
}

fn internal_date(t: i64) -> imap_next::imap_types::datetime::DateTime {
    let dt = chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .fixed_offset();
    imap_next::imap_types::datetime::DateTime::unvalidated(dt)
}

/// RFC 3501 §6.4.5 FETCH. Each message's response is sent before the
/// next message is read, so a FETCH of a whole mailbox holds one message
/// at a time, and waits while the client is slow to read.
#[allow(clippy::too_many_arguments)]
async fn fetch_cmd(
    s: &mut Session,
    server: &mut Server,
    out: Out<'_>,
    tag: &Tag<'static>,
    set: &SequenceSet,
    items: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    changed_since: Option<u64>,
) -> Status<'static> {
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
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
    };
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
    for (seq, m) in chosen {
        let flag_news = deferred.iter().any(|(_, u, _, _)| u.0 == m.uid as u32);
        let mut flags = crate::store::mailboxes::parse_flags(&m.flags);
        let mut modseq = m.modseq as u64;
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
            flags = c.flags.clone();
            modseq = c.modseq.0;
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
        let mut body_bytes = 0usize;
        // RFC 3501 §6.4.8: UID FETCH always includes UID.
        if uid && !wants.iter().any(|w| matches!(w, Want::Uid)) {
            items.push(MessageDataItem::Uid(nz(m.uid as u32)));
        }
        for w in &wants {
            items.push(match w {
                Want::Uid => MessageDataItem::Uid(nz(m.uid as u32)),
                Want::Flags => MessageDataItem::Flags(flags_fetch(&flags)),
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
                    let bytes = section_bytes(&raw, section);
                    let range = partial.map(|(o, l)| (o, l.get()));
                    let data = fetch::partial(&bytes, range).to_vec();
                    body_bytes = body_bytes.saturating_add(data.len());
                    if body_bytes > max_response {
                        return no(
                            tag,
                            Some(Code::Other(code_other("LIMIT"))),
                            "these sections add up to too much for one response: fetch fewer at once",
                        );
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
                Want::Envelope => MessageDataItem::Envelope(super::structure::envelope_of(&raw)),
                Want::Structure { extended: true } => {
                    MessageDataItem::BodyStructure(super::structure::body_structure_of(&raw))
                }
                Want::Structure { extended: false } => {
                    MessageDataItem::Body(super::structure::body_structure_of(&raw))
                }
                Want::Unsupported(_) => unreachable!("refused above"),
            });
        }
        // Changed flags (ours or another session's) ride along in the
        // same response rather than in a second, body-less one.
        if (sets_seen || flag_news) && !wants.iter().any(|w| matches!(w, Want::Flags)) {
            items.push(MessageDataItem::Flags(flags_fetch(&flags)));
        }
        if (changed_since.is_some() || flag_news)
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

#[allow(clippy::too_many_arguments)]
async fn store_cmd(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: &[Flag<'static>],
    uid: bool,
    unchanged_since: Option<u64>,
) -> Status<'static> {
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
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
    };
    let chosen: Vec<(u32, Uid)> = select_messages(view, &messages, set, uid)
        .into_iter()
        .map(|(seq, m)| (seq, Uid(m.uid as u32)))
        .collect();
    let uids: Vec<Uid> = chosen.iter().map(|(_, u)| *u).collect();
    let op = match kind {
        StoreType::Add => FlagOp::Add,
        StoreType::Remove => FlagOp::Remove,
        StoreType::Replace => FlagOp::Replace,
    };
    let flag_names: Vec<String> = flags.iter().map(flag_text).collect();
    let (changed, refused) = match store
        .set_flags(mailbox, &uids, op, &flag_names, unchanged_since)
        .await
    {
        Ok(x) => x,
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
    };
    if response == StoreResponse::Answer {
        for c in &changed {
            let Some((seq, _)) = chosen.iter().find(|(_, u)| *u == c.uid) else {
                continue;
            };
            let mut items = vec![MessageDataItem::Flags(flags_fetch(&c.flags))];
            if uid {
                items.insert(0, MessageDataItem::Uid(nz(c.uid.0)));
            }
            if unchanged_since.is_some() {
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

async fn copy_move(
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
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
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
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
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

async fn search_cmd(
    s: &mut Session,
    server: &mut Server,
    tag: &Tag<'static>,
    criteria: Vec<imap_next::imap_types::search::SearchKey<'static>>,
    uid: bool,
) -> Status<'static> {
    use super::search::{Candidate, matches, needs_content};
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
    let SessionState::Selected { view, .. } = &s.state else {
        unreachable!()
    };
    let messages = match store.messages(view.mailbox).await {
        Ok(m) => m,
        Err(e) => return no(tag, None, format!("temporary problem: {e}")),
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
    let modseq = if super::search::uses_modseq(&key) {
        NonZeroU64::new(top_modseq)
    } else {
        None
    };
    server.enqueue_data(Data::Search(hits, modseq));
    ok(tag, None, "SEARCH completed")
}
