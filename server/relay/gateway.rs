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

/// What signs the gateway's mail: the domains it carries (its own and
/// those routed through it to other nodes) and where their keys are.
#[derive(Clone)]
struct Signer {
    keys: dkim::Keys,
    carried: Vec<String>,
    /// The gateway's own domain, for mail from elsewhere; `None` when it
    /// has only address literals (nothing to publish a key under).
    own: Option<String>,
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
            keys: dkim::Keys::new(&relay.config.dkim_dir),
            carried,
            own,
        })
    }

    /// `message` with the signatures of the domain it goes out as in front.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, dkim::Error> {
        let Some(own) = &self.own else {
            return Ok(message.to_vec());
        };
        let domain = dkim::signing_domain(message, &self.carried, own);
        let mut signed = self.keys.domain(&domain)?.sign(message)?;
        signed.extend_from_slice(message);
        Ok(signed)
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
    let signer = Signer::new(relay, peer).await?;
    for row in rows {
        let message = relay.store().blob_read(&row.blob_hash).await?;
        // Signing a large message takes milliseconds of CPU (see the
        // dkim_sign bench): off the async workers.
        let s = signer.clone();
        let (message, signed) = tokio::task::spawn_blocking(move || {
            let signed = s.sign(&message);
            (message, signed)
        })
        .await
        .map_err(|e| RelayError::Input(format!("signing stopped: {e}")))?;
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
