//! SMTP listeners: accept loops with a connection cap, one task per session.

use super::session;
use crate::admission::{Admission, Refusals, accept_loop};
use crate::mail::transaction::MailRules;
use crate::tasks::Tasks;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Pause after a failed accept (e.g. out of file descriptors).
/// Time a TLS client gets to finish the handshake on the implicit-TLS port.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Which kind of SMTP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Implicit TLS submission (RFC 8314, port 465).
    SubmissionTls,
    /// Submission with STARTTLS (RFC 6409, port 587).
    SubmissionStartTls,
    /// Mail from other servers and peers (port 25): no AUTH.
    Mx,
}

/// What every SMTP session shares.
pub struct SmtpContext {
    pub rules: Arc<MailRules>,
    pub hostname: String,
    pub tls: Arc<rustls::ServerConfig>,
    pub allow_plaintext_auth: bool,
    pub max_message_size: u64,
}

/// A bound SMTP listener.
pub struct Listener {
    pub listener: TcpListener,
    pub mode: Mode,
}

/// Accept until `stop`; sessions are tracked by `tracker` so shutdown can
/// wait for them. A connection `admission` turns away (too many in all,
/// or from its address) is told 421 and closed.
pub async fn serve(
    l: Listener,
    ctx: Arc<SmtpContext>,
    admission: Admission,
    stop: CancellationToken,
    tracker: Tasks,
) {
    let mode = l.mode;
    let refusals = Refusals {
        full: b"421 4.3.2 too many connections, try again later\r\n",
        too_many_from_address:
            b"421 4.7.0 too many connections from your address, close some first\r\n",
    };
    accept_loop(
        "SMTP",
        l.listener,
        Some(admission),
        refusals,
        stop.clone(),
        tracker,
        move |tcp, peer| {
            let span = tracing::info_span!("smtp", %peer, ?mode);
            session(tcp, peer, mode, ctx.clone(), stop.clone()).instrument(span)
        },
    )
    .await
}

/// One connection, from its first byte (or TLS handshake) to its end.
async fn session(
    tcp: TcpStream,
    peer: SocketAddr,
    mode: Mode,
    ctx: Arc<SmtpContext>,
    stop: CancellationToken,
) {
    let result = if mode == Mode::SubmissionTls {
        match crate::tls::handshake(&ctx.tls, tcp, TLS_HANDSHAKE_TIMEOUT, peer).await {
            Some(tls) => session::run(tls, peer, ctx, mode, stop).await,
            None => Ok(()),
        }
    } else {
        session::run(tcp, peer, ctx, mode, stop).await
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "SMTP connection ended with an error");
    }
}
