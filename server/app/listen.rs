//! The listeners: every configured address claimed before anything is
//! made on disk, bind failures that name the setting to change, and each
//! protocol served on its sockets.

use super::{StartError, TLS_HANDSHAKE_TIMEOUT};
use crate::config::Config;
use crate::imap;
use crate::mail::transaction::{MailRules, RulesConfig};
use crate::relay;
use crate::smtp;
use crate::store::Store;
use crate::tasks::Tasks;
use crate::web;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

/// Pending connections the kernel may queue per listener.
const LISTEN_BACKLOG: u32 = 1024;

fn env_name(field: &str) -> String {
    crate::config::FIELDS
        .iter()
        .find(|f| f.key == field)
        .map(|f| f.env.to_string())
        .unwrap_or_default()
}

pub(super) fn bind_error(
    field: &'static str,
    addr: SocketAddr,
    source: std::io::Error,
) -> StartError {
    match source.kind() {
        std::io::ErrorKind::AddrInUse => StartError::PortInUse {
            field,
            env: env_name(field),
            addr,
        },
        std::io::ErrorKind::PermissionDenied => StartError::PortDenied {
            field,
            addr,
            source,
        },
        _ => StartError::Bind {
            field,
            addr,
            source,
        },
    }
}

/// Claim an address without accepting connections yet, so a busy port is
/// found before anything is created on disk.
fn claim(field: &'static str, addr: SocketAddr) -> Result<TcpSocket, StartError> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| bind_error(field, addr, e))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| bind_error(field, addr, e))?;
    socket.bind(addr).map_err(|e| bind_error(field, addr, e))?;
    Ok(socket)
}

pub(super) fn open(
    field: &'static str,
    addr: SocketAddr,
    socket: TcpSocket,
) -> Result<TcpListener, StartError> {
    socket
        .listen(LISTEN_BACKLOG)
        .map_err(|e| bind_error(field, addr, e))
}

/// Every address of every service that runs in this version, claimed.
pub(super) fn claim_all(
    config: &Config,
) -> Result<Vec<(&'static str, SocketAddr, TcpSocket)>, StartError> {
    let served: [(&'static str, &[SocketAddr]); 8] = [
        (
            "listen.smtp_submission_tls",
            &config.listen.smtp_submission_tls,
        ),
        ("listen.smtp_submission", &config.listen.smtp_submission),
        ("listen.smtp_mx", &config.listen.smtp_mx),
        ("listen.imap_tls", &config.listen.imap_tls),
        ("listen.imap", &config.listen.imap),
        ("listen.http", &config.listen.http),
        ("listen.https", &config.listen.https),
        ("listen.link", &config.listen.link),
    ];
    let mut claimed = Vec::new();
    for (field, addrs) in served {
        for addr in addrs {
            claimed.push((field, *addr, claim(field, *addr)?));
        }
    }
    Ok(claimed)
}

/// What the IMAP and SMTP listeners share: one set of mail rules.
pub(super) fn protocol_contexts(
    config: &Config,
    store: &Store,
    tls: &Arc<rustls::ServerConfig>,
) -> (Arc<imap::ImapContext>, Arc<smtp::SmtpContext>) {
    let rules = Arc::new(MailRules::new(
        store.clone(),
        RulesConfig {
            domains: config.hub.domains.clone(),
            require_encryption: config.mail.require_encryption,
            max_message_size: config.limits.max_message_size.0,
            max_recipients: config.limits.max_recipients as usize,
            mailbox_quota: config.limits.mailbox_quota.0,
            send_per_minute: config.limits.send_per_minute,
            send_burst: config.limits.send_burst,
            create_on_login: config.mail.create_on_login,
            min_free_disk: config.limits.min_free_disk.0,
            inbound: inbound_checker(config),
        },
    ));
    let imap_ctx = Arc::new(imap::ImapContext {
        rules: rules.clone(),
        tls: tls.clone(),
        allow_plaintext_auth: config.security.allow_plaintext_auth,
        max_message_size: config.limits.max_message_size.0,
        literal_budget: imap::literals::Budget::for_message_size(config.limits.max_message_size.0),
        quota: config.limits.mailbox_quota.0,
        comment: Some(format!("cairn hub {}", config.hub.name)),
        admin: None,
    });
    let smtp_ctx = Arc::new(smtp::SmtpContext {
        rules,
        hostname: config
            .hub
            .hostnames
            .first()
            .map(|h| h.to_string())
            .unwrap_or_else(|| "cairn".into()),
        tls: tls.clone(),
        allow_plaintext_auth: config.security.allow_plaintext_auth,
        max_message_size: config.limits.max_message_size.0,
    });
    (imap_ctx, smtp_ctx)
}

/// What every listener's server needs.
pub(super) struct Serving<'a> {
    pub imap: Arc<imap::ImapContext>,
    pub smtp: Arc<smtp::SmtpContext>,
    pub admission: &'a dyn Fn() -> crate::admission::Admission,
    pub relay: &'a relay::Relay,
    pub router: axum::Router,
    /// Where plain HTTP sends the admin pages (when HTTPS listens).
    pub https: Option<web::https::Https>,
    pub tls: Arc<rustls::ServerConfig>,
    pub stop: &'a CancellationToken,
    pub tracker: &'a Tasks,
}

impl Serving<'_> {
    /// Serve the protocol of config field `field` on `listener`.
    pub fn serve(&self, field: &'static str, addr: SocketAddr, listener: TcpListener) {
        let stop = self.stop.clone();
        let tracker = self.tracker;
        let smtp_mode = match field {
            "listen.smtp_submission_tls" => Some(smtp::Mode::SubmissionTls),
            "listen.smtp_submission" => Some(smtp::Mode::SubmissionStartTls),
            "listen.smtp_mx" => Some(smtp::Mode::Mx),
            _ => None,
        };
        let imap_mode = match field {
            "listen.imap_tls" => Some(imap::Mode::Tls),
            "listen.imap" => Some(imap::Mode::StartTls),
            _ => None,
        };
        if let Some(mode) = imap_mode {
            tracker.spawn(imap::server::serve(
                listener,
                mode,
                self.imap.clone(),
                (self.admission)(),
                stop,
                tracker.clone(),
            ));
        } else if let Some(mode) = smtp_mode {
            tracker.spawn(smtp::server::serve(
                smtp::Listener { listener, mode },
                self.smtp.clone(),
                (self.admission)(),
                stop,
                tracker.clone(),
            ));
        } else if field == "listen.link" {
            tracker.spawn(serve_link(
                listener,
                self.relay.clone(),
                stop,
                tracker.clone(),
            ));
        } else {
            // The pages: on HTTPS, or on plain HTTP, which sends the admin
            // pages over to HTTPS when the hub has it.
            let secure = field == "listen.https";
            let mut router = self.router.clone();
            if !secure && let Some(https) = &self.https {
                router = router.layer(axum::middleware::from_fn_with_state(
                    https.clone(),
                    web::https::admin_to_https,
                ));
            }
            let router = router
                .layer(axum::Extension(web::Secure(secure)))
                .into_make_service_with_connect_info::<web::ClientAddr>();
            let shutdown = stop.clone().cancelled_owned();
            let served: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
                if secure {
                    let tls = crate::web::tls::TlsListener::new(
                        listener,
                        self.tls.clone(),
                        TLS_HANDSHAKE_TIMEOUT,
                        stop,
                    );
                    Box::pin(
                        axum::serve(tls, router)
                            .with_graceful_shutdown(shutdown)
                            .into_future(),
                    )
                } else {
                    Box::pin(
                        axum::serve(listener, router)
                            .with_graceful_shutdown(shutdown)
                            .into_future(),
                    )
                };
            let what = if secure { "HTTPS" } else { "HTTP" };
            tracker.spawn(async move {
                if let Err(e) = served.await {
                    tracing::error!(%addr, error = %e, "{what} server stopped");
                }
            });
        }
    }
}

/// Answer links on `listener` until `stop`: at most [`relay::link::MAX_SESSIONS`] at
/// once, [`relay::link::MAX_SESSIONS_PER_ADDRESS`] from one address (the link speaks
/// second, so one turned away is closed without a word; its hub tries
/// again at the next sync).
async fn serve_link(
    listener: TcpListener,
    relay: relay::Relay,
    stop: CancellationToken,
    tracker: Tasks,
) {
    let admission = crate::admission::Admission::new(
        relay::link::MAX_SESSIONS,
        relay::link::MAX_SESSIONS_PER_ADDRESS,
    );
    crate::admission::accept_loop(
        "link",
        listener,
        Some(admission),
        crate::admission::Refusals::SILENT,
        stop.clone(),
        tracker,
        move |stream, remote| {
            let relay = relay.clone();
            let stop = stop.clone();
            let remote = remote.to_string();
            async move {
                tokio::select! {
                    _ = relay::link::answer(&relay, stream, &remote) => {}
                    _ = stop.cancelled() => {}
                }
            }
        },
    )
    .await
}

/// The SPF/DKIM/DMARC checks of Internet mail on the MX port (used while
/// this hub is a gateway), asking `gateway.dns` or the system's servers.
fn inbound_checker(config: &Config) -> Option<crate::mail::inbound::Checker> {
    match crate::carriers::smtp_out::resolver(&config.gateway.dns) {
        Ok(r) => Some(crate::mail::inbound::Checker::new(r, &config.helo_name())),
        Err(e) => {
            tracing::warn!(error = %e, "Internet mail on the MX port is taken unchecked (no SPF, DKIM or DMARC)");
            None
        }
    }
}
