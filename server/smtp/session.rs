//! One SMTP connection: buffering and I/O generic over the stream, so plain
//! TCP, TLS, STARTTLS and in-memory pipes in tests all fit.

use super::reply::Reply;
use super::server::{Mode, SmtpContext};
use crate::domain::smtp_path as path;
use crate::mail::inbound::Remote;
use crate::mail::intake::Intake;
use crate::mail::transaction::{MailError, Origin, Transaction};
use base64::Engine;
use smtp_proto::request::receiver::DataReceiver;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// RFC 5321 §4.5.3.1.4 allows 512-byte command lines; extensions add
/// parameters, and base64 AUTH responses for long passwords run longer.
pub const MAX_LINE: usize = 4096;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 << 10;
/// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// RFC 5321 §4.5.3.2.5-6: 3 minutes per DATA block.
pub const DATA_TIMEOUT: Duration = Duration::from_secs(180);
/// A client that sends this many bad commands is talking to the wrong server.
pub const MAX_ERRORS: u32 = 10;
/// Time to finish the TLS handshake after STARTTLS.
const TLS_TIMEOUT: Duration = Duration::from_secs(30);

/// How a pass over a stream ended.
enum End {
    Closed,
    StartTls,
}

/// What waiting for a line produced.
enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
    Timeout,
    Stopping,
    /// Some account was removed or got a new password.
    CredentialsChanged,
}

struct Conn<S> {
    stream: S,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// Dropping an overlong line up to its end.
    discarding: bool,
    /// Set once logged in: wakes a waiting session when accounts change.
    credential_changes: Option<tokio::sync::watch::Receiver<u64>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(stream: S) -> Self {
        Conn {
            stream,
            inbuf: Vec::with_capacity(1024),
            out: Vec::with_capacity(512),
            discarding: false,
            credential_changes: None,
        }
    }

    fn reply(&mut self, r: &Reply) {
        tracing::trace!(reply = %r.to_string().trim_end(), "S:");
        self.out.extend_from_slice(r.to_string().as_bytes());
    }

    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Read more input; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        Self::fill_buf(&mut self.stream, &mut self.inbuf).await
    }

    /// Cancel-safe (it races the stop signal, account changes and the
    /// idle timeout in `next_line`): `read_buf` appends only what it read.
    /// It used to grow the buffer by a zeroed chunk before reading, so a
    /// read cut short by an account change (anyone's new password wakes
    /// every session to re-check its login) left 16 KiB of zeros in the
    /// buffer, and the session's next command was "500 line too long"
    /// (seen once in tests/readme.rs under load).
    async fn fill_buf(stream: &mut S, inbuf: &mut Vec<u8>) -> std::io::Result<usize> {
        inbuf.reserve(READ_CHUNK);
        stream.read_buf(inbuf).await
    }

    /// After accounts changed: does the session's login still hold? With
    /// no login there is nothing to lose. A failed check counts as lost.
    async fn login_revoked(&mut self, st: &State, ctx: &SmtpContext) -> bool {
        if let Some(rx) = self.credential_changes.as_mut() {
            rx.borrow_and_update();
        }
        let Some(Origin::User { credential, .. }) = &st.login else {
            return false;
        };
        match ctx.rules.still_valid(*credential).await {
            Ok(valid) => !valid,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the session's account: ending it");
                true
            }
        }
    }

    fn credentials_changed(&self) -> bool {
        self.credential_changes
            .as_ref()
            .is_some_and(|rx| rx.has_changed().unwrap_or(false))
    }

    /// The next command line (with its CRLF), bounded by [`MAX_LINE`].
    /// Replies written so far are flushed before waiting (RFC 2920 §3.1).
    async fn next_line(
        &mut self,
        stop: &CancellationToken,
        timeout: Duration,
    ) -> std::io::Result<Line> {
        loop {
            if let Some(pos) = self.inbuf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.inbuf.drain(..=pos).collect();
                if self.discarding {
                    self.discarding = false;
                    continue;
                }
                if line.len() > MAX_LINE {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Text(line));
            }
            if self.inbuf.len() > MAX_LINE {
                // Keep memory bounded: forget the line, answer once it ends.
                self.inbuf.clear();
                if !self.discarding {
                    self.discarding = true;
                    return Ok(Line::TooLong);
                }
            }
            self.flush().await?;
            let changes = async {
                match self.credential_changes.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let read = tokio::select! {
                _ = stop.cancelled() => return Ok(Line::Stopping),
                true = changes => return Ok(Line::CredentialsChanged),
                r = tokio::time::timeout(timeout, Self::fill_buf(&mut self.stream, &mut self.inbuf)) => r,
            };
            match read {
                Err(_) => return Ok(Line::Timeout),
                Ok(Ok(0)) => return Ok(Line::Eof),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

/// Protocol state of one session (reset by STARTTLS, RFC 3207 §4.2).
struct State {
    tls: bool,
    helo: Option<String>,
    login: Option<Origin>,
    tx: Option<Transaction>,
    errors: u32,
}

/// Serve one connection until it ends.
pub async fn run<S>(
    stream: S,
    peer: SocketAddr,
    ctx: Arc<SmtpContext>,
    mode: Mode,
    stop: CancellationToken,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let tls = mode == Mode::SubmissionTls;
    let mut conn = Conn::new(stream);
    conn.reply(&Reply::new(
        220,
        "",
        format!("{} ESMTP cairn", ctx.hostname),
    ));
    let mut state = State {
        tls,
        helo: None,
        login: None,
        tx: None,
        errors: 0,
    };
    match session(&mut conn, &mut state, peer, &ctx, mode, &stop).await? {
        End::Closed => Ok(()),
        End::StartTls => {
            conn.flush().await?;
            let Some(tls_stream) =
                crate::tls::handshake(&ctx.tls, conn.stream, TLS_TIMEOUT, peer).await
            else {
                return Ok(());
            };
            // RFC 3207 §4.2: forget everything learnt before TLS, including
            // any input the client pipelined after STARTTLS.
            let mut conn = Conn::new(tls_stream);
            let mut state = State {
                tls: true,
                helo: None,
                login: None,
                tx: None,
                errors: 0,
            };
            session(&mut conn, &mut state, peer, &ctx, mode, &stop).await?;
            Ok(())
        }
    }
}

/// The account behind this session was removed or its password changed.
async fn end_revoked<S>(conn: &mut Conn<S>) -> std::io::Result<End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    tracing::info!("account removed or password changed: ending the session");
    conn.reply(&Reply::new(
        421,
        "4.7.0",
        "your account was removed or its password changed: log in again",
    ));
    conn.flush().await?;
    Ok(End::Closed)
}

/// STARTTLS on port 587 and on the MX port (RFC 3207; mail servers
/// encrypt when it is offered, RFC 7435), once per session.
fn starttls_offered(mode: Mode, tls: bool) -> bool {
    matches!(mode, Mode::SubmissionStartTls | Mode::Mx) && !tls
}

fn auth_offered(ctx: &SmtpContext, mode: Mode, tls: bool) -> bool {
    mode != Mode::Mx && (tls || ctx.allow_plaintext_auth)
}

async fn session<S>(
    conn: &mut Conn<S>,
    st: &mut State,
    peer: SocketAddr,
    ctx: &SmtpContext,
    mode: Mode,
    stop: &CancellationToken,
) -> std::io::Result<End>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    loop {
        if st.errors >= MAX_ERRORS {
            conn.reply(&Reply::new(421, "4.7.0", "too many errors, closing"));
            conn.flush().await?;
            return Ok(End::Closed);
        }
        let line = match conn.next_line(stop, COMMAND_TIMEOUT).await? {
            Line::Text(l) => l,
            Line::TooLong => {
                st.errors += 1;
                conn.reply(&Reply::new(
                    500,
                    "5.5.2",
                    format!("line too long (at most {MAX_LINE} bytes)"),
                ));
                continue;
            }
            Line::Eof => return Ok(End::Closed),
            Line::Timeout => {
                conn.reply(&Reply::new(421, "4.4.2", "idle too long, closing"));
                conn.flush().await?;
                return Ok(End::Closed);
            }
            Line::Stopping => {
                conn.reply(&Reply::new(
                    421,
                    "4.3.2",
                    "hub shutting down, try again later",
                ));
                conn.flush().await?;
                return Ok(End::Closed);
            }
            Line::CredentialsChanged => {
                if conn.login_revoked(st, ctx).await {
                    return end_revoked(conn).await;
                }
                continue;
            }
        };
        if conn.credentials_changed() && conn.login_revoked(st, ctx).await {
            return end_revoked(conn).await;
        }
        // MAIL and RCPT: our own parser, which knows address literals.
        if let Some(v) = path::verb(&line) {
            match path::parse(v, &line) {
                Err(e) => {
                    st.errors += 1;
                    conn.reply(&path_error(e));
                }
                Ok(cmd) if v == path::Verb::Mail => {
                    conn.reply(&mail_from(st, peer, ctx, mode, cmd))
                }
                Ok(cmd) => rcpt_to(conn, st, ctx, mode, cmd).await,
            }
            continue;
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => {
                st.errors += 1;
                conn.reply(&parse_error(e));
                continue;
            }
        };
        match request {
            // RFC 5321 §4.1.1.1 EHLO / HELO
            Request::Ehlo { host } | Request::Helo { host } | Request::Lhlo { host } => {
                let extended = !line[..4].eq_ignore_ascii_case(b"HELO");
                ehlo(conn, st, ctx, mode, host.to_string(), extended);
            }
            // RFC 3207 STARTTLS
            Request::StartTls => {
                if !starttls_offered(mode, st.tls) {
                    conn.reply(&Reply::new(
                        503,
                        "5.5.1",
                        "TLS is not available here or already active",
                    ));
                } else {
                    conn.reply(&Reply::new(220, "2.0.0", "ready to start TLS"));
                    return Ok(End::StartTls);
                }
            }
            // RFC 4954 AUTH
            Request::Auth {
                mechanism,
                initial_response,
            } => {
                let initial = initial_response.to_string();
                if let Some(end) = auth(conn, st, peer, ctx, mode, mechanism, initial, stop).await?
                {
                    return Ok(end);
                }
            }
            // Never reached: MAIL and RCPT lines are parsed above.
            Request::Mail { .. } | Request::Rcpt { .. } => {
                conn.reply(&Reply::new(500, "5.5.2", "command not recognized"));
            }
            // RFC 5321 §4.1.1.4 DATA
            Request::Data => {
                if let Some(end) = data(conn, st, peer, ctx).await? {
                    return Ok(end);
                }
            }
            Request::Bdat { .. } => {
                conn.reply(&Reply::new(502, "5.5.1", "BDAT is not supported: use DATA"));
            }
            // RFC 5321 §4.1.1.5 RSET
            Request::Rset => {
                st.tx = None;
                conn.reply(&Reply::new(250, "2.0.0", "reset"));
            }
            Request::Noop { .. } => conn.reply(&Reply::new(250, "2.0.0", "OK")),
            // RFC 5321 §3.5.3: VRFY may answer 252 without verifying.
            Request::Vrfy { .. } => conn.reply(&Reply::new(
                252,
                "2.5.0",
                "cannot verify, but will try delivery",
            )),
            Request::Expn { .. } => conn.reply(&Reply::new(502, "5.5.1", "EXPN is not supported")),
            Request::Help { .. } => conn.reply(&Reply::new(214, "2.0.0", "see RFC 5321")),
            Request::Quit => {
                conn.reply(&Reply::new(221, "2.0.0", "bye"));
                conn.flush().await?;
                let _ = conn.stream.shutdown().await;
                return Ok(End::Closed);
            }
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                conn.reply(&Reply::new(502, "5.5.1", "command not implemented"));
            }
        }
    }
}

/// RFC 5321 §4.1.1.1 EHLO / HELO: the extensions on offer.
fn ehlo<S>(
    conn: &mut Conn<S>,
    st: &mut State,
    ctx: &SmtpContext,
    mode: Mode,
    host: String,
    extended: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    st.helo = Some(host);
    st.tx = None;
    if !extended {
        conn.reply(&Reply::new(250, "", ctx.hostname.clone()));
        return;
    }
    let mut lines = vec![
        ctx.hostname.clone(),
        "PIPELINING".into(),
        format!("SIZE {}", ctx.max_message_size),
        "8BITMIME".into(),
        "SMTPUTF8".into(),
        "ENHANCEDSTATUSCODES".into(),
    ];
    if starttls_offered(mode, st.tls) {
        lines.push("STARTTLS".into());
    }
    if auth_offered(ctx, mode, st.tls) && st.login.is_none() {
        lines.push("AUTH PLAIN LOGIN".into());
    }
    let last = lines.len() - 1;
    for (i, l) in lines.iter().enumerate() {
        conn.raw(&format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }));
    }
}

/// RFC 4954 AUTH, where this port and the connection allow it. `Some`:
/// the session ends.
#[allow(clippy::too_many_arguments)]
async fn auth<S>(
    conn: &mut Conn<S>,
    st: &mut State,
    peer: SocketAddr,
    ctx: &SmtpContext,
    mode: Mode,
    mechanism: u64,
    initial: String,
    stop: &CancellationToken,
) -> std::io::Result<Option<End>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    if mode == Mode::Mx {
        conn.reply(&Reply::new(
            503,
            "5.5.1",
            "no login on this port: use the submission port",
        ));
    } else if !st.tls && !ctx.allow_plaintext_auth {
        conn.reply(&Reply::new(
            538,
            "5.7.11",
            "encryption required for login: use STARTTLS first, or the implicit-TLS port",
        ));
    } else if st.login.is_some() {
        conn.reply(&Reply::new(503, "5.5.1", "already logged in"));
    } else if st.tx.is_some() {
        conn.reply(&Reply::new(503, "5.5.1", "not during a mail transaction"));
    } else {
        let reply = authenticate(conn, st, peer, ctx, mechanism, initial, stop).await?;
        let closes = reply.closes();
        conn.reply(&reply);
        if closes {
            conn.flush().await?;
            return Ok(Some(End::Closed));
        }
    }
    Ok(None)
}

/// RFC 5321 §4.1.1.4 DATA: the message, then the transaction's verdict.
/// `Some`: the session ends.
async fn data<S>(
    conn: &mut Conn<S>,
    st: &mut State,
    peer: SocketAddr,
    ctx: &SmtpContext,
) -> std::io::Result<Option<End>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Some(tx) = st.tx.take() else {
        conn.reply(&Reply::new(503, "5.5.1", "MAIL first"));
        return Ok(None);
    };
    if tx.recipients() == 0 {
        st.tx = Some(tx);
        conn.reply(&Reply::new(554, "5.5.1", "no valid recipients"));
        return Ok(None);
    }
    conn.reply(&Reply::new(
        354,
        "",
        "send the message, end with <CRLF>.<CRLF>",
    ));
    let intake = ctx.rules.intake(&tx);
    let received = receive_data(conn, intake).await?;
    // The account may have gone while the message arrived.
    if conn.credentials_changed() && conn.login_revoked(st, ctx).await {
        return end_revoked(conn).await.map(Some);
    }
    match received {
        None => return Ok(Some(End::Closed)),
        Some(Err(e)) => conn.reply(&Reply::from(&e)),
        Some(Ok(received)) => match ctx.rules.accept(tx, received).await {
            Ok(d) => {
                tracing::info!(%peer, local = d.appended.len(), queued = d.queued.is_some(), "message accepted");
                conn.reply(&Reply::new(250, "2.0.0", "OK: stored"));
            }
            Err(e) => {
                tracing::info!(%peer, reason = %e, "message refused");
                conn.reply(&Reply::from(&e));
            }
        },
    }
    Ok(None)
}

/// RFC 5321 §4.1.1.2 MAIL: the reply, and the transaction begun if the
/// sender is accepted.
fn mail_from(
    st: &mut State,
    peer: SocketAddr,
    ctx: &SmtpContext,
    mode: Mode,
    cmd: path::PathCommand,
) -> Reply {
    if st.helo.is_none() {
        return Reply::new(503, "5.5.1", "say EHLO first");
    }
    if st.tx.is_some() {
        return Reply::new(503, "5.5.1", "nested MAIL command");
    }
    if cmd.size.is_some_and(|s| s > ctx.max_message_size) {
        let said = format!("message too big: at most {} bytes", ctx.max_message_size);
        return Reply::new(552, "5.3.4", said);
    }
    let origin = match (mode, &st.login) {
        (Mode::Mx, _) => Origin::Peer(Remote {
            ip: peer.ip(),
            helo: st.helo.clone().unwrap_or_default(),
            tls: st.tls,
        }),
        (_, Some(o)) => o.clone(),
        (_, None) => return Reply::new(530, "5.7.0", "log in first (AUTH)"),
    };
    match ctx.rules.begin(origin, &cmd.address) {
        Ok(tx) => {
            st.tx = Some(tx);
            Reply::new(250, "2.1.0", "sender OK")
        }
        Err(e) => Reply::from(&e),
    }
}

/// RFC 5321 §4.1.1.3 RCPT
async fn rcpt_to<S>(
    conn: &mut Conn<S>,
    st: &mut State,
    ctx: &SmtpContext,
    mode: Mode,
    cmd: path::PathCommand,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    match st.tx.as_mut() {
        None => conn.reply(&Reply::new(503, "5.5.1", "MAIL first")),
        Some(tx) => match ctx.rules.add_recipient(tx, &cmd.address).await {
            Ok(()) => conn.reply(&Reply::new(250, "2.1.5", "recipient OK")),
            Err(e) => {
                // A user may mistype an address; on the MX port a run of
                // unknown recipients is someone probing for accounts.
                let honest_mistake = matches!(
                    e,
                    MailError::NoSuchUser(_)
                        | MailError::RelayDenied(_)
                        | MailError::MailboxFull(_)
                ) && (mode != Mode::Mx
                    || matches!(e, MailError::MailboxFull(_)));
                if !honest_mistake {
                    st.errors += 1;
                }
                conn.reply(&Reply::from(&e));
            }
        },
    }
}

fn path_error(e: path::PathError) -> Reply {
    match e {
        path::PathError::Syntax(why) => Reply::new(501, "5.5.4", format!("syntax error: {why}")),
        path::PathError::BadValue(p) => Reply::new(501, "5.5.4", format!("bad value for {p}")),
        path::PathError::Unsupported(p) => {
            Reply::new(555, "5.5.4", format!("parameter {p} not supported"))
        }
    }
}

fn parse_error(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => Reply::new(500, "5.5.2", "command not recognized"),
        E::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("syntax: {syntax}")),
        E::InvalidSenderAddress => Reply::new(501, "5.1.7", "bad sender address syntax"),
        E::InvalidRecipientAddress => Reply::new(501, "5.1.3", "bad recipient address syntax"),
        E::InvalidParameter { param } => Reply::new(501, "5.5.4", format!("bad value for {param}")),
        E::UnsupportedParameter { param } => Reply::new(
            555,
            "5.5.4",
            format!(
                "parameter {} not supported",
                param.chars().take(40).collect::<String>()
            ),
        ),
        _ => Reply::new(500, "5.5.2", "command not recognized"),
    }
}

/// RFC 4954 §4 AUTH PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login).
async fn authenticate<S>(
    conn: &mut Conn<S>,
    st: &mut State,
    peer: SocketAddr,
    ctx: &SmtpContext,
    mechanism: u64,
    initial: String,
    stop: &CancellationToken,
) -> std::io::Result<Reply>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = || {
        Reply::new(
            501,
            "5.5.2",
            "cannot decode the AUTH response (base64 expected)",
        )
    };
    let cancelled = || Reply::new(501, "5.7.0", "authentication cancelled");
    // The client's response: the initial one, or one more line after a
    // 334 challenge; `None` when the client cancels (RFC 4954 §4: "*").
    async fn response<S: AsyncRead + AsyncWrite + Unpin>(
        conn: &mut Conn<S>,
        initial: String,
        challenge: &str,
        stop: &CancellationToken,
    ) -> std::io::Result<Option<String>> {
        let line = if initial.is_empty() {
            conn.raw(&format!("334 {challenge}\r\n"));
            match conn.next_line(stop, COMMAND_TIMEOUT).await? {
                Line::Text(l) => String::from_utf8_lossy(&l).trim().to_string(),
                _ => return Ok(None),
            }
        } else {
            initial
        };
        Ok((line != "*").then_some(line))
    }
    let (user, password) = if mechanism == AUTH_PLAIN {
        let Some(resp) = response(conn, initial, "", stop).await? else {
            return Ok(cancelled());
        };
        let Ok(raw) = b64.decode(resp.as_bytes()) else {
            return Ok(bad());
        };
        // authzid NUL authcid NUL passwd
        let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
        if parts.len() != 3 {
            return Ok(bad());
        }
        let authz = String::from_utf8_lossy(parts[0]).to_string();
        let user = String::from_utf8_lossy(parts[1]).to_string();
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(&user) {
            return Ok(Reply::new(
                535,
                "5.7.8",
                "acting for another user is not allowed",
            ));
        }
        (user, String::from_utf8_lossy(parts[2]).to_string())
    } else if mechanism == AUTH_LOGIN {
        let Some(user_b64) = response(conn, initial, "VXNlcm5hbWU6", stop).await? else {
            return Ok(cancelled());
        };
        let Ok(user) = b64.decode(user_b64.as_bytes()) else {
            return Ok(bad());
        };
        let Some(pass_b64) = response(conn, String::new(), "UGFzc3dvcmQ6", stop).await? else {
            return Ok(cancelled());
        };
        let Ok(pass) = b64.decode(pass_b64.as_bytes()) else {
            return Ok(bad());
        };
        (
            String::from_utf8_lossy(&user).to_string(),
            String::from_utf8_lossy(&pass).to_string(),
        )
    } else {
        return Ok(Reply::new(
            504,
            "5.5.4",
            "unsupported mechanism: use PLAIN or LOGIN",
        ));
    };
    match ctx.rules.login(peer.ip(), &user, &password).await {
        Ok(Some(origin)) => {
            st.login = Some(origin);
            conn.credential_changes = Some(ctx.rules.store.credential_changes());
            Ok(Reply::new(235, "2.7.0", "authentication successful"))
        }
        Ok(None) => {
            st.errors += 1;
            Ok(Reply::new(535, "5.7.8", "wrong user name or password"))
        }
        Err(e) => Ok(Reply::from(&e)),
    }
}

/// Read DATA up to the terminating dot. `None`: the client went away.
async fn receive_data<S>(
    conn: &mut Conn<S>,
    mut intake: Intake,
) -> std::io::Result<Option<Result<crate::mail::intake::Received, MailError>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    conn.flush().await?;
    let mut rx = DataReceiver::new();
    // Prime the receiver as if a CRLF preceded the data, so a first line
    // that starts with a dot is unstuffed too (RFC 5321 §4.5.2).
    let mut scratch = Vec::new();
    rx.ingest(&mut b"\r\n".iter(), &mut scratch);
    let mut chunk = Vec::with_capacity(READ_CHUNK);
    let mut failed: Option<MailError> = None;
    loop {
        if !conn.inbuf.is_empty() {
            let mut it = conn.inbuf.iter();
            let done = rx.ingest(&mut it, &mut chunk);
            let consumed = conn.inbuf.len() - it.as_slice().len();
            conn.inbuf.drain(..consumed);
            if failed.is_none()
                && let Err(e) = intake.push(&chunk)
            {
                failed = Some(e.into());
            }
            chunk.clear();
            if done {
                return Ok(Some(match failed {
                    Some(e) => Err(e),
                    None => intake.finish().map_err(MailError::from),
                }));
            }
        }
        match tokio::time::timeout(DATA_TIMEOUT, conn.fill()).await {
            Ok(Ok(0)) | Err(_) => return Ok(None),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}
