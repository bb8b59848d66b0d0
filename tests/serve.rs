//! `cairn serve` as a new user meets it: first start, a second start, stop.

mod common;
use common::*;

#[test]
fn first_start_creates_everything_and_restart_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let hub = serve(c);
    let text = hub.printed_text();
    for want in [
        "created data directory ./cairn-data",
        "created database ./cairn-data/cairn.db",
        "created TLS key and self-signed certificate ./cairn-data/tls/cert.pem for 127.0.0.1, localhost",
        "created node key ./cairn-data/node.key (node ",
        "admin setup code: ",
        "/setup to choose the admin password with it, or run `cairn admin set-password`",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
    let data = data_dir(tmp.path());
    assert_eq!(
        listing(&data),
        [
            "blobs",
            "cairn.db",
            "cairn.db-shm",
            "cairn.db-wal",
            "cairn.lock",
            "node.key",
            "partial",
            "setup-code.txt",
            "tls",
            "tmp"
        ]
    );
    assert_eq!(listing(tmp.path()), ["cairn-data"], "no staging leftovers");

    let (status, body) = http_get(hub.http, "/healthz");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "ok\n");
    let (status, body) = http_get(hub.http, "/");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("The hub is running") && body.contains("[127.0.0.1]"),
        "{body}"
    );
    let (status, body) = http_get(hub.http, "/static/cairn.css");
    assert!(status.contains("200") && body.contains("body"), "{status}");
    let (status, _) = http_get(hub.http, "/no-such-page");
    assert!(status.contains("404"), "{status}");

    // HTTPS with the hub's certificate, strictly checked for both names.
    let https = hub.https.expect("https address");
    let cert = data.join("tls/cert.pem");
    for name in ["127.0.0.1", "localhost"] {
        let (status, body) = https_get(https, name, &cert, "/healthz");
        assert!(status.contains("200"), "{name}: {status}");
        assert_eq!(body, "ok\n");
    }

    let code = std::fs::read_to_string(data.join("setup-code.txt")).unwrap();
    let code = code.lines().next().unwrap().to_string();
    assert!(text.contains(&code), "printed code differs from the file");
    let fingerprint = text
        .lines()
        .find_map(|l| l.strip_prefix("certificate SHA-256 fingerprint "))
        .unwrap()
        .to_string();

    let (ok, rest) = hub.stop("TERM");
    assert!(ok, "SIGTERM must be a clean exit");
    assert_eq!(rest.last().map(String::as_str), Some("stopped"));

    // Second start: the same database, key, certificate and setup code.
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let hub = serve(c);
    let text = hub.printed_text();
    assert!(
        !text.contains("created"),
        "second start created something:\n{text}"
    );
    assert!(
        text.contains("using database ./cairn-data/cairn.db"),
        "{text}"
    );
    assert!(text.contains(&fingerprint), "certificate changed:\n{text}");
    assert!(text.contains(&code), "setup code changed:\n{text}");
    let (ok, _) = hub.stop("INT");
    assert!(ok, "SIGINT must be a clean exit");
}

#[test]
fn accounts_made_by_the_cli_show_on_the_running_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let hub = serve(c);
    let o = run(cairn(tmp.path()).args(["account", "add", "alice@[127.0.0.1]"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, body) = http_get(hub.http, "/");
    assert!(body.contains("<dt>Accounts</dt><dd>1</dd>"), "{body}");
    hub.stop("TERM");
}

#[test]
fn a_second_hub_on_the_same_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let hub = serve(c);
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let o = run(c.arg("serve"));
    assert_one_clear_error(&o, &["in use by another running cairn", "--data"]);
    hub.stop("TERM");
}

#[test]
fn changed_hostnames_reissue_the_certificate_with_the_same_key() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cairn(tmp.path());
    port0(&mut c);
    serve(c).stop("TERM");
    let key = std::fs::read(data_dir(tmp.path()).join("tls/key.pem")).unwrap();
    let mut c = cairn(tmp.path());
    port0(&mut c).env("CAIRN_HUB_HOSTNAMES", "127.0.0.1,_hub.lan");
    let hub = serve(c);
    assert!(
        hub.printed_text()
            .contains("re-issued the certificate (same key)"),
        "{}",
        hub.printed_text()
    );
    let cert = data_dir(tmp.path()).join("tls/cert.pem");
    let (status, _) = https_get(hub.https.unwrap(), "_hub.lan", &cert, "/healthz");
    assert!(status.contains("200"), "{status}");
    hub.stop("TERM");
    assert_eq!(
        std::fs::read(data_dir(tmp.path()).join("tls/key.pem")).unwrap(),
        key
    );
}

#[test]
fn admin_set_password_retires_the_setup_code() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(cairn(tmp.path()).args(["admin", "set-password"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("admin password set: "), "{out}");
    assert!(!data_dir(tmp.path()).join("setup-code.txt").exists());
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let hub = serve(c);
    assert!(
        !hub.printed_text().contains("setup code"),
        "{}",
        hub.printed_text()
    );
    hub.stop("TERM");
}

/// The library API the other integration tests will build on.
#[tokio::test]
async fn hub_starts_on_port_0_from_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = cairn::config::Config::defaults(cairn::config::Profile::Laptop);
    config.data_dir = tmp.path().join("data");
    config.listen.http = vec!["127.0.0.1:0".parse().unwrap()];
    config.listen.https = vec![];
    config.listen.smtp_submission_tls = vec![];
    config.listen.smtp_submission = vec![];
    config.listen.smtp_mx = vec![];
    config.listen.imap_tls = vec![];
    config.listen.imap = vec![];
    config.listen.link = vec![];
    let hub = cairn::app::Hub::start(config.clone()).await.unwrap();
    assert!(hub.report.first_start);
    let addr = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, "/healthz"))
        .await
        .unwrap();
    assert!(status.contains("200"));
    assert_eq!(body, "ok\n");

    // A sync the hub stopped during says so after the next start, instead
    // of looking as if it were still going.
    let run = hub
        .store
        .sync_started(None, "gw", "link (dialled)")
        .await
        .unwrap();
    hub.shutdown().await;
    let hub = cairn::app::Hub::start(config).await.unwrap();
    let row = hub.store.sync_history(1).await.unwrap().pop().unwrap();
    assert_eq!(row.id, run);
    assert_eq!(row.error.as_deref(), Some(cairn::store::sync::INTERRUPTED));
    assert_eq!(row.finished_at, None);
    hub.shutdown().await;
}

/// The first-boot wizard end to end: the setup code and admin password,
/// then the hub's name, mail domain, Wi-Fi and clock; the hub restarts by
/// itself on the same ports with the new name and domain, which the
/// command line then uses too.
#[test]
fn the_wizard_renames_the_hub_which_restarts_itself() {
    use common::web::{enc, request};
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let mut hub = serve(c);
    let code = hub.setup_code();
    let web = hub.http;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (jar, page) = rt.block_on(async {
        let jar = common::web::setup_admin(web, &code).await;
        let dash = request(web, "/admin", &jar, None).await;
        assert!(
            dash.body
                .contains(r#"<li class="todo">Name the hub and set its mail domain"#),
            "{}",
            dash.body
        );
        let page = request(web, "/admin/setup", &jar, None).await;
        (jar, page)
    });
    assert_eq!(page.status, 200, "{}", page.body);
    // The page's script (from static/, as the CSP allows) sends the
    // browser's time.
    assert!(
        page.body.contains("<script src=\"/static/wizard.js\""),
        "{}",
        page.body
    );
    let script = rt.block_on(request(web, "/static/wizard.js", "", None));
    assert!(
        script.body.contains("Date.now()"),
        "the page sends the browser's time"
    );
    let csrf = page.hidden("csrf").unwrap();
    let an_hour_ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    let done = rt.block_on(request(
        web,
        "/admin/setup",
        &jar,
        Some(&format!(
            "csrf={csrf}&name={}&domain=lake.example&ssid=Lakeside&passphrase=campfire42&country=de&browser_time={an_hour_ahead}",
            enc("Lakeside Camp")
        )),
    ));
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("1 h behind this browser")
            && done.body.contains("left alone")
            && done
                .body
                .contains("restarts now as Lakeside Camp with mail domain lake.example"),
        "{}",
        done.body
    );
    hub.wait_for_line("restarting with the new settings");
    let banner = hub.wait_for_line("cairn ");
    assert!(banner.contains("hub \"Lakeside Camp\""), "{banner}");
    hub.wait_for_line("ready");
    assert!(
        hub.printed_text().contains(&format!("web: http://{web}/")),
        "the same web port after the restart:\n{}",
        hub.printed_text()
    );
    let (_, body) = http_get(web, "/");
    assert!(body.contains("lake.example"), "{body}");

    // The command line uses the new domain as well.
    let o = run(cairn(tmp.path()).args(["account", "add", "bob@lake.example"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(cairn(tmp.path()).args(["account", "add", "carol@[127.0.0.1]"]));
    assert!(!o.status.success(), "the old domain is gone");

    rt.block_on(async {
        // The session survived the restart; the wizard is done.
        let dash = request(web, "/admin", &jar, None).await;
        assert_eq!(dash.status, 200);
        assert!(
            !dash.body.contains(r#"<li class="todo">Name the hub"#),
            "{}",
            dash.body
        );
        // With an account at lake.example, the domain stays.
        let page = request(web, "/admin/setup", &jar, None).await;
        assert!(
            page.body.contains("accounts exist, so it stays"),
            "{}",
            page.body
        );
        let csrf = page.hidden("csrf").unwrap();
        let r = request(
            web,
            "/admin/setup",
            &jar,
            Some(&format!("csrf={csrf}&name=x&domain=other.example")),
        )
        .await;
        assert_eq!(r.status, 400);
        assert!(r.body.contains("Accounts exist"), "{}", r.body);
    });
    let (clean, _) = hub.stop("TERM");
    assert!(clean);
}

/// Settings read at start (the encryption rule, how long mail stays, the
/// certificate) take effect by the hub restarting itself.
#[test]
fn settings_that_need_a_restart_take_effect_after_it() {
    use common::web::request;
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let mut hub = serve(c);
    let text = hub.printed_text();
    let code = hub.setup_code();
    let fingerprint = |t: &str| {
        t.lines()
            .rev()
            .find_map(|l| l.strip_prefix("certificate SHA-256 fingerprint "))
            .unwrap()
            .to_string()
    };
    let first = fingerprint(&text);
    let web = hub.http;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (jar, csrf) = rt.block_on(async {
        let jar = common::web::setup_admin(web, &code).await;
        let page = request(web, "/admin/settings", &jar, None).await;
        assert!(
            page.body
                .contains("name=\"encryption\" value=\"1\" checked")
        );
        assert!(page.body.contains(&first), "the fingerprint is shown");
        assert!(
            page.body
                .contains("name=\"max_message_size\" value=\"30 MiB\""),
            "{}",
            page.body
        );
        for (body, why) in [
            ("delete_after_days=0", "1 to 365 days"),
            ("delete_after_days=many", "1 to 365 days"),
            ("max_message_size=lots", "Largest message"),
            ("mailbox_quota=1%20KiB", "Mail each account may hold"),
        ] {
            let csrf = page.hidden("csrf").unwrap();
            let r = request(
                web,
                "/admin/settings",
                &jar,
                Some(&format!("csrf={csrf}&join=1&{body}")),
            )
            .await;
            assert_eq!(r.status, 400, "{why}");
            assert!(r.body.contains(why), "{}", r.body);
        }
        let csrf = page.hidden("csrf").unwrap();
        let r = request(
            web,
            "/admin/settings",
            &jar,
            Some(&format!(
                "csrf={csrf}&join=1&delete_after_days=30&max_message_size=10%20MiB"
            )),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.contains("restarts with the new settings"),
            "{}",
            r.body
        );
        (jar, csrf)
    });
    hub.wait_for_line("restarting with the new settings");
    hub.wait_for_line("ready");
    rt.block_on(async {
        let page = request(web, "/admin/settings", &jar, None).await;
        assert!(
            !page
                .body
                .contains("name=\"encryption\" value=\"1\" checked")
                && page
                    .body
                    .contains("name=\"delete_after_days\" value=\"30\"")
                && page
                    .body
                    .contains("name=\"max_message_size\" value=\"10 MiB\""),
            "{}",
            page.body
        );
        // A new certificate: it asks first, then makes one.
        let r = request(
            web,
            "/admin/settings/certificate",
            &jar,
            Some(&format!("csrf={csrf}")),
        )
        .await;
        assert!(
            r.status == 200 && r.body.contains("Make a new certificate?"),
            "{}",
            r.body
        );
        let r = request(
            web,
            "/admin/settings/certificate",
            &jar,
            Some(&format!("csrf={csrf}&confirm=yes")),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    });
    hub.wait_for_line("restarting with the new settings");
    hub.wait_for_line("ready");
    let second = fingerprint(&hub.printed_text());
    assert_ne!(first, second, "a new certificate");
    let (clean, _) = hub.stop("TERM");
    assert!(clean);
}
