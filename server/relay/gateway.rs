//! The gateway role: a node with Internet reach hands mail for domains
//! nobody in the mesh hosts to the Internet — through a smarthost with a
//! login, or to each domain's MX hosts found by DNS, with STARTTLS when
//! offered (the [`MailOut`](super::carrier::MailOut) carrier,
//! `carriers/smtp_out.rs`). The Internet is a peer (`cairn peer add-internet`) with the
//! default route and an `smtp` uplink; its items leave the outbox when a
//! server took them. A temporary failure (4xx, DNS, no connection) keeps
//! an item for a later try with growing waits until its lifetime ends; a
//! permanent one (5xx, no such domain) bounces to its sender at once.
//!
//! Mail from the Internet for the domains the gateway routes to hubs comes
//! in on its MX port like any other; see `smtp/`.

use super::carrier::Outcome;
use super::{Relay, RelayError, header_section};
use crate::mail::bounce::Failure;
use crate::mail::dkim;
use crate::store::now;
use crate::store::relay::{CustodyRow, PeerRow};

/// First wait after a temporary failure (seconds); doubles per attempt up
/// to [`RETRY_MAX`], until the item's lifetime ends and it bounces.
pub const RETRY_FIRST: i64 = 300;
pub const RETRY_MAX: i64 = 4 * 3600;

/// What one gateway run did.
#[derive(Debug, Default)]
pub struct GatewayRun {
    /// Items that left (delivered, or bounced).
    pub done: u64,
    pub bytes: u64,
    /// Items kept for a later try, and the last reason.
    pub later: u64,
    pub retry: Option<String>,
}

/// The setting that records a domain's DKIM key once made (its RSA
/// record): a key file missing later is then an error to fix, not a
/// reason to make a new key that no DNS publishes.
fn made_key_setting(domain: &str) -> String {
    format!("dkim.key.{domain}")
}

impl Relay {
    /// The DKIM keys of `domain`, made on first use (and recorded as made).
    /// A key made before whose files are gone is an error that says how
    /// to restore it or start over.
    pub async fn domain_keys(&self, domain: &str) -> Result<dkim::DomainKeys, RelayError> {
        let domain = domain.to_ascii_lowercase();
        let keys = dkim::Keys::new(&self.config.dkim_dir);
        let made = self
            .store()
            .settings_get(&made_key_setting(&domain))
            .await?;
        if made.is_some() && !keys.exists(&domain) {
            return Err(RelayError::Input(format!(
                "the DKIM key of {domain} is missing from {}: it was made and may be published; restore its files from a backup, or start over with `cairn gateway dns --new-keys {domain}` and publish the new records",
                self.config.dkim_dir.display()
            )));
        }
        let d = domain.clone();
        let loaded = tokio::task::spawn_blocking(move || keys.domain(&d))
            .await
            .map_err(|e| RelayError::Input(format!("making the DKIM key stopped: {e}")))?
            .map_err(|e| RelayError::Input(e.to_string()))?;
        if made.is_none() {
            let rsa = &loaded.records()[0].value;
            self.store()
                .settings_set(&made_key_setting(&domain), rsa)
                .await?;
        }
        Ok(loaded)
    }

    /// Start over with new DKIM keys for `domain`: its key files are kept
    /// beside, renamed `*.old-TIME`, and the next use makes new ones.
    pub async fn new_domain_keys(&self, domain: &str) -> Result<(), RelayError> {
        let domain = domain.to_ascii_lowercase();
        dkim::Keys::new(&self.config.dkim_dir)
            .retire(&domain, now())
            .map_err(|e| RelayError::Input(e.to_string()))?;
        self.store()
            .settings_delete(&made_key_setting(&domain))
            .await?;
        Ok(())
    }
}

/// What signs the gateway's mail: the domains it carries (its own and
/// those routed through it to other nodes), and their keys as used.
struct Signer {
    carried: Vec<String>,
    /// The gateway's own domain, for mail from elsewhere; `None` when it
    /// has only address literals (nothing to publish a key under).
    own: Option<String>,
    loaded: std::collections::HashMap<String, std::sync::Arc<dkim::DomainKeys>>,
}

impl Signer {
    async fn new(relay: &Relay, internet: &PeerRow) -> Result<Signer, RelayError> {
        let carried = relay.carried_domains(internet).await?;
        let own = relay
            .config
            .domains
            .iter()
            .find(|d| d.ip().is_none())
            .map(|d| d.to_string());
        Ok(Signer {
            carried,
            own,
            loaded: Default::default(),
        })
    }

    /// `message` with the signatures of the domain it goes out as in
    /// front; signing a large message takes milliseconds of CPU (the
    /// dkim_sign bench), so it runs off the async workers.
    async fn sign(
        &mut self,
        relay: &Relay,
        message: Vec<u8>,
    ) -> (Vec<u8>, Result<Vec<u8>, String>) {
        let Some(own) = &self.own else {
            let copy = message.clone();
            return (message, Ok(copy));
        };
        let domain = dkim::signing_domain(&message, &self.carried, own);
        let keys = match self.loaded.get(&domain) {
            Some(k) => k.clone(),
            None => match relay.domain_keys(&domain).await {
                Ok(k) => {
                    let k = std::sync::Arc::new(k);
                    self.loaded.insert(domain, k.clone());
                    k
                }
                Err(e) => return (message, Err(e.to_string())),
            },
        };
        tokio::task::spawn_blocking(move || {
            let signed = keys.sign(&message).map(|mut s| {
                s.extend_from_slice(&message);
                s
            });
            (message, signed.map_err(|e| e.to_string()))
        })
        .await
        .unwrap_or_else(|e| (Vec::new(), Err(format!("signing stopped: {e}"))))
    }
}

/// Hand every due item of the Internet peer to the Internet.
pub async fn run(relay: &Relay, peer: &PeerRow) -> Result<GatewayRun, RelayError> {
    relay.route_pending().await?;
    relay.expire().await?;
    let gw = relay
        .carriers()
        .smtp(&relay.config.gateway, &relay.config.helo)
        .map_err(RelayError::Input)?;
    let t = now();
    let rows: Vec<CustodyRow> = relay
        .store()
        .outbox_for_peer(peer.id)
        .await?
        .into_iter()
        .filter(|r| r.next_attempt_at.is_none_or(|n| n <= t))
        .collect();
    let mut run = GatewayRun::default();
    let mut signer = Signer::new(relay, peer).await?;
    for row in rows {
        let message = relay.store().blob_read(&row.blob_hash).await?;
        let (message, signed) = signer.sign(relay, message).await;
        let results = match signed {
            Ok(signed) => gw.deliver(&row.mail_from, &row.recipients(), &signed).await,
            // The key is the gateway's problem, not the mail's: it waits.
            Err(e) => {
                tracing::warn!(error = %e, "cannot DKIM-sign mail for the Internet; it waits");
                let why = format!("not sent: {e}");
                row.recipients()
                    .into_iter()
                    .map(|r| (r, Outcome::Temporary(why.clone())))
                    .collect()
            }
        };
        let mut keep = Vec::new();
        let mut failures = Vec::new();
        let mut error = None;
        for (rcpt, o) in results {
            match o {
                Outcome::Delivered => {}
                Outcome::Temporary(why) => {
                    tracing::info!(rcpt = %rcpt, error = %why, "delivery to the Internet will be retried");
                    keep.push(rcpt);
                    error = Some(why);
                }
                Outcome::Permanent { status, diagnostic } => {
                    tracing::info!(rcpt = %rcpt, %status, error = %diagnostic, "delivery to the Internet failed; bouncing");
                    failures.push(Failure {
                        recipient: rcpt,
                        status,
                        diagnostic,
                    });
                }
            }
        }
        let _guard = relay.store().blob_guard().await;
        let bounce = if failures.is_empty() {
            None
        } else {
            relay
                .bounce_for(&row.mail_from, &failures, header_section(&message))
                .await?
        };
        let wait = (RETRY_FIRST << row.attempts.clamp(0, 10)).min(RETRY_MAX);
        relay
            .store()
            .smtp_attempted(
                peer.id,
                row.id,
                &keep,
                t + wait,
                error.as_deref(),
                bounce.as_ref(),
            )
            .await?;
        if keep.is_empty() {
            run.done += 1;
            run.bytes += message.len() as u64;
        } else {
            run.later += 1;
            run.retry = error;
        }
    }
    Ok(run)
}
