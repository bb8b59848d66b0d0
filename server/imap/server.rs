//! IMAP listeners: accept loops with a connection cap.

use super::connection;
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

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Implicit TLS (port 993).
    Tls,
    /// Plain start with STARTTLS (port 143).
    StartTls,
}

/// What every IMAP session shares.
pub struct ImapContext {
    pub rules: Arc<MailRules>,
    pub tls: Arc<rustls::ServerConfig>,
    pub allow_plaintext_auth: bool,
    pub max_message_size: u64,
    /// Room for literals being received, shared by all connections.
    pub literal_budget: crate::imap::literals::Budget,
    /// Per-account quota in bytes.
    pub quota: u64,
    /// METADATA `/shared/comment` and `/shared/admin`.
    pub comment: Option<String>,
    pub admin: Option<String>,
}

pub async fn serve(
    listener: TcpListener,
    mode: Mode,
    ctx: Arc<ImapContext>,
    admission: Admission,
    stop: CancellationToken,
    tracker: Tasks,
) {
    let refusals = Refusals {
        full: b"* BYE too many connections, try again later\r\n",
        too_many_from_address:
            b"* BYE too many connections from your address, close some first\r\n",
    };
    accept_loop(
        "IMAP",
        listener,
        Some(admission),
        refusals,
        stop.clone(),
        tracker,
        move |tcp, peer| {
            let span = tracing::info_span!("imap", %peer, ?mode);
            session(tcp, peer, mode, ctx.clone(), stop.clone()).instrument(span)
        },
    )
    .await
}

/// One connection, from its first byte (or TLS handshake) to its end;
/// STARTTLS hands the plain connection back to be wrapped.
async fn session(
    tcp: TcpStream,
    peer: SocketAddr,
    mode: Mode,
    ctx: Arc<ImapContext>,
    stop: CancellationToken,
) {
    let result = match mode {
        Mode::Tls => {
            match crate::tls::handshake(&ctx.tls, tcp, TLS_HANDSHAKE_TIMEOUT, peer).await {
                Some(tls) => connection::run(tls, peer, ctx, true, stop)
                    .await
                    .map(|_| None),
                None => Ok(None),
            }
        }
        Mode::StartTls => {
            match connection::run(tcp, peer, ctx.clone(), false, stop.clone()).await {
                Ok(Some(tcp)) => {
                    match crate::tls::handshake(&ctx.tls, tcp, TLS_HANDSHAKE_TIMEOUT, peer).await {
                        Some(tls) => connection::run(tls, peer, ctx, true, stop)
                            .await
                            .map(|_| None),
                        None => Ok(None),
                    }
                }
                other => other,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "IMAP connection ended with an error");
    }
}
