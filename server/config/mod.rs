//! The one configuration: an optional TOML file, `CAIRN_*` environment
//! overrides, and command-line flags, on top of a profile's defaults.
//!
//! Every field is described once, in [`FIELDS`]: that table drives parsing,
//! the environment variable names, validation messages and the generated
//! `cairn.example.toml`, so the documentation cannot drift from the code.
//!
//! Settings the admin page changes at run time live in the database; this
//! file holds what must be known before the database is open.

mod fields;
pub mod services;

pub use fields::FIELDS;
use fields::{Field, Kind, str_list};

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

impl HubConfig {
    /// The hub's first mail domain as written (new accounts get it); empty
    /// when it has none.
    pub fn first_domain(&self) -> String {
        self.domains
            .first()
            .map(|d| d.to_string())
            .unwrap_or_default()
    }
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
    /// Free space kept on the data disk (see the field's doc).
    pub min_free_disk: ByteSize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    pub require_encryption: bool,
    pub create_on_login: bool,
    pub delete_after_days: u32,
    pub delete_large_after_days: u32,
    pub outbox_lifetime_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Security {
    pub allow_plaintext_auth: bool,
}

/// The same in both profiles.
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: ByteSize(30 << 20),
            max_connections: 1000,
            max_connections_per_address: 50,
            max_recipients: 1000,
            mailbox_quota: ByteSize(500 << 20),
            send_per_minute: 60,
            send_burst: 10,
            max_bundle_size: ByteSize(1 << 30),
            // Room for SQLite to commit and checkpoint its WAL, and for the
            // logs; small enough for the image's 64 MiB data partition
            // before its first boot grows it to fill the card.
            min_free_disk: ByteSize(32 << 20),
        }
    }
}

impl Default for MailConfig {
    fn default() -> MailConfig {
        MailConfig {
            require_encryption: true,
            create_on_login: true,
            delete_after_days: 20,
            delete_large_after_days: 7,
            outbox_lifetime_days: 14,
        }
    }
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
    /// DNS servers a gateway asks (MX hosts, and the SPF, DKIM and DMARC
    /// records of Internet mail), `ip` or `ip:port`; empty: the system's.
    pub dns: Vec<SocketAddr>,
}

/// The hub's LoRa modem, if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct RadioConfig {
    /// The modem's serial device ("/dev/ttyUSB0", a udev symlink, or the
    /// simulator's); empty: no radio.
    pub port: String,
    pub settings: crate::domain::lora::Settings,
    /// Items larger than this stay off the air (for another carrier).
    pub max_item: ByteSize,
}

impl Default for RadioConfig {
    fn default() -> RadioConfig {
        RadioConfig {
            port: String::new(),
            settings: crate::domain::lora::Settings::default(),
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
    /// The name this node gives itself to other mail servers (EHLO, the
    /// authserv-id of its Authentication-Results): its first hostname
    /// that is a name, not an address.
    pub fn helo_name(&self) -> String {
        self.hub
            .hostnames
            .iter()
            .find(|h| matches!(h, Hostname::Name(_)))
            .map(|h| h.to_string())
            .unwrap_or_else(|| "cairn".into())
    }

    /// Set one field by its dotted key, checked as the file's value would
    /// be. The error says what is wrong with the value.
    pub fn set_field(&mut self, key: &str, value: &toml::Value) -> Result<(), String> {
        let field = FIELDS
            .iter()
            .find(|f| f.key == key)
            .ok_or_else(|| format!("no setting {key}"))?;
        (field.apply)(self, value)
    }

    /// The built-in defaults of a profile: the profiles differ in where
    /// they keep data, their names and their ports.
    pub fn defaults(profile: Profile) -> Self {
        // Where the data lives, the hub's address and host name, and where
        // each service listens: SMTP submission (TLS, STARTTLS), MX, IMAP
        // (TLS, STARTTLS), HTTP, HTTPS, the link.
        let (data_dir, ip, host, listen) = match profile {
            Profile::Laptop => (
                "./cairn-data",
                [127, 0, 0, 1],
                "localhost",
                [
                    "127.0.0.1:1465",
                    "127.0.0.1:1587",
                    "127.0.0.1:2525",
                    "127.0.0.1:1993",
                    "127.0.0.1:1143",
                    "127.0.0.1:8080",
                    "127.0.0.1:8443",
                    "127.0.0.1:7465",
                ],
            ),
            Profile::Appliance => (
                "/var/lib/cairn",
                [10, 42, 0, 1],
                "hub.camp",
                [
                    "0.0.0.0:465",
                    "0.0.0.0:587",
                    "0.0.0.0:25",
                    "0.0.0.0:993",
                    "0.0.0.0:143",
                    "0.0.0.0:80",
                    "0.0.0.0:443",
                    "[::]:7465",
                ],
            ),
        };
        let [
            submission_tls,
            submission,
            mx,
            imap_tls,
            imap,
            http,
            https,
            link,
        ] = listen.map(|a| addrs(&[a]));
        Config {
            profile,
            data_dir: PathBuf::from(data_dir),
            hub: HubConfig {
                name: "cairn".into(),
                domains: vec![Domain::Literal(ip.into())],
                hostnames: vec![Hostname::Ip(ip.into()), Hostname::Name(host.into())],
            },
            listen: ListenConfig {
                smtp_submission_tls: submission_tls,
                smtp_submission: submission,
                smtp_mx: mx,
                imap_tls,
                imap,
                http,
                https,
                link,
            },
            limits: Limits::default(),
            mail: MailConfig::default(),
            security: Security::default(),
            gateway: GatewayConfig::default(),
            radio: RadioConfig::default(),
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
