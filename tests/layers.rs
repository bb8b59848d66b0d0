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
fn the_bundle_codec_does_no_io() {
    let text = std::fs::read_to_string(server().join("relay/bundle.rs")).unwrap();
    for banned in ["tokio", "std::fs", "std::net", "crate::store"] {
        assert!(!text.contains(banned), "relay/bundle.rs uses {banned}");
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
    }
}

#[test]
fn the_radio_codecs_do_no_io() {
    for codec in ["kiss.rs", "at.rs", "airtime.rs"] {
        let text = std::fs::read_to_string(server().join("carriers/lora").join(codec)).unwrap();
        for banned in ["tokio", "std::fs", "std::net", "serialport"] {
            assert!(
                !text.contains(banned),
                "carriers/lora/{codec} uses {banned}"
            );
        }
    }
}

/// A web handler reads a form only through the guard's `AdminForm` (the
/// admin's session and its CSRF token checked before any field), except
/// the forms shown before login, which carry a double-submit token.
#[test]
fn admin_forms_go_through_the_guard() {
    let mut files = Vec::new();
    rust_files(&server().join("web"), &mut files);
    let before_login = ["Form<SetupForm>", "Form<LoginForm>", "Form<JoinForm>"];
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
