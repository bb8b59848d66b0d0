//! The layering rules of STYLE.md, checked on the source tree: only
//! `server/store/` speaks SQL, and `domain/` and the bundle codec do no I/O
//! of their own.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("server")
}

#[test]
fn only_the_store_uses_sqlx() {
    let mut files = Vec::new();
    rust_files(&server(), &mut files);
    let store = server().join("store");
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| !f.starts_with(&store) && !f.ends_with("build.rs"))
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("sqlx::"))
        .collect();
    assert!(
        offenders.is_empty(),
        "sqlx used outside server/store/: {offenders:?}"
    );
    assert!(files.len() > 10, "source tree not found");
}

#[test]
fn domain_does_no_io() {
    let mut files = Vec::new();
    rust_files(&server().join("domain"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in [
            "tokio",
            "std::fs",
            "std::net::Tcp",
            "crate::store",
            "crate::mail",
        ] {
            assert!(!text.contains(banned), "{} uses {banned}", f.display());
        }
    }
}

#[test]
fn the_bundle_codecs_do_no_io() {
    for codec in ["relay/bundle.rs", "relay/bsmtp.rs", "domain/smtp_path.rs"] {
        let text = std::fs::read_to_string(server().join(codec)).unwrap();
        for banned in ["tokio", "std::fs", "std::net", "crate::store"] {
            assert!(!text.contains(banned), "{codec} uses {banned}");
        }
    }
}

#[test]
fn carriers_know_nothing_of_the_store() {
    let mut files = Vec::new();
    rust_files(&server().join("carriers"), &mut files);
    assert!(!files.is_empty(), "server/carriers/ not found");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in ["crate::store", "crate::mail", "crate::web", "sqlx"] {
            assert!(!text.contains(banned), "{} uses {banned}", f.display());
        }
        // Of the relay, a carrier knows only the traits it implements.
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            let mut rest = code;
            while let Some(at) = rest.find("crate::relay") {
                rest = &rest[at..];
                assert!(
                    rest.starts_with("crate::relay::carrier::")
                        || rest.starts_with("crate::relay::radio::modem::"),
                    "{} uses the relay beyond its carrier traits: {line}",
                    f.display()
                );
                rest = &rest["crate::relay".len()..];
            }
        }
    }
}

#[test]
fn the_radio_codecs_do_no_io() {
    for codec in [
        "carriers/lora/kiss.rs",
        "carriers/lora/at.rs",
        "domain/lora.rs",
        "relay/radio/ledger.rs",
        "relay/radio/frame.rs",
    ] {
        let text = std::fs::read_to_string(server().join(codec)).unwrap();
        for banned in ["tokio", "std::fs", "std::net", "serialport"] {
            assert!(!text.contains(banned), "{codec} uses {banned}");
        }
    }
}

/// The relay reaches the world only through its carriers: no sockets,
/// child processes, serial ports, SMTP or DNS clients of its own.
#[test]
fn the_relay_does_no_carrier_io_itself() {
    let mut files = Vec::new();
    rust_files(&server().join("relay"), &mut files);
    assert!(files.len() > 10, "server/relay/ not found");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in [
            "tokio::net",
            "tokio::process",
            "std::process::Command",
            "serialport",
            "lettre",
            "hickory",
        ] {
            assert!(!text.contains(banned), "{} uses {banned}", f.display());
        }
    }
}

/// A web handler reads a form only through the guard's `AdminForm` (the
/// admin's session and its CSRF token checked before any field), except
/// the forms shown before login, which go through the guard's `TokenForm`
/// (their double-submitted token checked before any field).
#[test]
fn admin_forms_go_through_the_guard() {
    let mut files = Vec::new();
    rust_files(&server().join("web"), &mut files);
    let before_login = [
        "TokenForm<SetupForm>",
        "TokenForm<LoginForm>",
        "TokenForm<JoinForm>",
        // The extractor's own definition.
        "pub struct TokenForm<T>",
        "FromRequest<AppState> for TokenForm<T>",
    ];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains("Form<")
                && !line.contains("AdminForm<")
                && !before_login.iter().any(|b| line.contains(b))
                && !line.trim_start().starts_with("//")
            {
                panic!(
                    "{}:{}: a form read without the admin guard: {line}",
                    f.display(),
                    i + 1
                );
            }
        }
        assert!(
            !text.contains("require_form"),
            "{}: check forms with the AdminForm extractor",
            f.display()
        );
    }
}

/// The top-level modules of server/ each file names (`crate::X`, also in
/// `use crate::{X, Y}`), outside comments: module → (named module → files).
fn module_edges()
-> std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>> {
    let mut files = Vec::new();
    rust_files(&server(), &mut files);
    let mut edges: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, Vec<String>>,
    > = Default::default();
    for f in files {
        let rel = f
            .strip_prefix(server())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let mut named = Vec::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap();
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap();
                    named.extend(inner.split(',').map(|s| {
                        s.trim()
                            .split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()
                            .unwrap()
                            .to_string()
                    }));
                } else {
                    named.push(
                        rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                            .next()
                            .unwrap()
                            .to_string(),
                    );
                }
            }
        }
        for n in named {
            if !n.is_empty() && n != module && n != "self" {
                edges
                    .entry(module.clone())
                    .or_default()
                    .entry(n)
                    .or_default()
                    .push(rel.clone());
            }
        }
    }
    edges
}

/// No two top-level modules of server/ import each other, directly or
/// round a loop: each layer can be read (and tested) without those above.
#[test]
fn no_import_cycle_between_modules() {
    let edges = module_edges();
    assert!(edges.contains_key("web") && edges.contains_key("relay"));
    // Depth-first search for a back edge; report the loop with its files.
    fn visit(
        m: &str,
        edges: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    for m in edges.keys() {
        let mut path = Vec::new();
        let mut done = Default::default();
        if let Some(cycle) = visit(m, &edges, &mut path, &mut done) {
            let why: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} → {} in {:?}", w[0], w[1], edges[&w[0]][&w[1]]))
                .collect();
            panic!("import cycle {}: {why:#?}", cycle.join(" → "));
        }
    }
}

/// Which way imports point (STYLE.md): the pages, the protocols and the
/// relay use mail/, store/ and domain/, never the start-up (app, cli,
/// appliance) or each other sideways; the store knows only domain/.
#[test]
fn imports_point_down() {
    let edges = module_edges();
    let banned: &[(&str, &[&str])] = &[
        ("web", &["app", "appliance", "cli", "smtp", "imap"]),
        // The relay names no concrete carrier: modems come in through
        // relay::radio::modem's traits, handed in by app.rs.
        (
            "relay",
            &["smtp", "imap", "web", "carriers", "app", "appliance", "cli"],
        ),
        ("smtp", &["imap", "web", "relay", "app", "appliance", "cli"]),
        ("imap", &["smtp", "web", "relay", "app", "appliance", "cli"]),
        (
            "mail",
            &["smtp", "imap", "web", "relay", "carriers", "app", "cli"],
        ),
        (
            "carriers",
            &["store", "mail", "web", "smtp", "imap", "app", "cli"],
        ),
        ("appliance", &["app", "web", "cli"]),
    ];
    for (from, never) in banned {
        for to in *never {
            if let Some(files) = edges.get(*from).and_then(|e| e.get(*to)) {
                panic!("{from} must not import {to}, but {files:?} do");
            }
        }
    }
    let store: Vec<_> = edges["store"].keys().filter(|m| *m != "domain").collect();
    assert!(store.is_empty(), "store imports {store:?}");
}
