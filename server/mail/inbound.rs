//! Internet mail's credentials, checked on a gateway's MX port: SPF
//! (RFC 7208) for the connecting server and MAIL FROM, DKIM (RFC 6376)
//! for the signatures, DMARC (RFC 7489) for the From domain's own policy.
//! A message that fails DMARC for a domain publishing `p=reject` is
//! refused; every other one gets an `Authentication-Results` header
//! (RFC 8601) with what was found, after any such header it came with
//! was removed (a sender must not vouch for itself), and a `Received`
//! line saying whether it came encrypted (RFC 5321 §4.4, RFC 3848).
//!
//! Mail from phones (logged in) and between peers (their own keys) is
//! authenticated otherwise and does not come here. The checks themselves
//! are the `mail-auth` crate's.

use super::intake::{Received, fields};
use crate::store::Spool;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator};
use std::io::Read;
use std::net::IpAddr;
use tokio::sync::Semaphore;

/// Messages checked at once: each is read whole into memory (up to the
/// largest message the hub takes), so many senders at once must wait
/// their turn rather than fill the hub's memory.
pub const MAX_CHECKS_AT_ONCE: usize = 4;

/// DKIM signatures verified per message (RFC 6376 §6.1 lets verifiers
/// limit them): each costs a DNS question, a public-key operation and,
/// with its own `l=`, another hash of the whole body. Real mail carries
/// one to four.
pub const MAX_SIGNATURES: usize = 8;

/// What the MX port knows of the server sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub ip: IpAddr,
    /// The name it gave in EHLO/HELO.
    pub helo: String,
    /// Whether the session is encrypted (STARTTLS).
    pub tls: bool,
}

/// Why a message from the Internet is not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "the message claims to be from {domain}, whose DMARC policy says to reject mail it did not send (no aligned DKIM signature or SPF pass)"
    )]
    Dmarc { domain: String },
    #[error("cannot check the sender's DNS records now ({0}); try again later")]
    Temporary(String),
    #[error("cannot read the spooled message: {0}")]
    Spool(String),
}

/// The checks, with the DNS they ask and the name the hub signs its
/// results with (its authserv-id).
pub struct Checker {
    dns: MessageAuthenticator,
    authserv_id: String,
    turns: Semaphore,
}

impl Checker {
    pub fn new(resolver: hickory_resolver::TokioResolver, authserv_id: &str) -> Checker {
        Checker {
            dns: MessageAuthenticator(resolver),
            authserv_id: authserv_id.to_string(),
            turns: Semaphore::new(MAX_CHECKS_AT_ONCE),
        }
    }

    /// Check a received message; `Ok` is the message to store, with the
    /// results in front (a new spool), `Err` why it is refused.
    pub async fn check(
        &self,
        remote: &Remote,
        mail_from: &str,
        received: Received,
        fresh: Spool,
    ) -> Result<Received, Refused> {
        let _turn = self.turns.acquire().await.expect("never closed");
        let Received { spool, header } = received;
        let (spool, raw) = tokio::task::spawn_blocking(move || {
            let mut raw = Vec::new();
            let read = spool
                .reader()
                .map_err(|e| e.to_string())
                .and_then(|mut r| r.read_to_end(&mut raw).map_err(|e| e.to_string()));
            (spool, read.map(|_| raw))
        })
        .await
        .map_err(|e| Refused::Spool(e.to_string()))?;
        drop(spool);
        let raw = raw.map_err(Refused::Spool)?;
        let results = self.results(remote, mail_from, &raw).await?;
        let trace = trace(remote, &self.authserv_id);
        let kept = without_results(&header);
        let mut new_header = trace.into_bytes();
        new_header.extend_from_slice(results.as_bytes());
        new_header.extend_from_slice(&kept);
        let body_start = header.len().min(raw.len());
        tokio::task::spawn_blocking(move || {
            let mut fresh = fresh;
            fresh.write(&new_header)?;
            fresh.write(&raw[body_start..])?;
            Ok::<_, crate::store::Error>(Received {
                spool: fresh,
                header: new_header,
            })
        })
        .await
        .map_err(|e| Refused::Spool(e.to_string()))?
        .map_err(|e| Refused::Spool(e.to_string()))
    }

    /// SPF, DKIM and DMARC for `raw`: the `Authentication-Results` field,
    /// or why the message is refused.
    async fn results(
        &self,
        remote: &Remote,
        mail_from: &str,
        raw: &[u8],
    ) -> Result<String, Refused> {
        let trimmed = at_most_signatures(raw, MAX_SIGNATURES);
        let raw = trimmed.as_deref().unwrap_or(raw);
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            // Nothing to check against (no header section that parses):
            // the encryption rule and the intake decide about it.
            return Ok(AuthenticationResults::new(&self.authserv_id).to_header());
        };
        let helo = remote.helo.as_str();
        let dkim = self.dns.verify_dkim(&message).await;
        let spf = self
            .dns
            .verify_spf(SpfParameters::verify_mail_from(
                remote.ip,
                helo,
                &self.authserv_id,
                mail_from,
            ))
            .await;
        let mail_from_domain = match mail_from.rsplit_once('@') {
            Some((_, d)) => d,
            None => helo,
        };
        let dmarc = self
            .dns
            .verify_dmarc(DmarcParameters::new(
                &message,
                &dkim,
                mail_from_domain,
                &spf,
            ))
            .await;
        let header_from = message.from();
        match dmarc.result() {
            DmarcResult::Fail(_) if dmarc.policy() == Policy::Reject => {
                return Err(Refused::Dmarc {
                    domain: dmarc.domain().to_string(),
                });
            }
            // The policy could not be learnt: a domain that asks for
            // rejection must not get in by a DNS hiccup.
            DmarcResult::TempError(e) => return Err(Refused::Temporary(e.to_string())),
            _ => {}
        }
        let mut results = AuthenticationResults::new(&self.authserv_id)
            .with_dkim_results(&dkim, header_from)
            .with_spf_mailfrom_result(&spf, remote.ip, mail_from, helo)
            .with_dmarc_result(&dmarc)
            .to_header();
        if dkim.is_empty() {
            // RFC 8601 §2.7.1: say so when there was nothing to verify, or
            // only signature fields that do not parse (mail-auth then
            // reports nothing).
            let signed = fields(message.raw_headers())
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("DKIM-Signature"));
            let what = if signed {
                "permerror (a DKIM-Signature field does not parse)"
            } else {
                "none"
            };
            let id = &self.authserv_id;
            results = results.replacen(
                &format!("Authentication-Results: {id}"),
                &format!("Authentication-Results: {id};\r\n\tdkim={what}"),
                1,
            );
        }
        Ok(results)
    }
}

/// `raw` with only its first `max` DKIM-Signature fields, when it has
/// more; `None` when it has no more than that.
fn at_most_signatures(raw: &[u8], max: usize) -> Option<Vec<u8>> {
    let end = memchr::memmem::find(raw, b"\r\n\r\n").map(|p| p + 2)?;
    let mut out = Vec::with_capacity(raw.len());
    let (mut seen, mut dropping) = (0, false);
    for line in raw[..end].split_inclusive(|&b| b == b'\n') {
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let signature = line.len() > 15 && line[..15].eq_ignore_ascii_case(b"dkim-signature:");
            seen += usize::from(signature);
            dropping = signature && seen > max;
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    if seen <= max {
        return None;
    }
    out.extend_from_slice(&raw[end..]);
    Some(out)
}

/// The `Received` line for a message from `remote` (RFC 5321 §4.4; "with
/// ESMTPS" when it came over TLS, RFC 3848).
fn trace(remote: &Remote, by: &str) -> String {
    let helo: String = remote
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | ';'))
        .take(255)
        .collect();
    let date = chrono::DateTime::from_timestamp(crate::store::now(), 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S +0000");
    format!(
        "Received: from {helo} ([{ip}])\r\n\tby {by} with {with}; {date}\r\n",
        ip = remote.ip,
        with = if remote.tls { "ESMTPS" } else { "ESMTP" },
    )
}

/// The header section without its `Authentication-Results` fields: only
/// this hub may say what it found (RFC 8601 §5).
fn without_results(header: &[u8]) -> Vec<u8> {
    if !fields(header)
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("Authentication-Results"))
    {
        return header.to_vec();
    }
    super::intake::strip_fields(header, &["authentication-results"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_signatures_are_checked() {
        let sig = |n: usize| format!("DKIM-Signature: v=1; d=d{n}.example;\r\n b=x\r\n");
        let raw = format!(
            "{}From: <a@b>\r\n\r\nbody\r\n",
            (0..10).map(sig).collect::<String>()
        );
        let cut = String::from_utf8(at_most_signatures(raw.as_bytes(), 8).unwrap()).unwrap();
        assert_eq!(cut.matches("DKIM-Signature:").count(), 8);
        assert!(
            cut.contains("d7.example") && !cut.contains("d8.example"),
            "{cut}"
        );
        assert!(cut.ends_with("From: <a@b>\r\n\r\nbody\r\n"), "{cut}");
        assert_eq!(at_most_signatures(raw.as_bytes(), 10), None);
    }

    #[test]
    fn forged_results_are_removed_and_trace_says_tls() {
        let h =
            b"Authentication-Results: hub.example; dkim=pass\r\n header.d=x\r\nFrom: <a@b>\r\n\r\n";
        let kept = without_results(h);
        assert_eq!(kept, b"From: <a@b>\r\n\r\n");
        let r = Remote {
            ip: "192.0.2.1".parse().unwrap(),
            helo: "mx.example (evil); x".into(),
            tls: true,
        };
        let t = trace(&r, "gw.example");
        assert!(
            t.starts_with(
                "Received: from mx.exampleevilx ([192.0.2.1])\r\n\tby gw.example with ESMTPS; "
            ),
            "{t}"
        );
        assert!(t.ends_with(" +0000\r\n"), "{t}");
    }
}
