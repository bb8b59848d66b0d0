//! The admin pages and the join page in a real browser (Debian's headless
//! Chromium over WebDriver), at phone and desktop widths, against `cairn
//! serve`: the wizard, login, accounts and their printable cards, and the
//! join page, whose `dclogin:` link then sets up the real Delta Chat core.
//! Screenshots are kept in target/tmp/screenshots/.

mod common;
use common::browser::{Browser, DESKTOP, PHONE};
use common::deltachat::Rpc;
use common::*;
use serde_json::json;

/// The `dclogin:` links in a page, in order (`&` unescaped).
fn dclogin_links(html: &str) -> Vec<String> {
    html.match_indices("href=\"dclogin:")
        .map(|(i, _)| {
            let start = i + 6;
            let end = html[start..].find('"').unwrap() + start;
            html[start..end].replace("&amp;", "&").replace("&#38;", "&")
        })
        .collect()
}

#[test]
fn a_new_hub_from_the_wizard_to_a_phone_that_chats() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cairn(tmp.path());
    port0(&mut c);
    let mut hub = serve(c);
    let code = hub.setup_code();
    let base = format!("http://{}", hub.http);
    let b = Browser::start(PHONE);

    // The wizard: setup code and admin password, then the hub's details.
    b.goto(&format!("{base}/setup"));
    b.screenshot("01-setup-phone");
    b.fill("input[name=code]", &code);
    b.fill("input[name=password]", "campfire-42");
    b.fill("input[name=confirm]", "campfire-42");
    b.click_to("form[action='/setup'] button[type=submit]", "/admin/setup");
    b.screenshot("02-wizard-phone");
    b.fill("input[name=name]", "Lakeside Camp");
    b.fill("input[name=ssid]", "Lakeside");
    b.fill("input[name=passphrase]", "campfire42");
    // The country is chosen from a list by name, not typed as a code.
    b.script("const s = document.querySelector('select[name=country]'); s.value = 'DE'; return s.selectedOptions[0].text;");
    assert_eq!(
        b.script("return document.querySelector('select[name=country]').selectedOptions[0].text;"),
        "Germany"
    );
    b.click("#wizard button[type=submit]");
    b.wait_until("the wizard's answer", |b| b.source().contains("is set up"));
    let done = b.source();
    assert!(done.contains("Lakeside Camp is set up"), "{done}");
    // The page's script sent the browser's time: the clocks were compared.
    assert!(done.contains("clock agrees"), "{done}");
    b.screenshot("03-wizard-done-phone");
    hub.wait_for_line("restarting with the new settings");
    hub.wait_for_line("ready");

    // Logged in still; log out and in again.
    b.goto(&format!("{base}/admin"));
    assert!(b.source().contains("Lakeside Camp"), "{}", b.source());
    b.delete_cookies();
    b.goto(&format!("{base}/admin"));
    b.wait_until("the login page", |b| b.url().contains("/admin/login"));
    b.fill("input[name=password]", "campfire-42");
    b.click_to("form[action='/admin/login'] button[type=submit]", "/admin");
    b.resize(DESKTOP);
    b.screenshot("04-dashboard-desktop");

    // Accounts: a batch of two, on printable cards whose QR codes read as
    // their links.
    b.goto(&format!("{base}/admin/accounts"));
    b.fill("input[name=count]", "2");
    b.click_to(
        "form[action='/admin/accounts/create'] button[type=submit]",
        "/admin/accounts/create",
    );
    b.wait_until("the cards", |b| b.source().contains("2 new accounts"));
    let cards = b.source();
    // The Print button shows: its script ran under the page's CSP.
    assert_eq!(b.attribute("#print", "hidden"), None, "{cards}");
    b.screenshot("05-cards-desktop");
    let links = dclogin_links(&cards);
    assert_eq!(links.len(), 2, "{cards}");
    // Each card: the Wi-Fi code the wizard set, then the account's code.
    let wifi = "WIFI:T:WPA;S:Lakeside;P:campfire42;;".to_string();
    assert_eq!(
        common::qr::decode_svgs(&cards),
        vec![wifi.clone(), links[0].clone(), wifi, links[1].clone()]
    );
    b.resize(PHONE);
    b.screenshot("06-cards-phone");

    // A newcomer types the hub's address: two taps to an account (issue
    // 24 point 3) — "Join the chat" on the front page, then the join
    // page's button.
    b.delete_cookies();
    b.goto(&format!("{base}/"));
    b.screenshot("07a-front-phone");
    b.click_to("a[href='/join']", "/join");
    let join = b.source();
    assert!(
        join.contains("Create my account") && join.contains("Lakeside"),
        "{join}"
    );
    b.screenshot("07-join-phone");
    b.click("form[action='/join'] button[type=submit]");
    b.wait_until("the new account", |b| b.source().contains("Your account"));
    let mine = b.source();
    b.screenshot("08-joined-phone");
    let link = dclogin_links(&mine).pop().expect("the newcomer's link");
    let codes = common::qr::decode_svgs(&mine);
    assert_eq!(codes[0], link, "the account QR code");
    assert_eq!(
        codes[1], "WIFI:T:WPA;S:Lakeside;P:campfire42;;",
        "the Wi-Fi QR code"
    );
    b.resize(DESKTOP);
    b.screenshot("09-joined-desktop");

    // The link sets up Delta Chat, which then receives a message from the
    // first account of the batch.
    let port = |prefix: &str| {
        hub.printed
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .unwrap()
            .port()
    };
    let (imap, smtp) = (port("imap (TLS): "), port("smtp submission (TLS): "));
    let first = &links[0];
    let addr = first["dclogin:".len()..first.find('?').unwrap()].to_string();
    // Each card shows its password in clear, in the links' order.
    let pw = cards
        .split("password: ")
        .nth(1)
        .and_then(|p| p.split('<').next())
        .unwrap()
        .to_string();
    let mut rpc = Rpc::spawn();
    let newcomer = rpc.ok("add_account", json!([])).as_u64().unwrap();
    rpc.ok("add_transport_from_qr", json!([newcomer, link]));
    rpc.start(newcomer);
    let camper = rpc.account(&addr, &pw, imap, smtp);
    let chat = rpc.chat_with(camper, newcomer);
    rpc.ok(
        "misc_send_text_message",
        json!([camper, chat, "welcome to Lakeside"]),
    );
    let m = rpc.wait_message(newcomer, "the newcomer gets the welcome", |m| {
        m["text"] == "welcome to Lakeside"
    });
    assert_eq!(m["showPadlock"], true);
    drop(rpc);
    drop(b);
    let (clean, _) = hub.stop("TERM");
    assert!(clean);
}

/// "Sync now" in the browser: the live page follows the round over
/// Server-Sent Events and ends with the right summary; the history page
/// lists the run.
#[test]
fn sync_now_shows_live_progress_and_a_summary() {
    use common::relay::{pair, routed, send_plain};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = rt.block_on(async {
        let (a, b) = pair(|c| c.mail.require_encryption = false).await;
        a.hub
            .syncer
            .add("camp-b", "link", "", "manual", false)
            .await
            .unwrap();
        // A large message keeps the round running while the page loads.
        send_plain(
            &a,
            "alice@camp-a.example",
            "bob@camp-b.example",
            "big",
            20 << 20,
        )
        .await;
        send_plain(
            &a,
            "alice@camp-a.example",
            "bob@camp-b.example",
            "small",
            100,
        )
        .await;
        send_plain(
            &b,
            "bob@camp-b.example",
            "alice@camp-a.example",
            "reply",
            100,
        )
        .await;
        routed(&a).await;
        routed(&b).await;
        (a, b)
    });
    let base = format!("http://{}", a.hub.endpoint(cairn::app::WEB_HTTP).unwrap());
    let code = a.hub.report.setup_code.clone().unwrap();
    let br = Browser::start(PHONE);
    br.set_up_admin(&base, &code);

    br.goto(&format!("{base}/admin/uplinks"));
    assert!(br.source().contains("manual"), "{}", br.source());
    br.screenshot("20-uplinks-phone");
    br.click_to("#sync-now", "/admin/sync");
    br.wait_until("the summary", |b| {
        b.source().contains("1 uplink synced, 0 failed")
    });
    let page = br.source();
    br.screenshot("21-sync-done-phone");
    // Green only because nothing failed.
    assert_eq!(br.attribute("#summary", "class").as_deref(), Some("ok"));
    assert!(
        page.contains("sent 2 items") && page.contains("received 1 item "),
        "{page}"
    );
    let events: u32 = page
        .split("data-events=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(events >= 1, "no progress event reached the page: {page}");
    assert!(page.contains(">done<") || page.contains(">done"), "{page}");

    br.goto(&format!("{base}/admin/history"));
    let history = br.source();
    assert!(history.contains("link (dialled)"), "{history}");
    assert!(history.contains("camp-b"), "{history}");
    rt.block_on(async {
        assert_eq!(
            common::smtp::inbox(&b.hub, "bob@camp-b.example")
                .await
                .len(),
            2
        );
        a.hub.shutdown().await;
        b.hub.shutdown().await;
    });
}

/// Every page, as a phone (390 px) and a desktop (1280 px) show it, in
/// the light and the dark colour scheme: nothing scrolls sideways, every
/// link, button and field is at least 40 px tall (a link inside a
/// sentence excepted), and no text has less than 4.5:1 contrast — all
/// measured in the page ([`Browser::audit`]). Each page is filled with
/// what makes it widest: long addresses, an outbox, peers, routes,
/// uplinks, a history. Screenshots of each page and width are kept.
#[test]
fn every_page_fits_a_phone_and_a_desktop_and_can_be_read_and_tapped() {
    use common::relay::{pair, routed, send_plain};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let long = "a-camper-with-a-rather-long-name-that-goes-on";
    let (a, b) = rt.block_on(async {
        let (a, b) = pair(|c| c.mail.require_encryption = false).await;
        let accounts = cairn::mail::Accounts::new(
            a.hub.store.clone(),
            vec![cairn::domain::Domain::parse("camp-a.example").unwrap()],
        );
        accounts
            .create(&format!("{long}@camp-a.example"), None)
            .await
            .unwrap();
        a.hub
            .syncer
            .add(
                "camp-b",
                "folder",
                "/media/a-usb-stick-with-a-long-path/cairn-bundles",
                "mon-fri 08:00-18:00; sat 10:00-12:00 +02:00",
                true,
            )
            .await
            .unwrap();
        for n in 0..3 {
            send_plain(
                &a,
                "alice@camp-a.example",
                &format!("{long}-{n}@camp-b.example"),
                "queued",
                100,
            )
            .await;
        }
        routed(&a).await;
        (a, b)
    });
    let base = format!("http://{}", a.hub.endpoint(cairn::app::WEB_HTTP).unwrap());
    let code = a.hub.report.setup_code.clone().unwrap();
    let br = Browser::start(PHONE);
    let mut findings = Vec::new();
    let walk = |br: &Browser, pages: &[&str], findings: &mut Vec<String>| {
        for (size, label) in [(PHONE, "phone"), (DESKTOP, "desktop")] {
            br.resize(size);
            for dark in [false, true] {
                br.dark(dark);
                for page in pages {
                    br.goto(&format!("{base}{page}"));
                    assert!(
                        br.source().contains("</footer>"),
                        "{page} did not load: {}",
                        br.source()
                    );
                    let scheme = if dark { "dark" } else { "light" };
                    let name = format!("40-{label}-{scheme}{}", page.replace(['/', '?'], "-"));
                    if !dark || size == PHONE {
                        br.screenshot(&name);
                    }
                    for f in br.audit() {
                        findings.push(format!("{page} ({label}, {scheme}): {f}"));
                    }
                }
            }
        }
        br.resize(PHONE);
        br.dark(false);
    };
    // What a camper meets, before any admin exists.
    walk(
        &br,
        &["/", "/join", "/no-such-page", "/setup"],
        &mut findings,
    );
    br.set_up_admin(&base, &code);
    assert_eq!(br.script("return window.innerWidth;"), 390);
    walk(
        &br,
        &[
            "/admin",
            "/admin/setup",
            "/admin/accounts",
            "/admin/outbox",
            "/admin/peers",
            "/admin/uplinks",
            "/admin/sync",
            "/admin/history",
            "/admin/bundles",
            "/admin/radio",
            "/admin/settings",
            "/admin/gateway",
            "/admin/poster",
            "/admin/password",
        ],
        &mut findings,
    );
    // On a phone the menu is one button; it opens to every admin page,
    // the current one marked.
    br.goto(&format!("{base}/admin/accounts"));
    let outbox_shown = |br: &Browser| {
        br.script("return document.querySelector(\"nav.menu a[href='/admin/outbox']\").getClientRects().length > 0;")
    };
    assert_eq!(
        outbox_shown(&br),
        false,
        "the menu starts closed on a phone"
    );
    br.click("nav.menu .menu-button");
    assert_eq!(outbox_shown(&br), true, "the menu opened");
    br.screenshot("41-phone-menu-open");
    assert_eq!(
        br.attribute("nav.menu a[href='/admin/accounts']", "aria-current")
            .as_deref(),
        Some("page")
    );
    for f in br.audit() {
        findings.push(format!("open menu (phone): {f}"));
    }
    // The printable cards of a new account.
    br.goto(&format!("{base}/admin/accounts"));
    br.fill("input[name=name]", &format!("{long}-2"));
    br.click("form[action='/admin/accounts/create'] button[type=submit]");
    br.wait_until("the new account's card", |b| {
        b.source().contains("account-card")
    });
    br.screenshot("40-phone-light-account-card");
    for f in br.audit() {
        findings.push(format!("account card (phone): {f}"));
    }
    br.delete_cookies();
    walk(&br, &["/admin/login"], &mut findings);
    assert!(
        findings.is_empty(),
        "{} findings (screenshots in target/tmp/screenshots/40-*):\n{}",
        findings.len(),
        findings.join("\n")
    );
    rt.block_on(async {
        a.hub.shutdown().await;
        b.hub.shutdown().await;
    });
}

/// The bundle import page uploads with a progress bar, then shows what the
/// import did — or why a file was refused — on the same page.
#[test]
fn a_bundle_upload_shows_its_progress_and_what_it_did() {
    use common::relay::{pair, routed, send};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let files = tempfile::tempdir().unwrap();
    let (a, b, bundle) = rt.block_on(async {
        let (a, b) = pair(|_| {}).await;
        send(&b, "bob@camp-b.example", "alice@camp-a.example", "hello").await;
        routed(&b).await;
        let (bundle, _) = cairn::relay::folder::export(&b.hub.relay, "camp-a", files.path())
            .await
            .unwrap();
        (a, b, bundle)
    });
    // 24 MB of noise named like a bundle: long enough to upload in steps.
    let noise = files.path().join("noise.cairn");
    let mut bytes = vec![0u8; 24 << 20];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&noise, &bytes).unwrap();

    let base = format!("http://{}", a.hub.endpoint(cairn::app::WEB_HTTP).unwrap());
    let code = a.hub.report.setup_code.clone().unwrap();
    let br = Browser::start(DESKTOP);
    br.set_up_admin(&base, &code);

    br.goto(&format!("{base}/admin/bundles"));
    br.upload("#import input[type=file]", &noise);
    br.click("#import button[type=submit]");
    br.wait_until("the refusal", |b| {
        b.attribute("#upload-status", "class").as_deref() == Some("error")
    });
    br.screenshot("30-bundle-refused-desktop");
    let status = br.source();
    assert!(br.url().ends_with("/admin/bundles"), "stayed on the page");
    assert!(status.contains("not a cairn bundle"), "{status}");
    let max = br.attribute("#upload-progress", "max").unwrap();
    let value = br.attribute("#upload-progress", "value").unwrap();
    assert_eq!(max, value, "the bar reached its end");
    assert!(max.parse::<u64>().unwrap() >= 24 << 20, "{max}");
    let events: u32 = br
        .attribute("#upload-progress", "data-events")
        .unwrap()
        .parse()
        .unwrap();
    assert!(events >= 1, "no upload progress event reached the page");

    // The real bundle: imported, and the page says what it did.
    br.upload("#import input[type=file]", &bundle);
    br.click("#import button[type=submit]");
    br.wait_until("the import report", |b| {
        b.attribute("#upload-status", "class").as_deref() == Some("ok")
            && b.source().contains("Imported ")
    });
    br.screenshot("31-bundle-imported-desktop");
    let page = br.source();
    assert!(page.contains("1 delivered here"), "{page}");
    rt.block_on(async {
        assert_eq!(
            common::smtp::inbox(&a.hub, "alice@camp-a.example")
                .await
                .len(),
            1
        );
        a.hub.shutdown().await;
        b.hub.shutdown().await;
    });
}

/// The radio page follows the radio without a reload: frames sent and
/// heard, and the band's air time, change while mail crosses.
#[test]
fn the_radio_page_follows_the_radio_live() {
    use cairn::carriers::lora::modem::Model;
    use cairn::carriers::lora::sim::ether::Conditions;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(common::radio::radio_pair(
        Model::Rnode,
        Conditions::default(),
        false,
    ));
    let base = format!("http://{}", r.a.hub.endpoint(cairn::app::WEB_HTTP).unwrap());
    let code = r.a.hub.report.setup_code.clone().unwrap();
    let br = Browser::start(PHONE);
    br.set_up_admin(&base, &code);
    br.goto(&format!("{base}/admin/radio"));
    let frames = |b: &Browser| {
        let page = b.source();
        page.split("id=\"radio-frames\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_default()
            .to_string()
    };
    let before = frames(&br);
    assert!(before.starts_with("0 sent"), "{before}");
    rt.block_on(common::relay::send(
        &r.a,
        "alice@camp-a.example",
        "bob@camp-b.example",
        "live",
    ));
    br.wait_until("the frames count to change on the open page", |b| {
        !frames(b).starts_with("0 sent")
    });
    br.wait_until("the band's air time to show use", |b| {
        b.attribute("tr[data-band] meter", "value")
            .is_some_and(|v| v != "0")
            || !b.source().contains(">0 ms<")
    });
    br.screenshot("40-radio-live-phone");
    let events: u32 = br
        .attribute("#radio", "data-events")
        .unwrap()
        .parse()
        .unwrap();
    assert!(events >= 2, "{events} status events");
    rt.block_on(async {
        r.a.hub.shutdown().await;
        r.b.hub.shutdown().await;
    });
}

/// The gateway's DNS page, as the admin of a gateway going live meets
/// it: every record to publish for its own and its camps' domains, then
/// "Check DNS" marks what is missing; once the records are published, the
/// next check finds them all. Nothing scrolls sideways on a phone, long
/// DKIM keys included.
#[test]
fn the_gateway_page_lists_the_dns_records_and_checks_them() {
    use common::relay::{Camp, campsite};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let camp: Camp = rt.block_on(campsite());
    let g = &camp.g;
    let base = format!("http://{}", g.hub.endpoint(cairn::app::WEB_HTTP).unwrap());
    let code = g.hub.report.setup_code.clone().unwrap();
    let br = Browser::start(PHONE);
    br.set_up_admin(&base, &code);
    br.goto(&format!("{base}/admin/uplinks"));
    br.click_to("#gateway-dns", "/admin/gateway");
    let page = br.source();
    for want in [
        "gw.example",
        "camp-a.example",
        "cairn-rsa._domainkey.camp-a.example",
        "cairn-ed25519._domainkey.gw.example",
        "_dmarc.camp-a.example",
        "v=DMARC1; p=reject; adkim=s; aspf=s",
        "10 mx.gw.example",
    ] {
        assert!(page.contains(want), "{want} missing:\n{page}");
    }
    br.click_to("#check", "/admin/gateway");
    br.wait_until("the check", |b| b.source().contains("id=\"verdict\""));
    br.screenshot("50-gateway-dns-missing");
    let page = br.source();
    assert!(
        page.contains(r#"<span class="error" id="verdict">not every record"#),
        "{page}"
    );
    // camp-a.example's MX is published already; gw.example's is not.
    assert!(
        page.contains("dns-missing") && page.contains("dns-found"),
        "{page}"
    );
    assert!(
        br.overflow_x() <= 0,
        "the DNS page scrolls sideways at 390 px"
    );

    // The admin publishes what the page says; the next check finds it all.
    let records = rt.block_on(g.hub.relay.dns_records()).unwrap();
    for r in &records {
        let entry = match r.kind {
            cairn::relay::carrier::RecordType::Mx => {
                common::dns::Entry::Mx(Box::leak(r.value.clone().into_boxed_str()))
            }
            cairn::relay::carrier::RecordType::Txt => common::dns::Entry::Txt(r.value.clone()),
        };
        if r.name != "camp-a.example" || r.kind != cairn::relay::carrier::RecordType::Mx {
            camp.dns.add(&r.name, entry);
        }
    }
    br.resize(DESKTOP);
    br.goto(&format!("{base}/admin/gateway?check=1"));
    br.screenshot("51-gateway-dns-found");
    let page = br.source();
    assert!(page.contains(r#"<span class="ok" id="verdict">"#), "{page}");
    assert!(
        !page.contains("dns-missing") && !page.contains("dns-different"),
        "{page}"
    );
    assert!(
        br.overflow_x() <= 0,
        "the DNS page scrolls sideways at 1280 px"
    );
    rt.block_on(async {
        for n in [camp.a, camp.g, camp.i] {
            n.hub.shutdown().await;
        }
    });
}

/// The text of the element `css`, or "" when there is none.
fn text_of(br: &Browser, css: &str) -> String {
    let js = format!(
        "const e = document.querySelector({}); return e ? (e.value !== undefined && e.tagName !== 'SPAN' && e.tagName !== 'P' ? e.value : e.textContent) : '';",
        serde_json::to_string(css).unwrap()
    );
    br.script(&js).as_str().unwrap_or_default().to_string()
}

/// Submit the form around `css` and wait for the page that answers.
fn submit(br: &Browser, css: &str) {
    br.script("window.__before = true; return 1;");
    br.click(css);
    br.wait_until("the answer to the form", |b| {
        b.script("return window.__before === undefined && document.readyState === 'complete';")
            == json!(true)
    });
}

/// Each mistake an organiser makes comes back as the same form with what
/// was typed and a plain message next to the field (and at the top,
/// linking to it) — never a dead end; each destructive action asks on one
/// confirmation page first, and every action says what it did.
#[test]
fn every_mistake_comes_back_with_what_was_typed() {
    use common::relay::node_for;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a = rt.block_on(async {
        let a = node_for("camp-a", "camp-a.example", |_| {}).await;
        // A new hub: no accounts yet, so the wizard may still change the
        // mail domain.
        let accounts = cairn::mail::Accounts::new(
            a.hub.store.clone(),
            vec![cairn::domain::Domain::parse("camp-a.example").unwrap()],
        );
        for name in ["alice", "bob", "carol"] {
            accounts
                .remove(&format!("{name}@camp-a.example"))
                .await
                .unwrap();
        }
        a
    });
    let base = format!("http://{}", a.hub.endpoint(cairn::app::WEB_HTTP).unwrap());
    let code = a.hub.report.setup_code.clone().unwrap();
    let br = Browser::start(PHONE);
    let mut findings = Vec::new();
    let mut audit = |br: &Browser, what: &str| {
        for f in br.audit() {
            findings.push(format!("{what}: {f}"));
        }
    };

    // First boot: a code typed with spaces and capitals is taken; two
    // passwords that differ are said at the field, and the code stays in
    // its box. (A short one the browser refuses itself: minlength.)
    br.goto(&format!("{base}/setup"));
    assert!(br.source().contains("HUB-SETUP.txt"));
    assert_eq!(br.attribute("#password", "minlength").as_deref(), Some("8"));
    let spaced = code.replace('-', " ").to_uppercase();
    br.fill("#code", &spaced);
    br.fill("#password", "campfire-42");
    br.fill("#confirm", "campfire-43");
    submit(&br, "form[action='/setup'] button[type=submit]");
    br.screenshot("60-setup-passwords-differ");
    assert!(
        text_of(&br, "#password-error").contains("The two passwords differ"),
        "{}",
        br.source()
    );
    assert_eq!(text_of(&br, "#code"), spaced);
    audit(&br, "setup mistake");
    br.fill("#password", "campfire-42");
    br.fill("#confirm", "campfire-42");
    br.click_to("form[action='/setup'] button[type=submit]", "/admin/setup");

    // The wizard: a domain with a space.
    br.fill("#name", "Sunny Meadow");
    br.fill("#domain", "sunny meadow.camp");
    br.script("document.querySelector('#country').value = 'DE'; return 1;");
    submit(&br, "#wizard button[type=submit]");
    br.screenshot("61-wizard-domain");
    let why = text_of(&br, "#domain-error");
    assert!(
        why.contains("sunny meadow.camp") && why.contains("no spaces"),
        "{why}"
    );
    assert_eq!(text_of(&br, "#domain"), "sunny meadow.camp");
    assert_eq!(text_of(&br, "#name"), "Sunny Meadow");
    assert_eq!(text_of(&br, "#country"), "DE");
    assert_eq!(
        br.attribute("#problem a", "href").as_deref(),
        Some("#domain"),
        "the message at the top leads to the field"
    );
    audit(&br, "wizard mistake");

    // Accounts: an empty form makes no "camper-…" account; it asks.
    br.goto(&format!("{base}/admin/accounts"));
    submit(
        &br,
        "form[action='/admin/accounts/create'] button[type=submit]",
    );
    assert!(
        text_of(&br, "#new-name-error").contains("Give the new account a name"),
        "{}",
        br.source()
    );
    assert_eq!(rt.block_on(a.hub.store.account_count()).unwrap(), 0);
    br.fill("#new-name", "dora");
    br.fill("#new-count", "3");
    submit(
        &br,
        "form[action='/admin/accounts/create'] button[type=submit]",
    );
    assert!(text_of(&br, "#new-count-error").contains("not both"));
    assert_eq!(text_of(&br, "#new-name"), "dora");
    assert_eq!(text_of(&br, "#new-count"), "3");
    br.fill("#new-count", "");
    submit(
        &br,
        "form[action='/admin/accounts/create'] button[type=submit]",
    );
    assert!(br.source().contains("dora@camp-a.example"));
    assert_eq!(rt.block_on(a.hub.store.account_count()).unwrap(), 1);

    // Deleting asks first; "No, keep it" keeps it; then it goes, and the
    // page says so.
    br.goto(&format!("{base}/admin/accounts"));
    submit(
        &br,
        "form[action='/admin/accounts/delete'] button[type=submit]",
    );
    br.screenshot("62-confirm-delete");
    assert!(
        br.source()
            .contains("Delete the account dora@camp-a.example?")
    );
    audit(&br, "confirmation page");
    br.click_to("#keep", "/admin/accounts");
    assert_eq!(rt.block_on(a.hub.store.account_count()).unwrap(), 1);
    submit(
        &br,
        "form[action='/admin/accounts/delete'] button[type=submit]",
    );
    submit(&br, "#confirm");
    br.screenshot("63-deleted");
    assert_eq!(
        text_of(&br, "#done"),
        "Deleted dora@camp-a.example and its mail."
    );
    assert_eq!(rt.block_on(a.hub.store.account_count()).unwrap(), 0);
    audit(&br, "done line");
    br.goto(&format!("{base}/admin/accounts"));
    assert_eq!(text_of(&br, "#done"), "", "a done line is said once");

    // Peers: something that is not a card.
    br.goto(&format!("{base}/admin/peers"));
    br.fill("#peer-card", "hello from the valley");
    br.fill("#peer-name", "valley");
    submit(&br, "form[action='/admin/peers/add'] button[type=submit]");
    assert!(
        text_of(&br, "#peer-card-error").contains("not a whole node card"),
        "{}",
        br.source()
    );
    assert_eq!(text_of(&br, "#peer-card"), "hello from the valley");
    assert_eq!(text_of(&br, "#peer-name"), "valley");
    // A classic peer, added: the page says what it did.
    br.fill("#classic-name", "valley");
    br.fill("#classic-domains", "valley.example");
    submit(
        &br,
        "form[action='/admin/peers/add-classic'] button[type=submit]",
    );
    assert!(
        text_of(&br, "#done").contains("Added the classic peer valley"),
        "{}",
        br.source()
    );

    // Uplinks: a USB stick that is not plugged in is refused at save,
    // saying what to plug in; everything typed stays.
    br.goto(&format!("{base}/admin/uplinks"));
    br.script("document.querySelector('#uplink-carrier').value = 'usb'; return 1;");
    br.fill("#uplink-target", "/media/no-such-stick");
    br.fill("#uplink-schedule", "mon-fri 08:00-18:00");
    submit(&br, "form[action='/admin/uplinks/add'] button[type=submit]");
    br.screenshot("64-uplink-no-stick");
    assert!(
        text_of(&br, "#uplink-target-error").contains("Plug in the USB stick"),
        "{}",
        br.source()
    );
    assert_eq!(text_of(&br, "#uplink-carrier"), "usb");
    assert_eq!(text_of(&br, "#uplink-target"), "/media/no-such-stick");
    assert_eq!(text_of(&br, "#uplink-schedule"), "mon-fri 08:00-18:00");
    assert!(rt.block_on(a.hub.store.uplinks()).unwrap().is_empty());
    audit(&br, "uplink mistake");
    // The same stick with the schedule "appear" is what the hub waits for.
    br.fill("#uplink-schedule", "appear");
    submit(&br, "form[action='/admin/uplinks/add'] button[type=submit]");
    assert!(text_of(&br, "#done").contains("Added a usb uplink to valley"));

    // Settings: a size that is not one.
    br.goto(&format!("{base}/admin/settings"));
    br.fill("#ssid", "Meadow");
    br.fill("#max_message_size", "lots");
    submit(&br, "form[action='/admin/settings'] button[type=submit]");
    assert!(
        text_of(&br, "#max_message_size-error").contains("30 MiB"),
        "{}",
        br.source()
    );
    assert_eq!(text_of(&br, "#max_message_size"), "lots");
    assert_eq!(text_of(&br, "#ssid"), "Meadow");

    // Radio: a spreading factor out of range, in the page's words.
    br.goto(&format!("{base}/admin/radio"));
    br.fill("#sf", "13");
    submit(
        &br,
        "form[action='/admin/radio/settings'] button[type=submit]",
    );
    assert!(
        text_of(&br, "#sf-error").starts_with("Spreading factor: 13"),
        "{}",
        br.source()
    );
    assert_eq!(text_of(&br, "#sf"), "13");

    // The admin password: the wrong current one is said at its field;
    // the right one changes it.
    br.goto(&format!("{base}/admin/settings"));
    br.click_to("#change-password", "/admin/password");
    br.fill("#current", "not-it-at-all");
    br.fill("#password", "riverside-7");
    br.fill("#confirm", "riverside-7");
    submit(&br, "form[action='/admin/password'] button[type=submit]");
    assert!(text_of(&br, "#current-error").contains("not the current admin password"));
    br.fill("#current", "campfire-42");
    br.fill("#password", "riverside-7");
    br.fill("#confirm", "riverside-7");
    submit(&br, "form[action='/admin/password'] button[type=submit]");
    assert!(text_of(&br, "#done").contains("admin password is changed"));
    br.delete_cookies();
    br.goto(&format!("{base}/admin/login"));
    br.fill("input[name=password]", "riverside-7");
    br.click_to("form[action='/admin/login'] button[type=submit]", "/admin");

    assert!(
        findings.is_empty(),
        "{} findings:\n{}",
        findings.len(),
        findings.join("\n")
    );
    rt.block_on(a.hub.shutdown());
}
