//! The hub's public web pages: connectivity-probe answers that keep phones
//! on a Wi-Fi without Internet, the join page and the account endpoint.

mod common;
use common::smtp::hub;
use common::web::request;

#[tokio::test]
async fn connectivity_probes_keep_phones_on_the_wifi() {
    let (_t, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    // (path, status, body, content type)
    for (path, status, body, ctype) in [
        ("/generate_204", 204, "", None),
        ("/gen_204", 204, "", None),
        (
            "/hotspot-detect.html",
            200,
            "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>\n",
            Some("text/html; charset=utf-8"),
        ),
        (
            "/library/test/success.html",
            200,
            "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>\n",
            Some("text/html; charset=utf-8"),
        ),
        (
            "/connecttest.txt",
            200,
            "Microsoft Connect Test",
            Some("text/plain; charset=utf-8"),
        ),
        (
            "/ncsi.txt",
            200,
            "Microsoft NCSI",
            Some("text/plain; charset=utf-8"),
        ),
        (
            "/success.txt",
            200,
            "success\n",
            Some("text/plain; charset=utf-8"),
        ),
    ] {
        let r = request(web, path, "", None).await;
        assert_eq!((r.status, r.body.as_str()), (status, body), "{path}");
        assert_eq!(r.header("content-type"), ctype, "{path}");
        assert!(
            r.header("cache-control")
                .is_some_and(|c| c.contains("no-store")),
            "{path}: probes must not be cached"
        );
        if status == 204 {
            assert!(r.bytes.is_empty(), "{path}");
        }
    }
    let r = request(web, "/api/captive", "", None).await;
    assert_eq!(r.header("content-type"), Some("application/captive+json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["captive"], false);
    assert_eq!(v["venue-info-url"], "http://hub/");
    hub.shutdown().await;
}

/// The `dclogin:` link in a page (HTML-escaped `&` undone).
fn dclogin_link(body: &str) -> String {
    let start = body.find("href=\"dclogin:").expect("a dclogin link") + 6;
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].replace("&#38;", "&").replace("&amp;", "&")
}

#[tokio::test]
async fn the_join_page_makes_accounts_within_limits() {
    use common::web::{admin_session, enc};
    let (_t, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let page = request(web, "/join", "", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Create my account"), "{}", page.body);
    assert!(
        page.body.contains("no Internet"),
        "the how-to: {}",
        page.body
    );
    let form = page.hidden("form").unwrap();
    let jar = format!("cairn_form={}", page.cookie("cairn_form").unwrap());

    // Without the form's token, or with another, nothing is made.
    for (cookies, body) in [
        ("", format!("form={form}")),
        (jar.as_str(), "form=forged".to_string()),
    ] {
        let r = request(web, "/join", cookies, Some(&body)).await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let before = hub.store.account_list().await.unwrap().len();

    let r = request(web, "/join", &jar, Some(&format!("form={form}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let link = dclogin_link(&r.body);
    let address = link
        .strip_prefix("dclogin:")
        .and_then(|l| l.split('?').next())
        .unwrap()
        .to_string();
    let (local, domain) = address.split_once('@').unwrap();
    assert_eq!(local.len(), 9, "{address}");
    assert_eq!(domain, "[127.0.0.1]");
    assert_eq!(
        common::qr::decode_svgs(&r.body),
        vec![link.clone()],
        "the QR code reads as the link"
    );
    let password = r
        .body
        .split("password: ")
        .nth(1)
        .and_then(|p| p.split('<').next())
        .unwrap()
        .to_string();
    assert!(link.contains(&format!("p={}", enc(&password))), "{link}");
    let domains = vec![cairn::domain::Domain::parse("[127.0.0.1]").unwrap()];
    let accounts = cairn::mail::Accounts::new(hub.store.clone(), domains);
    let pw = cairn::domain::Password::presented(&password).unwrap();
    assert!(
        accounts.verify(&address, &pw).await.unwrap().is_some(),
        "the password works"
    );

    // The JSON endpoint (chatmail's self-signed form).
    let r = request(web, "/new", "", Some("")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let email = v["email"].as_str().unwrap();
    assert!(email.ends_with("@[127.0.0.1]"));
    assert!(
        v["dclogin_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("dclogin:{email}?p="))
    );
    assert!(!v["password"].as_str().unwrap().is_empty());
    let r = request(web, "/new", "", None).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert!(r.body.contains("\"reason\""));

    // Past the per-address limit (10 at once): refused, nothing made.
    let mut made = 2;
    let mut refused = None;
    for _ in 0..20 {
        let r = request(web, "/new", "", Some("")).await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        made += 1;
    }
    let refused = refused.expect("the limit answers");
    assert_eq!(made, 10, "the burst");
    assert!(refused.header("retry-after").is_some());
    assert!(refused.body.contains("try again in"), "{}", refused.body);
    let r = request(web, "/join", &jar, Some(&format!("form={form}"))).await;
    assert_eq!(r.status, 429, "the join page shares the limit: {}", r.body);
    assert!(r.body.contains("try again in"));
    assert_eq!(hub.store.account_list().await.unwrap().len(), before + made);

    // The admin switches it off, and sets the Wi-Fi shown to newcomers.
    let (admin, csrf) = admin_session(&hub).await;
    let settings = request(web, "/admin/settings", &admin, None).await;
    assert!(
        settings.body.contains(&*hub.report.fingerprint),
        "{}",
        settings.body
    );
    assert!(settings.body.contains("name=\"join\" value=\"1\" checked"));
    for (body, why) in [
        ("csrf=forged&ssid=x".to_string(), "expired"),
        (format!("csrf={csrf}&ssid={}", "x".repeat(33)), "at most 32"),
        (format!("csrf={csrf}&ssid=camp&passphrase=short"), "8 to 63"),
        (
            format!("csrf={csrf}&passphrase=longenough"),
            "Wi-Fi name too",
        ),
    ] {
        let r = request(web, "/admin/settings", &admin, Some(&body)).await;
        assert!(r.status == 400 || r.status == 403, "{why}: {}", r.status);
        assert!(r.body.contains(why), "{why}: {}", r.body);
    }
    let r = request(
        web,
        "/admin/settings",
        &admin,
        Some(&format!(
            "csrf={csrf}&encryption=1&ssid={}&passphrase={}",
            enc("<b>Camp</b>;1"),
            enc("pass:word\"1")
        )),
    )
    .await;
    // First-login accounts follow the switch: that takes a restart.
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("restarts with the new settings"),
        "{}",
        r.body
    );
    assert!(
        hub.store
            .settings_get("join.enabled")
            .await
            .unwrap()
            .as_deref()
            == Some("0")
    );
    let page = request(web, "/join", "", None).await;
    assert_eq!(page.status, 404, "switched off: {}", page.body);
    assert!(page.body.contains("ask the person who runs it"));
    let r = request(web, "/new", "", Some("")).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("\"reason\""));

    // On again: the Wi-Fi details are shown, escaped.
    let r = request(
        web,
        "/admin/settings",
        &admin,
        Some(&format!(
            "csrf={csrf}&encryption=1&join=1&ssid={}&passphrase={}",
            enc("<b>Camp</b>;1"),
            enc("pass:word\"1")
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = request(web, "/join", "", None).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("&#60;b&#62;Camp&#60;/b&#62;;1"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<b>Camp"));
    hub.shutdown().await;
}

#[test]
fn wifi_qr_text_escapes_the_special_characters() {
    use cairn::web::join::wifi_qr_text;
    assert_eq!(
        wifi_qr_text("Camp;1", "pa\\ss:\"x\","),
        "WIFI:T:WPA;S:Camp\\;1;P:pa\\\\ss\\:\\\"x\\\"\\,;;"
    );
    assert_eq!(wifi_qr_text("open", ""), "WIFI:T:nopass;S:open;;");
}

/// Issue 24 point 3: what a camper types leads to joining. `/` opens with
/// "Join the chat"; `/Join` and `/join/` reach the join page; an unknown
/// address is a page that leads to joining (not an empty 404); an expired
/// join form leads back to the join page, not to the admin login.
#[tokio::test]
async fn campers_find_the_front_door() {
    let (_t, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let front = request(web, "/", "", None).await;
    assert_eq!(front.status, 200);
    let join_at = front.body.find(r#"href="/join""#).expect("a link to /join");
    let first_h2 = front.body.find("<h2").unwrap_or(front.body.len());
    assert!(
        join_at < first_h2 && front.body.contains("Join the chat"),
        "joining comes first: {}",
        front.body
    );
    for (typed, to) in [
        ("/Join", "/join"),
        ("/join/", "/join"),
        ("/ADMIN/", "/admin"),
        ("/Setup", "/setup"),
    ] {
        let r = request(web, typed, "", None).await;
        assert_eq!((r.status, r.header("location")), (308, Some(to)), "{typed}");
    }
    for lost in ["/joinn", "/admin/nothing-here", "/index.html"] {
        let r = request(web, lost, "", None).await;
        assert_eq!(r.status, 404, "{lost}");
        assert!(
            r.body.contains(r#"href="/join""#) && !r.body.contains("admin page"),
            "{lost}: {}",
            r.body
        );
    }
    let expired = request(web, "/join", "", Some("form=stale")).await;
    assert_eq!(expired.status, 403, "{}", expired.body);
    assert!(
        expired.body.contains("open the join page again")
            && expired.body.contains(r#"href="/join""#)
            && !expired.body.contains(r#"href="/admin""#),
        "{}",
        expired.body
    );
}
