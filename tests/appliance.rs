//! The appliance's first boot from the settings file on the FAT partition,
//! run as its systemd unit runs it (`cairn appliance firstboot`).

mod common;
use common::*;

fn firstboot(dir: &std::path::Path) -> std::process::Output {
    let mut c = cairn(dir);
    c.args(["--data"])
        .arg(dir.join("data"))
        .args(["appliance", "firstboot", "--boot"])
        .arg(dir.join("boot"))
        .arg("--hostapd")
        .arg(dir.join("wlan0.conf"))
        .arg("--hostname-file")
        .arg(dir.join("hostname"));
    run(&mut c)
}

#[test]
fn hub_toml_is_applied_once_and_its_secrets_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("boot")).unwrap();
    let toml = dir.join("boot/hub.toml");
    std::fs::write(
        &toml,
        "ssid = \"Lakeside\"\nwifi_password = \"by-the-lake-42\"\ncountry = \"fr\"\nchannel = 11\nhostname = \"lake-hub\"\n",
    )
    .unwrap();

    let o = firstboot(dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let conf = std::fs::read_to_string(dir.join("wlan0.conf")).unwrap();
    for want in [
        "ssid=Lakeside\n",
        "wpa_passphrase=by-the-lake-42\n",
        "country_code=FR\n",
        "channel=11\n",
    ] {
        assert!(conf.contains(want), "{conf}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("hostname")).unwrap(),
        "lake-hub\n"
    );
    let left = std::fs::read_to_string(&toml).unwrap();
    assert!(
        !left.contains("by-the-lake-42") && left.contains("Lakeside"),
        "{left}"
    );
    let sheet = std::fs::read_to_string(dir.join("boot/HUB-SETUP.txt")).unwrap();
    let code_file = std::fs::read_to_string(dir.join("data/setup-code.txt")).unwrap();
    let code = code_file.lines().next().unwrap().trim().to_string();
    assert!(sheet.contains("Wi-Fi name:     Lakeside"), "{sheet}");
    assert!(sheet.contains("by-the-lake-42"), "{sheet}");
    assert!(
        sheet.contains(&code),
        "the setup code is on the sheet: {sheet}"
    );
    // And on the console, for a screen on the Pi.
    let said = stdout(&o);
    assert!(
        said.contains("Wi-Fi name Lakeside, password by-the-lake-42")
            && said.contains(&format!("enter the setup code {code}")),
        "{said}"
    );

    // Next boot: nothing changed, nothing applied again (the admin pages
    // may have changed the Wi-Fi meanwhile).
    std::fs::write(dir.join("wlan0.conf"), "changed on the admin page\n").unwrap();
    let o = firstboot(dir);
    assert!(stdout(&o).contains("unchanged"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("wlan0.conf")).unwrap(),
        "changed on the admin page\n"
    );

    // The owner edits the file: applied again, with the admin password;
    // without a Wi-Fi password in the file the known one stays.
    std::fs::write(
        &toml,
        "ssid = \"Lakeside-2\"\nadmin_password = \"campfire-42\"\nchannel = 99\ncolour = \"blue\"\n",
    )
    .unwrap();
    let o = firstboot(dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let conf = std::fs::read_to_string(dir.join("wlan0.conf")).unwrap();
    assert!(
        conf.contains("ssid=Lakeside-2\n")
            && conf.contains("wpa_passphrase=by-the-lake-42\n")
            && conf.contains("channel=6\n"),
        "{conf}"
    );
    let sheet = std::fs::read_to_string(dir.join("boot/HUB-SETUP.txt")).unwrap();
    assert!(sheet.contains("admin password is set"), "{sheet}");
    assert!(
        sheet.contains("channel must be 1 to 13") && sheet.contains("colour"),
        "{sheet}"
    );
    assert!(
        !std::fs::read_to_string(&toml)
            .unwrap()
            .contains("campfire-42")
    );
    assert!(!dir.join("data/setup-code.txt").exists());
    assert!(!sheet.contains(&code), "{sheet}");
}

/// First boot runs as root, but the data directory belongs to the hub's
/// user: its part there runs as that user, so a link the hub's user
/// planted in it cannot make root write another file (here its
/// certificate's folder pointed at a root-only folder). Needs root, as on the
/// appliance (CI runs tests as root).
#[test]
fn first_boot_works_in_the_data_directory_as_the_hubs_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let who = RunAs::service();
    assert_eq!(
        RunAs::current().name,
        "root",
        "this test runs first boot as root, as the appliance does: run it as root (CI does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.join("boot")).unwrap();
    let toml = dir.join("boot/hub.toml");
    std::fs::write(
        &toml,
        "ssid = \"Lakeside\"\nadmin_password = \"campfire-42\"\n",
    )
    .unwrap();
    let bin = who.reachable(std::path::Path::new(env!("CARGO_BIN_EXE_cairn")), dir);
    let boot = || {
        let mut c = std::process::Command::new(&bin);
        c.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("CAIRN_LOG", "warn")
            .arg("--data")
            .arg(dir.join("data"))
            .args(["appliance", "firstboot", "--boot"])
            .arg(dir.join("boot"))
            .arg("--hostapd")
            .arg(dir.join("wlan0.conf"))
            .args(["--owner", &who.name]);
        run(&mut c)
    };
    let o = boot();
    assert!(o.status.success(), "{}", stderr(&o));
    let uid = |p: &std::path::Path| std::fs::metadata(p).unwrap().uid();
    let hubs_uid = uid(&dir.join("data"));
    assert_ne!(hubs_uid, 0, "the data directory is the hub user's");
    assert_eq!(
        std::fs::metadata(dir.join("data")).unwrap().mode() & 0o777,
        0o700,
        "and private"
    );
    for made in ["cairn.db", "node.key", "tls"] {
        assert_eq!(
            uid(&dir.join("data").join(made)),
            hubs_uid,
            "{made} was made by the hub's user"
        );
    }
    let conf = dir.join("wlan0.conf");
    assert_eq!(uid(&conf), 0, "hostapd's configuration is root's");
    assert_eq!(std::fs::metadata(&conf).unwrap().mode() & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains("ssid=Lakeside\n")
    );
    assert!(
        !std::fs::read_to_string(&toml)
            .unwrap()
            .contains("campfire-42")
    );

    // The hub's user replaces its certificate's folder by a link to a
    // folder only root may write; the owner edits hub.toml, so the next
    // boot applies it (and makes the missing certificate again).
    let data = dir.join("data");
    let root_only = dir.join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_dir_all(data.join("tls")).unwrap();
    std::os::unix::fs::symlink(&root_only, data.join("tls")).unwrap();
    std::fs::write(&toml, "ssid = \"Lakeside-2\"\n").unwrap();
    let o = boot();
    let written: Vec<_> = std::fs::read_dir(&root_only)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        written.is_empty(),
        "root wrote {written:?} through the planted link (first boot said: {} {})",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        !o.status.success(),
        "the hub's user cannot write there: first boot says so"
    );
    assert!(
        stderr(&o).contains(&format!("as {}", who.name)),
        "{}",
        stderr(&o)
    );
}

/// The admin changes the Wi-Fi on the settings page: on the appliance the
/// hub asks for it in `wifi.json`, and the root-run `cairn appliance wifi`
/// (started by a systemd path unit) writes hostapd's configuration from
/// the checked values — once; a name with a line break changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wifi_changed_on_the_admin_page_reaches_hostapd() {
    use common::web::{admin_session, enc, request};
    let (tmp, hub) = common::smtp::hub(|c| c.profile = cairn::config::Profile::Appliance).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    let (jar, csrf) = admin_session(&hub).await;
    let request_file = hub.report.data_dir.join("wifi.json");
    let save = |ssid: &str, pass: &str| {
        format!(
            "csrf={csrf}&join=1&ssid={}&passphrase={}",
            enc(ssid),
            enc(pass)
        )
    };
    let r = request(
        web,
        "/admin/settings",
        &jar,
        Some(&save("Lakeside", "by-the-lake-42")),
    )
    .await;
    assert!(
        r.status == 303 || r.status == 200,
        "{} {}",
        r.status,
        r.body
    );
    let asked = std::fs::read_to_string(&request_file).unwrap();
    assert!(asked.contains("\"Lakeside\""), "{asked}");

    let conf = tmp.path().join("wlan0.conf");
    let wifi = |from: &std::path::Path| appliance_wifi(tmp.path(), from.to_path_buf(), &conf);
    let o = wifi(&request_file).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("`Lakeside` (DE, channel 6, WPA2)"),
        "{}",
        stdout(&o)
    );
    let written = std::fs::read_to_string(&conf).unwrap();
    assert!(
        written.contains("ssid=Lakeside\n") && written.contains("wpa_passphrase=by-the-lake-42\n"),
        "{written}"
    );
    // Again: nothing to do, so hostapd is left alone.
    let o = wifi(&request_file).await;
    assert!(stdout(&o).contains("already says that"), "{}", stdout(&o));

    // A line break in the name is refused on the page, and a request file
    // with one (written by anything else) is refused by the root side.
    let r = request(
        web,
        "/admin/settings",
        &jar,
        Some(&save("Lake\ninterface=eth0", "by-the-lake-42")),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("control characters"), "{}", r.body);
    assert_eq!(std::fs::read_to_string(&request_file).unwrap(), asked);
    let forged = tmp.path().join("forged.json");
    std::fs::write(
        &forged,
        r#"{"ssid":"Lake\ninterface=eth0","passphrase":"","country":"DE","channel":6}"#,
    )
    .unwrap();
    let o = wifi(&forged).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("control characters"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), written);

    // An open network: no password, no WPA lines.
    let r = request(web, "/admin/settings", &jar, Some(&save("Open Camp", ""))).await;
    assert!(r.status == 303 || r.status == 200, "{}", r.body);
    let o = wifi(&request_file).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let open = std::fs::read_to_string(&conf).unwrap();
    assert!(
        open.contains("ssid=Open Camp\n") && !open.contains("wpa"),
        "{open}"
    );

    // The country, chosen from the list on the same page, goes to the
    // access point too; a code that is no country is refused.
    let with_country = |c: &str| format!("{}&country={c}", save("Open Camp", ""));
    let r = request(web, "/admin/settings", &jar, Some(&with_country("XX"))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("from the list"), "{}", r.body);
    let r = request(web, "/admin/settings", &jar, Some(&with_country("FR"))).await;
    assert!(r.status == 303 || r.status == 200, "{}", r.body);
    let page = request(web, "/admin/settings", &jar, None).await;
    assert!(
        page.body
            .contains(r#"<option value="FR" selected>France</option>"#),
        "{}",
        page.body
    );
    let o = wifi(&request_file).await;
    assert!(stdout(&o).contains("(FR, channel 6"), "{}", stdout(&o));
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains("country_code=FR\n")
    );
    hub.shutdown().await;
}

/// `cairn appliance wifi --from FROM --hostapd CONF`, off the async workers
/// (the hub in this process must keep answering).
fn appliance_wifi(
    dir: &std::path::Path,
    from: std::path::PathBuf,
    conf: &std::path::Path,
) -> impl std::future::Future<Output = std::process::Output> + use<> {
    let (dir, conf) = (dir.to_path_buf(), conf.to_path_buf());
    async move {
        tokio::task::spawn_blocking(move || {
            let mut c = cairn(&dir);
            c.args(["appliance", "wifi", "--from"])
                .arg(&from)
                .arg("--hostapd")
                .arg(&conf);
            run(&mut c)
        })
        .await
        .unwrap()
    }
}
