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
    assert!(
        r.status == 400 && r.body.contains("shorter than 8"),
        "{}",
        r.body
    );
    let long = "x".repeat(5000);
    let r = request(web, "/setup", &jar, Some(&body(&code, &long, &long))).await;
    assert!(r.status == 400 && r.body.contains("too long"), "{}", r.body);
    assert!(
        hub.store
            .settings_get(cairn::app::SETTING_ADMIN_PASSWORD)
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
        (303, Some("/admin")),
        "{}",
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
        dash.body.contains("admin.password"),
        "the event log shows the change"
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
        .settings_set(cairn::app::SETTING_ADMIN_PASSWORD, hash.as_str())
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
