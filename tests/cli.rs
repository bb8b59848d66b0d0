//! The command line's answers to good and bad input: one clear error line,
//! a non-zero exit, and nothing half-created.

mod common;
use common::*;
use std::io::Write;
use std::net::TcpListener;
use std::process::Stdio;

#[test]
fn unwritable_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    // Under a regular file: no permission trick, so it fails for root too.
    // Port 0 everywhere, so only the data directory can be the problem.
    let hub = |tmp: &std::path::Path| {
        let mut c = cairn(tmp);
        port0(&mut c);
        c
    };
    let o = run(hub(tmp.path()).args(["--data", "a-file/data", "serve"]));
    assert_one_clear_error(&o, &["a-file/data", "--data or CAIRN_DATA"]);
    let o = run(hub(tmp.path()).env("CAIRN_DATA", "a-file").arg("serve"));
    assert_one_clear_error(&o, &["is a file, not a directory", "--data"]);
    // /proc refuses new directories even to root.
    let o = run(hub(tmp.path()).args(["--data", "/proc/cairn-data", "serve"]));
    assert_one_clear_error(&o, &["/proc/cairn-data", "--data"]);
    assert_eq!(listing(tmp.path()), ["a-file"]);
}

#[test]
fn malformed_config_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("c.toml"), "[hub]\nname = \"open\n").unwrap();
    let o = run(cairn(tmp.path()).args(["--config", "c.toml", "serve"]));
    assert_one_clear_error(&o, &["c.toml", "not valid TOML at line 2"]);
    assert_eq!(listing(tmp.path()), ["c.toml"]);
}

#[test]
fn unknown_config_key_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("c.toml"), "[hub]\nnmae = \"x\"\n").unwrap();
    let o = run(cairn(tmp.path()).args(["--config", "c.toml", "serve"]));
    assert_one_clear_error(
        &o,
        &["`hub.nmae`", "unknown key", "did you mean `hub.name`?"],
    );
    assert_eq!(listing(tmp.path()), ["c.toml"]);
    let o = run(cairn(tmp.path())
        .env("CAIRN_LISTEN_HTPP", "127.0.0.1:0")
        .arg("serve"));
    assert_one_clear_error(
        &o,
        &["CAIRN_LISTEN_HTPP", "did you mean `CAIRN_LISTEN_HTTP`?"],
    );
    assert_eq!(listing(tmp.path()), ["c.toml"]);
}

#[test]
fn port_in_use_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let mut c = cairn(tmp.path());
    port0(&mut c).env("CAIRN_LISTEN_HTTP", &addr);
    let o = run(c.arg("serve"));
    assert_one_clear_error(
        &o,
        &[
            "`listen.http`",
            &addr,
            "already in use",
            "CAIRN_LISTEN_HTTP",
        ],
    );
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn stale_partial_first_start_is_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    // What a first start killed half-way leaves behind.
    let partial = tmp.path().join(".cairn-data.partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join("cairn.db"), "half a database").unwrap();
    let o = run(cairn(tmp.path()).args(["account", "add", "a@[127.0.0.1]"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(tmp.path()), ["cairn-data"]);
}

#[test]
fn account_lifecycle() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(cairn(tmp.path()).args(["account", "add", "Alice@[127.0.0.1]"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let password = out
        .trim()
        .strip_prefix("created alice@[127.0.0.1] with password ")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(password.len(), 23, "{password}");
    // First command on a fresh machine: it says what it made.
    assert!(
        stderr(&o).contains("created data directory"),
        "{}",
        stderr(&o)
    );

    let mut child = cairn(tmp.path())
        .args(["account", "add", "bob@[127.0.0.1]", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"bobs long password\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "created bob@[127.0.0.1]\n");

    let o = run(cairn(tmp.path()).args(["account", "list"]));
    assert_eq!(stdout(&o), "alice@[127.0.0.1]\nbob@[127.0.0.1]\n");

    let o = run(cairn(tmp.path()).args(["account", "passwd", "bob@[127.0.0.1]"]));
    assert!(
        stdout(&o).starts_with("new password for bob@[127.0.0.1]: "),
        "{}",
        stdout(&o)
    );

    // Not at a terminal and no --yes: refused, nothing removed.
    let o = run(cairn(tmp.path()).args(["account", "remove", "bob@[127.0.0.1]"]));
    assert_one_clear_error(&o, &["--yes"]);
    let o = run(cairn(tmp.path()).args(["account", "remove", "bob@[127.0.0.1]", "--yes"]));
    assert_eq!(stdout(&o), "removed bob@[127.0.0.1]\n");
    let o = run(cairn(tmp.path()).args(["account", "list"]));
    assert_eq!(stdout(&o), "alice@[127.0.0.1]\n");
    let o = run(cairn(tmp.path()).args(["account", "remove", "bob@[127.0.0.1]", "--yes"]));
    assert_one_clear_error(&o, &["no account bob@[127.0.0.1]", "account list"]);
}

#[test]
fn duplicate_account_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let add = |pw: &str| {
        run(cairn(tmp.path()).args(["account", "add", "carol@[127.0.0.1]", "--password", pw]))
    };
    assert!(add("first password").status.success());
    let before = std::fs::read(data_dir(tmp.path()).join("cairn.db")).unwrap();
    let o = add("second password");
    assert_one_clear_error(&o, &["carol@[127.0.0.1] already exists", "account passwd"]);
    let o = run(cairn(tmp.path()).args(["account", "list"]));
    assert_eq!(stdout(&o), "carol@[127.0.0.1]\n");
    // The stored hash is still the first one.
    let after = std::fs::read(data_dir(tmp.path()).join("cairn.db")).unwrap();
    let hash_of = |db: &[u8]| {
        let s = String::from_utf8_lossy(db);
        s.find("$argon2id$").map(|i| s[i..i + 80].to_string())
    };
    assert_eq!(hash_of(&before), hash_of(&after));
}

#[test]
fn address_outside_hosted_domains_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(cairn(tmp.path()).args(["account", "add", "eve@elsewhere.example"]));
    assert_one_clear_error(&o, &["eve@elsewhere.example", "[127.0.0.1]", "hub.domains"]);
    let o = run(cairn(tmp.path()).args(["account", "add", "not-an-address"]));
    assert_one_clear_error(&o, &["not a valid address", "alice@example.org"]);
    let o = run(cairn(tmp.path()).args(["account", "add", "a@[127.0.0.1]", "--password", "short"]));
    assert_one_clear_error(&o, &["shorter than 8"]);
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn internationalised_domain_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(cairn(tmp.path())
        .env("CAIRN_HUB_DOMAINS", "bücher.example")
        .args(["account", "add", "jörg@BÜCHER.example"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("created jörg@xn--bcher-kva.example"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn management_commands_need_existing_data() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(cairn(tmp.path()).args(["account", "list"]));
    assert_one_clear_error(&o, &["no hub data", "cairn serve"]);
    assert!(listing(tmp.path()).is_empty());
}

#[test]
fn check_config_reports_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.toml"),
        "profile = \"desk\"\n[hub]\ndomains = []\n[limits]\nmax_connections = -1\ncolour = \"red\"\n",
    )
    .unwrap();
    let o = run(cairn(tmp.path()).args(["check-config", "bad.toml"]));
    assert!(!o.status.success());
    let err = stderr(&o);
    for field in [
        "`profile`",
        "`hub.domains`",
        "`limits.max_connections`",
        "`limits.colour`",
    ] {
        assert!(err.contains(field), "{field} missing:\n{err}");
    }
    assert!(err.contains("bad.toml: 4 problems found"), "{err}");

    let example = run(cairn(tmp.path()).arg("example-config"));
    std::fs::write(tmp.path().join("good.toml"), &example.stdout).unwrap();
    let o = run(cairn(tmp.path()).args(["check-config", "good.toml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("good.toml: ok (profile laptop"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        listing(tmp.path()),
        ["bad.toml", "good.toml"],
        "check-config creates nothing"
    );
}

/// `cairn gateway dns`: the records a gateway going live publishes, as
/// zone-file lines; `--check` asks DNS and fails until all are there.
#[test]
fn gateway_dns_lists_the_records_and_checks_them() {
    use common::dns::{Entry, Zone};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let zone = Zone::default();
    let dns = rt.block_on(common::dns::serve_zone(
        "127.0.0.1:0".parse().unwrap(),
        zone.clone(),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let gateway = || {
        let mut c = cairn(tmp.path());
        c.env("CAIRN_HUB_DOMAINS", "camp.example")
            .env("CAIRN_HUB_HOSTNAMES", "mx.camp.example,127.0.0.1")
            .env("CAIRN_GATEWAY_DNS", dns.to_string());
        c
    };
    let o = run(gateway().args(["gateway", "dns"]));
    assert_one_clear_error(&o, &["no hub data", "cairn serve"]);
    assert!(run(gateway().args(["node", "card"])).status.success());
    let o = run(gateway().args(["gateway", "dns"]));
    assert_one_clear_error(&o, &["not a gateway", "cairn peer add-internet"]);
    assert!(
        run(gateway().args(["peer", "add-internet"]))
            .status
            .success()
    );

    let o = run(gateway().args(["gateway", "dns"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for want in [
        "camp.example. 3600 IN MX 10 mx.camp.example.",
        "camp.example. 3600 IN TXT \"v=spf1 mx -all\"",
        "cairn-rsa._domainkey.camp.example. 3600 IN TXT \"v=DKIM1; k=rsa; p=MII",
        "cairn-ed25519._domainkey.camp.example. 3600 IN TXT \"v=DKIM1; k=ed25519; p=",
        "_dmarc.camp.example. 3600 IN TXT \"v=DMARC1; p=reject; adkim=s; aspf=s\"",
    ] {
        assert!(out.contains(want), "{want} missing:\n{out}");
    }
    // The same keys the next time.
    assert_eq!(stdout(&run(gateway().args(["gateway", "dns"]))), out);

    let o = run(gateway().args(["gateway", "dns", "--check"]));
    assert_one_clear_error(&o, &["not every record is published"]);
    assert_eq!(
        stdout(&o).matches(";   missing").count(),
        5,
        "{}",
        stdout(&o)
    );
    zone.add("camp.example", Entry::Mx("mx.camp.example"));
    zone.add("camp.example", Entry::Txt("v=spf1 a -all".into()));
    for line in out
        .lines()
        .filter(|l| l.contains("IN TXT") && !l.contains("spf1"))
    {
        let (name, value) = line.split_once(". 3600 IN TXT ").unwrap();
        let value: String = value.split('"').skip(1).step_by(2).collect();
        zone.add(name, Entry::Txt(value));
    }
    let o = run(gateway().args(["gateway", "dns", "--check"]));
    let text = stdout(&o);
    assert!(!o.status.success());
    assert!(
        text.contains(";   different: published is v=spf1 a -all")
            && text.matches(";   found").count() == 4,
        "{text}"
    );
    zone.remove("camp.example");
    zone.add("camp.example", Entry::Mx("mx.camp.example"));
    zone.add("camp.example", Entry::Txt("v=spf1 mx -all".into()));
    let o = run(gateway().args(["gateway", "dns", "--check"]));
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).matches(";   found").count(), 5);

    // New keys: the old files kept aside, both DKIM records now differ.
    let o = run(gateway().args(["gateway", "dns", "--check", "--new-keys", "camp.example"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("new DKIM keys for camp.example"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        stdout(&o).matches(";   different").count(),
        2,
        "{}",
        stdout(&o)
    );
    assert_ne!(stdout(&o), out);
}
