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
    /// First boot's part in the data directory, as the hub's user
    /// (`firstboot --owner` runs it; a step in JSON on standard input).
    #[command(hide = true)]
    FirstbootData,
}

/// First boot of the appliance, run as root: the Wi-Fi and hostname from
/// the boot partition, with the data directory's part (keys, settings,
/// setup code) done as `owner` when one is given — root never writes in a
/// directory another user controls.
pub(super) async fn firstboot(
    cli: &Cli,
    config: &Config,
    paths: &crate::appliance::Paths,
) -> Result<()> {
    let owner = match &paths.owner {
        Some(name) if nix::unistd::geteuid().is_root() && name != "root" => {
            let user = nix::unistd::User::from_name(name)
                .with_context(|| format!("cannot look up the user {name}"))?
                .with_context(|| {
                    format!("there is no user {name}: create it, or leave out --owner")
                })?;
            give_data_dir(&config.data_dir, &user)?;
            Some(user)
        }
        _ => None,
    };
    let lines = crate::appliance::firstboot(paths, |step| {
        let owner = &owner;
        async move {
            match owner {
                None => firstboot_data(config, step).await,
                Some(user) => firstboot_data_as(cli, config, user, step).await,
            }
        }
    })
    .await?;
    for line in lines {
        println!("cairn firstboot: {line}");
    }
    Ok(())
}

/// The data directory's half of first boot, in this process.
pub(super) async fn firstboot_data(
    config: &Config,
    step: crate::appliance::DataStep,
) -> Result<crate::appliance::DataDone> {
    let (prepared, _) = app::prepare(config, false).await?;
    let done =
        crate::appliance::data_step(config, &prepared.store, &prepared.config.hub.name, step)
            .await
            .map(|done| crate::appliance::DataDone {
                fingerprint: prepared.certificate.fingerprint.clone(),
                ..done
            });
    prepared.store.close().await;
    done
}

/// The most a first-boot message over the pipe may hold.
const STEP_MAX: u64 = 64 << 10;

/// `cairn appliance firstboot-data` as `user`: the step goes in on its
/// standard input (it holds the passwords from hub.toml), what it did
/// comes back as JSON on its standard output.
async fn firstboot_data_as(
    cli: &Cli,
    config: &Config,
    user: &nix::unistd::User,
    step: crate::appliance::DataStep,
) -> Result<crate::appliance::DataDone> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::process::Command::new(
        std::env::current_exe().context("cannot find the cairn program")?,
    );
    if let Some(file) = &cli.config {
        c.arg("--config").arg(file);
    }
    if let Some(profile) = &cli.profile {
        c.arg("--profile").arg(profile);
    }
    c.arg("--data")
        .arg(&config.data_dir)
        .args(["appliance", "firstboot-data"])
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .current_dir(&config.data_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = c
        .spawn()
        .with_context(|| format!("cannot run cairn as {}", user.name))?;
    let json = serde_json::to_vec(&step).expect("plain fields serialise");
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(&json).await?;
    drop(stdin);
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("piped")
        .take(STEP_MAX)
        .read_to_end(&mut out)
        .await?;
    let status = child.wait().await?;
    anyhow::ensure!(
        status.success(),
        "the data directory's part of first boot failed as {} ({status}); see the messages above",
        user.name
    );
    serde_json::from_slice(&out).context("the data directory's part of first boot said nothing")
}

/// `cairn appliance firstboot-data`: one step read from standard input,
/// what it did written to standard output.
pub(super) async fn firstboot_data_step(config: &Config) -> Result<()> {
    use std::io::Read;
    let mut json = Vec::new();
    std::io::stdin().take(STEP_MAX).read_to_end(&mut json)?;
    let step = serde_json::from_slice(&json).context("not a first-boot step")?;
    let done = firstboot_data(config, step).await?;
    println!(
        "{}",
        serde_json::to_string(&done).expect("plain fields serialise")
    );
    Ok(())
}

/// Make the data directory for `user` (private, 0700) when it is not
/// there; one that belongs to someone else is refused, not taken over.
fn give_data_dir(dir: &std::path::Path, user: &nix::unistd::User) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && m.uid() == user.uid.as_raw() => Ok(()),
        Ok(m) if m.is_dir() => anyhow::bail!(
            "the data directory {} belongs to uid {}, not to {}: give it to the hub's user with `chown -R {}: {}`",
            dir.display(),
            m.uid(),
            user.name,
            user.name,
            dir.display()
        ),
        Ok(_) => anyhow::bail!("{} is not a directory: move it away", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::os::unix::fs::lchown(dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .with_context(|| format!("cannot give {} to {}", dir.display(), user.name))
        }
        Err(e) => Err(e).with_context(|| format!("cannot look at {}", dir.display())),
    }
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
