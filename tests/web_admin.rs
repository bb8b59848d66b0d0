//! The admin pages over HTTP: setup with the one-time code, login, logout,
//! sessions, CSRF tokens, the failure limit, escaping.

mod common;
use common::smtp::hub;
use common::web::{enc, request};

#[tokio::test]
async fn setup_login_logout_and_sessions() {
    let (_tmp, hub) = hub(|c| c.hub.name = "Camp <b>&".into()).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let code = hub.report.setup_code.clone().expect("a setup code");
    let code_file = hub.report.data_dir.join("setup-code.txt");
    assert!(code_file.exists());

    // Nothing set up: the admin page leads to the setup page.
    let r = request(web, "/admin", "", None).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/login"))
    );
    let r = request(web, "/admin/login", "", None).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/setup")));

    let page = request(web, "/setup", "", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Camp &#60;b&#62;&#38;") && !page.body.contains("Camp <b>"),
        "names are escaped: {}",
        page.body
    );
    let form = page.hidden("form").expect("form token");
    assert_eq!(page.cookie("cairn_form").as_deref(), Some(form.as_str()));
    assert!(page.set_cookies()[0].contains("HttpOnly; SameSite=Strict"));
    let jar = format!("cairn_form={form}");
    let body = |code: &str, pw: &str, confirm: &str| {
        format!(
            "form={form}&code={}&password={}&confirm={}",
            enc(code),
            enc(pw),
            enc(confirm)
        )
    };

    // Without the form cookie (another site posting): refused.
    let r = request(
        web,
        "/setup",
        "",
        Some(&body(&code, "campfire-42", "campfire-42")),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Wrong code, mismatched or short passwords, an over-long field.
    let r = request(
        web,
        "/setup",
        &jar,
        Some(&body("aaaa-bbbb-cccc", "campfire-42", "campfire-42")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("not the setup code"), "{}", r.body);
    let r = request(
        web,
        "/setup",
        &jar,
        Some(&body(&code, "campfire-42", "campfire-43")),
    )
    .await;
    assert!(r.status == 400 && r.body.contains("differ"), "{}", r.body);
    let r = request(web, "/setup", &jar, Some(&body(&code, "short", "short"))).await;
    // Said at the field; the right code stays in its box.
    assert!(
        r.status == 400
            && r.body.contains("at least 8 characters.")
            && r.body.contains(&format!(r#"value="{code}""#)),
        "{}",
        r.body
    );
    let long = "x".repeat(5000);
    let r = request(web, "/setup", &jar, Some(&body(&code, &long, &long))).await;
    assert!(r.status == 400 && r.body.contains("too long"), "{}", r.body);
    assert!(
        hub.store
            .settings_get(cairn::store::settings::ADMIN_PASSWORD)
            .await
            .unwrap()
            .is_none(),
        "nothing was set by the refused attempts"
    );

    // The right code: password set, logged in, the code is gone.
    let r = request(
        web,
        "/setup",
        &jar,
        Some(&body(
            &format!(" {} ", code.to_uppercase()),
            "campfire-42",
            "campfire-42",
        )),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/setup")),
        "on to the rest of the wizard: {}",
        r.body
    );
    let session = r.cookie("cairn_admin").expect("session cookie");
    let line = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("cairn_admin="))
        .unwrap();
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict") && !line.contains("Secure"),
        "{line}"
    );
    assert!(!code_file.exists(), "setup-code.txt is removed");
    let me = format!("cairn_admin={session}");
    let dash = request(web, "/admin", &me, None).await;
    assert_eq!(dash.status, 200);
    assert!(
        dash.body.contains("Log out") && dash.body.contains("Outbox"),
        "{}",
        dash.body
    );
    assert!(
        dash.body
            .contains("The admin password was set with the setup code"),
        "the event log shows the change, in words"
    );

    // The code works once.
    let r = request(web, "/setup", "", None).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/login"))
    );
    let r = request(
        web,
        "/setup",
        &jar,
        Some(&body(&code, "other-pass-1", "other-pass-1")),
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/login"))
    );

    // Logout needs the session's CSRF token.
    let csrf = dash.hidden("csrf").expect("csrf token");
    let r = request(web, "/admin/logout", &me, Some("csrf=forged")).await;
    assert_eq!(r.status, 403);
    let r = request(web, "/admin/logout", &me, Some("")).await;
    assert!(
        r.status == 403 || r.status == 422,
        "missing token: {}",
        r.status
    );
    assert_eq!(
        request(web, "/admin", &me, None).await.status,
        200,
        "still logged in"
    );
    let r = request(web, "/admin/logout", &me, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/login"))
    );
    let r = request(web, "/admin", &me, None).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/login?expired=1"))
    );

    // Log in again; a wrong password first.
    let page = request(web, "/admin/login", "", None).await;
    let form = page.hidden("form").unwrap();
    let jar = format!("cairn_form={form}");
    let r = request(
        web,
        "/admin/login",
        &jar,
        Some(&format!("form={form}&password=nope-nope")),
    )
    .await;
    assert!(
        r.status == 403 && r.body.contains("Wrong password"),
        "{}",
        r.body
    );
    let r = request(
        web,
        "/admin/login",
        &jar,
        Some(&format!("form={form}&password=campfire-42")),
    )
    .await;
    assert_eq!((r.status, r.header("location")), (303, Some("/admin")));
    let me = format!("cairn_admin={}", r.cookie("cairn_admin").unwrap());
    assert_eq!(request(web, "/admin", &me, None).await.status, 200);

    // Sessions end after 12 hours.
    let later = cairn::store::now() + 13 * 3600;
    hub.store.admin_sessions_purge(later).await.unwrap();
    let r = request(web, "/admin", &me, None).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/login?expired=1"))
    );
    let r = request(web, "/admin/login?expired=1", "", None).await;
    assert!(r.body.contains("Your session ended"), "{}", r.body);
    hub.shutdown().await;
}

#[tokio::test]
async fn wrong_passwords_hit_the_limit() {
    let (_tmp, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let hash = cairn::domain::Password::chosen("campfire-42")
        .unwrap()
        .hash()
        .unwrap();
    hub.store
        .settings_set(cairn::store::settings::ADMIN_PASSWORD, hash.as_str())
        .await
        .unwrap();
    let page = request(web, "/admin/login", "", None).await;
    let form = page.hidden("form").unwrap();
    let jar = format!("cairn_form={form}");
    let mut statuses = Vec::new();
    for _ in 0..(cairn::web::admin::LOGIN_FAILURE_BURST + 1) {
        let r = request(
            web,
            "/admin/login",
            &jar,
            Some(&format!("form={form}&password=guess-guess")),
        )
        .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert!(r.body.contains("try again in"), "{}", r.body);
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Even the right password waits now.
    let r = request(
        web,
        "/admin/login",
        &jar,
        Some(&format!("form={form}&password=campfire-42")),
    )
    .await;
    assert_eq!(r.status, 429);
    hub.shutdown().await;
}

/// Peers, routes, the outbox and bundles through the admin pages.
#[tokio::test]
async fn peers_outbox_and_bundles_by_hand() {
    use common::relay::{node_for, routed, send};
    use common::web::{admin_session, multipart};
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    b.add(&a).await;
    let wa = a.hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let wb = b.hub.endpoint(cairn::app::WEB_HTTP).unwrap();

    // Not logged in: every page leads to the login.
    for p in [
        "/admin/outbox",
        "/admin/peers",
        "/admin/bundles",
        "/admin/bundles/export?peer=x",
    ] {
        let r = request(wa, p, "", None).await;
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/admin/login")),
            "{p}"
        );
    }
    let (jar, csrf) = admin_session(&a.hub).await;

    let page = request(wa, "/admin/peers", &jar, None).await;
    assert_eq!(page.status, 200);
    // The card names where this hub's live links answer.
    let link = a.hub.endpoint(cairn::app::LINK).unwrap().to_string();
    let card = a.hub.relay.card(vec![link]).to_text();
    assert!(page.body.contains(&card), "{}", page.body);
    assert_eq!(
        common::qr::decode_svgs(&page.body),
        vec![card.clone()],
        "the QR code reads as the node card"
    );

    // Add B by its card; a forged token changes nothing.
    let b_card = enc(&b.card().to_text());
    let r = request(
        wa,
        "/admin/peers/add",
        &jar,
        Some(&format!("csrf=forged&card={b_card}")),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(a.hub.store.peer_list().await.unwrap().is_empty());
    let r = request(
        wa,
        "/admin/peers/add",
        &jar,
        Some(&format!("csrf={csrf}&card=cairn-node%3Av1%3Bname%3Dx")),
    )
    .await;
    assert!(r.status == 400 && r.body.contains("no key"), "{}", r.body);
    let r = request(
        wa,
        "/admin/peers/add",
        &jar,
        Some(&format!("csrf={csrf}&card={b_card}")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = request(wa, "/admin/peers", &jar, None).await;
    assert!(
        page.body.contains("camp-b.example"),
        "the card's domain is routed: {}",
        page.body
    );

    // The outbox: hold, retry.
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "web-1").await;
    routed(&a).await;
    let id = a.hub.store.outbox().await.unwrap()[0].id;
    let page = request(wa, "/admin/outbox", &jar, None).await;
    assert!(
        page.body.contains("bob@camp-b.example") && page.body.contains("queued"),
        "{}",
        page.body
    );
    let r = request(
        wa,
        &format!("/admin/outbox/{id}/hold"),
        &jar,
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(a.hub.store.outbox().await.unwrap()[0].state, "held");
    let r = request(
        wa,
        &format!("/admin/outbox/{id}/retry"),
        &jar,
        Some("csrf="),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        wa,
        &format!("/admin/outbox/{id}/retry"),
        &jar,
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(a.hub.store.outbox().await.unwrap()[0].state, "queued");

    // Download a bundle for B, upload it to B.
    let r = request(wa, "/admin/bundles/export?peer=camp-b", &jar, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(
        r.header("content-disposition")
            .is_some_and(|d| d.contains(".cairn"))
    );
    assert!(r.bytes.starts_with(b"CAIRNBDL"));
    let bundle = r.bytes;
    let (jar_b, csrf_b) = admin_session(&b.hub).await;
    let r = multipart(
        wb,
        "/admin/bundles/import",
        &jar_b,
        &[("bundle", &bundle, Some("x.cairn"))],
    )
    .await;
    assert_eq!(r.status, 403, "no CSRF token");
    let r = multipart(
        wb,
        "/admin/bundles/import",
        &jar_b,
        &[
            ("csrf", csrf_b.as_bytes(), None),
            ("bundle", b"not a bundle", Some("x.cairn")),
        ],
    )
    .await;
    assert!(
        r.status == 400 && r.body.contains("not a cairn bundle"),
        "{}",
        r.body
    );
    assert!(
        common::smtp::inbox(&b.hub, "bob@camp-b.example")
            .await
            .is_empty()
    );
    let r = multipart(
        wb,
        "/admin/bundles/import",
        &jar_b,
        &[
            ("csrf", csrf_b.as_bytes(), None),
            ("bundle", &bundle, Some("x.cairn")),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 delivered here"), "{}", r.body);
    assert_eq!(
        common::smtp::inbox(&b.hub, "bob@camp-b.example")
            .await
            .len(),
        1
    );
    let leftovers: Vec<_> = std::fs::read_dir(b.hub.report.data_dir.join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("upload-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "uploads are streamed to temp files and removed"
    );
    // Without a session the upload is refused before it is read.
    let r = multipart(
        wb,
        "/admin/bundles/import",
        "",
        &[("bundle", &bundle, Some("x.cairn"))],
    )
    .await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/admin/login"))
    );

    // Drop bounces to the sender.
    send(&a, "alice@camp-a.example", "bob@camp-b.example", "web-2").await;
    routed(&a).await;
    let id = a
        .hub
        .store
        .outbox()
        .await
        .unwrap()
        .iter()
        .find(|o| o.state == "queued")
        .unwrap()
        .id;
    // Drop asks first and changes nothing until confirmed.
    let r = request(
        wa,
        &format!("/admin/outbox/{id}/drop"),
        &jar,
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert!(
        r.status == 200
            && r.body.contains(&format!("Drop message {id}?"))
            && r.body.contains(r#"name="confirm" value="yes""#),
        "{}",
        r.body
    );
    assert!(a.hub.store.outbox_item(id).await.unwrap().is_some());
    let r = request(
        wa,
        &format!("/admin/outbox/{id}/drop"),
        &jar,
        Some(&format!("csrf={csrf}&confirm=yes")),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        common::smtp::inbox(&a.hub, "alice@camp-a.example")
            .await
            .len(),
        1
    );
    for n in [a, b] {
        n.hub.shutdown().await;
    }
}

/// The `dclogin:` link on a page (HTML-unescaped).
fn dclogin_link(body: &str) -> String {
    let start = body.find("href=\"dclogin:").expect("a dclogin link") + 6;
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].replace("&#38;", "&").replace("&amp;", "&")
}

/// A classic peer (Exim, Postfix) is added on the peers page, shown with
/// its kind and last exchange, and mail for it downloads as batch SMTP.
#[tokio::test]
async fn a_classic_peer_on_the_peers_page() {
    use common::relay::{node_for, routed, send};
    use common::web::admin_session;
    let a = node_for("camp-a", "camp-a.example", |_| {}).await;
    let wa = a.hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let (jar, csrf) = admin_session(&a.hub).await;
    let add = |body: String| {
        let jar = jar.clone();
        async move { request(wa, "/admin/peers/add-classic", &jar, Some(&body)).await }
    };
    for (body, why) in [
        (
            "csrf=forged&name=exim&domains=x.example".to_string(),
            "CSRF",
        ),
        (
            format!("csrf={csrf}&name=exim&domains=not%20a%20domain%21"),
            "is not a domain",
        ),
        (
            format!("csrf={csrf}&name=exim&domains="),
            "at least one mail domain",
        ),
        (
            format!("csrf={csrf}&name={}&domains=x.example", enc("<b>x</b>")),
            "name",
        ),
        (
            format!("csrf={csrf}&name=exim&domains=camp-a.example"),
            "a domain of this hub",
        ),
        (
            format!(
                "csrf={csrf}&name=exim&domains=x.example&nncp={}",
                enc("a;b")
            ),
            "NNCP node",
        ),
    ] {
        let r = add(body).await;
        assert!(
            r.status == 400 || r.status == 403,
            "{why}: {} {}",
            r.status,
            r.body
        );
        if r.status == 400 {
            assert!(r.body.contains(why), "{why}: {}", r.body);
        }
    }
    assert!(
        a.hub.store.peer_list().await.unwrap().is_empty(),
        "nothing added"
    );
    let r = add(format!(
        "csrf={csrf}&name=exim&domains={}&nncp=EXIMNODE",
        enc("valley.example, hill.example")
    ))
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = request(wa, "/admin/peers", &jar, None).await;
    assert!(
        page.body
            .contains("classic (batch SMTP, NNCP node EXIMNODE)")
            && page.body.contains("valley.example, hill.example")
            && page.body.contains("never"),
        "{}",
        page.body
    );

    send(&a, "alice@camp-a.example", "bob@valley.example", "web-c1").await;
    routed(&a).await;
    let r = request(wa, "/admin/bundles/export?peer=exim", &jar, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/batch-SMTP"));
    assert!(
        r.header("content-disposition")
            .is_some_and(|d| d.contains(".bsmtp"))
    );
    assert!(r.bytes.starts_with(
        b"MAIL FROM:<alice@camp-a.example>\r\nRCPT TO:<bob@valley.example>\r\nDATA\r\n"
    ));
    assert!(r.bytes.ends_with(b"\r\n.\r\nQUIT\r\n"));
    assert!(
        a.hub.store.outbox().await.unwrap().is_empty(),
        "handed over"
    );
    let page = request(wa, "/admin/peers", &jar, None).await;
    assert!(
        page.body.contains(" ago</td>"),
        "last sent shown: {}",
        page.body
    );
    a.hub.shutdown().await;
}

#[tokio::test]
async fn accounts_with_generated_passwords_and_login_links() {
    use common::web::admin_session;
    let (_tmp, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap();
    let (jar, csrf) = admin_session(&hub).await;
    let post = |path: &'static str, body: String| {
        let jar = jar.clone();
        async move { request(web, path, &jar, Some(&body)).await }
    };

    let r = post("/admin/accounts/create", format!("csrf={csrf}&name=dora")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let link = dclogin_link(&r.body);
    assert!(
        link.starts_with("dclogin:dora@[127.0.0.1]?p=")
            && link.contains(&format!("&v=1&ih=127.0.0.1&ip={}&is=ssl", imap.port()))
            && link.ends_with("&ss=ssl&ic=3"),
        "{link}"
    );
    assert_eq!(
        common::qr::decode_svgs(&r.body),
        vec![link.clone()],
        "the card's QR code reads as its link"
    );
    // The password in the link logs in over IMAP.
    let pw = link
        .split("?p=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let (mut c, _) = common::imap::Imap::tls(imap, &hub).await;
    assert!(
        c.login("dora@[127.0.0.1]", &pw).await.ok(),
        "the generated password works"
    );

    // Refused, each with a clear message and no account made.
    let before = hub.store.account_count().await.unwrap();
    for (body, needle) in [
        (format!("csrf={csrf}&name=dora"), "already exists"),
        (format!("csrf={csrf}&count=0"), "from 1 to 200"),
        (format!("csrf={csrf}&count=lots"), "from 1 to 200"),
        (format!("csrf={csrf}&name=x&count=2"), "not both"),
        (format!("csrf={csrf}&name={}", "a".repeat(100)), "too long"),
        (format!("csrf={csrf}&name=%3Cscript%3E"), "&#60;script&#62;"),
        (
            format!("csrf={csrf}&name=eve%40elsewhere.example"),
            "not in a domain this hub hosts",
        ),
        ("csrf=forged&name=mallory".to_string(), "another site"),
    ] {
        let r = post("/admin/accounts/create", body.clone()).await;
        assert!(r.status == 400 || r.status == 403, "{body}: {}", r.status);
        assert!(r.body.contains(needle), "{body}: {}", r.body);
        assert!(!r.body.contains("<script>"), "escaped");
    }
    assert_eq!(hub.store.account_count().await.unwrap(), before);

    // A batch of three, each with its own card.
    let r = post("/admin/accounts/create", format!("csrf={csrf}&count=3")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.matches("class=\"account-card\"").count(), 3);
    assert_eq!(r.body.matches("dclogin:camper-").count(), 3);
    let codes = common::qr::decode_svgs(&r.body);
    assert_eq!(codes.len(), 3);
    for code in codes {
        assert!(
            r.body
                .contains(&format!("href=\"{}\"", code.replace('&', "&#38;"))),
            "each QR code is its card's link: {code}"
        );
    }
    assert_eq!(hub.store.account_count().await.unwrap(), before + 3);

    // Search, reset, delete.
    let r = request(web, "/admin/accounts?q=dora", &jar, None).await;
    assert!(
        r.body.contains("dora@[127.0.0.1]") && !r.body.contains("camper-"),
        "{}",
        r.body
    );
    // A new password asks first: the old one keeps working until then.
    let r = post(
        "/admin/accounts/reset",
        format!("csrf={csrf}&address=dora%40%5B127.0.0.1%5D"),
    )
    .await;
    assert!(
        r.status == 200 && r.body.contains("Give dora@[127.0.0.1] a new password?"),
        "{}",
        r.body
    );
    let (mut c, _) = common::imap::Imap::tls(imap, &hub).await;
    assert!(c.login("dora@[127.0.0.1]", &pw).await.ok());
    let r = post(
        "/admin/accounts/reset",
        format!("csrf={csrf}&address=dora%40%5B127.0.0.1%5D&confirm=yes"),
    )
    .await;
    assert_eq!(r.status, 200);
    let new_pw = dclogin_link(&r.body)
        .split("?p=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(new_pw, pw);
    let (mut c, _) = common::imap::Imap::tls(imap, &hub).await;
    assert!(
        !c.login("dora@[127.0.0.1]", &pw).await.ok(),
        "the old password no longer works"
    );
    let r = post(
        "/admin/accounts/delete",
        format!("csrf={csrf}&address=dora%40%5B127.0.0.1%5D"),
    )
    .await;
    assert!(
        r.status == 200 && r.body.contains("Delete the account dora@[127.0.0.1]?"),
        "{}",
        r.body
    );
    assert_eq!(hub.store.account_count().await.unwrap(), before + 3);
    let r = post(
        "/admin/accounts/delete",
        format!("csrf={csrf}&address=dora%40%5B127.0.0.1%5D&confirm=yes"),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(hub.store.account_count().await.unwrap(), before + 2);
    hub.shutdown().await;
}

/// The wizard's second page refuses bad input with a clear message and
/// changes nothing; a new name asks the hub's runner for a restart.
#[tokio::test]
async fn the_wizard_checks_its_input() {
    use common::web::admin_session;
    let (_tmp, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let (jar, csrf) = admin_session(&hub).await;
    let page = request(web, "/admin/setup", &jar, None).await;
    assert!(
        page.body.contains("accounts exist, so it stays"),
        "the test hub has accounts: {}",
        page.body
    );
    let ok = "name=Camp&domain=%5B127.0.0.1%5D";
    for (body, why) in [
        (format!("csrf=forged&{ok}"), "another site"),
        (
            format!("csrf={csrf}&name=&domain=%5B127.0.0.1%5D"),
            "1 to 64 characters",
        ),
        (
            format!("csrf={csrf}&name={}&domain=%5B127.0.0.1%5D", "n".repeat(65)),
            "1 to 64 characters",
        ),
        (
            format!("csrf={csrf}&name=Camp&domain=not%20a%20domain"),
            "cannot be a mail domain",
        ),
        (
            format!("csrf={csrf}&name=Camp&domain=camp.example"),
            "Accounts exist",
        ),
        (format!("csrf={csrf}&{ok}&country=Germany"), "from the list"),
        (
            // Two letters, but no country (it used to be taken as such).
            format!("csrf={csrf}&{ok}&country=XX"),
            "from the list",
        ),
        (
            format!("csrf={csrf}&{ok}&ssid=x&passphrase=short"),
            "8 to 63",
        ),
        (
            format!("csrf={csrf}&{ok}&ssid={}", "s".repeat(33)),
            "at most 32",
        ),
        (
            format!("csrf={csrf}&{ok}&browser_time=noon"),
            "did not come through",
        ),
        (
            format!("csrf={csrf}&name=%3Cb%3EX%3C%2Fb%3E&domain=camp.example"),
            "Accounts exist",
        ),
    ] {
        let r = request(web, "/admin/setup", &jar, Some(&body)).await;
        assert!(
            r.status == 400 || r.status == 403,
            "{why}: {} {}",
            r.status,
            r.body
        );
        assert!(r.body.contains(why), "{why}: {}", r.body);
    }
    assert_eq!(hub.store.settings_get("setup.done").await.unwrap(), None);
    assert_eq!(hub.store.settings_get("hub.name").await.unwrap(), None);
    assert!(!hub.reload_requested().is_cancelled());

    // The same name, a Wi-Fi, the browser's time equal to the hub's: done,
    // no restart.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let name = hub.name.clone();
    let r = request(
        web,
        "/admin/setup",
        &jar,
        Some(&format!(
            "csrf={csrf}&name={}&domain=%5B127.0.0.1%5D&ssid=Camp&passphrase=campfire42&country=fr&browser_time={now}",
            common::web::enc(&name)
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("clock agrees"), "{}", r.body);
    assert_eq!(
        hub.store
            .settings_get("wifi.country")
            .await
            .unwrap()
            .as_deref(),
        Some("FR")
    );
    assert_eq!(
        hub.store
            .settings_get("setup.done")
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(
        !hub.reload_requested().is_cancelled(),
        "nothing that needs a restart"
    );

    // A new name: saved, and a restart is asked for.
    let r = request(
        web,
        "/admin/setup",
        &jar,
        Some(&format!(
            "csrf={csrf}&name=Riverside&domain=%5B127.0.0.1%5D"
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("restarts now as Riverside"));
    assert_eq!(
        hub.store.settings_get("hub.name").await.unwrap().as_deref(),
        Some("Riverside")
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(hub.reload_requested().is_cancelled());
    hub.shutdown().await;
}

/// The accounts page shows what each account holds and gives an account
/// its own quota, which IMAP's QUOTA then reports.
#[tokio::test]
async fn an_account_gets_its_own_quota() {
    use common::smtp::PASSWORD;
    use common::web::admin_session;
    let (_tmp, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let imap = hub.endpoint(cairn::app::IMAP_TLS).unwrap();
    let (jar, csrf) = admin_session(&hub).await;
    let page = request(web, "/admin/accounts", &jar, None).await;
    assert!(page.body.contains("<th>Mail held</th>"), "{}", page.body);
    let alice = enc("alice@[127.0.0.1]");
    for (body, status, why) in [
        (
            format!("csrf=forged&address={alice}&quota=200%20MiB"),
            403,
            "another site",
        ),
        (
            format!("csrf={csrf}&address={alice}&quota=lots"),
            400,
            "at least 1.0 MiB",
        ),
        (
            format!("csrf={csrf}&address={alice}&quota=10%20KiB"),
            400,
            "at least 1.0 MiB",
        ),
        (
            format!("csrf={csrf}&address=nobody%40%5B127.0.0.1%5D&quota=2%20MiB"),
            404,
            "no account",
        ),
    ] {
        let r = request(web, "/admin/accounts/quota", &jar, Some(&body)).await;
        assert_eq!(r.status, status, "{why}: {}", r.body);
        assert!(r.body.contains(why), "{why}: {}", r.body);
    }
    let r = request(
        web,
        "/admin/accounts/quota",
        &jar,
        Some(&format!("csrf={csrf}&address={alice}&quota=200%20MiB")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = request(web, "/admin/accounts", &jar, None).await;
    assert!(page.body.contains("value=\"200.0 MiB\""), "{}", page.body);
    let (mut c, _) = common::imap::Imap::tls(imap, &hub).await;
    assert!(c.login("alice@[127.0.0.1]", PASSWORD).await.ok());
    let r = c.cmd("GETQUOTAROOT \"INBOX\"").await;
    assert!(
        r.untagged
            .iter()
            .any(|l| l.starts_with("* QUOTA \"\" (STORAGE 0 204800)")),
        "{}",
        r.all()
    );
    // Empty: back to the hub's quota.
    let r = request(
        web,
        "/admin/accounts/quota",
        &jar,
        Some(&format!("csrf={csrf}&address={alice}&quota=")),
    )
    .await;
    assert_eq!(r.status, 303);
    let r = c.cmd("GETQUOTAROOT \"INBOX\"").await;
    assert!(r.ok() && !r.all().contains("204800"), "{}", r.all());
    hub.shutdown().await;
}

#[tokio::test]
async fn uplinks_page_sync_now_events_and_history() {
    use common::relay::{pair, routed, send};
    use common::web::admin_session;
    let (a, b) = pair(|_| {}).await;
    let wa = a.hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    for p in [
        "/admin/uplinks",
        "/admin/sync",
        "/admin/sync/events",
        "/admin/history",
    ] {
        let r = request(wa, p, "", None).await;
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/admin/login")),
            "{p}"
        );
    }
    let (jar, csrf) = admin_session(&a.hub).await;

    // Nothing to sync yet: Sync now says what to do, on the sync page
    // (not a dead end).
    let r = request(wa, "/admin/sync", &jar, Some(&format!("csrf={csrf}"))).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("Nothing synced: no uplink is ready")
            && r.body.contains(r#"id="sync-now""#),
        "{}",
        r.body
    );

    // A bad schedule is refused and stores nothing; a good one is added.
    let add = |schedule: &str| {
        format!(
            "csrf={csrf}&peer=camp-b&carrier=link&target=&schedule={}",
            enc(schedule)
        )
    };
    let r = request(wa, "/admin/uplinks/add", &jar, Some(&add("now and then"))).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("mon-fri 08:00-18:00"), "{}", r.body);
    assert!(a.hub.store.uplinks().await.unwrap().is_empty());
    let r = request(wa, "/admin/uplinks/add", &jar, Some(&add("manual"))).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = request(wa, "/admin/uplinks", &jar, None).await;
    assert!(
        page.body.contains("camp-b") && page.body.contains("value=\"manual\""),
        "{}",
        page.body
    );
    // Deletion acknowledgements: only for a folder, and shown when on.
    let r = request(
        wa,
        "/admin/uplinks/add",
        &jar,
        Some(&format!("{}&deletion_acks=on", add("manual"))),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("Only a folder or USB stick uplink can count a deleted bundle"),
        "{}",
        r.body
    );
    let folder = tempfile::tempdir().unwrap();
    let r = request(
        wa,
        "/admin/uplinks/add",
        &jar,
        Some(&format!(
            "csrf={csrf}&peer=camp-b&carrier=folder&target={}&schedule=manual&deletion_acks=on",
            enc(folder.path().to_str().unwrap())
        )),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = request(wa, "/admin/uplinks", &jar, None).await;
    assert!(
        page.body
            .contains("a deleted bundle counts as acknowledged"),
        "{}",
        page.body
    );
    let folder_up = a
        .hub
        .store
        .uplinks()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.carrier == "folder")
        .unwrap();
    assert!(folder_up.deletion_acks);
    a.hub.syncer.remove(folder_up.id).await.unwrap();
    // Without the CSRF token nothing happens.
    let r = request(wa, "/admin/sync", &jar, Some("csrf=wrong")).await;
    assert_eq!(r.status, 403);

    send(&a, "alice@camp-a.example", "bob@camp-b.example", "m1").await;
    routed(&a).await;
    let r = request(wa, "/admin/sync", &jar, Some(&format!("csrf={csrf}"))).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/admin/sync")));
    // The event stream ends with the summary of the round.
    let events = request(wa, "/admin/sync/events", &jar, None).await;
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert!(events.body.contains("event: progress"), "{}", events.body);
    let summary = events
        .body
        .split("event: summary\ndata: ")
        .nth(1)
        .expect("a summary event");
    let s: serde_json::Value = serde_json::from_str(summary.lines().next().unwrap()).unwrap();
    assert_eq!(
        (s["ok"].as_u64(), s["items_out"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(
        common::smtp::inbox(&b.hub, "bob@camp-b.example")
            .await
            .len(),
        1
    );
    let history = request(wa, "/admin/history", &jar, None).await;
    assert!(
        history.body.contains("link (dialled)") && history.body.contains("1 item,"),
        "{}",
        history.body
    );

    // Removed: gone from the page.
    let id = a.hub.store.uplinks().await.unwrap()[0].id;
    let r = request(
        wa,
        &format!("/admin/uplinks/{id}/remove"),
        &jar,
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert!(r.status == 200 && r.body.contains("Remove this uplink?"));
    assert_eq!(a.hub.store.uplinks().await.unwrap().len(), 1);
    let r = request(
        wa,
        &format!("/admin/uplinks/{id}/remove"),
        &jar,
        Some(&format!("csrf={csrf}&confirm=yes")),
    )
    .await;
    assert_eq!(r.status, 303);
    let page = request(wa, "/admin/uplinks", &jar, None).await;
    assert!(page.body.contains("Removed the uplink."), "{}", page.body);
    assert!(a.hub.store.uplinks().await.unwrap().is_empty());
    a.hub.shutdown().await;
    b.hub.shutdown().await;
}

/// Every POST route of the web pages, read from the sources: (path with
/// its parameters filled in, whether it is an admin route).
fn post_routes() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("server/web");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for piece in text.split(".route(").skip(1) {
            // One route call: up to the next route or the end of the chain.
            let call = piece.split("\n        .").next().unwrap_or(piece);
            if !call.contains("post(") {
                continue;
            }
            let path = call.split('"').nth(1).expect("a route path");
            routes.push(path.replace("{id}", "1").replace("{action}", "drop"));
        }
    }
    routes.sort();
    routes
}

/// Every POST route refuses a missing token, a forged one and another
/// session's, and changes nothing. The forms before login (setup, login,
/// join) use a token in a cookie and a field (double submit); `/new` is
/// chatmail's JSON API, which a page of another site can only use to make
/// an account for itself.
#[tokio::test(flavor = "multi_thread")]
async fn every_post_route_refuses_a_missing_forged_or_borrowed_token() {
    let (_t, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let (me, csrf) = common::web::admin_session(&hub).await;
    // A second session of the same admin, with its own token.
    let page = request(web, "/admin/login", "", None).await;
    let form = page.hidden("form").unwrap();
    let r = request(
        web,
        "/admin/login",
        &format!("cairn_form={form}"),
        Some(&format!("form={form}&password=campfire-42")),
    )
    .await;
    let other = format!(
        "cairn_admin={}",
        r.cookie("cairn_admin").expect("logged in")
    );
    let other_csrf = request(web, "/admin", &other, None)
        .await
        .hidden("csrf")
        .unwrap();
    assert_ne!(other_csrf, csrf);

    let snapshot = || async {
        let s = &hub.store;
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            s.account_list()
                .await
                .unwrap()
                .iter()
                .map(|a| (&a.address, a.quota_bytes, a.password_changed_at))
                .collect::<Vec<_>>(),
            s.peer_list().await.unwrap().len(),
            s.routes().await.unwrap(),
            s.settings_with_prefix("").await.unwrap(),
            s.outbox().await.unwrap().len(),
        )
    };
    let before = snapshot().await;
    let routes = post_routes();
    assert!(routes.len() >= 20, "{routes:?}");
    // Every field any form has, so each form is read whole and only its
    // token is wrong.
    let fields = [
        "name",
        "count",
        "card",
        "domain",
        "domains",
        "peer",
        "schedule",
        "password",
        "confirm",
        "code",
        "ssid",
        "passphrase",
        "country",
        "browser_time",
        "target",
        "region",
        "quota",
        "q",
        "port",
        "nncp",
        "modem",
        "frequency",
        "bandwidth",
        "carrier",
        "cr",
        "sf",
        "txpower",
        "network",
        "max_item",
        "delete_after_days",
        "mailbox_quota",
        "max_message_size",
        "current",
    ]
    .map(|f| format!("{f}=1"))
    .join("&")
        + "&address=alice%40%5B127.0.0.1%5D";
    for path in &routes {
        if path == "/new" {
            continue;
        }
        let before_login = ["/setup", "/admin/login", "/join"].contains(&path.as_str());
        let tries: Vec<(&str, String)> = if before_login {
            vec![
                ("no token", fields.to_string()),
                ("forged", format!("form=forged&{fields}")),
                (
                    "a token without its cookie",
                    format!("form={form}&{fields}"),
                ),
            ]
        } else {
            vec![
                ("no token", fields.to_string()),
                ("forged", format!("csrf=forged&{fields}")),
                ("another session's", format!("csrf={other_csrf}&{fields}")),
            ]
        };
        for (what, body) in tries {
            let r = if path == "/admin/bundles/import" {
                let mut parts: Vec<(&str, &[u8], Option<&str>)> =
                    vec![("bundle", b"x", Some("b.cairn"))];
                if let Some(token) = body.strip_prefix("csrf=").and_then(|b| b.split('&').next()) {
                    parts.insert(0, ("csrf", token.as_bytes(), None));
                }
                common::web::multipart(web, path, &me, &parts).await
            } else {
                request(web, path, &me, Some(&body)).await
            };
            assert!(
                r.status == 403 || (what == "no token" && r.status == 422),
                "{path} with {what}: {} {}",
                r.status,
                r.body.chars().take(200).collect::<String>()
            );
        }
    }
    assert_eq!(snapshot().await, before, "a refused form changed something");
    assert_eq!(request(web, "/admin", &me, None).await.status, 200);
    hub.shutdown().await;
}

/// The dashboard says what needs the admin: a first-run checklist until
/// its steps are done, a red tile for an uplink that failed (with its
/// error), an amber one for mail with nowhere to go, and events in words.
#[tokio::test]
async fn the_dashboard_shows_what_needs_the_admin() {
    use common::relay::{node_for, send_plain};
    use common::web::admin_session;
    let a = node_for("camp-a", "camp-a.example", |c| {
        c.mail.require_encryption = false
    })
    .await;
    let wa = a.hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let (jar, _) = admin_session(&a.hub).await;

    let dash = request(wa, "/admin", &jar, None).await;
    assert_eq!(dash.status, 200);
    assert!(
        dash.body.contains(r#"<section id="checklist">"#)
            && dash.body.contains(r#"<li class="todo">Add a peer"#)
            && dash
                .body
                .contains(r#"<li class="todo">Print the join poster"#)
            && !dash.body.contains("bad-tile")
            && !dash.body.contains("warn-tile"),
        "{}",
        dash.body
    );

    // Mail for a domain no route leads to: amber, pointing at Peers.
    send_plain(
        &a,
        "alice@camp-a.example",
        "someone@elsewhere.example",
        "lost",
        100,
    )
    .await;
    for _ in 0..300 {
        let o = a.hub.store.outbox().await.unwrap();
        if o.iter().any(|o| o.state == "no-route") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dash = request(wa, "/admin", &jar, None).await;
    assert!(
        dash.body.contains("warn-tile")
            && dash.body.contains("1 message with nowhere to go")
            && dash
                .body
                .contains(r#"href="/admin/peers">Peers and routes"#),
        "{}",
        dash.body
    );

    // An uplink whose last run failed: red, with its error, worst first.
    let b = node_for("camp-b", "camp-b.example", |_| {}).await;
    a.add(&b).await;
    let up = a
        .hub
        .syncer
        .add("camp-b", "folder", "/media/no-such-stick", "appear", false)
        .await
        .unwrap();
    a.hub
        .store
        .uplink_ran(
            up.id,
            Some("the folder /media/no-such-stick does not exist"),
        )
        .await
        .unwrap();
    let dash = request(wa, "/admin", &jar, None).await;
    let health = dash.body.split(r#"id="health""#).nth(1).unwrap_or_default();
    let bad = health.find("bad-tile").expect("a red tile");
    assert!(
        bad < health.find("ok-tile").unwrap_or(usize::MAX)
            && health.contains("1 of 1 uplink failed")
            && health.contains("camp-b (folder): the folder /media/no-such-stick does not exist"),
        "{}",
        dash.body
    );

    // The poster ticks its step off; events read as words.
    let poster = request(wa, "/admin/poster", &jar, None).await;
    assert!(
        poster.status == 200 && poster.body.contains("/join"),
        "{}",
        poster.body
    );
    let dash = request(wa, "/admin", &jar, None).await;
    assert!(
        dash.body.contains(r#"<li class="done">"#)
            && !dash
                .body
                .contains(r#"<li class="todo">Print the join poster"#)
            && dash
                .body
                .contains("The admin password was set with the setup code")
            && dash.body.contains(" ago</span>"),
        "{}",
        dash.body
    );
    a.hub.shutdown().await;
    b.hub.shutdown().await;
}
