//! Wiring: the one place that knows every part. Binds the listeners, makes
//! or opens the data directory, runs the migrations, starts the services,
//! and stops them again.

use crate::config::Config;
use crate::datadir::{self, Layout, Lock};
use crate::domain::password::random_groups;
use crate::relay;
use crate::store::{self, Store, settings};
use crate::tasks::Tasks;
use crate::tls;
use crate::web;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

mod listen;
pub use crate::config::services::*;
use listen::{Serving, bind_error, claim_all, open, protocol_contexts};

/// How long open connections may take to finish after a stop request.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS client that has not finished its handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often old mail is deleted and quotas are enforced.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);
/// Settings keys owned by the admin bootstrap.

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "`{field}`: {addr} is already in use by another program: stop it, or choose another port in the config or with {env}"
    )]
    PortInUse {
        field: &'static str,
        env: String,
        addr: SocketAddr,
    },
    #[error(
        "`{field}`: not allowed to listen on {addr} ({source}): ports below 1024 need root or CAP_NET_BIND_SERVICE; run cairn as its service, or choose a port above 1024"
    )]
    PortDenied {
        field: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "`{field}`: cannot listen on {addr}: {source}: is this address on one of this machine's interfaces?"
    )]
    Bind {
        field: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    DataDir(#[from] datadir::Error),
    #[error("{0}")]
    Store(#[from] store::Error),
    #[error("TLS: {0}")]
    Tls(#[from] tls::Error),
    #[error("{0}")]
    Node(#[from] relay::node::NodeError),
    #[error("{0}")]
    Random(#[from] crate::domain::PasswordError),
    #[error("cannot write the setup code to {path}: {source}")]
    SetupCode { path: PathBuf, source: tls::Error },
}

/// What the start made and what it found, for the operator.
#[derive(Debug, Clone, Default)]
pub struct StartReport {
    pub data_dir: PathBuf,
    pub first_start: bool,
    /// Human lines such as "created database /…/cairn.db".
    pub lines: Vec<String>,
    /// The admin setup code while no admin password is set.
    pub setup_code: Option<String>,
    pub fingerprint: String,
}

/// The data directory opened and brought up to date.
pub struct Prepared {
    /// The configuration with the admin pages' settings laid over it
    /// ([`effective`]): use this one, not the file's.
    pub config: Config,
    pub layout: Layout,
    pub store: Store,
    pub certificate: tls::Certificate,
    pub identity: relay::node::Identity,
    pub report: StartReport,
}

/// A stored TOML value.
pub fn parse_setting_value(text: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()?
        .remove("v")
}

/// `config` with what the admin pages changed (the hub's name, its mail
/// domains) laid over it. A stored value that no longer parses is ignored
/// with a warning, never fatal: the file's value stands.
pub async fn effective(config: &Config, store: &Store) -> Result<Config, StartError> {
    let mut c = config.clone();
    if let Some(name) = store.settings_get(settings::HUB_NAME).await? {
        c.hub.name = name;
    }
    for (key, text) in store.settings_with_prefix(settings::CONFIG_PREFIX).await? {
        let field = &key[settings::CONFIG_PREFIX.len()..];
        let applied = parse_setting_value(&text)
            .ok_or_else(|| "not a TOML value".to_string())
            .and_then(|v| c.set_field(field, &v));
        if let Err(e) = applied {
            tracing::warn!(setting = %key, value = %text, error = %e, "ignoring a stored setting");
        }
    }
    // Self-service switched off on the settings page: no accounts by
    // first login either.
    if store.settings_get("join.enabled").await?.as_deref() == Some("0") {
        c.mail.create_on_login = false;
    }
    if let Some(json) = store.settings_get(settings::HUB_DOMAINS).await? {
        let parsed: Option<Vec<crate::domain::Domain>> = serde_json::from_str::<Vec<String>>(&json)
            .ok()
            .and_then(|l| {
                l.iter()
                    .map(|d| crate::domain::Domain::parse(d).ok())
                    .collect()
            });
        match parsed {
            Some(d) if !d.is_empty() => c.hub.domains = d,
            _ => {
                tracing::warn!(setting = settings::HUB_DOMAINS, value = %json, "ignoring a stored mail domain list that does not parse")
            }
        }
    }
    Ok(c)
}

impl Prepared {
    /// The store-and-forward side of this node.
    pub fn relay(&self) -> relay::Relay {
        let config = &self.config;
        relay::Relay::new(
            self.store.clone(),
            self.identity.clone(),
            relay::RelayConfig {
                hub_name: config.hub.name.clone(),
                domains: config.hub.domains.clone(),
                lifetime_ms: u64::from(config.mail.outbox_lifetime_days) * 24 * 3600 * 1000,
                max_message_size: config.limits.max_message_size.0,
                max_bundle_size: config.limits.max_bundle_size.0,
                require_encryption: config.mail.require_encryption,
                gateway: config.gateway.clone(),
                helo: config.helo_name(),
                dkim_dir: self.layout.dkim_dir(),
                radio: !config.radio.port.is_empty(),
                min_free_disk: config.limits.min_free_disk.0,
            },
            Arc::new(crate::carriers::Local),
        )
    }
}

/// What [`initialize`] found or made.
struct Initialized {
    store: Store,
    certificate: tls::Certificate,
    identity: relay::node::Identity,
    report: StartReport,
    /// The configuration with the stored settings laid over it.
    config: Config,
}

/// Make everything inside `layout` that is missing, reporting what happened.
async fn initialize(
    layout: &Layout,
    shown_root: &std::path::Path,
    config: &Config,
) -> Result<Initialized, StartError> {
    let shown = |p: PathBuf| shown_root.join(p.strip_prefix(layout.root()).unwrap_or(&p));
    let mut report = StartReport {
        data_dir: shown_root.to_path_buf(),
        ..StartReport::default()
    };
    let db_path = layout.database();
    let db_existed = db_path.exists();
    let store = Store::open(layout.root()).await?;
    report.lines.push(format!(
        "{} database {}",
        if db_existed { "using" } else { "created" },
        shown(db_path).display()
    ));

    // The certificate names the domains the hub runs with (the wizard's).
    let running = effective(config, &store).await?;
    let names = tls::san_names(&running.hub.hostnames, &running.hub.domains);
    let tls_dir = layout.tls_dir();
    let (cert, made) = tokio::task::spawn_blocking(move || tls::ensure(&tls_dir, &names))
        .await
        .expect("certificate task panicked")?;
    let what = match made {
        tls::Made::New => "created TLS key and self-signed certificate",
        tls::Made::Reissued => "re-issued the certificate (same key) for the changed names in",
        tls::Made::Reused => "using TLS certificate",
    };
    report.lines.push(format!(
        "{what} {} for {}",
        shown(cert.cert_path.clone()).display(),
        cert.names.join(", ")
    ));
    report.fingerprint = cert.fingerprint.clone();

    let key_path = layout.node_key();
    let (identity, made) = relay::node::ensure(&key_path)?;
    report.lines.push(format!(
        "{} node key {} (node {})",
        match made {
            relay::node::Made::New => "created",
            relay::node::Made::Reused => "using",
        },
        shown(key_path).display(),
        relay::node::fingerprint(&identity.public)
    ));

    if store
        .settings_get(settings::ADMIN_PASSWORD)
        .await?
        .is_none()
    {
        let code = match store.settings_get(settings::SETUP_CODE).await? {
            Some(c) => c,
            None => {
                let c = random_groups(3, 4)?;
                store.settings_set(settings::SETUP_CODE, &c).await?;
                store
                    .event("admin.setup_code", None, Some("created"))
                    .await?;
                c
            }
        };
        let path = layout.setup_code();
        if std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .ok()
            != Some(code.clone())
        {
            let text = format!(
                "{code}\n\nThe one-time setup code of this cairn hub. The web setup asks for it;\nit stops working once the admin password is set.\n"
            );
            tls::write_atomic(&path, text.as_bytes(), true).map_err(|source| {
                StartError::SetupCode {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        report.setup_code = Some(code);
    }
    Ok(Initialized {
        store,
        certificate: cert,
        identity,
        report,
        config: running,
    })
}

/// Open the data directory, creating it atomically on first start.
/// `lock` is taken by `serve`; CLI commands work beside a running hub.
pub async fn prepare(
    config: &Config,
    take_lock: bool,
) -> Result<(Prepared, Option<Lock>), StartError> {
    let root = config.data_dir.clone();
    let mut first_report = None;
    if let Some(staging) = datadir::stage(&root)? {
        let staged = Layout::new(staging.dir.clone());
        match initialize(&staged, &root, config).await {
            Ok(made) => {
                made.store.close().await;
                staging.commit()?;
                first_report = Some(made.report);
            }
            Err(e) => {
                staging.abandon();
                return Err(e);
            }
        }
    }
    let layout = Layout::new(root.clone());
    let lock = if take_lock {
        Some(datadir::lock(&layout)?)
    } else {
        None
    };
    let Initialized {
        store,
        certificate,
        identity,
        mut report,
        config,
    } = initialize(&layout, &root, config).await?;
    if let Some(first) = first_report {
        report = first;
        report.first_start = true;
        report
            .lines
            .insert(0, format!("created data directory {}", root.display()));
    }
    match datadir::make_private(&root) {
        Ok(Some(was)) => report.lines.push(format!(
            "closed the data directory {} to other users (its mode was {was:o}, now 700)",
            root.display()
        )),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot close the data directory to other users"),
    }
    Ok((
        Prepared {
            config,
            layout,
            store,
            certificate,
            identity,
            report,
        },
        lock,
    ))
}

/// A running hub.
pub struct Hub {
    pub report: StartReport,
    /// The hub's name as it runs (the admin pages may have changed it).
    pub name: String,
    /// (config field, bound address) of every listener.
    bound: Vec<(&'static str, SocketAddr)>,
    /// Cancelled when the admin pages changed settings that need a restart.
    reload: CancellationToken,
    /// (service name, address) of every listener, in config order.
    pub endpoints: Vec<(&'static str, SocketAddr)>,
    pub store: Store,
    pub relay: relay::Relay,
    /// Runs uplinks: "Sync now" and schedules.
    pub syncer: relay::uplink::Syncer,
    /// The LoRa radio, when `radio.port` is set.
    pub radio: Option<relay::radio::service::Radio>,
    stop: CancellationToken,
    tracker: Tasks,
    _lock: Option<Lock>,
}

/// The radio configured for this hub, if it has one: the modem on
/// `radio.port` (a USB adapter, or a radio of `cairn radio sim`), handed
/// to the radio sync as just another modem.
fn radio_for(
    relay: relay::Relay,
    config: &crate::config::RadioConfig,
) -> Option<relay::radio::service::Radio> {
    if config.port.is_empty() {
        return None;
    }
    let opener = crate::carriers::lora::opener::Serial {
        path: config.port.clone(),
        settings: config.settings.clone(),
    };
    Some(relay::radio::service::Radio::new(
        relay,
        config.clone(),
        Arc::new(opener),
        relay::radio::session::Tuning::default(),
    ))
}

/// Where plain HTTP sends the admin pages: the HTTPS `port`, and the
/// hub's first host name for a request that names none.
fn https_of(port: u16, config: &Config) -> web::https::Https {
    let host = match config.hub.hostnames.first().map(|h| h.to_string()) {
        Some(h) if h.contains(':') => format!("[{h}]"),
        Some(h) => h,
        None => "localhost".into(),
    };
    web::https::Https { port, host }
}

/// How often the hub looks for mail changed by CLI commands beside it.
pub const WAKEUP_POLL: Duration = Duration::from_millis(500);

/// Give new outbox items their next hop as they arrive, and turn items
/// past their lifetime into bounces (at start and then hourly).
async fn route_and_expire(relay: relay::Relay, stop: CancellationToken) {
    let mut changes = relay.store().changes();
    let mut hourly = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        tokio::select! {
            c = changes.recv() => match c {
                Ok(crate::store::Change::Queued { .. } | crate::store::Change::External)
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = relay.route_pending().await {
                        tracing::warn!(error = %e, "routing the outbox failed; will retry");
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = hourly.tick() => {
                match relay.expire().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(items = n, "outbox items expired and bounced"),
                    Err(e) => tracing::warn!(error = %e, "outbox expiry failed; will retry"),
                }
            }
            _ = stop.cancelled() => return,
        }
    }
}

impl Hub {
    /// Claim the ports, prepare the data directory, and start serving.
    pub async fn start(config: Config) -> Result<Hub, StartError> {
        let claimed = claim_all(&config)?;

        let (prepared, lock) = prepare(&config, true).await?;
        let config = prepared.config.clone();
        let relay = prepared.relay();
        let swept = prepared.store.sweep().await?;
        if swept.temp_files + swept.orphan_blobs > 0 {
            tracing::info!(
                temp_files = swept.temp_files,
                orphan_blobs = swept.orphan_blobs,
                "removed leftovers of an interrupted run"
            );
        }
        let interrupted = prepared.store.syncs_interrupted().await?;
        if interrupted > 0 {
            tracing::info!(
                interrupted,
                "syncs the last run stopped during are marked so in the history"
            );
        }
        let tls_config = tls::server_config(&prepared.certificate)?;

        let mut listeners = Vec::new();
        for (field, addr, socket) in claimed {
            let l = open(field, addr, socket)?;
            let local = l.local_addr().map_err(|e| bind_error(field, addr, e))?;
            listeners.push((field, local, l));
        }

        let services: Vec<web::Service> = listeners
            .iter()
            .map(|(field, addr, _)| web::Service {
                name: service_name(field),
                address: addr.to_string(),
            })
            .collect();

        let (imap_ctx, smtp_ctx) = protocol_contexts(&config, &prepared.store, &tls_config);
        let (max_connections, per_address) = (
            config.limits.max_connections as usize,
            config.limits.max_connections_per_address,
        );
        let admission = || crate::admission::Admission::new(max_connections, per_address);
        let expiry = store::Expiry {
            delete_after_days: config.mail.delete_after_days,
            delete_large_after_days: config.mail.delete_large_after_days,
            quota_bytes: config.limits.mailbox_quota.0,
        };

        let reload = CancellationToken::new();
        let syncer = relay::uplink::Syncer::new(relay.clone());
        let radio = radio_for(relay.clone(), &config.radio);
        if let Some(r) = &radio {
            syncer.set_radio(r.clone());
        }
        let name = config.hub.name.clone();
        let bound: Vec<(&'static str, SocketAddr)> =
            listeners.iter().map(|(f, a, _)| (*f, *a)).collect();
        let stop = CancellationToken::new();
        let wifi_saved: web::Hook = {
            let (config, store) = (Arc::new(config.clone()), prepared.store.clone());
            Arc::new(move || {
                let (config, store) = (config.clone(), store.clone());
                Box::pin(async move { crate::appliance::ask_for_wifi(&config, &store).await })
            })
        };
        let state = web::AppState {
            wifi_saved,
            notices: Arc::default(),
            reload: reload.clone(),
            stop: stop.clone(),
            store: prepared.store.clone(),
            config: Arc::new(config),
            started: Instant::now(),
            services: Arc::new(services),
            fingerprint: prepared.certificate.fingerprint.clone().into(),
            login_failures: Arc::new(crate::mail::ratelimit::RateLimiter::new(
                web::admin::LOGIN_FAILURES_PER_MINUTE,
                web::admin::LOGIN_FAILURE_BURST,
            )),
            // The same allowance as accounts made by a first login.
            join_limit: Arc::new(crate::mail::ratelimit::RateLimiter::new(
                crate::mail::transaction::SELF_SERVICE_PER_MINUTE,
                crate::mail::transaction::SELF_SERVICE_BURST,
            )),
            relay: relay.clone(),
            syncer: syncer.clone(),
            radio: radio.clone(),
        };
        let router = web::router(state);

        let tracker = Tasks::new();
        let https = listeners
            .iter()
            .find(|(f, _, _)| *f == "listen.https")
            .map(|(_, a, _)| https_of(a.port(), &prepared.config));
        let serving = Serving {
            imap: imap_ctx,
            smtp: smtp_ctx,
            admission: &admission,
            relay: &relay,
            router,
            https,
            tls: tls_config,
            stop: &stop,
            tracker: &tracker,
        };
        let mut endpoints = Vec::new();
        for (field, addr, listener) in listeners {
            endpoints.push((service_name(field), addr));
            serving.serve(field, addr, listener);
        }
        tracker.spawn(prepared.store.clone().expire_periodically(
            expiry,
            EXPIRY_INTERVAL,
            stop.clone(),
        ));
        tracker.spawn(route_and_expire(relay.clone(), stop.clone()));
        tracker.spawn(syncer.clone().run(stop.clone()));
        if let Some(r) = radio.clone() {
            tracker.spawn(r.run(stop.clone()));
        }
        tracker.spawn(
            prepared
                .store
                .clone()
                .watch_other_processes(WAKEUP_POLL, stop.clone()),
        );
        tracing::info!(data = %prepared.layout.root().display(), "hub started");
        Ok(Hub {
            report: prepared.report,
            name,
            bound,
            reload,
            endpoints,
            store: prepared.store,
            relay,
            syncer,
            radio,
            stop,
            tracker,
            _lock: lock,
        })
    }

    /// The address a service listens on (the first, if several).
    pub fn endpoint(&self, name: &str) -> Option<SocketAddr> {
        self.endpoints
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
    }

    /// A token that stops the hub when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Cancelled when settings changed that take a restart (the hub's name
    /// or mail domains): whoever runs the hub stops and starts it again.
    pub fn reload_requested(&self) -> CancellationToken {
        self.reload.clone()
    }

    /// `config` with every listener at the address it got, so a restart
    /// keeps the ports that port 0 picked.
    pub fn pinned(&self, config: &Config) -> Config {
        let mut c = config.clone();
        let l = &mut c.listen;
        for (field, list) in [
            ("listen.smtp_submission_tls", &mut l.smtp_submission_tls),
            ("listen.smtp_submission", &mut l.smtp_submission),
            ("listen.smtp_mx", &mut l.smtp_mx),
            ("listen.imap_tls", &mut l.imap_tls),
            ("listen.imap", &mut l.imap),
            ("listen.http", &mut l.http),
            ("listen.https", &mut l.https),
            ("listen.link", &mut l.link),
        ] {
            let got: Vec<SocketAddr> = self
                .bound
                .iter()
                .filter(|(f, _)| *f == field)
                .map(|(_, a)| *a)
                .collect();
            if got.len() == list.len() {
                *list = got;
            }
        }
        c
    }

    /// Wait until stopped, let connections drain, close the database.
    pub async fn run(self) {
        self.stop.cancelled().await;
        let dropped = self.tracker.drain(DRAIN_TIMEOUT).await;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "connections still busy after {DRAIN_TIMEOUT:?} were closed"
            );
        }
        self.store.close().await;
        tracing::info!("hub stopped");
    }

    /// Stop and wait.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.run().await;
    }
}
