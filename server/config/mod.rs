//! The one configuration: an optional TOML file, `CAIRN_*` environment
//! overrides, and command-line flags, on top of a profile's defaults.
//!
//! Every field is described once, in [`FIELDS`]: that table drives parsing,
//! the environment variable names, validation messages and the generated
//! `cairn.example.toml`, so the documentation cannot drift from the code.
//!
//! Settings the admin page changes at run time live in the database; this
//! file holds what must be known before the database is open.

pub mod services;

use crate::domain::{AddressError, Domain};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Largest message size an operator may configure: a Pi's SD card and a
/// phone's mobile data both suffer long before this.
pub const MAX_MESSAGE_SIZE_CEILING: u64 = 1 << 30;
/// Smallest sensible message cap: an encrypted Delta Chat text is ~3 KiB.
pub const MAX_MESSAGE_SIZE_FLOOR: u64 = 16 << 10;
/// Connection cap ceiling per service; each session costs file descriptors.
pub const MAX_CONNECTIONS_CEILING: u64 = 100_000;
/// A hub name is shown on pages and node cards; keep it to one short line.
pub const MAX_HUB_NAME: usize = 63;

/// Which set of defaults applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Loopback and unprivileged ports, data in `./cairn-data`.
    Laptop,
    /// The Raspberry Pi image: standard ports on all interfaces.
    Appliance,
}

impl Profile {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "laptop" => Some(Profile::Laptop),
            "appliance" => Some(Profile::Appliance),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Laptop => "laptop",
            Profile::Appliance => "appliance",
        }
    }
}

/// A size in bytes, written as a number or with a unit (`30 MiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let num: u64 = num.parse().ok()?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => return None,
        };
        num.checked_mul(mult).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= size && n.is_multiple_of(size) {
                return write!(f, "{} {unit}", n / size);
            }
        }
        write!(f, "{n} B")
    }
}

/// Names and addresses by which phones reach the hub: a DNS name or an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hostname {
    Name(String),
    Ip(IpAddr),
}

impl Hostname {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Hostname::Ip(ip));
        }
        match Domain::parse(s) {
            Ok(Domain::Name(n)) => Ok(Hostname::Name(n)),
            Ok(Domain::Literal(ip)) => Ok(Hostname::Ip(ip)),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hostname::Name(n) => f.write_str(n),
            Hostname::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    pub name: String,
    pub domains: Vec<Domain>,
    pub hostnames: Vec<Hostname>,
}

/// Listen addresses per service; an empty list switches the service off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    pub smtp_submission_tls: Vec<SocketAddr>,
    pub smtp_submission: Vec<SocketAddr>,
    pub smtp_mx: Vec<SocketAddr>,
    pub imap_tls: Vec<SocketAddr>,
    pub imap: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
    pub link: Vec<SocketAddr>,
}

impl ListenConfig {
    /// (config key, addresses) for every service, in a stable order.
    pub fn services(&self) -> [(&'static str, &[SocketAddr]); 8] {
        [
            ("listen.smtp_submission_tls", &self.smtp_submission_tls),
            ("listen.smtp_submission", &self.smtp_submission),
            ("listen.smtp_mx", &self.smtp_mx),
            ("listen.imap_tls", &self.imap_tls),
            ("listen.imap", &self.imap),
            ("listen.http", &self.http),
            ("listen.https", &self.https),
            ("listen.link", &self.link),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_message_size: ByteSize,
    pub max_connections: u32,
    pub max_connections_per_address: u32,
    pub max_recipients: u32,
    pub mailbox_quota: ByteSize,
    pub send_per_minute: u32,
    pub send_burst: u32,
    pub max_bundle_size: ByteSize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    pub require_encryption: bool,
    pub create_on_login: bool,
    pub delete_after_days: u32,
    pub delete_large_after_days: u32,
    pub outbox_lifetime_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    pub allow_plaintext_auth: bool,
}

/// A secret setting: never shown in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// How a gateway (a node with Internet reach) hands mail to the Internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// `host:port` of a smarthost; empty: each domain's MX by DNS.
    pub smarthost: String,
    /// `starttls` (port 587 style) or `tls` (port 465 style).
    pub smarthost_tls: String,
    pub smarthost_user: String,
    pub smarthost_password: Secret,
    /// A PEM certificate (file) trusted for the smarthost besides the
    /// built-in roots; empty: none.
    pub smarthost_ca: String,
    /// Port of MX hosts (25; tests use others).
    pub mx_port: u16,
    /// DNS servers for MX lookups (`ip` or `ip:port`); empty: the system's.
    pub dns: Vec<SocketAddr>,
}

/// The hub's LoRa modem, if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct RadioConfig {
    /// The modem's serial device ("/dev/ttyUSB0", a udev symlink, or the
    /// simulator's); empty: no radio.
    pub port: String,
    pub settings: crate::carriers::lora::modem::Settings,
    /// Items larger than this stay off the air (for another carrier).
    pub max_item: ByteSize,
}

impl Default for RadioConfig {
    fn default() -> RadioConfig {
        RadioConfig {
            port: String::new(),
            settings: crate::carriers::lora::modem::Settings::default(),
            max_item: ByteSize(64 << 10),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub profile: Profile,
    pub data_dir: PathBuf,
    pub hub: HubConfig,
    pub listen: ListenConfig,
    pub limits: Limits,
    pub mail: MailConfig,
    pub security: Security,
    pub gateway: GatewayConfig,
    pub radio: RadioConfig,
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter()
        .map(|a| a.parse().expect("default listen address parses"))
        .collect()
}

impl Config {
    /// Set one field by its dotted key, checked as the file's value would
    /// be. The error says what is wrong with the value.
    pub fn set_field(&mut self, key: &str, value: &toml::Value) -> Result<(), String> {
        let field = FIELDS
            .iter()
            .find(|f| f.key == key)
            .ok_or_else(|| format!("no setting {key}"))?;
        (field.apply)(self, value)
    }

    /// The built-in defaults of a profile.
    pub fn defaults(profile: Profile) -> Self {
        match profile {
            Profile::Laptop => Config {
                profile,
                data_dir: PathBuf::from("./cairn-data"),
                hub: HubConfig {
                    name: "cairn".into(),
                    domains: vec![Domain::Literal([127, 0, 0, 1].into())],
                    hostnames: vec![
                        Hostname::Ip([127, 0, 0, 1].into()),
                        Hostname::Name("localhost".into()),
                    ],
                },
                listen: ListenConfig {
                    smtp_submission_tls: addrs(&["127.0.0.1:1465"]),
                    smtp_submission: addrs(&["127.0.0.1:1587"]),
                    smtp_mx: addrs(&["127.0.0.1:2525"]),
                    imap_tls: addrs(&["127.0.0.1:1993"]),
                    imap: addrs(&["127.0.0.1:1143"]),
                    http: addrs(&["127.0.0.1:8080"]),
                    https: addrs(&["127.0.0.1:8443"]),
                    link: addrs(&["127.0.0.1:7465"]),
                },
                limits: Limits {
                    max_message_size: ByteSize(30 << 20),
                    max_connections: 1000,
                    max_connections_per_address: 50,
                    max_recipients: 1000,
                    mailbox_quota: ByteSize(500 << 20),
                    send_per_minute: 60,
                    send_burst: 10,
                    max_bundle_size: ByteSize(1 << 30),
                },
                mail: MailConfig {
                    require_encryption: true,
                    create_on_login: true,
                    delete_after_days: 20,
                    delete_large_after_days: 7,
                    outbox_lifetime_days: 14,
                },
                security: Security {
                    allow_plaintext_auth: false,
                },
                gateway: GatewayConfig::default(),
                radio: RadioConfig::default(),
            },
            Profile::Appliance => Config {
                profile,
                data_dir: PathBuf::from("/var/lib/cairn"),
                hub: HubConfig {
                    name: "cairn".into(),
                    domains: vec![Domain::Literal([10, 42, 0, 1].into())],
                    hostnames: vec![
                        Hostname::Ip([10, 42, 0, 1].into()),
                        Hostname::Name("hub.camp".into()),
                    ],
                },
                listen: ListenConfig {
                    smtp_submission_tls: addrs(&["0.0.0.0:465"]),
                    smtp_submission: addrs(&["0.0.0.0:587"]),
                    smtp_mx: addrs(&["0.0.0.0:25"]),
                    imap_tls: addrs(&["0.0.0.0:993"]),
                    imap: addrs(&["0.0.0.0:143"]),
                    http: addrs(&["0.0.0.0:80"]),
                    https: addrs(&["0.0.0.0:443"]),
                    link: addrs(&["[::]:7465"]),
                },
                limits: Limits {
                    max_message_size: ByteSize(30 << 20),
                    max_connections: 1000,
                    max_connections_per_address: 50,
                    max_recipients: 1000,
                    mailbox_quota: ByteSize(500 << 20),
                    send_per_minute: 60,
                    send_burst: 10,
                    max_bundle_size: ByteSize(1 << 30),
                },
                mail: MailConfig {
                    require_encryption: true,
                    create_on_login: true,
                    delete_after_days: 20,
                    delete_large_after_days: 7,
                    outbox_lifetime_days: 14,
                },
                security: Security {
                    allow_plaintext_auth: false,
                },
                gateway: GatewayConfig::default(),
                radio: RadioConfig::default(),
            },
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            smarthost: String::new(),
            smarthost_tls: "starttls".into(),
            smarthost_user: String::new(),
            smarthost_password: Secret::default(),
            smarthost_ca: String::new(),
            mx_port: 25,
            dns: Vec::new(),
        }
    }
}

/// Where a value came from, so a message can point at the right place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "in {}", p.display()),
            Origin::Env(v) => write!(f, "from environment variable {v}"),
            Origin::Flag(flag) => write!(f, "from {flag}"),
        }
    }
}

/// One thing wrong with the configuration, named by its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub origin: Option<Origin>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "`{}` ({o}): {}", self.field, self.message),
            None => write!(f, "`{}`: {}", self.field, self.message),
        }
    }
}

/// Every problem found; shown one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "config {p}")?;
        }
        Ok(())
    }
}

/// How an environment string becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
    Flag,
    List,
}

type Apply = fn(&mut Config, &toml::Value) -> Result<(), String>;
type Show = fn(&Config) -> toml::Value;

/// One documented configuration field.
pub struct Field {
    /// The dotted key, as in the file (`limits.max_message_size`).
    pub key: &'static str,
    pub env: &'static str,
    pub doc: &'static str,
    kind: Kind,
    apply: Apply,
    show: Show,
}

fn text(v: &toml::Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a text in quotes, found {}", v.type_str()))
}

fn list<T>(v: &toml::Value, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    let arr = v.as_array().ok_or_else(|| {
        format!(
            "expected a list like [\"a\", \"b\"], found {}",
            v.type_str()
        )
    })?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, item) in arr.iter().enumerate() {
        let s = item.as_str().ok_or_else(|| {
            format!(
                "item {i}: expected a text in quotes, found {}",
                item.type_str()
            )
        })?;
        out.push(parse(s).map_err(|e| format!("item {i} `{s}`: {e}"))?);
    }
    Ok(out)
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        "not an IP address with a port: write 127.0.0.1:8080, 0.0.0.0:80 or [::1]:8080".to_string()
    })
}

fn domain(s: &str) -> Result<Domain, String> {
    Domain::parse(s).map_err(|e: AddressError| e.to_string())
}

fn str_list(items: impl IntoIterator<Item = String>) -> toml::Value {
    toml::Value::Array(items.into_iter().map(toml::Value::String).collect())
}

/// A size field: a number of bytes or a text with a unit, within `lo..=hi`.
fn size_in(v: &toml::Value, lo: u64, hi: u64) -> Result<ByteSize, String> {
    let size = match v {
        toml::Value::Integer(n) => u64::try_from(*n).ok().map(ByteSize),
        toml::Value::String(s) => ByteSize::parse(s),
        _ => None,
    }
    .ok_or_else(|| "expected a size such as \"30 MiB\" or a number of bytes".to_string())?;
    if !(lo..=hi).contains(&size.0) {
        return Err(format!(
            "{size} is out of range: must be between {} and {}",
            ByteSize(lo),
            ByteSize(hi)
        ));
    }
    Ok(size)
}

fn number_in(v: &toml::Value, lo: u64, hi: u64) -> Result<u64, String> {
    let n = v
        .as_integer()
        .ok_or_else(|| format!("expected a whole number, found {}", v.type_str()))?;
    let n = u64::try_from(n).map_err(|_| format!("must be between {lo} and {hi}"))?;
    if !(lo..=hi).contains(&n) {
        return Err(format!(
            "{n} is out of range: must be between {lo} and {hi}"
        ));
    }
    Ok(n)
}

macro_rules! listen_field {
    ($key:literal, $env:literal, $field:ident, $doc:literal) => {
        Field {
            key: $key,
            env: $env,
            doc: $doc,
            kind: Kind::List,
            apply: |c, v| {
                c.listen.$field = list(v, socket_addr)?;
                Ok(())
            },
            show: |c| str_list(c.listen.$field.iter().map(|a| a.to_string())),
        }
    };
}

/// Every configuration field, in the order of the example file.
pub static FIELDS: &[Field] = &[
    Field {
        key: "profile",
        env: "CAIRN_PROFILE",
        doc: "Which defaults apply: \"laptop\" (loopback, unprivileged ports, ./cairn-data) or \"appliance\" (standard ports on all interfaces, /var/lib/cairn). Fields set below override the profile.",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?;
            c.profile = Profile::parse(&s).ok_or_else(|| {
                format!("unknown profile `{s}`: write \"laptop\" or \"appliance\"")
            })?;
            Ok(())
        },
        show: |c| toml::Value::String(c.profile.as_str().into()),
    },
    Field {
        key: "data_dir",
        env: "CAIRN_DATA",
        doc: "Directory for the database, mail, keys and certificate; made on first start (its parent must exist). Also set by --data.",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?;
            if s.trim().is_empty() {
                return Err("must not be empty: write a directory such as \"./cairn-data\"".into());
            }
            c.data_dir = PathBuf::from(s);
            Ok(())
        },
        show: |c| toml::Value::String(c.data_dir.display().to_string()),
    },
    Field {
        key: "hub.name",
        env: "CAIRN_HUB_NAME",
        doc: "The hub's name, shown on its pages and node card.",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?;
            let s = s.trim();
            if s.is_empty() {
                return Err("must not be empty: name the hub, e.g. \"riverside-camp\"".into());
            }
            if s.chars().count() > MAX_HUB_NAME {
                return Err(format!("is longer than {MAX_HUB_NAME} characters"));
            }
            if s.chars().any(char::is_control) {
                return Err("must not contain control characters or line breaks".into());
            }
            c.hub.name = s.to_string();
            Ok(())
        },
        show: |c| toml::Value::String(c.hub.name.clone()),
    },
    Field {
        key: "hub.domains",
        env: "CAIRN_HUB_DOMAINS",
        doc: "Mail domains hosted here: accounts are user@<domain>. DNS names (internationalised ones too) or IP literals such as \"[10.42.0.1]\". The first is the default for new accounts.",
        kind: Kind::List,
        apply: |c, v| {
            let ds = list(v, domain)?;
            if ds.is_empty() {
                return Err(
                    "must list at least one domain, e.g. [\"[10.42.0.1]\"] or [\"camp.example\"]"
                        .into(),
                );
            }
            for (i, d) in ds.iter().enumerate() {
                if ds[..i].contains(d) {
                    return Err(format!("`{d}` is listed twice"));
                }
            }
            c.hub.domains = ds;
            Ok(())
        },
        show: |c| str_list(c.hub.domains.iter().map(|d| d.to_string())),
    },
    Field {
        key: "hub.hostnames",
        env: "CAIRN_HUB_HOSTNAMES",
        doc: "Names and IP addresses phones use to reach the hub. They go into the TLS certificate; the first is the server address in account QR codes.",
        kind: Kind::List,
        apply: |c, v| {
            let hs = list(v, Hostname::parse)?;
            if hs.is_empty() {
                return Err("must list at least one name or address, e.g. [\"10.42.0.1\"]".into());
            }
            c.hub.hostnames = hs;
            Ok(())
        },
        show: |c| str_list(c.hub.hostnames.iter().map(|h| h.to_string())),
    },
    listen_field!(
        "listen.smtp_submission_tls",
        "CAIRN_LISTEN_SMTP_SUBMISSION_TLS",
        smtp_submission_tls,
        "SMTP submission with implicit TLS (port 465 style), used by phones to send. [] switches it off."
    ),
    listen_field!(
        "listen.smtp_submission",
        "CAIRN_LISTEN_SMTP_SUBMISSION",
        smtp_submission,
        "SMTP submission with STARTTLS (port 587 style)."
    ),
    listen_field!(
        "listen.smtp_mx",
        "CAIRN_LISTEN_SMTP_MX",
        smtp_mx,
        "SMTP for other mail servers and peers (port 25 style): no login, only mail for hosted or routed domains."
    ),
    listen_field!(
        "listen.imap_tls",
        "CAIRN_LISTEN_IMAP_TLS",
        imap_tls,
        "IMAP with implicit TLS (port 993 style), used by phones to read."
    ),
    listen_field!(
        "listen.imap",
        "CAIRN_LISTEN_IMAP",
        imap,
        "IMAP with STARTTLS (port 143 style)."
    ),
    listen_field!(
        "listen.http",
        "CAIRN_LISTEN_HTTP",
        http,
        "Web pages over plain HTTP: status, join page, admin."
    ),
    listen_field!(
        "listen.https",
        "CAIRN_LISTEN_HTTPS",
        https,
        "Web pages over HTTPS with the hub's certificate."
    ),
    listen_field!(
        "listen.link",
        "CAIRN_LISTEN_LINK",
        link,
        "Live links from other cairn nodes (TCP, encrypted and authenticated by node keys): a peer dials here to sync. \"[::]:7465\" takes IPv4, IPv6 and Yggdrasil."
    ),
    Field {
        key: "limits.max_message_size",
        env: "CAIRN_LIMITS_MAX_MESSAGE_SIZE",
        doc: "Largest message accepted, with a unit: \"30 MiB\", \"500 KiB\", or a number of bytes.",
        kind: Kind::Number,
        apply: |c, v| {
            let size = size_in(v, MAX_MESSAGE_SIZE_FLOOR, MAX_MESSAGE_SIZE_CEILING)?;
            c.limits.max_message_size = size;
            Ok(())
        },
        show: |c| toml::Value::String(c.limits.max_message_size.to_string()),
    },
    Field {
        key: "limits.max_connections",
        env: "CAIRN_LIMITS_MAX_CONNECTIONS",
        doc: "Most simultaneous connections per service; one more is turned away with a \"try later\" reply.",
        kind: Kind::Number,
        apply: |c, v| {
            let n = number_in(v, 1, MAX_CONNECTIONS_CEILING)?;
            c.limits.max_connections = u32::try_from(n).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.limits.max_connections)),
    },
    Field {
        key: "limits.max_connections_per_address",
        env: "CAIRN_LIMITS_MAX_CONNECTIONS_PER_ADDRESS",
        doc: "Most simultaneous connections per service from one client address, so one phone or script cannot take every slot; a phone with a few Delta Chat accounts holds about three per account.",
        kind: Kind::Number,
        apply: |c, v| {
            let n = number_in(v, 1, MAX_CONNECTIONS_CEILING)?;
            c.limits.max_connections_per_address = u32::try_from(n).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.limits.max_connections_per_address)),
    },
    Field {
        key: "limits.max_recipients",
        env: "CAIRN_LIMITS_MAX_RECIPIENTS",
        doc: "Most recipients of one message (RFC 5321 asks for at least 100).",
        kind: Kind::Number,
        apply: |c, v| {
            c.limits.max_recipients =
                u32::try_from(number_in(v, 100, 100_000)?).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.limits.max_recipients)),
    },
    Field {
        key: "limits.mailbox_quota",
        env: "CAIRN_LIMITS_MAILBOX_QUOTA",
        doc: "Storage per account, shown to mail apps as the IMAP quota; APPEND beyond it is refused.",
        kind: Kind::Number,
        apply: |c, v| {
            let size = size_in(v, 1 << 20, 1 << 40)?;
            c.limits.mailbox_quota = size;
            Ok(())
        },
        show: |c| toml::Value::String(c.limits.mailbox_quota.to_string()),
    },
    Field {
        key: "limits.send_per_minute",
        env: "CAIRN_LIMITS_SEND_PER_MINUTE",
        doc: "Messages a user may send per minute once the burst is used up; more are told to retry later.",
        kind: Kind::Number,
        apply: |c, v| {
            c.limits.send_per_minute =
                u32::try_from(number_in(v, 1, 100_000)?).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.limits.send_per_minute)),
    },
    Field {
        key: "limits.send_burst",
        env: "CAIRN_LIMITS_SEND_BURST",
        doc: "Messages a user may send at once before the per-minute rate applies.",
        kind: Kind::Number,
        apply: |c, v| {
            c.limits.send_burst =
                u32::try_from(number_in(v, 1, 100_000)?).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.limits.send_burst)),
    },
    Field {
        key: "limits.max_bundle_size",
        env: "CAIRN_LIMITS_MAX_BUNDLE_SIZE",
        doc: "Largest bundle from a peer, counted after decompression; a bundle that expands past it is refused as a decompression bomb.",
        kind: Kind::Number,
        apply: |c, v| {
            c.limits.max_bundle_size = size_in(v, 1 << 20, 1 << 40)?;
            Ok(())
        },
        show: |c| toml::Value::String(c.limits.max_bundle_size.to_string()),
    },
    Field {
        key: "mail.require_encryption",
        env: "CAIRN_MAIL_REQUIRE_ENCRYPTION",
        doc: "Accept between users only OpenPGP-encrypted mail, as chatmail relays do (plus Secure-Join requests and bounces); anything else is refused with 523.",
        kind: Kind::Flag,
        apply: |c, v| {
            c.mail.require_encryption = v
                .as_bool()
                .ok_or_else(|| format!("expected true or false, found {}", v.type_str()))?;
            Ok(())
        },
        show: |c| toml::Value::Boolean(c.mail.require_encryption),
    },
    Field {
        key: "mail.create_on_login",
        env: "CAIRN_MAIL_CREATE_ON_LOGIN",
        doc: "Let phones create their own account: the first login with an unused address of a hosted domain (lower-case letters, digits, . _ -) and a password of 9 or more characters creates it, as chatmail relays do.",
        kind: Kind::Flag,
        apply: |c, v| {
            c.mail.create_on_login = v
                .as_bool()
                .ok_or_else(|| format!("expected true or false, found {}", v.type_str()))?;
            Ok(())
        },
        show: |c| toml::Value::Boolean(c.mail.create_on_login),
    },
    Field {
        key: "mail.delete_after_days",
        env: "CAIRN_MAIL_DELETE_AFTER_DAYS",
        doc: "Delete mail from mailboxes after this many days (0 keeps it). Delta Chat downloads mail at once, so old mail on the hub is only a burden on the SD card.",
        kind: Kind::Number,
        apply: |c, v| {
            c.mail.delete_after_days =
                u32::try_from(number_in(v, 0, 36_500)?).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.mail.delete_after_days)),
    },
    Field {
        key: "mail.delete_large_after_days",
        env: "CAIRN_MAIL_DELETE_LARGE_AFTER_DAYS",
        doc: "Delete mail larger than 200 kB after this many days (0 keeps it). Accounts are also kept under limits.mailbox_quota, oldest mail first.",
        kind: Kind::Number,
        apply: |c, v| {
            c.mail.delete_large_after_days =
                u32::try_from(number_in(v, 0, 36_500)?).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.mail.delete_large_after_days)),
    },
    Field {
        key: "mail.outbox_lifetime_days",
        env: "CAIRN_MAIL_OUTBOX_LIFETIME_DAYS",
        doc: "How long mail for other nodes may travel, summed over every hop, before it is returned to its sender as undeliverable.",
        kind: Kind::Number,
        apply: |c, v| {
            c.mail.outbox_lifetime_days =
                u32::try_from(number_in(v, 1, 3650)?).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.mail.outbox_lifetime_days)),
    },
    Field {
        key: "security.allow_plaintext_auth",
        env: "CAIRN_SECURITY_ALLOW_PLAINTEXT_AUTH",
        doc: "Allow logins without TLS on the STARTTLS ports. Only for a hub whose Wi-Fi is itself encrypted and private.",
        kind: Kind::Flag,
        apply: |c, v| {
            c.security.allow_plaintext_auth = v
                .as_bool()
                .ok_or_else(|| format!("expected true or false, found {}", v.type_str()))?;
            Ok(())
        },
        show: |c| toml::Value::Boolean(c.security.allow_plaintext_auth),
    },
    Field {
        key: "gateway.smarthost",
        env: "CAIRN_GATEWAY_SMARTHOST",
        doc: "On a gateway (a node with a peer made by `cairn peer add-internet`): the mail server that takes its Internet mail, as host:port (\"smtp.example.org:587\"). Empty: deliver to each domain's MX hosts found by DNS, with STARTTLS when offered.",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?.trim().to_string();
            if !s.is_empty() {
                let ok = s
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok {
                    return Err("expected host:port, such as \"smtp.example.org:587\"".into());
                }
            }
            c.gateway.smarthost = s;
            Ok(())
        },
        show: |c| toml::Value::String(c.gateway.smarthost.clone()),
    },
    Field {
        key: "gateway.smarthost_tls",
        env: "CAIRN_GATEWAY_SMARTHOST_TLS",
        doc: "How to reach the smarthost: \"starttls\" (port 587 style) or \"tls\" (port 465 style). Its certificate is checked.",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?.trim().to_ascii_lowercase();
            if s != "starttls" && s != "tls" {
                return Err("expected \"starttls\" or \"tls\"".into());
            }
            c.gateway.smarthost_tls = s;
            Ok(())
        },
        show: |c| toml::Value::String(c.gateway.smarthost_tls.clone()),
    },
    Field {
        key: "gateway.smarthost_user",
        env: "CAIRN_GATEWAY_SMARTHOST_USER",
        doc: "Login at the smarthost; empty: none.",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?;
            if s.chars().any(char::is_control) {
                return Err("must not contain control characters".into());
            }
            c.gateway.smarthost_user = s.trim().to_string();
            Ok(())
        },
        show: |c| toml::Value::String(c.gateway.smarthost_user.clone()),
    },
    Field {
        key: "gateway.smarthost_password",
        env: "CAIRN_GATEWAY_SMARTHOST_PASSWORD",
        doc: "Password at the smarthost (never logged).",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?;
            if s.chars().any(char::is_control) {
                return Err("must not contain control characters".into());
            }
            c.gateway.smarthost_password = Secret(s);
            Ok(())
        },
        show: |c| {
            toml::Value::String(if c.gateway.smarthost_password.0.is_empty() {
                String::new()
            } else {
                "***".into()
            })
        },
    },
    Field {
        key: "gateway.smarthost_ca",
        env: "CAIRN_GATEWAY_SMARTHOST_CA",
        doc: "A PEM certificate file to trust for the smarthost besides the usual authorities (a private smarthost with its own certificate); empty: none.",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?.trim().to_string();
            if !s.is_empty() && !Path::new(&s).is_absolute() {
                return Err("expected an absolute path to a PEM file".into());
            }
            c.gateway.smarthost_ca = s;
            Ok(())
        },
        show: |c| toml::Value::String(c.gateway.smarthost_ca.clone()),
    },
    Field {
        key: "gateway.mx_port",
        env: "CAIRN_GATEWAY_MX_PORT",
        doc: "Port of the MX hosts a gateway delivers to (25 on the Internet).",
        kind: Kind::Number,
        apply: |c, v| {
            c.gateway.mx_port =
                u16::try_from(number_in(v, 1, 65535)?).map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.gateway.mx_port)),
    },
    Field {
        key: "gateway.dns",
        env: "CAIRN_GATEWAY_DNS",
        doc: "DNS servers for MX lookups, as \"ip\" or \"ip:port\"; [] uses the system's (/etc/resolv.conf).",
        kind: Kind::List,
        apply: |c, v| {
            c.gateway.dns = list(v, |a| {
                a.parse::<SocketAddr>()
                    .or_else(|_| {
                        a.parse::<std::net::IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    })
                    .map_err(|_| format!("`{a}` is not an IP address (with an optional :port)"))
            })?;
            Ok(())
        },
        show: |c| str_list(c.gateway.dns.iter().map(|a| a.to_string())),
    },
    Field {
        key: "radio.port",
        env: "CAIRN_RADIO_PORT",
        doc: "The LoRa modem's serial device (\"/dev/ttyUSB0\", a stable /dev/serial/by-id/ link, or a `cairn radio sim` link); empty: no radio.",
        kind: Kind::Text,
        apply: |c, v| {
            let s = text(v)?.trim().to_string();
            if !s.is_empty() && !Path::new(&s).is_absolute() {
                return Err("expected an absolute path such as \"/dev/ttyUSB0\"".into());
            }
            c.radio.port = s;
            Ok(())
        },
        show: |c| toml::Value::String(c.radio.port.clone()),
    },
    Field {
        key: "radio.modem",
        env: "CAIRN_RADIO_MODEM",
        doc: "Which modem: \"rnode\" (RNode firmware, KISS) or \"rylr\" (REYAX RYLR998, AT commands).",
        kind: Kind::Text,
        apply: |c, v| {
            c.radio.settings.model = text(v)?.trim().parse()?;
            Ok(())
        },
        show: |c| toml::Value::String(c.radio.settings.model.as_str().into()),
    },
    Field {
        key: "radio.region",
        env: "CAIRN_RADIO_REGION",
        doc: "Whose rules the radio obeys: \"eu868\" (duty cycle per sub-band) or \"us915\" (500 kHz, 400 ms per frame; check your rules).",
        kind: Kind::Text,
        apply: |c, v| {
            c.radio.settings.region = text(v)?.trim().parse()?;
            Ok(())
        },
        show: |c| toml::Value::String(c.radio.settings.region.as_str().into()),
    },
    Field {
        key: "radio.frequency",
        env: "CAIRN_RADIO_FREQUENCY",
        doc: "Centre frequency in Hz. 869525000 is the EU 869.4–869.65 MHz sub-band: 10 % duty cycle, 500 mW.",
        kind: Kind::Number,
        apply: |c, v| {
            c.radio.settings.frequency = u32::try_from(number_in(v, 137_000_000, 1_020_000_000)?)
                .map_err(|e| e.to_string())?;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.radio.settings.frequency)),
    },
    Field {
        key: "radio.bandwidth",
        env: "CAIRN_RADIO_BANDWIDTH",
        doc: "Bandwidth in Hz: 125000, 250000 or 500000.",
        kind: Kind::Number,
        apply: |c, v| {
            let bw = number_in(v, 7_800, 500_000)?;
            if ![125_000, 250_000, 500_000].contains(&bw) {
                return Err(format!("{bw} is not offered: use 125000, 250000 or 500000"));
            }
            c.radio.settings.bandwidth = bw as u32;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.radio.settings.bandwidth)),
    },
    Field {
        key: "radio.sf",
        env: "CAIRN_RADIO_SF",
        doc: "Spreading factor 7–12: each step reaches farther and takes twice the air time.",
        kind: Kind::Number,
        apply: |c, v| {
            c.radio.settings.sf = number_in(v, 7, 12)? as u8;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.radio.settings.sf)),
    },
    Field {
        key: "radio.cr",
        env: "CAIRN_RADIO_CR",
        doc: "Coding rate 1–4 (4/5 to 4/8): more is sturdier and slower.",
        kind: Kind::Number,
        apply: |c, v| {
            c.radio.settings.cr = number_in(v, 1, 4)? as u8;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.radio.settings.cr)),
    },
    Field {
        key: "radio.txpower",
        env: "CAIRN_RADIO_TXPOWER",
        doc: "Transmit power in dBm at the modem; with the antenna's gain it must stay within the band's limit (EU g3: 27 dBm e.r.p.).",
        kind: Kind::Number,
        apply: |c, v| {
            c.radio.settings.txpower = number_in(v, 0, 22)? as u8;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.radio.settings.txpower)),
    },
    Field {
        key: "radio.network",
        env: "CAIRN_RADIO_NETWORK",
        doc: "RYLR network id (3–15, or 18): every hub of one network uses the same.",
        kind: Kind::Number,
        apply: |c, v| {
            c.radio.settings.network = number_in(v, 0, 255)? as u8;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.radio.settings.network)),
    },
    Field {
        key: "radio.address",
        env: "CAIRN_RADIO_ADDRESS",
        doc: "RYLR address of this hub (0–65535).",
        kind: Kind::Number,
        apply: |c, v| {
            c.radio.settings.address = number_in(v, 0, 65_535)? as u16;
            Ok(())
        },
        show: |c| toml::Value::Integer(i64::from(c.radio.settings.address)),
    },
    Field {
        key: "radio.max_item",
        env: "CAIRN_RADIO_MAX_ITEM",
        doc: "Largest message sent over the radio; larger ones wait for another carrier. A 64 KiB message takes about 6 minutes of air at SF9.",
        kind: Kind::Number,
        apply: |c, v| {
            c.radio.max_item = size_in(v, 1 << 10, 16 << 20)?;
            Ok(())
        },
        show: |c| toml::Value::String(c.radio.max_item.to_string()),
    },
];

/// Environment variables that are not fields but are read by cairn.
pub const OTHER_ENV: &[&str] = &["CAIRN_CONFIG", "CAIRN_LOG"];

/// Sections of the file, for messages about a section written as a value.
const SECTIONS: &[&str] = &[
    "hub", "listen", "limits", "mail", "security", "gateway", "radio",
];

fn field(key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.key == key)
}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub profile: Option<String>,
}

/// Turn an environment string into a TOML value of the field's kind.
fn env_value(kind: Kind, raw: &str) -> toml::Value {
    match kind {
        Kind::Text => toml::Value::String(raw.to_string()),
        Kind::Number => match raw.trim().parse::<i64>() {
            Ok(n) => toml::Value::Integer(n),
            Err(_) => toml::Value::String(raw.to_string()),
        },
        Kind::Flag => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => toml::Value::String(raw.to_string()),
        },
        Kind::List => str_list(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        ),
    }
}

/// Flatten a TOML table into dotted keys, reporting section misuse.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, toml::Value>,
    problems: &mut Vec<(String, String)>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) if field(&key).is_none() => flatten(&key, t, out, problems),
            _ if prefix.is_empty() && SECTIONS.contains(&k.as_str()) => problems.push((
                key.clone(),
                format!("is a section: write it as a table, [{key}], with its fields below"),
            )),
            _ => {
                out.insert(key, v.clone());
            }
        }
    }
}

/// Edit distance, to suggest the field a typo meant.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggestion(key: &str, candidates: impl Iterator<Item = &'static str>) -> String {
    candidates
        .map(|c| (distance(key, c), c))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, c)| format!(": did you mean `{c}`?"))
        .unwrap_or_else(|| ": see cairn.example.toml for every field".to_string())
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Config {
    /// Build the configuration: profile defaults, then the file, then the
    /// environment (`env` is passed in so tests need not touch the process),
    /// then command-line flags. Reports every problem, not just the first.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut values: Vec<(&'static Field, toml::Value, Origin)> = Vec::new();

        if let Some(path) = file {
            let origin = Origin::File(path.to_path_buf());
            match std::fs::read_to_string(path) {
                Err(e) => problems.push(Problem {
                    field: "(file)".into(),
                    origin: Some(origin.clone()),
                    message: format!("cannot read the config file: {e}: check the path given to --config or CAIRN_CONFIG"),
                }),
                Ok(text) => match text.parse::<toml::Table>() {
                    Err(e) => {
                        let at = e
                            .span()
                            .map(|s| {
                                let (l, c) = line_col(&text, s.start);
                                format!(" at line {l}, column {c}")
                            })
                            .unwrap_or_default();
                        problems.push(Problem {
                            field: "(file)".into(),
                            origin: Some(origin.clone()),
                            message: format!(
                                "is not valid TOML{at}: {}; fix the syntax (see cairn.example.toml)",
                                e.message().trim()
                            ),
                        });
                    }
                    Ok(table) => {
                        let mut flat = BTreeMap::new();
                        let mut misuse = Vec::new();
                        flatten("", &table, &mut flat, &mut misuse);
                        for (key, message) in misuse {
                            problems.push(Problem {
                                field: key,
                                origin: Some(origin.clone()),
                                message,
                            });
                        }
                        for (key, v) in flat {
                            match field(&key) {
                                Some(f) => values.push((f, v, origin.clone())),
                                None => problems.push(Problem {
                                    message: format!(
                                        "unknown key{}",
                                        suggestion(&key, FIELDS.iter().map(|f| f.key))
                                    ),
                                    field: key,
                                    origin: Some(origin.clone()),
                                }),
                            }
                        }
                    }
                },
            }
        }

        let mut env_keys: Vec<&String> = env.keys().filter(|k| k.starts_with("CAIRN_")).collect();
        env_keys.sort();
        for name in env_keys {
            let raw = &env[name];
            match FIELDS.iter().find(|f| f.env == name) {
                Some(f) => values.push((f, env_value(f.kind, raw), Origin::Env(name.clone()))),
                None if OTHER_ENV.contains(&name.as_str()) => {}
                None => problems.push(Problem {
                    field: name.clone(),
                    origin: None,
                    message: format!(
                        "unknown environment variable{}",
                        suggestion(
                            name,
                            FIELDS
                                .iter()
                                .map(|f| f.env)
                                .chain(OTHER_ENV.iter().copied())
                        )
                    ),
                }),
            }
        }
        if let Some(p) = &overrides.profile {
            values.push((
                field("profile").expect("profile field"),
                toml::Value::String(p.clone()),
                Origin::Flag("--profile"),
            ));
        }
        if let Some(d) = &overrides.data_dir {
            values.push((
                field("data_dir").expect("data_dir field"),
                toml::Value::String(d.display().to_string()),
                Origin::Flag("--data"),
            ));
        }

        // Apply in the documented field order (stable: for one field, the file
        // comes before the environment, which comes before the flags).
        values.sort_by_key(|(f, _, _)| FIELDS.iter().position(|g| g.key == f.key));

        // The profile decides the defaults, so it is applied first; the last
        // source that sets it wins (flag over environment over file).
        let mut profile = Profile::Laptop;
        for (f, v, origin) in values.iter().filter(|(f, _, _)| f.key == "profile") {
            let mut probe = Config::defaults(Profile::Laptop);
            match (f.apply)(&mut probe, v) {
                Ok(()) => profile = probe.profile,
                Err(message) => problems.push(Problem {
                    field: f.key.into(),
                    origin: Some(origin.clone()),
                    message,
                }),
            }
        }
        let mut config = Config::defaults(profile);
        for (f, v, origin) in values.iter().filter(|(f, _, _)| f.key != "profile") {
            if let Err(message) = (f.apply)(&mut config, v) {
                problems.push(Problem {
                    field: f.key.into(),
                    origin: Some(origin.clone()),
                    message,
                });
            }
        }
        problems.extend(config.cross_check());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Rules that involve more than one field.
    fn cross_check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut seen: Vec<(SocketAddr, &'static str)> = Vec::new();
        for (key, list) in self.listen.services() {
            for addr in list {
                if addr.port() == 0 {
                    continue;
                }
                if let Some((_, other)) = seen.iter().find(|(a, _)| a == addr) {
                    problems.push(Problem {
                        field: key.into(),
                        origin: None,
                        message: format!(
                            "{addr} is also used by `{other}`: give each service its own port"
                        ),
                    });
                } else {
                    seen.push((*addr, key));
                }
            }
        }
        if !self.radio.port.is_empty() {
            for message in self.radio.settings.problems() {
                let (field, message) = match message.split_once(": ") {
                    Some((f, m))
                        if ["sf", "bandwidth", "txpower", "network", "frequency"].contains(&f) =>
                    {
                        (format!("radio.{f}"), m.to_string())
                    }
                    _ => ("radio".to_string(), message),
                };
                problems.push(Problem {
                    field,
                    origin: None,
                    message,
                });
            }
        }
        problems
    }

    /// The commented example file for the given profile's defaults.
    pub fn example() -> String {
        let laptop = Config::defaults(Profile::Laptop);
        let appliance = Config::defaults(Profile::Appliance);
        let mut out = String::from(
            "# cairn.example.toml: every configuration field with its laptop default.\n\
             # Generated by `cairn example-config`; a test keeps it in sync with the code.\n\
             # All fields are optional. Each can also be set by the environment variable\n\
             # named above it (lists comma-separated); the command line wins over both.\n\
             # Use it with `cairn serve --config FILE`; check it with `cairn check-config FILE`.\n",
        );
        let mut section = "";
        for f in FIELDS {
            let (sec, name) = f.key.rsplit_once('.').unwrap_or(("", f.key));
            if sec != section {
                out.push_str(&format!("\n[{sec}]\n"));
                section = sec;
            }
            out.push('\n');
            for line in wrap(f.doc, 76) {
                out.push_str(&format!("# {line}\n"));
            }
            out.push_str(&format!("# env: {}\n", f.env));
            let (l, a) = ((f.show)(&laptop), (f.show)(&appliance));
            if l != a {
                out.push_str(&format!("# appliance default: {a}\n"));
            }
            out.push_str(&format!("{name} = {l}\n"));
        }
        out
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests;
