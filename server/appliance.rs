//! The appliance's first boot (`cairn appliance firstboot`): the settings
//! file on the SD card's FAT partition (`hub.toml`, editable on any
//! computer before the first start) is applied — the Wi-Fi access point,
//! the hub's name, the admin password — the hub's keys, certificate and
//! setup code are made on the device, and `HUB-SETUP.txt` tells the owner
//! how to join and administer it. The file is then rewritten without its
//! secrets. It runs at every boot but only acts when the file changed, so
//! settings made later on the admin pages are not overwritten.

use crate::config::Config;
use crate::domain::{Password, wifi};
use crate::store::Store;
use crate::store::settings::{WIFI_COUNTRY, WIFI_PASSPHRASE, WIFI_SSID};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The settings file's name on the FAT partition.
pub const HUB_TOML: &str = "hub.toml";
/// What first boot writes for the owner next to it.
pub const HUB_SETUP: &str = "HUB-SETUP.txt";
/// The stored hash of the settings file as last applied.
const SETTING_APPLIED: &str = "appliance.hub_toml_sha256";
/// Keys the file may hold; the secret ones are removed once applied.
const KEYS: &[&str] = &[
    "ssid",
    "wifi_password",
    "country",
    "channel",
    "hostname",
    "admin_password",
];
const SECRETS: &[&str] = &["wifi_password", "admin_password"];

/// The settings of `hub.toml`, checked; what was wrong is in `problems`.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubSettings {
    pub ssid: Option<String>,
    pub wifi_password: Option<String>,
    pub country: Option<String>,
    pub channel: Option<u8>,
    pub hostname: Option<String>,
    pub admin_password: Option<String>,
    pub problems: Vec<String>,
}

/// Read `hub.toml`; a bad value is reported and left out, never fatal (a
/// hub must come up whatever was typed into the file).
pub fn parse(text: &str) -> HubSettings {
    let mut s = HubSettings::default();
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            s.problems.push(format!(
                "{HUB_TOML} is not valid TOML ({}); its settings were not applied",
                e.message()
            ));
            return s;
        }
    };
    let text_of = |k: &str, s: &mut HubSettings| -> Option<String> {
        match table.get(k)? {
            toml::Value::String(v) => Some(v.trim().to_string()),
            other => {
                s.problems.push(format!(
                    "{k} should be a text in quotes, not {}",
                    other.type_str()
                ));
                None
            }
        }
    };
    if let Some(v) = text_of("ssid", &mut s) {
        if !wifi::ssid_ok(&v) {
            s.problems.push(
                "ssid must be 1 to 32 bytes without control characters; the default is used".into(),
            );
        } else {
            s.ssid = Some(v);
        }
    }
    if let Some(v) = text_of("wifi_password", &mut s) {
        if wifi::passphrase_ok(&v) {
            s.wifi_password = Some(v);
        } else {
            s.problems.push(
                "wifi_password must be 8 to 63 plain characters; a new one was made up".into(),
            );
        }
    }
    if let Some(v) = text_of("country", &mut s) {
        let v = v.to_ascii_uppercase();
        if wifi::country_ok(&v) {
            s.country = Some(v);
        } else {
            s.problems.push(format!(
                "country `{v}` is not a country's two-letter code (ISO 3166-1, such as DE)"
            ));
        }
    }
    match table.get("channel") {
        None => {}
        Some(toml::Value::Integer(c)) if wifi::channel_ok(*c) => s.channel = Some(*c as u8),
        Some(other) => s
            .problems
            .push(format!("channel must be 1 to 13, not {other}; 6 is used")),
    }
    if let Some(v) = text_of("hostname", &mut s) {
        let ok = !v.is_empty()
            && v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !v.starts_with('-');
        if ok {
            s.hostname = Some(v.to_ascii_lowercase());
        } else {
            s.problems
                .push(format!("hostname `{v}` must be letters, digits and -"));
        }
    }
    if let Some(v) = text_of("admin_password", &mut s) {
        match Password::chosen(&v) {
            Ok(_) => s.admin_password = Some(v),
            Err(e) => s.problems.push(format!(
                "admin_password was not set ({e}); use the setup code instead"
            )),
        }
    }
    for k in table.keys() {
        if !KEYS.contains(&k.as_str()) {
            s.problems.push(format!(
                "{HUB_TOML}: unknown setting `{k}` (kept, not used)"
            ));
        }
    }
    s
}

/// `hub.toml` without its secrets: their lines become comments saying so.
pub fn scrub(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if !line.trim_start().starts_with('#') && SECRETS.contains(&key) {
            out.push_str(&format!(
                "# {key} was applied at first boot and removed from this file\n"
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The access point's hostapd configuration; an empty passphrase makes
/// an open network.
pub fn hostapd_conf(ssid: &str, passphrase: &str, country: &str, channel: u8) -> String {
    let security = if passphrase.is_empty() {
        "auth_algs=1\n".to_string()
    } else {
        format!(
            "auth_algs=1\nwpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nwpa_passphrase={passphrase}\n"
        )
    };
    format!(
        "# Written by cairn; the hub's Wi-Fi (WPA2-PSK/CCMP only: the Pi's\n\
         # brcmfmac access point fails with PMF or WPA3).\n\
         interface=wlan0\ndriver=nl80211\nssid={ssid}\ncountry_code={country}\nieee80211d=1\n\
         hw_mode=g\nchannel={channel}\nieee80211n=1\nwmm_enabled=1\n{security}\
         ctrl_interface=/run/hostapd\n"
    )
}

fn sha256_hex(b: &[u8]) -> String {
    crate::domain::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref())
}

/// Where first boot reads and writes.
pub struct Paths {
    /// The FAT partition's mount point (`/boot/firmware`).
    pub boot: PathBuf,
    /// hostapd's configuration of the access point.
    pub hostapd: PathBuf,
    /// `/etc/hostname`, if the hostname should be written.
    pub hostname: Option<PathBuf>,
    /// The system user that runs the hub and must own its data.
    pub owner: Option<String>,
}

/// What the root half of first boot asks of the hub's user, in the data
/// directory (sent over a pipe: the settings hold secrets).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum DataStep {
    /// Apply `hub.toml`'s settings to the store when the file (its SHA-256
    /// as read) is not the one last applied.
    Apply {
        settings: HubSettings,
        text_sha256: String,
    },
    /// Remember the file (as rewritten without its secrets) as applied:
    /// sent once the root half has done its part, so a power cut before
    /// that applies the file again at the next boot.
    Applied { sha256: String },
}

/// What the data half did, for the root half and the console.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DataDone {
    /// The settings file was new and applied: the access point's
    /// configuration is to be written from `wifi`.
    pub fresh: bool,
    /// The access point as the hub now has it.
    pub wifi: Wifi,
    /// The one-time setup code, while no admin password is set.
    pub setup_code: Option<String>,
    /// The hub's name as it runs (the admin pages may have changed it).
    pub name: String,
    /// The SHA-256 fingerprint of the hub's certificate, to check against
    /// the browser's warning on the admin pages (HTTPS only).
    pub fingerprint: String,
    pub said: Vec<String>,
}

/// The half of first boot that runs as the hub's user (never as root: a
/// file the hub's user planted in its data directory must not make root
/// write through it). `store` is the data directory's, prepared by the
/// caller.
pub async fn data_step(
    config: &Config,
    store: &Store,
    name: &str,
    step: DataStep,
) -> Result<DataDone> {
    let mut done = DataDone {
        name: name.to_string(),
        ..DataDone::default()
    };
    match step {
        DataStep::Applied { sha256 } => {
            store.settings_set(SETTING_APPLIED, &sha256).await?;
            return Ok(done);
        }
        DataStep::Apply {
            settings,
            text_sha256,
        } => {
            let applied = store.settings_get(SETTING_APPLIED).await?;
            done.fresh = applied.as_deref() != Some(text_sha256.as_str());
            if done.fresh {
                apply(store, &settings, &mut done.said).await?;
                if settings.admin_password.is_some() {
                    let code_file =
                        crate::datadir::Layout::new(config.data_dir.clone()).setup_code();
                    let _ = std::fs::remove_file(code_file);
                }
            }
        }
    }
    done.wifi = stored_wifi(store).await?;
    done.setup_code = store
        .settings_get(crate::store::settings::SETUP_CODE)
        .await?;
    Ok(done)
}

/// The root half of first boot, around the data half (`data`, run as the
/// hub's user): the access point, the hostname, `hub.toml` without its
/// secrets and the owner's sheet. Returns what it did, as lines for the
/// console.
pub async fn firstboot<F, Fut>(paths: &Paths, data: F) -> Result<Vec<String>>
where
    F: Fn(DataStep) -> Fut,
    Fut: std::future::Future<Output = Result<DataDone>>,
{
    let toml_path = paths.boot.join(HUB_TOML);
    let text = std::fs::read_to_string(&toml_path).unwrap_or_default();
    let settings = parse(&text);
    let problems = settings.problems.clone();
    let hostname = settings.hostname.clone();
    let done = data(DataStep::Apply {
        settings,
        text_sha256: sha256_hex(text.as_bytes()),
    })
    .await?;
    let mut said = done.said.clone();
    let wifi = &done.wifi;
    if done.fresh {
        let conf = hostapd_conf(&wifi.ssid, &wifi.passphrase, &wifi.country, wifi.channel);
        write_durably(&paths.hostapd, conf.as_bytes(), true)?;
        said.push(format!(
            "Wi-Fi `{}` ({}) in {}",
            wifi.ssid,
            wifi.country,
            paths.hostapd.display()
        ));
        if let (Some(h), Some(path)) = (&hostname, &paths.hostname) {
            write_durably(path, format!("{h}\n").as_bytes(), false)?;
            let _ = std::process::Command::new("hostname").arg(h).status();
            said.push(format!("hostname {h}"));
        }
        let scrubbed = scrub(&text);
        if scrubbed != text {
            write_durably(&toml_path, scrubbed.as_bytes(), true)?;
            said.push(format!(
                "removed the passwords from {}",
                toml_path.display()
            ));
        }
        data(DataStep::Applied {
            sha256: sha256_hex(scrubbed.as_bytes()),
        })
        .await?;
    } else {
        said.push(format!("{HUB_TOML} unchanged since it was applied"));
    }
    // The owner's sheet, rewritten each boot with what holds now.
    let code = &done.setup_code;
    let mut sheet = format!(
        "cairn hub {}\r\n\r\nWi-Fi name:     {}\r\nWi-Fi password: {}\r\n\r\n\
         Join the Wi-Fi, then open http://hub.camp/ (or http://10.42.0.1/).\r\n",
        done.name, wifi.ssid, wifi.passphrase
    );
    match code {
        Some(c) => sheet.push_str(&format!(
            "Admin: open https://hub.camp/setup and enter the setup code {c}\r\n"
        )),
        None => sheet.push_str("Admin: https://hub.camp/admin (the admin password is set).\r\n"),
    }
    sheet.push_str(&format!(
        "\r\nThe admin pages are encrypted with the hub's own certificate, which\r\n\
         your browser does not know: it warns once. Continue if the\r\n\
         certificate's SHA-256 fingerprint is\r\n  {}\r\n",
        done.fingerprint
    ));
    if done.fresh && !problems.is_empty() {
        sheet.push_str("\r\nProblems in hub.toml:\r\n");
        for p in &problems {
            sheet.push_str(&format!("- {p}\r\n"));
        }
    }
    let sheet_path = paths.boot.join(HUB_SETUP);
    write_durably(&sheet_path, sheet.as_bytes(), false)?;
    said.push(format!("wrote {}", sheet_path.display()));
    // The same for a screen on the Pi (the unit prints to the console).
    said.push(format!(
        "Wi-Fi name {}, password {}",
        wifi.ssid, wifi.passphrase
    ));
    match code {
        Some(c) => said.push(format!(
            "then open https://hub.camp/setup and enter the setup code {c}"
        )),
        None => said.push("then open https://hub.camp/admin".into()),
    }
    said.push(format!(
        "the hub's certificate (the browser warns once) has the SHA-256 fingerprint {}",
        done.fingerprint
    ));
    for p in &problems {
        said.push(format!("problem: {p}"));
    }
    Ok(said)
}

/// Store `hub.toml`'s settings; the Wi-Fi password is made up once when
/// the file has none.
async fn apply(store: &Store, s: &HubSettings, said: &mut Vec<String>) -> Result<()> {
    let old_ssid = store.settings_get(WIFI_SSID).await?;
    let old_pass = store.settings_get(WIFI_PASSPHRASE).await?;
    let ssid = s
        .ssid
        .clone()
        .or(old_ssid)
        .unwrap_or_else(|| "cairn-hub".into());
    let pass = match (&s.wifi_password, old_pass) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) if !p.is_empty() => p,
        _ => Password::generate()?.expose().to_string(),
    };
    let country = s
        .country
        .clone()
        .or(store.settings_get(WIFI_COUNTRY).await?)
        .unwrap_or_else(|| "DE".into());
    store.settings_set(WIFI_SSID, &ssid).await?;
    store.settings_set(WIFI_PASSPHRASE, &pass).await?;
    store.settings_set(WIFI_COUNTRY, &country).await?;
    let channel = s.channel.unwrap_or(6);
    store
        .settings_set(WIFI_CHANNEL, &channel.to_string())
        .await?;
    if let Some(pw) = &s.admin_password {
        let p = Password::chosen(pw)?;
        let hash = tokio::task::spawn_blocking(move || p.hash()).await??;
        store
            .settings_set(crate::store::settings::ADMIN_PASSWORD, hash.as_str())
            .await?;
        store
            .settings_delete(crate::store::settings::SETUP_CODE)
            .await?;
        store
            .event(
                "admin.password",
                None,
                Some("set from hub.toml at first boot"),
            )
            .await?;
        said.push("admin password set".into());
    }
    Ok(())
}

/// The Wi-Fi the hub asks for, in its data directory: written by the hub
/// (user `cairn`) when the admin changes the Wi-Fi, read by the root-run
/// `cairn appliance wifi` (a systemd path unit starts it), which writes
/// hostapd's configuration from these four values only.
pub const WIFI_REQUEST: &str = "wifi.json";
/// The Wi-Fi channel from `hub.toml` (hostapd needs one).
pub const WIFI_CHANNEL: &str = "wifi.channel";

/// The access point's settings, checked before hostapd sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Wifi {
    pub ssid: String,
    /// Empty: an open network.
    pub passphrase: String,
    pub country: String,
    pub channel: u8,
}

impl Wifi {
    /// Whether hostapd may be given these; the message says what is wrong.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !wifi::ssid_ok(&self.ssid) {
            return Err("the Wi-Fi name must be 1 to 32 bytes without control characters".into());
        }
        if !self.passphrase.is_empty() && !wifi::passphrase_ok(&self.passphrase) {
            return Err("the Wi-Fi password must be 8 to 63 plain characters, or empty".into());
        }
        if !wifi::country_ok(&self.country) {
            return Err(format!(
                "the country `{}` is not a country's two-letter code (ISO 3166-1, such as DE)",
                self.country
            ));
        }
        if !wifi::channel_ok(i64::from(self.channel)) {
            return Err(format!("the channel {} is not 1 to 13", self.channel));
        }
        Ok(())
    }
}

/// On the appliance, write the Wi-Fi the admin chose to [`WIFI_REQUEST`]
/// for the root-run [`apply_wifi`]; returns whether it asked for one. No
/// Wi-Fi name (nothing shown to newcomers) leaves the access point as it is.
/// [`publish_wifi`] for the admin pages: done or logged, never an error
/// page (the settings are saved either way).
pub async fn ask_for_wifi(config: &Config, store: &Store) {
    match publish_wifi(config, store).await {
        Ok(true) => tracing::info!("asked for the new Wi-Fi settings to reach the access point"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the Wi-Fi settings could not be handed to the access point")
        }
    }
}

pub async fn publish_wifi(config: &Config, store: &Store) -> Result<bool> {
    if config.profile != crate::config::Profile::Appliance {
        return Ok(false);
    }
    let wifi = stored_wifi(store).await?;
    if wifi.ssid.is_empty() {
        return Ok(false);
    }
    wifi.check().map_err(anyhow::Error::msg)?;
    let json = serde_json::to_vec_pretty(&wifi).expect("plain fields serialise");
    write_durably(&config.data_dir.join(WIFI_REQUEST), &json, true)?;
    Ok(true)
}

/// The access point as the hub's settings have it (an empty name when
/// none is set; country DE and channel 6 unless set).
async fn stored_wifi(store: &Store) -> Result<Wifi> {
    Ok(Wifi {
        ssid: store.settings_get(WIFI_SSID).await?.unwrap_or_default(),
        passphrase: store
            .settings_get(WIFI_PASSPHRASE)
            .await?
            .unwrap_or_default(),
        country: store
            .settings_get(WIFI_COUNTRY)
            .await?
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or_else(|| "DE".into()),
        channel: store
            .settings_get(WIFI_CHANNEL)
            .await?
            .and_then(|c| c.parse().ok())
            .unwrap_or(6),
    })
}

/// Read the hub's [`WIFI_REQUEST`] at `from`, check it, and write hostapd's
/// configuration at `hostapd`; returns the Wi-Fi when the file changed
/// (`None`: it already said that). Runs as root: only the four checked
/// values reach the file.
pub fn apply_wifi(from: &Path, hostapd: &Path) -> Result<Option<Wifi>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(from)
        .with_context(|| format!("cannot read {}", from.display()))?
        .take(4096)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", from.display()))?;
    let wifi: Wifi = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the hub's Wi-Fi request", from.display()))?;
    wifi.check().map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}; hostapd's configuration is unchanged",
            from.display()
        )
    })?;
    let conf = hostapd_conf(&wifi.ssid, &wifi.passphrase, &wifi.country, wifi.channel);
    if std::fs::read_to_string(hostapd).ok().as_deref() == Some(conf.as_str()) {
        return Ok(None);
    }
    write_durably(hostapd, conf.as_bytes(), true)?;
    Ok(Some(wifi))
}

/// Write a file so that a power cut leaves the old or the new one, with
/// its mode (`private`: 0600), never through a planted link.
fn write_durably(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    crate::datadir::write_file(path, bytes, private)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_bad_ones_reported() {
        let s = parse(
            "ssid = \"Lakeside\"\nwifi_password = \"short\"\ncountry = \"fr\"\nchannel = 14\n\
             hostname = \"lake-hub\"\nadmin_password = \"campfire-42\"\ncolour = \"green\"\n",
        );
        assert_eq!(s.ssid.as_deref(), Some("Lakeside"));
        assert_eq!(s.wifi_password, None);
        assert_eq!(s.country.as_deref(), Some("FR"));
        assert_eq!(s.channel, None);
        assert_eq!(s.hostname.as_deref(), Some("lake-hub"));
        assert_eq!(s.admin_password.as_deref(), Some("campfire-42"));
        let all = s.problems.join("\n");
        for want in ["wifi_password", "channel", "colour"] {
            assert!(all.contains(want), "{all}");
        }
        assert!(parse("ssid = [").problems[0].contains("not valid TOML"));
    }

    #[test]
    fn scrubbing_removes_only_the_secrets() {
        let text = "ssid = \"Lake\"\nwifi_password = \"secret-pass\"\n# admin_password = \"x\"\nadmin_password = \"campfire-42\"\n";
        let out = scrub(text);
        assert!(
            !out.contains("secret-pass") && !out.contains("campfire-42"),
            "{out}"
        );
        assert!(out.contains("ssid = \"Lake\""));
        assert!(out.contains("# admin_password = \"x\""));
        assert_eq!(parse(&out).ssid.as_deref(), Some("Lake"));
    }

    #[test]
    fn the_access_point_is_wpa2_on_the_channel_and_country() {
        let c = hostapd_conf("Lake", "pass-word-1", "FR", 11);
        for want in [
            "ssid=Lake\n",
            "wpa_passphrase=pass-word-1\n",
            "country_code=FR\n",
            "channel=11\n",
            "wpa=2\n",
        ] {
            assert!(c.contains(want), "{c}");
        }
        assert!(!c.contains("ieee80211w"));
    }

    #[test]
    fn a_wifi_request_is_checked_field_by_field() {
        let ok = Wifi {
            ssid: "Lake".into(),
            passphrase: "by-the-lake".into(),
            country: "DE".into(),
            channel: 6,
        };
        assert_eq!(ok.check(), Ok(()));
        let open = Wifi {
            passphrase: String::new(),
            ..ok.clone()
        };
        assert_eq!(open.check(), Ok(()));
        for (bad, why) in [
            (
                Wifi {
                    ssid: String::new(),
                    ..ok.clone()
                },
                "1 to 32",
            ),
            (
                Wifi {
                    ssid: "s".repeat(33),
                    ..ok.clone()
                },
                "1 to 32",
            ),
            (
                Wifi {
                    ssid: "a\nb".into(),
                    ..ok.clone()
                },
                "control",
            ),
            (
                Wifi {
                    passphrase: "short".into(),
                    ..ok.clone()
                },
                "8 to 63",
            ),
            (
                Wifi {
                    passphrase: "tab\there-ok?".into(),
                    ..ok.clone()
                },
                "8 to 63",
            ),
            (
                Wifi {
                    country: "de".into(),
                    ..ok.clone()
                },
                "two-letter",
            ),
            (
                Wifi {
                    channel: 14,
                    ..ok.clone()
                },
                "1 to 13",
            ),
            (
                Wifi {
                    channel: 0,
                    ..ok.clone()
                },
                "1 to 13",
            ),
        ] {
            let e = bad.check().unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let c = hostapd_conf("Open", "", "DE", 1);
        assert!(!c.contains("wpa"), "{c}");
    }

    #[test]
    fn a_bad_request_file_leaves_hostapd_alone() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("wlan0.conf");
        std::fs::write(&conf, "as it was\n").unwrap();
        let from = dir.path().join("wifi.json");
        for text in [
            "not json".to_string(),
            format!("{{\"ssid\":\"{}\"}}", "x".repeat(5000)),
            r#"{"ssid":"Lake","passphrase":"","country":"DE","channel":40}"#.to_string(),
        ] {
            std::fs::write(&from, text).unwrap();
            assert!(apply_wifi(&from, &conf).is_err());
            assert_eq!(std::fs::read_to_string(&conf).unwrap(), "as it was\n");
        }
        assert!(apply_wifi(&dir.path().join("missing.json"), &conf).is_err());
    }
}
