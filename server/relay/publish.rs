//! The DNS records a gateway asks its admin to publish, per domain it
//! carries (its own, and each camp domain routed through it), and a check
//! of what the Internet's DNS has of them:
//!
//! - MX: mail for the domain comes to the gateway's public name;
//! - SPF (RFC 7208): the gateway (the domain's MX host), or its smarthost,
//!   sends the domain's mail, nothing else does;
//! - DKIM (RFC 6376, RFC 8463): the two public keys the gateway signs
//!   with (`mail/dkim.rs`);
//! - DMARC (RFC 7489): reject what fails, with strict alignment — what
//!   chatmail relays publish, and what they expect of others.

use super::carrier::{Lookup, RecordType};
use super::{Relay, RelayError};
use crate::mail::dkim;
use crate::store::relay::PeerRow;

/// The DMARC policy published for every domain (chatmail's).
pub const DMARC: &str = "v=DMARC1; p=reject; adkim=s; aspf=s";

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// The mail domain it is for.
    pub domain: String,
    /// The owner name, without the trailing dot.
    pub name: String,
    pub kind: RecordType,
    /// MX: the host name; TXT: the text.
    pub value: String,
    /// What it is for, in a few words.
    pub purpose: &'static str,
}

impl DnsRecord {
    /// The record as a zone-file line (long TXT values split into strings
    /// of at most 255 characters, RFC 1035 §3.3.14).
    pub fn zone_line(&self) -> String {
        match self.kind {
            RecordType::Mx => format!("{}. 3600 IN MX 10 {}.", self.name, self.value),
            RecordType::Txt => {
                let parts: Vec<String> = self
                    .value
                    .as_bytes()
                    .chunks(255)
                    .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                    .collect();
                format!("{}. 3600 IN TXT {}", self.name, parts.join(" "))
            }
        }
    }

    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
        }
    }
}

/// What DNS has of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    Found,
    /// Something else is published there (shown so the admin can fix it).
    Different(Vec<String>),
    Missing,
    /// DNS could not be asked; why.
    Unknown(String),
}

impl Published {
    pub fn word(&self) -> &'static str {
        match self {
            Published::Found => "found",
            Published::Different(_) => "different",
            Published::Missing => "missing",
            Published::Unknown(_) => "not checked",
        }
    }
}

/// The tag that makes a TXT record one of its kind: the DKIM record is
/// the only TXT at its name, the others share the domain's name.
fn family(value: &str) -> Option<&'static str> {
    let v = value.trim_start().to_ascii_lowercase();
    ["v=spf1", "v=dkim1", "v=dmarc1"]
        .into_iter()
        .find(|p| v.starts_with(p))
}

/// A TXT value without spaces around its `;` separators, for comparing.
fn normal(value: &str) -> String {
    value
        .split(';')
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(";")
        .to_ascii_lowercase()
}

/// Compare what DNS answered with the record.
pub fn judge(record: &DnsRecord, answer: Lookup) -> Published {
    let found = match answer {
        Lookup::Found(f) => f,
        Lookup::Missing => return Published::Missing,
        Lookup::Failed(why) => return Published::Unknown(why),
    };
    let relevant: Vec<String> = match record.kind {
        RecordType::Mx => found,
        // DKIM records need not say v=DKIM1; everything at the selector's
        // name counts.
        RecordType::Txt if record.name.contains("._domainkey.") => found,
        RecordType::Txt => found
            .into_iter()
            .filter(|t| family(t) == family(&record.value))
            .collect(),
    };
    let same = |t: &String| match record.kind {
        RecordType::Mx => t.eq_ignore_ascii_case(&record.value),
        // Base64 is case-sensitive: the key compared as published.
        RecordType::Txt if record.name.contains("._domainkey.") => {
            t.split_whitespace().collect::<String>()
                == record.value.split_whitespace().collect::<String>()
        }
        RecordType::Txt => normal(t) == normal(&record.value),
    };
    if relevant.iter().any(same) {
        Published::Found
    } else if relevant.is_empty() {
        Published::Missing
    } else {
        Published::Different(relevant)
    }
}

impl Relay {
    /// The gateway's Internet peer (the one with an smtp uplink), if this
    /// node is a gateway.
    pub async fn internet_peer(&self) -> Result<Option<PeerRow>, RelayError> {
        let Some(up) = self
            .store()
            .uplinks()
            .await?
            .into_iter()
            .find(|u| u.carrier == "smtp")
        else {
            return Ok(None);
        };
        Ok(self.store().peer_by_name(&up.peer_name).await?)
    }

    /// The domains mail leaves through this gateway as: its own (names,
    /// not address literals) first, then those routed to other nodes.
    pub async fn carried_domains(&self, internet: &PeerRow) -> Result<Vec<String>, RelayError> {
        let mut carried: Vec<String> = self
            .config
            .domains
            .iter()
            .filter(|d| d.ip().is_none())
            .map(|d| d.to_string())
            .collect();
        for (domain, peer, _) in self.store().routes().await? {
            if domain != "*"
                && peer != internet.id
                && !domain.starts_with('[')
                && !carried.contains(&domain)
            {
                carried.push(domain);
            }
        }
        Ok(carried)
    }

    /// Every record to publish, domain by domain; DKIM keys are made now
    /// if they are new (so the admin can publish them before the first
    /// message leaves). An error says why there are none: this node is
    /// not a gateway, or it has no domain name to publish records under.
    pub async fn dns_records(&self) -> Result<Vec<DnsRecord>, RelayError> {
        let Some(internet) = self.internet_peer().await? else {
            return Err(RelayError::Input(
                "this node is not a gateway: make the Internet a peer first (`cairn peer add-internet`, or the Uplinks page)".into(),
            ));
        };
        let host = self.config.helo.trim_end_matches('.').to_ascii_lowercase();
        if !host.contains('.') || host.ends_with(".local") || host.ends_with(".localhost") {
            return Err(RelayError::Input(format!(
                "the gateway calls itself `{host}`, which is not a name on the Internet: add its public name (such as mx.camp.example) first in hub.hostnames — the MX records point there"
            )));
        }
        let spf = match self.config.gateway.smarthost.rsplit_once(':') {
            Some((smarthost, _)) if !smarthost.is_empty() => {
                format!("v=spf1 mx a:{smarthost} -all")
            }
            _ => "v=spf1 mx -all".to_string(),
        };
        let carried = self.carried_domains(&internet).await?;
        if carried.is_empty() {
            return Err(RelayError::Input(
                "the gateway's mail domains are address literals (hub.domains): DNS records need a domain name such as camp.example".into(),
            ));
        }
        let mut out = Vec::new();
        for domain in carried {
            let record = |name: String, kind, value: String, purpose| DnsRecord {
                domain: domain.clone(),
                name,
                kind,
                value,
                purpose,
            };
            out.push(record(
                domain.clone(),
                RecordType::Mx,
                host.clone(),
                "mail for the domain comes to this gateway",
            ));
            out.push(record(
                domain.clone(),
                RecordType::Txt,
                spf.clone(),
                "SPF: only this gateway sends the domain's mail",
            ));
            let domain_keys = self.domain_keys(&domain).await?;
            for k in domain_keys.records() {
                out.push(record(
                    k.name.clone(),
                    RecordType::Txt,
                    k.value.clone(),
                    if k.selector == dkim::SELECTOR_RSA {
                        "DKIM: the RSA key the gateway signs with"
                    } else {
                        "DKIM: the Ed25519 key the gateway signs with"
                    },
                ));
            }
            out.push(record(
                format!("_dmarc.{domain}"),
                RecordType::Txt,
                DMARC.to_string(),
                "DMARC: receivers reject mail that fails these checks",
            ));
        }
        Ok(out)
    }

    /// Ask the Internet's DNS about each record.
    pub async fn check_dns(&self, records: &[DnsRecord]) -> Result<Vec<Published>, RelayError> {
        let out = self
            .carriers()
            .smtp(&self.config.gateway, &self.config.helo)
            .map_err(RelayError::Input)?;
        let mut results = Vec::with_capacity(records.len());
        for r in records {
            results.push(judge(r, out.lookup(&r.name, r.kind).await));
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(name: &str, value: &str) -> DnsRecord {
        DnsRecord {
            domain: "camp.example".into(),
            name: name.into(),
            kind: RecordType::Txt,
            value: value.into(),
            purpose: "",
        }
    }

    #[test]
    fn answers_are_judged_by_kind() {
        let spf = txt("camp.example", "v=spf1 mx -all");
        let found = |v: &[&str]| Lookup::Found(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            judge(
                &spf,
                found(&["google-site-verification=x", "v=spf1  mx  -all"])
            ),
            Published::Found
        );
        assert_eq!(
            judge(&spf, found(&["v=spf1 a -all"])),
            Published::Different(vec!["v=spf1 a -all".into()])
        );
        assert_eq!(judge(&spf, found(&["other=1"])), Published::Missing);
        assert_eq!(judge(&spf, Lookup::Missing), Published::Missing);
        let dmarc = txt("_dmarc.camp.example", DMARC);
        assert_eq!(
            judge(&dmarc, found(&["v=DMARC1;p=reject;adkim=s;aspf=s"])),
            Published::Found
        );
        let key = txt("s._domainkey.camp.example", "v=DKIM1; k=rsa; p=AbC");
        assert_eq!(
            judge(&key, found(&["v=DKIM1; k=rsa; p=AbC"])),
            Published::Found
        );
        assert!(matches!(
            judge(&key, found(&["v=DKIM1; k=rsa; p=abc"])),
            Published::Different(_)
        ));
        assert_eq!(
            judge(&key, Lookup::Failed("timeout".into())),
            Published::Unknown("timeout".into())
        );
    }

    #[test]
    fn long_txt_values_are_split_for_zone_files() {
        let long = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(400);
        let line = txt("cairn-rsa._domainkey.camp.example", &long).zone_line();
        assert!(line.starts_with("cairn-rsa._domainkey.camp.example. 3600 IN TXT \"v=DKIM1"));
        assert_eq!(line.matches('"').count(), 4, "{line}");
    }
}
