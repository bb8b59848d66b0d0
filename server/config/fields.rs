//! Every configuration field, described once: its key, environment
//! variable, documentation, how a value is checked and applied, and how
//! the value in force is shown. The table drives parsing, the environment
//! names, validation messages and the generated example file.

use super::*;

/// How an environment string becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Number,
    Flag,
    List,
}

pub(super) type Apply = fn(&mut Config, &toml::Value) -> Result<(), String>;
pub(super) type Show = fn(&Config) -> toml::Value;

/// One documented configuration field.
pub struct Field {
    /// The dotted key, as in the file (`limits.max_message_size`).
    pub key: &'static str,
    pub env: &'static str,
    pub doc: &'static str,
    pub(super) kind: Kind,
    pub(super) apply: Apply,
    pub(super) show: Show,
}

pub(super) fn text(v: &toml::Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a text in quotes, found {}", v.type_str()))
}

pub(super) fn list<T>(
    v: &toml::Value,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
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

pub(super) fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        "not an IP address with a port: write 127.0.0.1:8080, 0.0.0.0:80 or [::1]:8080".to_string()
    })
}

pub(super) fn domain(s: &str) -> Result<Domain, String> {
    Domain::parse(s).map_err(|e: AddressError| e.to_string())
}

pub(super) fn str_list(items: impl IntoIterator<Item = String>) -> toml::Value {
    toml::Value::Array(items.into_iter().map(toml::Value::String).collect())
}

/// A size field: a number of bytes or a text with a unit, within `lo..=hi`.
pub(super) fn size_in(v: &toml::Value, lo: u64, hi: u64) -> Result<ByteSize, String> {
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

pub(super) fn number_in(v: &toml::Value, lo: u64, hi: u64) -> Result<u64, String> {
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

/// A whole-number field within `lo..=hi`, stored as its type.
macro_rules! number_field {
    ($key:literal, $env:literal, c.$($path:ident).+ : $ty:ty, $lo:expr, $hi:expr, $doc:literal) => {
        Field {
            key: $key,
            env: $env,
            doc: $doc,
            kind: Kind::Number,
            apply: |c, v| {
                c.$($path).+ = <$ty>::try_from(number_in(v, $lo, $hi)?).map_err(|e| e.to_string())?;
                Ok(())
            },
            show: |c| toml::Value::Integer(i64::from(c.$($path).+)),
        }
    };
}

/// A size field ("30 MiB" or bytes) within `lo..=hi`.
macro_rules! size_field {
    ($key:literal, $env:literal, c.$($path:ident).+, $lo:expr, $hi:expr, $doc:literal) => {
        Field {
            key: $key,
            env: $env,
            doc: $doc,
            kind: Kind::Number,
            apply: |c, v| {
                c.$($path).+ = size_in(v, $lo, $hi)?;
                Ok(())
            },
            show: |c| toml::Value::String(c.$($path).+.to_string()),
        }
    };
}

/// A true/false field.
macro_rules! flag_field {
    ($key:literal, $env:literal, c.$($path:ident).+, $doc:literal) => {
        Field {
            key: $key,
            env: $env,
            doc: $doc,
            kind: Kind::Flag,
            apply: |c, v| {
                c.$($path).+ = v
                    .as_bool()
                    .ok_or_else(|| format!("expected true or false, found {}", v.type_str()))?;
                Ok(())
            },
            show: |c| toml::Value::Boolean(c.$($path).+),
        }
    };
}

/// A text field: `parse` turns its text into the value or says what is
/// wrong; `show` writes the value back as text.
macro_rules! text_field {
    ($key:literal, $env:literal, c.$($path:ident).+, parse: $parse:expr, show: $show:expr, $doc:literal) => {
        Field {
            key: $key,
            env: $env,
            doc: $doc,
            kind: Kind::Text,
            apply: |c, v| {
                c.$($path).+ = ($parse)(text(v)?)?;
                Ok(())
            },
            show: |c| toml::Value::String(($show)(&c.$($path).+)),
        }
    };
}

/// An absolute path, or empty for none.
fn optional_path(s: String, example: &str) -> Result<String, String> {
    let s = s.trim().to_string();
    if !s.is_empty() && !Path::new(&s).is_absolute() {
        return Err(format!("expected an absolute path {example}"));
    }
    Ok(s)
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
    text_field!(
        "profile",
        "CAIRN_PROFILE",
        c.profile,
        parse: |s: String| Profile::parse(&s).ok_or_else(|| {
            format!("unknown profile `{s}`: write \"laptop\" or \"appliance\"")
        }),
        show: |p: &Profile| p.as_str().to_string(),
        "Which defaults apply: \"laptop\" (loopback, unprivileged ports, ./cairn-data) or \"appliance\" (standard ports on all interfaces, /var/lib/cairn). Fields set below override the profile."
    ),
    text_field!(
        "data_dir",
        "CAIRN_DATA",
        c.data_dir,
        parse: |s: String| if s.trim().is_empty() {
            Err("must not be empty: write a directory such as \"./cairn-data\"".to_string())
        } else {
            Ok(PathBuf::from(s))
        },
        show: |d: &PathBuf| d.display().to_string(),
        "Directory for the database, mail, keys and certificate; made on first start (its parent must exist). Also set by --data."
    ),
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
        "Web pages over plain HTTP: status, join page; the admin pages only from this machine (others are sent to HTTPS)."
    ),
    listen_field!(
        "listen.https",
        "CAIRN_LISTEN_HTTPS",
        https,
        "Web pages over HTTPS with the hub's certificate; the admin pages from other machines."
    ),
    listen_field!(
        "listen.link",
        "CAIRN_LISTEN_LINK",
        link,
        "Live links from other cairn nodes (TCP, encrypted and authenticated by node keys): a peer dials here to sync. \"[::]:7465\" takes IPv4, IPv6 and Yggdrasil."
    ),
    size_field!(
        "limits.max_message_size",
        "CAIRN_LIMITS_MAX_MESSAGE_SIZE",
        c.limits.max_message_size,
        MAX_MESSAGE_SIZE_FLOOR,
        MAX_MESSAGE_SIZE_CEILING,
        "Largest message accepted, with a unit: \"30 MiB\", \"500 KiB\", or a number of bytes."
    ),
    number_field!("limits.max_connections", "CAIRN_LIMITS_MAX_CONNECTIONS", c.limits.max_connections: u32, 1, MAX_CONNECTIONS_CEILING,
        "Most simultaneous connections per service; one more is turned away with a \"try later\" reply."),
    number_field!("limits.max_connections_per_address", "CAIRN_LIMITS_MAX_CONNECTIONS_PER_ADDRESS", c.limits.max_connections_per_address: u32, 1, MAX_CONNECTIONS_CEILING,
        "Most simultaneous connections per service from one client address, so one phone or script cannot take every slot; a phone with a few Delta Chat accounts holds about three per account."),
    number_field!("limits.max_recipients", "CAIRN_LIMITS_MAX_RECIPIENTS", c.limits.max_recipients: u32, 100, 100_000,
        "Most recipients of one message (RFC 5321 asks for at least 100)."),
    size_field!(
        "limits.mailbox_quota",
        "CAIRN_LIMITS_MAILBOX_QUOTA",
        c.limits.mailbox_quota,
        1 << 20,
        1 << 40,
        "Storage per account, shown to mail apps as the IMAP quota; APPEND beyond it is refused."
    ),
    number_field!("limits.send_per_minute", "CAIRN_LIMITS_SEND_PER_MINUTE", c.limits.send_per_minute: u32, 1, 100_000,
        "Messages a user may send per minute once the burst is used up; more are told to retry later."),
    number_field!("limits.send_burst", "CAIRN_LIMITS_SEND_BURST", c.limits.send_burst: u32, 1, 100_000,
        "Messages a user may send at once before the per-minute rate applies."),
    size_field!(
        "limits.max_bundle_size",
        "CAIRN_LIMITS_MAX_BUNDLE_SIZE",
        c.limits.max_bundle_size,
        1 << 20,
        1 << 40,
        "Largest bundle from a peer, counted after decompression; a bundle that expands past it is refused as a decompression bomb."
    ),
    size_field!(
        "limits.min_free_disk",
        "CAIRN_LIMITS_MIN_FREE_DISK",
        c.limits.min_free_disk,
        0,
        1 << 50,
        "Free space the hub keeps on its data disk: new mail, APPENDs and bundles that would leave less are refused for now (SMTP 452 4.3.1; a bundle stays where it is), so the database can still commit and checkpoint."
    ),
    flag_field!(
        "mail.require_encryption",
        "CAIRN_MAIL_REQUIRE_ENCRYPTION",
        c.mail.require_encryption,
        "Accept between users only OpenPGP-encrypted mail, as chatmail relays do (plus Secure-Join requests and bounces); anything else is refused with 523."
    ),
    flag_field!(
        "mail.create_on_login",
        "CAIRN_MAIL_CREATE_ON_LOGIN",
        c.mail.create_on_login,
        "Let phones create their own account: the first login with an unused address of a hosted domain (lower-case letters, digits, . _ -) and a password of 9 or more characters creates it, as chatmail relays do."
    ),
    number_field!("mail.delete_after_days", "CAIRN_MAIL_DELETE_AFTER_DAYS", c.mail.delete_after_days: u32, 0, 36_500,
        "Delete mail from mailboxes after this many days (0 keeps it). Delta Chat downloads mail at once, so old mail on the hub is only a burden on the SD card."),
    number_field!("mail.delete_large_after_days", "CAIRN_MAIL_DELETE_LARGE_AFTER_DAYS", c.mail.delete_large_after_days: u32, 0, 36_500,
        "Delete mail larger than 200 kB after this many days (0 keeps it). Accounts are also kept under limits.mailbox_quota, oldest mail first."),
    number_field!("mail.outbox_lifetime_days", "CAIRN_MAIL_OUTBOX_LIFETIME_DAYS", c.mail.outbox_lifetime_days: u32, 1, 3650,
        "How long mail for other nodes may travel, summed over every hop, before it is returned to its sender as undeliverable."),
    flag_field!(
        "security.allow_plaintext_auth",
        "CAIRN_SECURITY_ALLOW_PLAINTEXT_AUTH",
        c.security.allow_plaintext_auth,
        "Allow logins without TLS on the STARTTLS ports. Only for a hub whose Wi-Fi is itself encrypted and private."
    ),
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
    text_field!(
        "gateway.smarthost_tls",
        "CAIRN_GATEWAY_SMARTHOST_TLS",
        c.gateway.smarthost_tls,
        parse: |s: String| match s.trim().to_ascii_lowercase() {
            s if s == "starttls" || s == "tls" => Ok(s),
            _ => Err("expected \"starttls\" or \"tls\"".to_string()),
        },
        show: String::clone,
        "How to reach the smarthost: \"starttls\" (port 587 style) or \"tls\" (port 465 style). Its certificate is checked."
    ),
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
    text_field!(
        "gateway.smarthost_ca",
        "CAIRN_GATEWAY_SMARTHOST_CA",
        c.gateway.smarthost_ca,
        parse: |s| optional_path(s, "to a PEM file"),
        show: String::clone,
        "A PEM certificate file to trust for the smarthost besides the usual authorities (a private smarthost with its own certificate); empty: none."
    ),
    number_field!("gateway.mx_port", "CAIRN_GATEWAY_MX_PORT", c.gateway.mx_port: u16, 1, 65535,
        "Port of the MX hosts a gateway delivers to (25 on the Internet)."),
    Field {
        key: "gateway.dns",
        env: "CAIRN_GATEWAY_DNS",
        doc: "DNS servers a gateway asks (where mail goes; the SPF, DKIM and DMARC records of Internet mail), as \"ip\" or \"ip:port\"; [] uses the system's (/etc/resolv.conf).",
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
    text_field!(
        "radio.port",
        "CAIRN_RADIO_PORT",
        c.radio.port,
        parse: |s| optional_path(s, "such as \"/dev/ttyUSB0\""),
        show: String::clone,
        "The LoRa modem's serial device (\"/dev/ttyUSB0\", a stable /dev/serial/by-id/ link, or a `cairn radio sim` link); empty: no radio."
    ),
    text_field!(
        "radio.modem",
        "CAIRN_RADIO_MODEM",
        c.radio.settings.model,
        parse: |s: String| s.trim().parse(),
        show: |m: &crate::domain::lora::Model| m.as_str().to_string(),
        "Which modem: \"rnode\" (RNode firmware, KISS) or \"rylr\" (REYAX RYLR998, AT commands)."
    ),
    text_field!(
        "radio.region",
        "CAIRN_RADIO_REGION",
        c.radio.settings.region,
        parse: |s: String| s.trim().parse(),
        show: |r: &crate::domain::lora::Region| r.as_str().to_string(),
        "Whose rules the radio obeys: \"eu868\" (duty cycle per sub-band) or \"us915\" (500 kHz, 400 ms per frame; check your rules)."
    ),
    number_field!("radio.frequency", "CAIRN_RADIO_FREQUENCY", c.radio.settings.frequency: u32, 137_000_000, 1_020_000_000,
        "Centre frequency in Hz. 869525000 is the EU 869.4–869.65 MHz sub-band: 10 % duty cycle, 500 mW."),
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
    number_field!("radio.sf", "CAIRN_RADIO_SF", c.radio.settings.sf: u8, 7, 12,
        "Spreading factor 7–12: each step reaches farther and takes twice the air time."),
    number_field!("radio.cr", "CAIRN_RADIO_CR", c.radio.settings.cr: u8, 1, 4,
        "Coding rate 1–4 (4/5 to 4/8): more is sturdier and slower."),
    number_field!("radio.txpower", "CAIRN_RADIO_TXPOWER", c.radio.settings.txpower: u8, 0, 22,
        "Transmit power in dBm at the modem; with the antenna's gain it must stay within the band's limit (EU g3: 27 dBm e.r.p.)."),
    number_field!("radio.network", "CAIRN_RADIO_NETWORK", c.radio.settings.network: u8, 0, 255,
        "RYLR network id (3–15, or 18): every hub of one network uses the same."),
    number_field!("radio.address", "CAIRN_RADIO_ADDRESS", c.radio.settings.address: u16, 0, 65_535,
        "RYLR address of this hub (0–65535)."),
    size_field!(
        "radio.max_item",
        "CAIRN_RADIO_MAX_ITEM",
        c.radio.max_item,
        1 << 10,
        16 << 20,
        "Largest message sent over the radio; larger ones wait for another carrier. A 64 KiB message takes about 6 minutes of air at SF9."
    ),
];
