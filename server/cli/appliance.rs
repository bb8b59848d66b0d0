//! `cairn appliance`: the root-run steps of the SD-card image.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum ApplianceCommand {
    /// Apply hub.toml from the FAT partition (Wi-Fi, hostname, admin
    /// password), make the hub's keys and setup code, write HUB-SETUP.txt;
    /// only acts when hub.toml changed since it was last applied.
    Firstboot {
        /// The FAT partition's mount point.
        #[arg(long, default_value = "/boot/firmware")]
        boot: PathBuf,
        /// hostapd's configuration of the access point.
        #[arg(long, default_value = "/etc/hostapd/wlan0.conf")]
        hostapd: PathBuf,
        /// Write the hostname here (e.g. /etc/hostname).
        #[arg(long)]
        hostname_file: Option<PathBuf>,
        /// The user that runs the hub: the data directory is given to it.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Write hostapd's configuration from the Wi-Fi the hub asks for (the
    /// admin changed it): runs as root from a systemd path unit; only a
    /// checked name, password, country and channel reach the file.
    Wifi {
        /// The hub's request (`wifi.json` in its data directory).
        #[arg(long)]
        from: PathBuf,
        /// hostapd's configuration of the access point.
        #[arg(long, default_value = "/etc/hostapd/wlan0.conf")]
        hostapd: PathBuf,
        /// Restart this systemd unit when the configuration changed.
        #[arg(long)]
        restart: Option<String>,
    },
}

/// First boot of the appliance: the data directory, keys and the Wi-Fi
/// from the boot partition.
pub(super) async fn firstboot(config: &Config, paths: &crate::appliance::Paths) -> Result<()> {
    let (prepared, _) = app::prepare(config, false).await?;
    let name = &prepared.config.hub.name;
    for line in crate::appliance::firstboot(config, &prepared.store, name, paths).await? {
        println!("cairn firstboot: {line}");
    }
    Ok(())
}

/// Write hostapd's configuration from the hub's Wi-Fi request, and
/// restart the access point when it changed.
pub(super) fn wifi(
    from: &std::path::Path,
    hostapd: &std::path::Path,
    restart: Option<&str>,
) -> Result<()> {
    match crate::appliance::apply_wifi(from, hostapd)? {
        None => println!("cairn wifi: {} already says that", hostapd.display()),
        Some(w) => {
            println!(
                "cairn wifi: `{}` ({}, channel {}, {}) written to {}",
                w.ssid,
                w.country,
                w.channel,
                if w.passphrase.is_empty() {
                    "open"
                } else {
                    "WPA2"
                },
                hostapd.display()
            );
            if let Some(unit) = restart {
                let st = std::process::Command::new("systemctl")
                    .args(["try-restart", unit])
                    .status()
                    .context("cannot run systemctl")?;
                anyhow::ensure!(st.success(), "systemctl try-restart {unit} failed");
                println!("cairn wifi: restarted {unit}");
            }
        }
    }
    Ok(())
}
