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
