//! One IMAP connection: buffering and I/O around imap-next's `Server`,
//! the limits before and after login, IDLE's wait for changes, and the
//! events handed to the session.

use crate::imap::cmd::auth::*;
use crate::imap::literals::{self, Budget, Framer, Piece};
use crate::imap::server::ImapContext;
use crate::imap::session::*;
use bounded_static::ToBoundedStatic;
use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::response::{Code, CommandContinuationRequest, Data, Greeting, Status};
use imap_next::server::{Error as ServerError, Event, Options, ResponseHandle, Server};
use imap_next::{Interrupt, Io, State};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

/// RFC 3501 §5.4: the autologout timer must be at least 30 minutes.
pub const AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);

/// Keepalive while idling: Delta Chat gives up after 5 minutes of silence.
pub const IDLE_KEEPALIVE: Duration = Duration::from_secs(120);

/// Longest non-literal part of a command.
pub const MAX_COMMAND_EXTRA: u32 = 64 << 10;

/// Before login a command carries at most a user name and a password, or
/// a client's ID: literals up to 4 KiB, commands up to 40 KiB (RFC 2971
/// lets ID name 30 fields of up to 30 octets with values of up to 1024:
/// 32 KiB with quotes and spaces). Anyone on the Wi-Fi can connect, and
/// with the message size here 20 connections announcing 30 MB literals
/// took 600 MB; 50 connections (the per-address cap) of 40 KiB lines hold
/// 2 MB.
pub const PRE_AUTH_MAX_LITERAL: u32 = 4 << 10;

pub const PRE_AUTH_MAX_COMMAND: u32 = 40 << 10;

/// Bytes read from the socket at a time.
pub(crate) const READ_CHUNK: usize = 16 << 10;

/// Where responses go when a command sends them as it goes (FETCH).
pub(crate) type Out<'a> = &'a mut (dyn AsyncWrite + Unpin + Send);

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
        qresync: false,
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
    let mut intake = Intake::default();
    loop {
        match server.next() {
            // After BYE nothing more runs: what is queued goes out, and the
            // connection closes when the input runs dry. (Answering the
            // BYE's own "sent" event with another BYE looped forever.)
            Ok(_) | Err(Interrupt::Error(_)) if s.logout => {}
            Ok(event) => {
                let command = !matches!(
                    event,
                    Event::GreetingSent { .. } | Event::ResponseSent { .. }
                );
                handle_event(&mut s, &mut server, &mut stream, event).await;
                if command {
                    // Its literals are handled: their room is free again.
                    intake.held.clear();
                }
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
                if intake
                    .hand_on(&mut s, &mut server, &mut stream, logged_in_limits)
                    .await?
                {
                    continue;
                }
                let idling = s.idle_tag.is_some();
                let authenticated = s.credential.is_some();
                // A client holding room for a literal must keep sending.
                let patience = if intake.held.is_empty() {
                    AUTOLOGOUT
                } else {
                    literals::HOLDING_READ_TIMEOUT
                };
                tokio::select! {
                    r = tokio::time::timeout(patience, stream.read(&mut buf)) => match r {
                        Ok(Ok(0)) | Err(_) => return Ok(None),
                        Ok(Ok(n)) => intake.pending.extend_from_slice(&buf[..n]),
                        Ok(Err(e)) => return Err(e),
                    },
                    _ = s.credential_changes.changed(), if authenticated => {
                        if s.login_revoked().await {
                            end_revoked(&mut s, &mut server);
                        }
                    }
                    c = changes.recv(), if idling => idle_change(&mut s, &mut server, c).await,
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
                // The command is over: its literals' room is free again.
                intake.held.clear();
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

/// A change in the store while the client idles: a new message in the
/// selected mailbox is told without asking the store; anything else that
/// may concern it, by looking.
async fn idle_change(
    s: &mut Session,
    server: &mut Server,
    c: Result<crate::store::Change, tokio::sync::broadcast::error::RecvError>,
) {
    let relevant = match (&c, &s.state) {
        (Ok(crate::store::Change::External), SessionState::Selected { .. }) => true,
        (Ok(change), SessionState::Selected { view, .. }) => change.mailbox() == Some(view.mailbox),
        (Err(_), _) => true,
        _ => false,
    };
    if !relevant {
        return;
    }
    let fast = match (&c, &mut s.state) {
        (
            Ok(crate::store::Change::Appended { uid, modseq, .. }),
            SessionState::Selected { view, .. },
        ) => view.append_next(*uid, modseq.0),
        _ => None,
    };
    match fast {
        Some(exists) => {
            server.enqueue_data(Data::Exists(exists));
        }
        None => report_changes(s, server, true).await,
    }
}

/// What the client sent and the hub has not handed on to imap-next yet,
/// and the room its literals hold in the hub's budget.
#[derive(Default)]
struct Intake {
    pending: Vec<u8>,
    framer: Framer,
    /// Room in the hub's literal budget for the command being received.
    held: Vec<OwnedSemaphorePermit>,
    /// The rest of a refused command is read and dropped.
    skipping: bool,
}

/// What [`Intake::feed`] did.
enum Fed {
    Some,
    NeedMore,
    /// No room for a literal in the middle of a command: end the session.
    Bye,
}

/// Why a command or a session was turned away for lack of room.
const BUSY: &str = "the hub is receiving other large messages: try again in a minute";

impl Intake {
    /// Give `server` the next piece of what was read: a line at a time
    /// before login (so that a login leaves nothing behind in it), lines
    /// and literals in the budget after. False: read more first.
    async fn hand_on<S: AsyncWrite + Unpin>(
        &mut self,
        s: &mut Session,
        server: &mut Server,
        stream: &mut S,
        logged_in: bool,
    ) -> std::io::Result<bool> {
        if logged_in {
            let budget = &s.ctx.literal_budget;
            return match self
                .feed(server, stream, budget, s.ctx.max_message_size)
                .await?
            {
                Fed::Some => Ok(true),
                Fed::NeedMore => Ok(false),
                Fed::Bye => {
                    server.enqueue_status(Status::bye(None, text(BUSY)).expect("bye"));
                    s.logout = true;
                    Ok(true)
                }
            };
        }
        if self.pending.is_empty() {
            return Ok(false);
        }
        let take = self
            .pending
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.pending.len(), |i| i + 1);
        server.enqueue_input(&self.pending[..take]);
        self.pending.drain(..take);
        Ok(true)
    }

    /// Hand the next line or literal data to `server`; a literal over
    /// [`literals::FREE_LITERAL`] first takes its room in `budget` (before
    /// imap-next asks for it with `+`), or its command is refused.
    async fn feed<S: AsyncWrite + Unpin>(
        &mut self,
        server: &mut Server,
        stream: &mut S,
        budget: &Budget,
        max_literal: u64,
    ) -> std::io::Result<Fed> {
        let (len, size, sync, first) = match self.framer.next(&self.pending) {
            Piece::NeedMore => return Ok(Fed::NeedMore),
            Piece::Pass(n) => {
                if self.skipping {
                    self.skipping = self.framer.in_command();
                } else {
                    server.enqueue_input(&self.pending[..n]);
                }
                self.pending.drain(..n);
                return Ok(Fed::Some);
            }
            Piece::Announce {
                len,
                size,
                sync,
                first,
            } => (len, size, sync, first),
        };
        let line = ..len;
        if self.skipping {
            // More of a refused command: dropped, and its literals too.
            if sync {
                self.framer.refused();
                self.skipping = false;
            } else {
                self.framer.expect_literal(size);
            }
        } else if size > max_literal && sync {
            // imap-next answers BAD and forgets the command; the client
            // sends no data.
            server.enqueue_input(&self.pending[line]);
            self.framer.refused();
        } else if size <= literals::FREE_LITERAL {
            server.enqueue_input(&self.pending[line]);
            self.framer.expect_literal(size);
        } else if size <= max_literal
            && let Some(room) = budget.take(size).await
        {
            self.held.push(room);
            server.enqueue_input(&self.pending[line]);
            self.framer.expect_literal(size);
        } else if first {
            // imap-next holds nothing of this command: the hub answers it,
            // and drops the data of a LITERAL+ literal as it comes (RFC
            // 7888 §4: a literal over the limit gets BAD [TOOBIG]).
            let tag = literals::tag_of(&self.pending[line]).unwrap_or("*");
            let answer = if size > max_literal {
                format!("{tag} BAD [TOOBIG] a literal may hold at most {max_literal} bytes\r\n")
            } else {
                format!("{tag} NO [LIMIT] {BUSY}\r\n")
            };
            stream.write_all(answer.as_bytes()).await?;
            stream.flush().await?;
            if sync {
                self.framer.refused();
            } else {
                self.framer.expect_literal(size);
                self.skipping = true;
            }
        } else {
            return Ok(Fed::Bye);
        }
        self.pending.drain(line);
        Ok(Fed::Some)
    }
}

/// imap-next's limits: the longest literal, and the longest command.
pub(crate) fn limits(max_literal: u32, max_command: u32) -> Options {
    let mut options = Options::default();
    options.max_literal_size = max_literal;
    options.max_command_size = max_command;
    options
}

/// The protocol machine for a session that has logged in: literals up to
/// the message size (APPEND). It takes over from the one that greeted the
/// client, so its own greeting is sent nowhere.
pub(crate) fn logged_in_server(max_message_size: u64) -> Server {
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
pub(crate) fn end_revoked(s: &mut Session, server: &mut Server) {
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
pub(crate) async fn send_through(
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

pub(crate) async fn handle_event(s: &mut Session, server: &mut Server, out: Out<'_>, event: Event) {
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
