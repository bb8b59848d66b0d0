//! The command line: `cairn serve`, `check-config`, `account …`, `admin …`.
//!
//! Every failure ends as one line on standard error that says what went
//! wrong and what to do, and a non-zero exit status.

use crate::app::{self, Hub, SETTING_ADMIN_PASSWORD, SETTING_SETUP_CODE};
use crate::config::{Config, Overrides};
use crate::datadir::{self, Layout};
use crate::domain::Password;
use crate::domain::units::human_age;
use crate::mail::Accounts;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about = "Offline-first campsite message hub for Delta Chat"
)]
pub struct Cli {
    /// Configuration file (TOML); optional. See cairn.example.toml.
    #[arg(long, global = true, env = "CAIRN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default ./cairn-data on a laptop); wins over the config and CAIRN_DATA.
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Defaults to use: laptop or appliance.
    #[arg(long, global = true, value_name = "PROFILE")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the hub (creates its data directory, database and certificate on first start).
    Serve,
    /// Check a configuration file (and CAIRN_* variables) and report every problem.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the documented example configuration.
    ExampleConfig,
    /// Manage mail accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage the admin login of the web pages.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Mail waiting to leave this hub.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// This node's identity.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Other nodes this one exchanges mail with.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Which peer carries mail for which domain.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Bundles: files that carry mail between nodes.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Batch SMTP from classic mail nodes (Exim, Postfix over NNCP or a pipe).
    #[command(subcommand)]
    Bsmtp(BsmtpCommand),
    /// How and when this node syncs with its peers.
    #[command(subcommand)]
    Uplink(UplinkCommand),
    /// Tasks of the SD-card appliance (run by its systemd units).
    #[command(subcommand)]
    Appliance(ApplianceCommand),
    /// The LoRa radio.
    #[command(subcommand)]
    Radio(RadioCommand),
    /// Sync now: run every ready uplink at once (or those of one peer),
    /// whatever their schedules. Shows progress; exits non-zero if any failed.
    Sync {
        /// Only this peer.
        #[arg(long)]
        peer: Option<String>,
    },
    /// Take one message on standard input as sendmail(1) does: the
    /// envelope on the command line, or the sender in a leading `From `
    /// line (Postfix's pipe(8) `F` flag) — the NNCP `sendmail` handle of
    /// Postfix nodes. Safe to run again; exit statuses as `bsmtp import`.
    Sendmail {
        /// The envelope sender; `<>` for a bounce.
        #[arg(short = 'f', value_name = "SENDER")]
        from: Option<String>,
        /// Accepted for compatibility: a "." line never ends the message here.
        #[arg(short = 'i')]
        ignore_dots: bool,
        /// sendmail's -o options (-oi, -odi, …), accepted and ignored.
        #[arg(short = 'o', value_name = "OPTION")]
        options: Vec<String>,
        /// The classic peer it comes from (else found by $NNCP_SENDER).
        #[arg(long)]
        peer: Option<String>,
        /// The recipients.
        #[arg(value_name = "RCPT", required = true)]
        rcpts: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum BsmtpCommand {
    /// Take a batch SMTP stream (RFC 2442, as Exim's `use_bsmtp` writes it)
    /// and deliver each message as the MX port would. Safe to run again:
    /// nothing is delivered twice. Exits 0 when every message is delivered
    /// or bounced, 75 (try again later) on a temporary failure or a batch
    /// cut short. Use it as an NNCP exec handle (`rsmtp`), a Filespooler
    /// queue command, or an Exim pipe command.
    Import {
        /// The batch; `-` (the default) is standard input.
        #[arg(value_name = "FILE|-", default_value = "-")]
        input: PathBuf,
        /// The classic peer it comes from: its senders must be in that
        /// peer's domains. Without it, the peer whose NNCP node is
        /// $NNCP_SENDER; without that, anyone, under the MX port's rules.
        #[arg(long)]
        peer: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Print this node's card: give it to the peers that should add this node.
    Card {
        /// Where peers may reach this node for live links (host:port); repeatable.
        #[arg(long = "addr", value_name = "HOST:PORT")]
        addrs: Vec<String>,
        /// Also print it as a QR code (for a phone camera or a printout).
        #[arg(long)]
        qr: bool,
    },
}

#[derive(Subcommand, Debug)]
enum PeerCommand {
    /// Add a peer from its node card (from `cairn node card` on that node);
    /// its domains are routed to it unless already routed elsewhere.
    Add {
        card: String,
        /// Call it this instead of the name on its card.
        #[arg(long)]
        name: Option<String>,
        /// When to sync over a live link if the card has addresses:
        /// always, manual, appear, or windows such as "mon-fri 08:00-18:00".
        #[arg(long, default_value = "always")]
        schedule: String,
    },
    /// Add a classic peer: an Exim or Postfix node that takes and sends
    /// batch SMTP. Its domains are routed to it unless already routed.
    AddClassic {
        name: String,
        /// A mail domain behind it; repeatable.
        #[arg(long = "domain", value_name = "DOMAIN", required = true)]
        domains: Vec<String>,
        /// Its NNCP node (the id is best: it also identifies batches from
        /// it through $NNCP_SENDER).
        #[arg(long, value_name = "NODE")]
        nncp: Option<String>,
    },
    /// Make this node a gateway: the Internet becomes a peer (default name
    /// `internet`) with the default route and an `smtp` uplink, so mail for
    /// every domain without a route leaves by SMTP — to `gateway.smarthost`
    /// if set, else to each domain's MX hosts.
    AddInternet {
        #[arg(default_value = "internet")]
        name: String,
        /// When to deliver: always (default), manual, or time windows.
        #[arg(long, default_value = "always")]
        schedule: String,
    },
    /// List peers with their domains and last exchanges.
    List,
    /// Remove a peer and its routes; its queued mail waits for another route.
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
enum RadioCommand {
    /// Simulate LoRa modems without hardware: RNode or RYLR998 emulators
    /// on pseudo-terminals joined by one simulated channel (air time,
    /// half duplex, collisions, loss). Each radio appears as DIR/NAME; set
    /// a hub's `radio.port` to it. Runs until interrupted; on standard
    /// input it takes `unplug NAME`, `plug NAME`, `loss P`, `stats`.
    Sim {
        /// Where the radios' device links go.
        #[arg(long, default_value = "cairn-radio-sim")]
        dir: PathBuf,
        /// Which modems: rnode or rylr.
        #[arg(long, default_value = "rnode")]
        modem: String,
        /// Names of the radios.
        #[arg(long, value_delimiter = ',', default_value = "a,b")]
        radios: Vec<String>,
        /// Share of frames lost, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Share of frames corrupted past the radio's CRC, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        corrupt: f64,
        /// Seed of the channel's randomness (runs are repeatable).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
enum ApplianceCommand {
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

#[derive(Subcommand, Debug)]
enum UplinkCommand {
    /// Add an uplink to PEER: `link` (the addresses on its card), `folder
    /// DIR` (Syncthing, a shared drive), `usb DIR` (a USB stick's mount
    /// point: used only while mounted), `nncp NODE`.
    Add {
        peer: String,
        #[arg(value_parser = ["link", "folder", "usb", "nncp", "lora"])]
        carrier: String,
        /// The directory or NNCP node; none for a link.
        target: Option<String>,
        /// always, manual, appear (when the peer answers or the stick is
        /// mounted), or windows such as "mon-fri 08:00-18:00; sat 10:00-12:00 +02:00".
        #[arg(long, default_value = "always")]
        schedule: String,
        /// For a folder or USB uplink: when the peer deletes a bundle this
        /// hub left (its import does, once committed), count the items as
        /// acknowledged at once. Only for a folder nobody else tidies up:
        /// a bundle a person deletes is lost mail.
        #[arg(long)]
        deletion_acks: bool,
    },
    /// List uplinks with their schedules and last runs.
    List,
    /// Change an uplink's schedule.
    Schedule { id: i64, schedule: String },
    /// Remove an uplink.
    Remove { id: i64 },
}

#[derive(Subcommand, Debug)]
enum RouteCommand {
    /// Send mail for DOMAIN through PEER; DOMAIN `*` (or `default`) is the default route.
    Add { domain: String, peer: String },
    /// List routes.
    List,
    /// Remove the route of DOMAIN.
    Remove { domain: String },
}

#[derive(Subcommand, Debug)]
enum BundleCommand {
    /// Write a bundle for a peer with everything queued for it, to a file
    /// or folder, or hand it to NNCP.
    #[command(group = clap::ArgGroup::new("to").required(true).args(["out", "nncp", "fspl_queue"]))]
    Export {
        #[arg(long)]
        peer: String,
        /// A directory (the bundle gets its own name there) or a file path; `-` is standard output.
        #[arg(long, value_name = "FILE|DIR|-")]
        out: Option<PathBuf>,
        /// Queue it for this NNCP node with nncp-exec; the peer runs
        /// `cairn bundle import -` as the exec handle. A classic peer gets
        /// one batch SMTP job per message (handle `rsmtp`), to its NNCP
        /// node on record unless NODE is given.
        #[arg(long, value_name = "NODE", num_args = 0..=1, default_missing_value = "")]
        nncp: Option<String>,
        /// NNCP configuration file (default: NNCP's own, /etc/nncp.hjson).
        #[arg(long, value_name = "FILE", requires = "nncp")]
        nncp_cfg: Option<PathBuf>,
        /// The exec handle name on the peer's NNCP node (default:
        /// cairn-bundle, or rsmtp for a classic peer).
        #[arg(long, value_name = "NAME", requires = "nncp")]
        nncp_handle: Option<String>,
        /// Write it as the next job of this Filespooler queue (`fspl
        /// queue-init` made it); the peer runs `fspl queue-process -q DIR
        /// cairn -- bundle import -`.
        #[arg(long, value_name = "DIR")]
        fspl_queue: Option<PathBuf>,
        /// Filespooler sequence file (default: fspl/PEER.seq in the data directory).
        #[arg(long, value_name = "FILE", requires = "fspl_queue")]
        fspl_seq: Option<PathBuf>,
    },
    /// Import a bundle file, `-` for standard input (an NNCP exec handle), or
    /// every bundle for this node in a directory. Exits 75 on a temporary failure.
    Import {
        #[arg(value_name = "FILE|DIR|-")]
        input: PathBuf,
        /// In a directory, delete each bundle once imported (the sender may
        /// take that as the acknowledgement on a shared folder).
        #[arg(long)]
        delete: bool,
    },
}

/// An error that asks the caller to try again later (exit status 75,
/// EX_TEMPFAIL, as NNCP, Filespooler and MTAs expect).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TryLater(String);

/// EX_TEMPFAIL from sysexits.h.
pub const EXIT_TEMPFAIL: u8 = 75;

/// Input that is not what the command reads (exit status 65, EX_DATAERR).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataError(String);

/// EX_DATAERR from sysexits.h.
pub const EXIT_DATAERR: u8 = 65;

#[derive(Subcommand, Debug)]
enum OutboxCommand {
    /// List every outbox item: state, next hop, age, size, sender and recipients.
    List,
    /// Send a held or in-flight item again at the next chance.
    Retry { id: i64 },
    /// Keep an item here until `outbox retry`.
    Hold { id: i64 },
    /// Remove an item; its sender gets a bounce unless --quietly.
    Drop {
        id: i64,
        #[arg(long)]
        quietly: bool,
    },
}

#[derive(Args, Debug)]
struct PasswordArgs {
    /// The password (visible to other users of this machine in the process list; prefer --password-stdin).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Create an account; prints a generated password when none is given.
    Add {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List every account.
    List,
    /// Set a new password; prints a generated one when none is given.
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete an account and its mail.
    Remove {
        address: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Set the admin password of the web pages (ends the one-time setup code).
    SetPassword {
        #[command(flatten)]
        password: PasswordArgs,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve) {
        pin_malloc_threshold();
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    init_logging(matches!(cli.command, Command::Serve));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<TryLater>().is_some() {
                ExitCode::from(EXIT_TEMPFAIL)
            } else if e.downcast_ref::<DataError>().is_some() {
                ExitCode::from(EXIT_DATAERR)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// glibc raises its mmap threshold after large blocks are freed, so every
/// thread that ran an Argon2 hash (19 MiB) keeps that much in its heap:
/// measured 96 MB RSS with 200 idle IMAP sessions instead of 19 MB. A fixed
/// threshold (set in the environment, read by glibc at start) returns large
/// blocks to the system; re-exec once with it unless the operator chose one.
fn pin_malloc_threshold() {
    const VAR: &str = "MALLOC_MMAP_THRESHOLD_";
    if !cfg!(all(target_os = "linux", target_env = "gnu")) || std::env::var_os(VAR).is_some() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        // Only returns on failure; then we simply run with glibc's default.
        let err = std::process::Command::new(exe)
            .args(args)
            .env(VAR, "131072")
            .exec();
        tracing::debug!(error = %err, "could not re-exec with a fixed malloc threshold");
    }
}

fn init_logging(serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn process_env() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .collect()
}

fn load_config(cli: &Cli, file: Option<&std::path::Path>) -> Result<Config> {
    let overrides = Overrides {
        data_dir: cli.data.clone(),
        profile: cli.profile.clone(),
    };
    Ok(Config::load(file, &process_env(), &overrides)?)
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Serve => serve(load_config(&cli, cli.config.as_deref())?).await,
        Command::CheckConfig { file } => check_config(&cli, file),
        Command::ExampleConfig => {
            print!("{}", Config::example());
            Ok(())
        }
        Command::Account(cmd) => account(load_config(&cli, cli.config.as_deref())?, cmd).await,
        Command::Admin(cmd) => admin(load_config(&cli, cli.config.as_deref())?, cmd).await,
        Command::Outbox(OutboxCommand::List) => {
            outbox_list(load_config(&cli, cli.config.as_deref())?).await
        }
        Command::Outbox(cmd) => outbox_change(load_config(&cli, cli.config.as_deref())?, cmd).await,
        Command::Node(cmd) => node(load_config(&cli, cli.config.as_deref())?, cmd).await,
        Command::Peer(cmd) => peer(load_config(&cli, cli.config.as_deref())?, cmd).await,
        Command::Route(cmd) => route(load_config(&cli, cli.config.as_deref())?, cmd).await,
        Command::Bundle(cmd) => bundle(load_config(&cli, cli.config.as_deref())?, cmd).await,
        Command::Sync { peer } => sync(load_config(&cli, cli.config.as_deref())?, peer).await,
        Command::Uplink(cmd) => uplink(load_config(&cli, cli.config.as_deref())?, cmd).await,
        Command::Radio(RadioCommand::Sim {
            dir,
            modem,
            radios,
            loss,
            corrupt,
            seed,
        }) => radio_sim(dir, modem, radios, *loss, *corrupt, *seed).await,
        Command::Appliance(ApplianceCommand::Firstboot {
            boot,
            hostapd,
            hostname_file,
            owner,
        }) => {
            let config = load_config(&cli, cli.config.as_deref())?;
            let paths = crate::appliance::Paths {
                boot: boot.clone(),
                hostapd: hostapd.clone(),
                hostname: hostname_file.clone(),
                owner: owner.clone(),
            };
            for line in crate::appliance::firstboot(&config, &paths).await? {
                println!("cairn firstboot: {line}");
            }
            Ok(())
        }
        Command::Appliance(ApplianceCommand::Wifi {
            from,
            hostapd,
            restart,
        }) => {
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
        // A carrier runs these: a bad configuration must keep its input
        // for later (75), not bounce it.
        Command::Bsmtp(BsmtpCommand::Import { input, peer }) => {
            let config =
                load_config(&cli, cli.config.as_deref()).map_err(|e| TryLater(format!("{e:#}")))?;
            classic_import(config, peer.as_deref(), ClassicInput::Batch(input)).await
        }
        Command::Sendmail {
            from, peer, rcpts, ..
        } => {
            let config =
                load_config(&cli, cli.config.as_deref()).map_err(|e| TryLater(format!("{e:#}")))?;
            let input = ClassicInput::Message {
                from: from.clone(),
                rcpts: rcpts.clone(),
            };
            classic_import(config, peer.as_deref(), input).await
        }
    }
}

/// The relay of the hub's data directory, for a management command.
async fn open_relay(config: &Config) -> Result<crate::relay::Relay> {
    let (prepared, _) = app::prepare(config, false).await?;
    if prepared.report.first_start {
        for line in &prepared.report.lines {
            eprintln!("{line}");
        }
    }
    Ok(prepared.relay())
}

async fn node(config: Config, cmd: &NodeCommand) -> Result<()> {
    let relay = open_relay(&config).await?;
    match cmd {
        NodeCommand::Card { addrs, qr } => {
            let addrs = if addrs.is_empty() {
                let names: Vec<String> =
                    config.hub.hostnames.iter().map(|h| h.to_string()).collect();
                crate::relay::node::link_addrs(&config.listen.link, &names)
            } else {
                addrs.clone()
            };
            let text = relay.card(addrs).to_text();
            if *qr {
                println!("{}", crate::relay::node::qr_text(&text)?);
            }
            println!("{text}");
        }
    }
    relay.store().close().await;
    Ok(())
}

async fn peer(config: Config, cmd: &PeerCommand) -> Result<()> {
    use crate::relay::node::{Card, fingerprint};
    if let PeerCommand::Add { card, .. } = cmd {
        Card::parse(card)?;
    } else if !matches!(cmd, PeerCommand::AddClassic { .. }) {
        datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    }
    let relay = open_relay(&config).await?;
    let result = async {
        match cmd {
            PeerCommand::Add {
                card,
                name,
                schedule,
            } => {
                crate::relay::schedule::Schedule::parse(schedule)?;
                let card = Card::parse(card)?;
                let (row, routes) = relay.add_peer(&card, name.as_deref()).await?;
                println!("added peer {} (node {})", row.name, fingerprint(&card.key));
                for d in routes {
                    println!("route: {d} -> {}", row.name);
                }
                if !card.addrs.is_empty() {
                    let syncer = crate::relay::uplink::Syncer::new(relay.clone());
                    let up = syncer.add(&row.name, "link", "", schedule, false).await?;
                    println!(
                        "uplink {}: live link to {} ({}), schedule {}",
                        up.id,
                        row.name,
                        card.addrs.join(", "),
                        up.schedule
                    );
                }
            }
            PeerCommand::AddClassic {
                name,
                domains,
                nncp,
            } => {
                let (row, routes) = relay
                    .add_classic_peer(name, domains, nncp.as_deref())
                    .await?;
                println!("added classic peer {}", row.name);
                for d in routes {
                    println!("route: {d} -> {}", row.name);
                }
            }
            PeerCommand::AddInternet { name, schedule } => {
                crate::relay::schedule::Schedule::parse(schedule)?;
                let row = relay.add_internet_peer(name).await?;
                let syncer = crate::relay::uplink::Syncer::new(relay.clone());
                let up = syncer.add(&row.name, "smtp", "", schedule, false).await?;
                println!(
                    "added peer {} for the Internet; route: * -> {}",
                    row.name, row.name
                );
                let how = if config.gateway.smarthost.is_empty() {
                    "to each domain's MX hosts".to_string()
                } else {
                    format!("through {}", config.gateway.smarthost)
                };
                println!("uplink {}: smtp {how}, schedule {}", up.id, up.schedule);
            }
            PeerCommand::List => {
                let peers = relay.store().peer_list().await?;
                if peers.is_empty() {
                    println!("no peers yet: add one with `cairn peer add CARD`");
                }
                let now = crate::store::now();
                let ago = |t: Option<i64>| {
                    t.map_or("never".to_string(), |t| {
                        format!("{} ago", human_age(now - t))
                    })
                };
                for p in peers {
                    println!(
                        "{}  {}  domains {}  sent {}  received {}",
                        p.name,
                        crate::relay::node::describe(&p),
                        p.domain_list().join(", "),
                        ago(p.last_sent_at),
                        ago(p.last_received_at)
                    );
                }
            }
            PeerCommand::Remove { name } => {
                relay.remove_peer(name).await?;
                println!("removed peer {name}; mail queued for it waits for another route");
            }
        }
        Ok(())
    }
    .await;
    relay.store().close().await;
    result
}

async fn route(config: Config, cmd: &RouteCommand) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let relay = open_relay(&config).await?;
    let result = async {
        match cmd {
            RouteCommand::Add { domain, peer } => {
                relay.add_route(domain, peer).await?;
                println!("route: {domain} -> {peer}");
            }
            RouteCommand::List => {
                let routes = relay.store().routes().await?;
                if routes.is_empty() {
                    println!("no routes: mail for other domains waits until one is added");
                }
                for (d, _, p) in routes {
                    let d = if d == "*" {
                        "* (default)".to_string()
                    } else {
                        d
                    };
                    println!("{d} -> {p}");
                }
            }
            RouteCommand::Remove { domain } => {
                relay.remove_route(domain).await?;
                println!("removed the route for {domain}");
            }
        }
        Ok(())
    }
    .await;
    relay.store().close().await;
    result
}

async fn uplink(config: Config, cmd: &UplinkCommand) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let relay = open_relay(&config).await?;
    let syncer = crate::relay::uplink::Syncer::new(relay.clone());
    let result = async {
        match cmd {
            UplinkCommand::Add {
                peer,
                carrier,
                target,
                schedule,
                deletion_acks,
            } => {
                let up = syncer
                    .add(
                        peer,
                        carrier,
                        target.as_deref().unwrap_or(""),
                        schedule,
                        *deletion_acks,
                    )
                    .await?;
                println!(
                    "uplink {}: {} {} {}, schedule {}{}",
                    up.id,
                    up.peer_name,
                    up.carrier,
                    up.target,
                    up.schedule,
                    if up.deletion_acks {
                        ", a deleted bundle counts as acknowledged"
                    } else {
                        ""
                    }
                );
            }
            UplinkCommand::List => {
                let ups = relay.store().uplinks().await?;
                if ups.is_empty() {
                    println!("no uplinks yet: add one with `cairn uplink add PEER CARRIER`");
                }
                let now = crate::store::now();
                for u in ups {
                    let last = match (u.last_run_at, &u.last_error) {
                        (None, _) => "never ran".to_string(),
                        (Some(t), None) => format!("ok {} ago", human_age(now - t)),
                        (Some(t), Some(e)) => format!("failed {} ago: {e}", human_age(now - t)),
                    };
                    println!(
                        "{}  {}  {} {}  schedule {}{}  {}",
                        u.id,
                        u.peer_name,
                        u.carrier,
                        u.target,
                        u.schedule,
                        if u.deletion_acks {
                            "  deletion = ack"
                        } else {
                            ""
                        },
                        last
                    );
                }
            }
            UplinkCommand::Schedule { id, schedule } => {
                syncer.set_schedule(*id, schedule).await?;
                println!("uplink {id}: schedule {schedule}");
            }
            UplinkCommand::Remove { id } => {
                syncer.remove(*id).await?;
                println!("removed uplink {id}");
            }
        }
        Ok(())
    }
    .await;
    relay.store().close().await;
    result
}

async fn sync(config: Config, only: &Option<String>) -> Result<()> {
    use crate::relay::link::{LinkProgress, LinkState};
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let relay = open_relay(&config).await?;
    let syncer = crate::relay::uplink::Syncer::new(relay.clone());
    let mut board = syncer.board();
    let round = match syncer.sync_now(only.as_deref()).await {
        Ok(r) => r,
        Err(e) => {
            relay.store().close().await;
            return Err(e.into());
        }
    };
    let tty = std::io::stderr().is_terminal();
    let line = |u: &crate::relay::uplink::UplinkStatus| {
        use crate::domain::units::{count, human_bytes};
        let p: &LinkProgress = &u.progress;
        let what = if u.target.is_empty() {
            format!("{} {}", u.peer, u.carrier)
        } else {
            format!("{} {} {}", u.peer, u.carrier, u.target)
        };
        let mut l = format!(
            "{what}: {} — sent {} ({}), received {} ({})",
            p.state.as_str(),
            count(p.items_out, "item"),
            human_bytes(p.bytes_out),
            count(p.items_in, "item"),
            human_bytes(p.bytes_in)
        );
        if let Some(e) = &p.error {
            l.push_str(&format!(": {e}"));
        }
        l
    };
    let mut shown: HashMap<i64, LinkState> = HashMap::new();
    loop {
        let b = board.borrow_and_update().clone();
        if b.round == round {
            if tty {
                let all: Vec<String> = b.round_status().into_iter().map(&line).collect();
                eprint!("\r\x1b[K{}", all.join(" | "));
            } else {
                for u in b.round_status() {
                    if shown.get(&u.id) != Some(&u.progress.state) {
                        shown.insert(u.id, u.progress.state);
                        eprintln!("{}", line(u));
                    }
                }
            }
            if !b.round_running {
                break;
            }
        }
        tokio::select! {
            r = board.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
        }
    }
    if tty {
        eprintln!();
    }
    let _ = relay.store().wake_hub().await;
    let b = board.borrow().clone();
    for u in b.round_status() {
        println!("{}", line(u));
    }
    let (ok, failed, c) = b.round_summary();
    println!(
        "{} synced, {failed} failed: sent {}, received {}",
        crate::domain::units::count(ok as u64, "uplink"),
        crate::domain::units::count(c.items_out, "item"),
        crate::domain::units::count(c.items_in, "item")
    );
    relay.store().close().await;
    if failed > 0 {
        bail!("{failed} of {} uplinks failed", ok + failed);
    }
    Ok(())
}

async fn bundle(config: Config, cmd: &BundleCommand) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let relay = match open_relay(&config).await {
        Ok(r) => r,
        // The database is busy or the disk is full: the carrier should retry.
        Err(e) => return Err(TryLater(format!("{e:#}")).into()),
    };
    let result = bundle_inner(&relay, cmd, &config.data_dir).await;
    if matches!(cmd, BundleCommand::Import { .. }) {
        // A hub serving this data directory refreshes its IDLE sessions.
        let _ = relay.store().wake_hub().await;
    }
    relay.store().close().await;
    result
}

async fn bundle_inner(
    relay: &crate::relay::Relay,
    cmd: &BundleCommand,
    data_dir: &std::path::Path,
) -> Result<()> {
    use crate::relay::{RelayError, folder};
    let temporary = |e: RelayError| -> anyhow::Error {
        if e.is_temporary() {
            TryLater(e.to_string()).into()
        } else {
            e.into()
        }
    };
    match cmd {
        BundleCommand::Export {
            peer,
            out,
            nncp,
            nncp_cfg,
            nncp_handle,
            fspl_queue,
            fspl_seq,
        } => {
            let exported = match (out, nncp) {
                (_, _) if fspl_queue.is_some() => {
                    let queue = fspl_queue.as_deref().expect("checked");
                    let seq = fspl_seq
                        .clone()
                        .unwrap_or_else(|| data_dir.join("fspl").join(format!("{peer}.seq")));
                    let e = crate::relay::fspl::send(relay, peer, queue, &seq)
                        .await
                        .map_err(temporary)?;
                    eprintln!("queued as a Filespooler job in {}", queue.display());
                    e
                }
                (_, Some(node)) => {
                    let node = Some(node.as_str()).filter(|n| !n.is_empty());
                    let e = crate::relay::nncp::send(
                        relay,
                        peer,
                        node,
                        nncp_cfg.as_deref(),
                        nncp_handle.as_deref(),
                    )
                    .await
                    .map_err(temporary)?;
                    eprintln!("queued for NNCP");
                    e
                }
                (Some(out), None) if out.as_os_str() == "-" => {
                    let (_, e) = relay
                        .export(peer, std::io::stdout())
                        .await
                        .map_err(temporary)?;
                    relay.sent(&e).await.map_err(temporary)?;
                    e
                }
                (Some(out), None) if out.is_dir() => {
                    let (path, e) = folder::export(relay, peer, out).await.map_err(temporary)?;
                    eprintln!("wrote {}", path.display());
                    e
                }
                (Some(out), None) => {
                    let dir = match out.parent() {
                        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                        _ => PathBuf::from("."),
                    };
                    let (path, e) = folder::export(relay, peer, &dir).await.map_err(temporary)?;
                    std::fs::rename(&path, out)
                        .with_context(|| format!("cannot move the bundle to {}", out.display()))?;
                    eprintln!("wrote {}", out.display());
                    e
                }
                (None, None) => bail!(
                    "say where the bundle goes: --out FILE|DIR|-, --nncp NODE or --fspl-queue DIR"
                ),
            };
            if exported.peer_key.is_none() {
                eprintln!(
                    "batch SMTP for {}: {} messages, {} bytes",
                    exported.peer,
                    exported.rows.len(),
                    exported.bytes
                );
                return Ok(());
            }
            eprintln!(
                "bundle {} for {}: {} items ({} bytes of mail), {} acknowledgements, {} bytes",
                exported.seq,
                exported.peer,
                exported.rows.len(),
                exported.message_bytes,
                exported.acks.len(),
                exported.bytes
            );
        }
        BundleCommand::Import { input, delete } => {
            if input.as_os_str() == "-" {
                let report = relay.import(std::io::stdin()).await.map_err(temporary)?;
                eprintln!("{report}");
            } else if input.is_dir() {
                let r = folder::import(relay, input, *delete)
                    .await
                    .map_err(temporary)?;
                for (path, report) in &r.imported {
                    eprintln!("{}: {report}", path.display());
                }
                for (path, e) in &r.refused {
                    eprintln!("{}: refused: {e}", path.display());
                }
                eprintln!(
                    "{} bundles imported, {} refused, {} for other nodes left alone",
                    r.imported.len(),
                    r.refused.len(),
                    r.others
                );
                if !r.refused.is_empty() {
                    bail!("{} bundles were refused (see above)", r.refused.len());
                }
            } else {
                let file = std::fs::File::open(input)
                    .with_context(|| format!("cannot open {}", input.display()))?;
                let report = relay
                    .import(std::io::BufReader::with_capacity(256 << 10, file))
                    .await
                    .map_err(temporary)?;
                eprintln!("{report}");
            }
        }
    }
    Ok(())
}

/// What a classic peer hands over: a batch, or one sendmail-style message.
enum ClassicInput<'a> {
    Batch(&'a PathBuf),
    Message {
        from: Option<String>,
        rcpts: Vec<String>,
    },
}

async fn classic_import(config: Config, peer: Option<&str>, input: ClassicInput<'_>) -> Result<()> {
    use crate::relay::RelayError;
    // Every failure here asks the carrier to keep the input and try again:
    // a setup mistake must not turn into bounces of good mail.
    datadir::require_existing(&Layout::new(config.data_dir.clone()))
        .map_err(|e| TryLater(format!("{e:#}")))?;
    let relay = open_relay(&config)
        .await
        .map_err(|e| TryLater(format!("{e:#}")))?;
    let result = async {
        let nncp_sender = std::env::var("NNCP_SENDER").ok();
        let from = relay.classic_sender(peer, nncp_sender.as_deref()).await?;
        match input {
            ClassicInput::Batch(path) if path.as_os_str() == "-" => {
                relay.import_bsmtp(std::io::stdin(), from).await
            }
            ClassicInput::Batch(path) => {
                let file = std::fs::File::open(path).map_err(|source| RelayError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                relay.import_bsmtp(file, from).await
            }
            ClassicInput::Message {
                from: sender,
                rcpts,
            } => {
                relay
                    .import_message(std::io::stdin(), sender, rcpts, from)
                    .await
            }
        }
    }
    .await;
    // A hub serving this data directory refreshes its IDLE sessions.
    let _ = relay.store().wake_hub().await;
    relay.store().close().await;
    let report = match result {
        Ok(r) => r,
        // What was asked cannot work: say so, keep the input.
        Err(RelayError::Input(e)) => return Err(DataError(e).into()),
        Err(e) => return Err(TryLater(e.to_string()).into()),
    };
    for p in &report.problems {
        eprintln!("{p}");
    }
    eprintln!("{report}");
    if let Some(t) = report.truncated {
        return Err(TryLater(t).into());
    }
    if report.stray > 0 {
        // EX_DATAERR: the carrier keeps the input for a person to look at.
        return Err(DataError(format!(
            "{} lines are not batch SMTP (see above); the messages that were whole were taken",
            report.stray
        ))
        .into());
    }
    Ok(())
}

fn check_config(cli: &Cli, file: &std::path::Path) -> Result<()> {
    let overrides = Overrides {
        data_dir: cli.data.clone(),
        profile: cli.profile.clone(),
    };
    match Config::load(Some(file), &process_env(), &overrides) {
        Ok(c) => {
            println!(
                "{}: ok (profile {}, data in {}, domains {})",
                file.display(),
                c.profile.as_str(),
                c.data_dir.display(),
                c.hub
                    .domains
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Err(e) => {
            let n = e.problems.len();
            bail!(
                "{e}\n{}: {n} problem{} found",
                file.display(),
                if n == 1 { "" } else { "s" }
            )
        }
    }
}

async fn serve(mut config: Config) -> Result<()> {
    let mut signals: Option<Signals> = None;
    loop {
        let hub = Hub::start(config.clone()).await?;
        // Handlers are in place before "ready" is printed: a signal right
        // after it must stop the hub cleanly, not kill it.
        let signals = match &mut signals {
            Some(s) => s,
            None => signals.insert(Signals::install()?),
        };
        print_ready(&hub)?;
        let stop = hub.stop_token();
        let reload = hub.reload_requested();
        tokio::select! {
            _ = signals.wait() => {
                stop.cancel();
                hub.run().await;
                println!("stopped");
                return Ok(());
            }
            _ = reload.cancelled() => {
                // The same ports again, even those port 0 picked.
                config = hub.pinned(&config);
                hub.shutdown().await;
                println!("restarting with the new settings");
            }
        }
    }
}

fn print_ready(hub: &Hub) -> Result<()> {
    let r = &hub.report;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "cairn {}: hub \"{}\"",
        env!("CARGO_PKG_VERSION"),
        hub.name
    )?;
    for line in &r.lines {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "certificate SHA-256 fingerprint {}", r.fingerprint)?;
    if let Some(code) = &r.setup_code {
        let setup = hub
            .endpoint(app::WEB_HTTP)
            .map(|a| format!("open http://{a}/setup to choose the admin password with it"))
            .unwrap_or_else(|| "the web setup page asks for it".into());
        writeln!(
            out,
            "admin setup code: {code} (also in {}); {setup}, or run `cairn admin set-password`",
            r.data_dir.join("setup-code.txt").display()
        )?;
    }
    for (name, addr) in &hub.endpoints {
        match *name {
            app::WEB_HTTP => writeln!(out, "{name}: http://{addr}/")?,
            app::WEB_HTTPS => writeln!(out, "{name}: https://{addr}/")?,
            _ => writeln!(out, "{name}: {addr}")?,
        }
    }
    writeln!(out, "ready; stop with Ctrl-C")?;
    out.flush()?;
    Ok(())
}

/// SIGINT and SIGTERM, registered when made.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT: stopping"),
            _ = self.term.recv() => tracing::info!("SIGTERM: stopping"),
        }
    }
}

/// The password from the flags, or `None` to generate one.
fn read_password(args: &PasswordArgs) -> Result<Option<Password>> {
    let raw = if let Some(p) = &args.password {
        p.clone()
    } else if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            bail!(
                "standard input held no password: pipe one line into --password-stdin, or leave it out to get a generated one"
            );
        }
        line
    } else {
        return Ok(None);
    };
    Ok(Some(Password::chosen(&raw)?))
}

/// Open the hub's store for a management command, creating the data
/// directory as `serve` would if this is the first thing run; with the
/// configuration the hub runs with (the admin pages' settings laid over).
async fn open_store(config: &Config) -> Result<(Store, Config)> {
    let (prepared, _) = app::prepare(config, false).await?;
    if prepared.report.first_start {
        for line in &prepared.report.lines {
            eprintln!("{line}");
        }
    }
    Ok((prepared.store, prepared.config))
}

async fn account(config: Config, cmd: &AccountCommand) -> Result<()> {
    // Validate input before touching the disk.
    let password = match cmd {
        AccountCommand::Add { password, .. } | AccountCommand::Passwd { password, .. } => {
            read_password(password)?
        }
        _ => None,
    };
    let exists = datadir::require_existing(&Layout::new(config.data_dir.clone()));
    match (cmd, exists) {
        // A first command: nothing on disk yet, and no domains but the file's.
        (AccountCommand::Add { address, .. }, Err(_)) => {
            let probe = crate::mail::accounts::check_hosted(address, &config.hub.domains)?;
            drop(probe);
        }
        (AccountCommand::Add { .. }, Ok(_)) => {}
        (_, exists) => {
            exists?;
        }
    }
    let (store, config) = open_store(&config).await?;
    let accounts = Accounts::new(store.clone(), config.hub.domains.clone());
    let result = account_inner(&accounts, cmd, password).await;
    store.close().await;
    result
}

async fn account_inner(
    accounts: &Accounts,
    cmd: &AccountCommand,
    password: Option<Password>,
) -> Result<()> {
    match cmd {
        AccountCommand::Add { address, .. } => {
            let created = accounts.create(address, password).await?;
            match created.generated_password {
                Some(p) => println!("created {} with password {}", created.address, p.expose()),
                None => println!("created {}", created.address),
            }
        }
        AccountCommand::List => {
            let list = accounts.list().await?;
            if list.is_empty() {
                println!("no accounts yet: add one with `cairn account add NAME@DOMAIN`");
            }
            for a in list {
                println!("{}", a.address);
            }
        }
        AccountCommand::Passwd { address, .. } => {
            match accounts.set_password(address, password).await? {
                Some(p) => println!("new password for {}: {}", address.trim(), p.expose()),
                None => println!("password changed for {}", address.trim()),
            }
        }
        AccountCommand::Remove { address, yes } => {
            let Some(row) = accounts.find(address).await? else {
                bail!(
                    "there is no account {}: `cairn account list` shows them all",
                    address.trim()
                );
            };
            if !yes && !confirm(&format!("Remove {} and all its mail? [y/N] ", row.address))? {
                bail!("not removed: answer y to confirm, or pass --yes");
            }
            accounts.remove(&row.address).await?;
            println!("removed {}", row.address);
        }
    }
    Ok(())
}

fn confirm(question: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to remove without confirmation: pass --yes when not at a terminal");
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

async fn admin(config: Config, cmd: &AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::SetPassword { password } => {
            let (password, generated) = match read_password(password)? {
                Some(p) => (p, false),
                None => (Password::generate()?, true),
            };
            let hash = tokio::task::spawn_blocking({
                let p = password.clone();
                move || p.hash()
            })
            .await
            .context("password hashing was interrupted")??;
            let (store, _) = open_store(&config).await?;
            store
                .settings_set(SETTING_ADMIN_PASSWORD, hash.as_str())
                .await?;
            store.settings_delete(SETTING_SETUP_CODE).await?;
            // Whoever was logged in with the old password is logged out.
            store.admin_sessions_clear().await?;
            store
                .event("admin.password", None, Some("set from the command line"))
                .await?;
            store.close().await;
            let code_file = Layout::new(config.data_dir.clone()).setup_code();
            if code_file.exists() {
                std::fs::remove_file(&code_file)
                    .with_context(|| format!("cannot remove {}", code_file.display()))?;
            }
            if generated {
                println!("admin password set: {}", password.expose());
            } else {
                println!("admin password set");
            }
            println!("the setup code is no longer needed");
        }
    }
    Ok(())
}

async fn outbox_list(config: Config) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let (store, _) = open_store(&config).await?;
    let items = store.outbox().await;
    store.close().await;
    let items = items?;
    if items.is_empty() {
        println!("the outbox is empty");
        return Ok(());
    }
    println!(
        "{:>6}  {:<12} {:<12} {:>10}  {:>8}  from -> to",
        "id", "state", "next hop", "age", "bytes"
    );
    let now = crate::store::now();
    for i in items {
        let age = human_age(now - i.created_at);
        let from = if i.mail_from.is_empty() {
            "<>"
        } else {
            &i.mail_from
        };
        println!(
            "{:>6}  {:<12} {:<12} {:>10}  {:>8}  {} -> {}",
            i.id,
            i.state,
            i.next_hop.as_deref().unwrap_or("-"),
            age,
            i.size,
            from,
            i.recipients().join(", ")
        );
        if let Some(e) = &i.last_error {
            println!("{:>6}  last error: {e}", "");
        }
    }
    Ok(())
}

async fn outbox_change(config: Config, cmd: &OutboxCommand) -> Result<()> {
    datadir::require_existing(&Layout::new(config.data_dir.clone()))?;
    let relay = open_relay(&config).await?;
    let result = match cmd {
        OutboxCommand::Retry { id } => relay
            .retry(*id)
            .await
            .map(|()| format!("outbox item {id} goes with the next bundle")),
        OutboxCommand::Hold { id } => relay
            .hold(*id)
            .await
            .map(|()| format!("outbox item {id} is held until `cairn outbox retry {id}`")),
        OutboxCommand::Drop { id, quietly } => relay.drop_item(*id, *quietly).await.map(|()| {
            if *quietly {
                format!("outbox item {id} removed")
            } else {
                format!("outbox item {id} removed; its sender gets a bounce")
            }
        }),
        OutboxCommand::List => unreachable!("handled by outbox_list"),
    };
    let _ = relay.store().wake_hub().await;
    relay.store().close().await;
    println!("{}", result?);
    Ok(())
}

/// `cairn radio sim`: emulated modems on pseudo-terminals until Ctrl-C.
async fn radio_sim(
    dir: &std::path::Path,
    modem: &str,
    radios: &[String],
    loss: f64,
    corrupt: f64,
    seed: u64,
) -> Result<()> {
    use crate::carriers::lora::modem::Model;
    use crate::carriers::lora::sim::{Sim, ether::Conditions};
    use tokio::io::AsyncBufReadExt;
    let model: Model = modem.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    for (what, p) in [("--loss", loss), ("--corrupt", corrupt)] {
        if !(0.0..=1.0).contains(&p) {
            bail!("{what} {p} is not a share: give a number from 0 to 1");
        }
    }
    if radios.is_empty() || radios.iter().any(|r| r.is_empty() || r.contains('/')) {
        bail!("--radios takes names such as a,b (no slashes)");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("finding {}", dir.display()))?;
    let conditions = Conditions {
        loss,
        corrupt,
        ..Conditions::default()
    };
    let sim = Sim::new(seed, conditions);
    for name in radios {
        sim.add(name, model);
        let link = dir.join(name);
        sim.open_pty(name, &link)
            .with_context(|| format!("making the pseudo-terminal for {name}"))?;
        println!("radio {name}: {} ({modem})", link.display());
    }
    println!(
        "set each hub's radio.port to one of these, with radio.modem = \"{modem}\"; Ctrl-C stops"
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            line = lines.next_line(), if stdin_open => {
                let Ok(Some(line)) = line else { stdin_open = false; continue };
                let words: Vec<&str> = line.split_whitespace().collect();
                let reply = match words.as_slice() {
                    ["unplug", name] => { sim.unplug(name); format!("{name} unplugged") }
                    ["plug", name] => match sim.plug(name) {
                        Ok(()) => format!("{name} plugged in"),
                        Err(e) => format!("{name}: {e}"),
                    },
                    ["loss", p] => match p.parse::<f64>() {
                        Ok(p) if (0.0..=1.0).contains(&p) => {
                            let mut c = sim.ether().conditions();
                            c.loss = p;
                            sim.ether().set(c);
                            format!("loss {p}")
                        }
                        _ => "loss takes a share from 0 to 1".into(),
                    },
                    ["stats"] => format!("{:?}", sim.ether().stats()),
                    [] => continue,
                    _ => "commands: unplug NAME, plug NAME, loss P, stats".into(),
                };
                println!("{reply}");
            }
        }
    }
    for name in radios {
        sim.unplug(name);
    }
    println!("{:?}", sim.ether().stats());
    Ok(())
}
