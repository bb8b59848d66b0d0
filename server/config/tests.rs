use super::*;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_str(toml_text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(toml_text.as_bytes()).unwrap();
    Config::load(Some(f.path()), &env(pairs), &Overrides::default())
}

fn problem_fields(e: &ConfigError) -> Vec<&str> {
    e.problems.iter().map(|p| p.field.as_str()).collect()
}

#[test]
fn no_file_no_env_gives_laptop_defaults() {
    let c = Config::load(None, &HashMap::new(), &Overrides::default()).unwrap();
    assert_eq!(c, Config::defaults(Profile::Laptop));
    assert_eq!(c.data_dir, PathBuf::from("./cairn-data"));
    for (key, addrs) in c.listen.services() {
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() > 1024),
            "{key} must be loopback and unprivileged on a laptop"
        );
    }
}

#[test]
fn appliance_profile_uses_standard_ports_everywhere() {
    let c = load_str("profile = \"appliance\"\n", &[]).unwrap();
    let ports: Vec<u16> = c
        .listen
        .services()
        .iter()
        .flat_map(|(_, a)| a.iter().map(|a| a.port()))
        .collect();
    assert_eq!(ports, vec![465, 587, 25, 993, 143, 80, 443, 7465]);
    assert!(
        c.listen
            .services()
            .iter()
            .all(|(_, a)| a.iter().all(|a| a.ip().is_unspecified()))
    );
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/cairn"));
}

#[test]
fn every_field_accepts_a_good_value() {
    let text = r#"
profile = "laptop"
data_dir = "/srv/cairn"
[hub]
name = "Riverside camp"
domains = ["camp.example", "[10.42.0.1]", "bücher.example"]
hostnames = ["10.42.0.1", "hub.camp", "::1"]
[listen]
smtp_submission_tls = ["127.0.0.1:2465", "[::1]:2465"]
smtp_submission = ["127.0.0.1:2587"]
smtp_mx = []
imap_tls = ["127.0.0.1:2993"]
imap = ["127.0.0.1:2143"]
http = ["0.0.0.0:0"]
https = []
[limits]
max_message_size = "10 MiB"
max_connections = 20
max_recipients = 200
mailbox_quota = "100 MiB"
send_per_minute = 30
send_burst = 5
[mail]
require_encryption = false
create_on_login = false
delete_after_days = 0
delete_large_after_days = 3
[security]
allow_plaintext_auth = true
"#;
    let c = load_str(text, &[]).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/srv/cairn"));
    assert_eq!(c.hub.name, "Riverside camp");
    assert_eq!(
        c.hub
            .domains
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>(),
        ["camp.example", "[10.42.0.1]", "xn--bcher-kva.example"]
    );
    assert_eq!(c.hub.hostnames[2], Hostname::Ip("::1".parse().unwrap()));
    assert_eq!(c.listen.smtp_submission_tls.len(), 2);
    assert!(c.listen.smtp_mx.is_empty());
    assert_eq!(c.limits.max_message_size, ByteSize(10 << 20));
    assert_eq!(c.limits.max_connections, 20);
    assert_eq!(c.limits.max_recipients, 200);
    assert_eq!(c.limits.mailbox_quota, ByteSize(100 << 20));
    assert_eq!(c.limits.send_per_minute, 30);
    assert_eq!(c.limits.send_burst, 5);
    assert!(!c.mail.require_encryption);
    assert!(!c.mail.create_on_login);
    assert_eq!(c.mail.delete_after_days, 0);
    assert_eq!(c.mail.delete_large_after_days, 3);
    assert!(c.security.allow_plaintext_auth);
}

/// One bad value per field: each is reported, by its own name, in one run.
#[test]
fn every_field_reports_a_bad_value_by_name() {
    let text = r#"
profile = "server"
data_dir = ""
[hub]
name = ""
domains = ["not a domain"]
hostnames = []
[listen]
smtp_submission_tls = ["localhost:465"]
smtp_submission = "127.0.0.1:587"
smtp_mx = [25]
imap_tls = ["127.0.0.1"]
imap = ["1.2.3.4:99999"]
http = ["http://127.0.0.1:80"]
https = [":443"]
link = ["[::]"]
[limits]
max_message_size = "lots"
max_connections = 0
max_connections_per_address = 0
max_recipients = 10
mailbox_quota = "1 KiB"
send_per_minute = "fast"
send_burst = 0
max_bundle_size = "tiny"
min_free_disk = "2 PiB"
[mail]
require_encryption = 1
create_on_login = "no"
delete_after_days = -1
delete_large_after_days = "week"
outbox_lifetime_days = 0
[security]
allow_plaintext_auth = "yes"
[gateway]
smarthost = "no port"
smarthost_tls = "ssl3"
smarthost_user = "a\u0007b"
smarthost_password = 42
smarthost_ca = "relative.pem"
mx_port = 0
dns = ["dns.example"]
[radio]
port = "ttyUSB0"
modem = "meshtastic"
region = "mars"
frequency = 12
bandwidth = 100000
sf = 13
cr = 9
txpower = 30
network = -1
address = 70000
max_item = "huge"
"#;
    let e = load_str(text, &[]).unwrap_err();
    let mut fields = problem_fields(&e);
    fields.sort();
    let mut want: Vec<&str> = FIELDS.iter().map(|f| f.key).collect();
    want.sort();
    assert_eq!(fields, want, "{e}");
    for p in &e.problems {
        assert!(
            matches!(p.origin, Some(Origin::File(_))),
            "{p} should name the file"
        );
    }
    let msg = e.to_string();
    assert!(msg.contains("write \"laptop\" or \"appliance\""), "{msg}");
    assert!(msg.contains("write 127.0.0.1:8080"), "{msg}");
    assert_eq!(
        msg.lines().count(),
        FIELDS.len(),
        "one line per problem:\n{msg}"
    );
}

#[test]
fn out_of_range_limits() {
    let e = load_str(
        "[limits]\nmax_message_size = \"2 GiB\"\nmax_connections = 1000000\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        problem_fields(&e),
        ["limits.max_message_size", "limits.max_connections"]
    );
    assert!(e.to_string().contains("between 16 KiB and 1 GiB"), "{e}");
}

#[test]
fn hub_name_rules() {
    let long = format!("[hub]\nname = \"{}\"\n", "x".repeat(64));
    assert!(load_str(&long, &[]).is_err());
    assert!(load_str("[hub]\nname = \"a\\nb\"\n", &[]).is_err());
    let c = load_str("[hub]\nname = \"  Lakeside  \"\n", &[]).unwrap();
    assert_eq!(c.hub.name, "Lakeside");
}

#[test]
fn duplicate_domain_and_shared_port() {
    let e = load_str(
        "[hub]\ndomains = [\"a.example\", \"A.example\"]\n[listen]\nimap = [\"127.0.0.1:8080\"]\n",
        &[],
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("`a.example` is listed twice"), "{msg}");
    assert!(msg.contains("`listen.http`"), "{msg}");
}

#[test]
fn unknown_keys_are_errors_with_suggestions() {
    let e = load_str(
        "[listen]\nhtp = [\"127.0.0.1:80\"]\n[hubb]\nname = \"x\"\n[other]\nthing = 1\n",
        &[],
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("`listen.htp`") && msg.contains("did you mean `listen.http`?"),
        "{msg}"
    );
    assert!(msg.contains("did you mean `hub.name`?"), "{msg}");
    assert!(
        msg.contains("`other.thing`") && msg.contains("cairn.example.toml"),
        "{msg}"
    );
}

#[test]
fn section_written_as_value() {
    let e = load_str("hub = \"x\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains("write it as a table, [hub]"), "{e}");
}

#[test]
fn malformed_toml_names_line_and_column() {
    let e = load_str("[hub]\nname = \"unterminated\n", &[]).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    let msg = e.to_string();
    assert!(msg.contains("not valid TOML at line 2"), "{msg}");
    assert_eq!(msg.lines().count(), 1, "{msg}");
}

#[test]
fn missing_file_is_reported() {
    let e = Config::load(
        Some(Path::new("/nonexistent/cairn.toml")),
        &HashMap::new(),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot read the config file"), "{e}");
}

#[test]
fn environment_overrides_file_and_flags_override_environment() {
    let c = load_str(
        "data_dir = \"/from/file\"\n[hub]\nname = \"file\"\n",
        &[
            ("CAIRN_HUB_NAME", "env"),
            ("CAIRN_DATA", "/from/env"),
            ("CAIRN_HUB_DOMAINS", "a.example, [10.0.0.1]"),
            ("CAIRN_LIMITS_MAX_CONNECTIONS", "7"),
            ("CAIRN_LIMITS_MAX_MESSAGE_SIZE", "1 MiB"),
            ("CAIRN_SECURITY_ALLOW_PLAINTEXT_AUTH", "yes"),
            ("CAIRN_LISTEN_HTTPS", ""),
            ("CAIRN_CONFIG", "ignored here"),
            ("PATH", "/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.hub.name, "env");
    assert_eq!(c.data_dir, PathBuf::from("/from/env"));
    assert_eq!(c.hub.domains.len(), 2);
    assert_eq!(c.limits.max_connections, 7);
    assert_eq!(c.limits.max_message_size, ByteSize(1 << 20));
    assert!(c.security.allow_plaintext_auth);
    assert!(c.listen.https.is_empty());

    let c = Config::load(
        None,
        &env(&[("CAIRN_DATA", "/from/env"), ("CAIRN_PROFILE", "laptop")]),
        &Overrides {
            data_dir: Some("/from/flag".into()),
            profile: Some("appliance".into()),
        },
    )
    .unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/from/flag"));
    assert_eq!(c.profile, Profile::Appliance);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let e = Config::load(
        None,
        &env(&[
            ("CAIRN_LIMITS_MAX_CONNECTIONS", "many"),
            ("CAIRN_HUB_NAM", "typo"),
        ]),
        &Overrides::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("environment variable CAIRN_LIMITS_MAX_CONNECTIONS"),
        "{msg}"
    );
    assert!(msg.contains("did you mean `CAIRN_HUB_NAME`?"), "{msg}");
}

#[test]
fn profile_sets_defaults_but_explicit_fields_win() {
    let c = load_str(
        "profile = \"appliance\"\n[listen]\nhttp = [\"0.0.0.0:8000\"]\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.listen.http, vec!["0.0.0.0:8000".parse().unwrap()]);
    assert_eq!(c.listen.imap, vec!["0.0.0.0:143".parse().unwrap()]);
}

#[test]
fn byte_sizes() {
    for (s, n) in [
        ("0", 0),
        ("30 MiB", 30 << 20),
        ("30MiB", 30 << 20),
        ("2mb", 2_000_000),
        ("5 KiB", 5 << 10),
        ("1 GiB", 1 << 30),
        ("10 B", 10),
    ] {
        assert_eq!(ByteSize::parse(s), Some(ByteSize(n)), "{s}");
    }
    for s in ["", "MiB", "3 parsecs", "-1", "99999999999999999999 GiB"] {
        assert_eq!(ByteSize::parse(s), None, "{s}");
    }
    assert_eq!(ByteSize(30 << 20).to_string(), "30 MiB");
    assert_eq!(ByteSize(1000).to_string(), "1000 B");
}

/// The committed example is exactly what the code generates, and it loads
/// back into the laptop defaults.
#[test]
fn example_file_is_in_sync() {
    let committed = include_str!("../cairn.example.toml");
    assert_eq!(
        committed,
        Config::example(),
        "server/cairn.example.toml is stale: run `cargo run -- example-config > server/cairn.example.toml`"
    );
    let c = load_str(committed, &[]).unwrap();
    assert_eq!(c, Config::defaults(Profile::Laptop));
    for f in FIELDS {
        assert!(committed.contains(f.env), "{} undocumented", f.key);
    }
}

/// Radio settings that each parse but do not fit together are reported
/// by field, and only when a radio is configured.
#[test]
fn radio_settings_are_checked_together() {
    let text = r#"
[radio]
port = "/dev/ttyUSB0"
modem = "rylr"
sf = 12
frequency = 869525000
bandwidth = 500000
"#;
    let e = load_str(text, &[]).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("radio.sf") && msg.contains("SF11"), "{msg}");
    assert!(
        msg.contains("radio.frequency") && msg.contains("869.400–869.650"),
        "{msg}"
    );
    // Without a port the same values are only kept, not checked.
    let c = load_str(&text.replace("/dev/ttyUSB0", ""), &[]).unwrap();
    assert!(c.radio.port.is_empty());
}
