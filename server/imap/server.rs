//! IMAP listeners: accept loops with a connection cap.

use super::connection;
use crate::admission::{Admission, Refusal};
use crate::mail::transaction::MailRules;
use crate::tasks::Tasks;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
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
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "IMAP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let permit = match admission.admit(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                let reply: &[u8] = match why {
                    Refusal::Full => b"* BYE too many connections, try again later\r\n",
                    Refusal::TooManyFromAddress => {
                        tracing::info!(%peer, "IMAP: too many connections from this address");
                        b"* BYE too many connections from your address, close some first\r\n"
                    }
                };
                tracker.spawn(async move {
                    let mut tcp = tcp;
                    let _ = tcp.write_all(reply).await;
                    let _ = tcp.shutdown().await;
                });
                continue;
            }
        };
        let ctx = ctx.clone();
        let stop = stop.clone();
        let span = tracing::info_span!("imap", %peer, ?mode);
        tracker.spawn(
            async move {
                let _permit = permit;
                let result = match mode {
                    Mode::Tls => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(ctx.tls.clone());
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                            .await
                        {
                            Ok(Ok(tls)) => connection::run(tls, peer, ctx, true, stop)
                                .await
                                .map(|_| None),
                            _ => Ok(None),
                        }
                    }
                    Mode::StartTls => {
                        match connection::run(tcp, peer, ctx.clone(), false, stop.clone()).await {
                            Ok(Some(tcp)) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(ctx.tls.clone());
                                match tokio::time::timeout(
                                    TLS_HANDSHAKE_TIMEOUT,
                                    acceptor.accept(tcp),
                                )
                                .await
                                {
                                    Ok(Ok(tls)) => connection::run(tls, peer, ctx, true, stop)
                                        .await
                                        .map(|_| None),
                                    _ => Ok(None),
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
            .instrument(span),
        );
    }
}
