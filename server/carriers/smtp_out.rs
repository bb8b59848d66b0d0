//! The Internet's mail servers as a carrier: each domain's MX hosts found
//! by DNS (with STARTTLS when offered), or a smarthost with a login. It
//! says what became of each recipient; the relay decides what that means
//! for the item (`relay/gateway.rs`).

use crate::config::GatewayConfig;
use crate::relay::carrier::{Lookup, MailOut, Outcome, RecordType};
use futures_util::future::BoxFuture;
use hickory_resolver::TokioResolver;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::net::IpAddr;
use std::time::Duration;

/// One SMTP conversation may take this long before it counts as failed.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(60);
/// A DNS question may take this long (each of two tries).
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// MX hosts tried per domain and attempt.
pub const MAX_MX: usize = 5;

/// The gateway's way out.
pub struct Gateway {
    config: GatewayConfig,
    helo: String,
    resolver: Option<TokioResolver>,
}

fn temporary(e: impl std::fmt::Display) -> Outcome {
    Outcome::Temporary(e.to_string())
}

/// The enhanced status code a server put in its reply, if any.
fn enhanced(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
        .find(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// Whether a "no records" error is a real answer (NOERROR, the name has
/// other records) rather than a server failing.
fn answered(e: &hickory_resolver::net::NetError) -> bool {
    use hickory_resolver::net::{DnsError, NetError, NoRecords};
    use hickory_resolver::proto::op::ResponseCode;
    matches!(
        e,
        NetError::Dns(DnsError::NoRecordsFound(NoRecords {
            response_code: ResponseCode::NoError,
            ..
        }))
    )
}

/// A resolver asking `servers` (the system's when empty), with the waits
/// and cache the gateway uses; also what the DKIM/SPF/DMARC checks ask.
pub fn resolver(servers: &[std::net::SocketAddr]) -> Result<TokioResolver, String> {
    use hickory_resolver::config::{
        ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
    };
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let mut builder = if servers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's DNS settings ({e}): set gateway.dns"))?
    } else {
        let list = servers
            .iter()
            .map(|a| {
                let mut udp = ConnectionConfig::udp();
                udp.port = a.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = a.port();
                NameServerConfig::new(a.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(list),
            TokioRuntimeProvider::default(),
        )
    };
    let mut opts = ResolverOpts::default();
    opts.timeout = DNS_TIMEOUT;
    opts.attempts = 2;
    opts.cache_size = 256;
    *builder.options_mut() = opts;
    builder
        .build()
        .map_err(|e| format!("cannot set up DNS lookups: {e}"))
}

/// A lettre failure as an outcome for every recipient of the attempt.
fn classify(e: &lettre::transport::smtp::Error, smarthost: bool) -> Outcome {
    let text = e.to_string();
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    // A refused login is the operator's mistake, not the mail's.
    if matches!(code.as_str(), "530" | "534" | "535" | "538") {
        return Outcome::Temporary(format!(
            "the smarthost refused the login ({text}): check gateway.smarthost_user and gateway.smarthost_password"
        ));
    }
    if e.is_permanent() {
        return Outcome::Permanent {
            status: enhanced(&text)
                .filter(|s| s.starts_with('5'))
                .unwrap_or_else(|| "5.0.0".into()),
            diagnostic: format!(
                "{} said: {text}",
                if smarthost {
                    "the smarthost"
                } else {
                    "the mail server"
                }
            ),
        };
    }
    Outcome::Temporary(text)
}

impl Gateway {
    pub fn new(config: &GatewayConfig, helo: &str) -> Result<Gateway, String> {
        // By MX the resolver is needed to send at all; with a smarthost
        // only to check the records the gateway asks to be published.
        let resolver = if config.smarthost.is_empty() {
            Some(resolver(&config.dns)?)
        } else {
            resolver(&config.dns).ok()
        };
        Ok(Gateway {
            config: config.clone(),
            helo: helo.to_string(),
            resolver,
        })
    }

    fn transport(
        &self,
        host: &str,
        port: u16,
        tls: Tls,
        login: bool,
    ) -> AsyncSmtpTransport<Tokio1Executor> {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .hello_name(ClientId::Domain(self.helo.clone()))
            .timeout(Some(SMTP_TIMEOUT));
        if login && !self.config.smarthost_user.is_empty() {
            b = b.credentials(Credentials::new(
                self.config.smarthost_user.clone(),
                self.config.smarthost_password.0.clone(),
            ));
        }
        b.build()
    }

    /// One SMTP transaction; if the server refuses it outright and there
    /// are several recipients, each is tried alone so one bad address does
    /// not bounce the others.
    async fn send(
        &self,
        transport: &AsyncSmtpTransport<Tokio1Executor>,
        from: &str,
        rcpts: &[String],
        message: &[u8],
        smarthost: bool,
    ) -> Vec<(String, Outcome)> {
        let sender = if from.is_empty() {
            None
        } else {
            match from.parse::<lettre::Address>() {
                Ok(a) => Some(a),
                Err(e) => {
                    let o = Outcome::Permanent {
                        status: "5.1.7".into(),
                        diagnostic: format!(
                            "the sender address {from} cannot be used on the Internet: {e}"
                        ),
                    };
                    return rcpts.iter().map(|r| (r.clone(), o.clone())).collect();
                }
            }
        };
        let mut out = Vec::new();
        let mut good = Vec::new();
        for r in rcpts {
            match r.parse::<lettre::Address>() {
                Ok(a) => good.push((r.clone(), a)),
                Err(e) => out.push((
                    r.clone(),
                    Outcome::Permanent {
                        status: "5.1.3".into(),
                        diagnostic: format!("not an address the Internet takes: {e}"),
                    },
                )),
            }
        }
        if good.is_empty() {
            return out;
        }
        let attempt = |list: Vec<lettre::Address>| {
            let sender = sender.clone();
            async move {
                let env =
                    Envelope::new(sender, list).map_err(|e| Outcome::Temporary(e.to_string()))?;
                transport
                    .send_raw(&env, message)
                    .await
                    .map_err(|e| classify(&e, smarthost))
            }
        };
        match attempt(good.iter().map(|(_, a)| a.clone()).collect()).await {
            Ok(_) => out.extend(good.into_iter().map(|(r, _)| (r, Outcome::Delivered))),
            Err(Outcome::Permanent { .. }) if good.len() > 1 => {
                for (r, a) in good {
                    let o = match attempt(vec![a]).await {
                        Ok(_) => Outcome::Delivered,
                        Err(o) => o,
                    };
                    out.push((r, o));
                }
            }
            Err(o) => out.extend(good.into_iter().map(|(r, _)| (r, o.clone()))),
        }
        out
    }

    /// The hosts that take mail for `domain`, best first, with the name
    /// their certificate should carry; or why there are none.
    async fn mx_hosts(&self, domain: &str) -> Result<Vec<(IpAddr, String)>, Outcome> {
        if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            let ip: IpAddr =
                lit.trim_start_matches("IPv6:")
                    .parse()
                    .map_err(|_| Outcome::Permanent {
                        status: "5.1.2".into(),
                        diagnostic: format!("{domain} is not an address literal"),
                    })?;
            return Ok(vec![(ip, lit.to_string())]);
        }
        let Some(resolver) = self.resolver.as_ref() else {
            return Err(temporary("no DNS resolver"));
        };
        let names: Vec<String> = match resolver.mx_lookup(format!("{domain}.")).await {
            Ok(mx) => {
                use hickory_resolver::proto::rr::RData;
                let mut recs: Vec<(u16, String)> = mx
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(m) => Some((m.preference, m.exchange.to_utf8())),
                        _ => None,
                    })
                    .collect();
                recs.sort();
                // RFC 7505: a single "." MX says the domain takes no mail.
                if recs.len() == 1 && (recs[0].1 == "." || recs[0].1.is_empty()) {
                    return Err(Outcome::Permanent {
                        status: "5.1.10".into(),
                        diagnostic: format!("{domain} accepts no mail (null MX)"),
                    });
                }
                recs.into_iter()
                    .map(|(_, n)| n.trim_end_matches('.').to_string())
                    .collect()
            }
            Err(e) if e.is_nx_domain() => {
                return Err(Outcome::Permanent {
                    status: "5.1.2".into(),
                    diagnostic: format!("the domain {domain} does not exist"),
                });
            }
            // RFC 5321 §5.1: no MX records, the domain itself is the host.
            // (A SERVFAIL also comes as "no records": that is no answer.)
            Err(e) if e.is_no_records_found() && answered(&e) => vec![domain.to_string()],
            Err(e) => {
                return Err(Outcome::Temporary(format!(
                    "looking up where mail for {domain} goes failed ({e}); trying again later"
                )));
            }
        };
        let mut hosts = Vec::new();
        let mut last = None;
        for name in names.into_iter().take(MAX_MX) {
            match resolver.lookup_ip(format!("{name}.")).await {
                Ok(ips) => hosts.extend(ips.iter().take(2).map(|ip| (ip, name.clone()))),
                Err(e) => last = Some(format!("looking up {name} failed ({e})")),
            }
        }
        if hosts.is_empty() {
            return Err(Outcome::Temporary(last.unwrap_or_else(|| {
                format!("no address for the mail hosts of {domain}")
            })));
        }
        Ok(hosts)
    }

    /// Deliver one message; the outcome for each recipient.
    pub async fn deliver(
        &self,
        from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Vec<(String, Outcome)> {
        if let Some((host, port)) = self.config.smarthost.rsplit_once(':') {
            let port: u16 = port.parse().unwrap_or(587);
            let tls = match self.smarthost_tls(host) {
                Ok(t) => t,
                Err(why) => return rcpts.iter().map(|r| (r.clone(), temporary(&why))).collect(),
            };
            let t = self.transport(host, port, tls, true);
            return self.send(&t, from, rcpts, message, true).await;
        }
        // By MX: one transaction per recipient domain.
        let mut by_domain: Vec<(String, Vec<String>)> = Vec::new();
        for r in rcpts {
            let d = r
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            match by_domain.iter_mut().find(|(x, _)| *x == d) {
                Some((_, v)) => v.push(r.clone()),
                None => by_domain.push((d, vec![r.clone()])),
            }
        }
        let mut out = Vec::new();
        for (domain, list) in by_domain {
            let hosts = match self.mx_hosts(&domain).await {
                Ok(h) => h,
                Err(o) => {
                    out.extend(list.into_iter().map(|r| (r, o.clone())));
                    continue;
                }
            };
            let mut result = None;
            for (ip, name) in hosts {
                // Opportunistic STARTTLS, as between MX hosts (RFC 7435):
                // encrypt when offered, whatever the certificate.
                let params = TlsParameters::builder(name.clone())
                    .dangerous_accept_invalid_certs(true)
                    .dangerous_accept_invalid_hostnames(true)
                    .build_rustls();
                let tls = match params {
                    Ok(p) => Tls::Opportunistic(p),
                    Err(_) => Tls::None,
                };
                let t = self.transport(&ip.to_string(), self.config.mx_port, tls, false);
                let got = self.send(&t, from, &list, message, false).await;
                // Another host may take it when this one could not be reached.
                let all_temporary = got.iter().all(|(_, o)| matches!(o, Outcome::Temporary(_)));
                result = Some(got);
                if !all_temporary {
                    break;
                }
            }
            out.extend(result.unwrap_or_default());
        }
        out
    }

    fn smarthost_tls(&self, host: &str) -> Result<Tls, String> {
        let mut b = TlsParameters::builder(host.to_string());
        if !self.config.smarthost_ca.is_empty() {
            let pem = std::fs::read(&self.config.smarthost_ca).map_err(|e| {
                format!(
                    "cannot read gateway.smarthost_ca {}: {e}",
                    self.config.smarthost_ca
                )
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("gateway.smarthost_ca is not a PEM certificate: {e}"))?;
            b = b.add_root_certificate(cert);
        }
        let p = b.build_rustls().map_err(|e| e.to_string())?;
        Ok(if self.config.smarthost_tls == "tls" {
            Tls::Wrapper(p)
        } else {
            Tls::Required(p)
        })
    }
}

impl MailOut for Gateway {
    fn deliver<'a>(
        &'a self,
        from: &'a str,
        rcpts: &'a [String],
        message: &'a [u8],
    ) -> BoxFuture<'a, Vec<(String, Outcome)>> {
        Box::pin(Gateway::deliver(self, from, rcpts, message))
    }

    fn lookup<'a>(&'a self, name: &'a str, kind: RecordType) -> BoxFuture<'a, Lookup> {
        Box::pin(async move {
            use hickory_resolver::proto::rr::RData;
            let Some(resolver) = &self.resolver else {
                return Lookup::Failed(
                    "cannot read the system's DNS settings: set gateway.dns".into(),
                );
            };
            let fqdn = format!("{}.", name.trim_end_matches('.'));
            let answer = match kind {
                RecordType::Mx => resolver.mx_lookup(fqdn).await,
                RecordType::Txt => resolver.txt_lookup(fqdn).await,
            };
            match answer {
                Ok(found) => Lookup::Found(
                    found
                        .answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::MX(m) if kind == RecordType::Mx => Some(
                                m.exchange
                                    .to_utf8()
                                    .trim_end_matches('.')
                                    .to_ascii_lowercase(),
                            ),
                            RData::TXT(t) if kind == RecordType::Txt => Some(
                                t.txt_data
                                    .iter()
                                    .map(|part| String::from_utf8_lossy(part))
                                    .collect::<String>(),
                            ),
                            _ => None,
                        })
                        .collect(),
                ),
                Err(e) if e.is_nx_domain() || (e.is_no_records_found() && answered(&e)) => {
                    Lookup::Missing
                }
                Err(e) => Lookup::Failed(e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes_are_found_in_replies() {
        assert_eq!(
            enhanced("permanent error (550): 5.1.1 <x@y>: user unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(enhanced("550 no such user"), None);
        assert_eq!(enhanced("4.7.0 try later").as_deref(), Some("4.7.0"));
    }
}
