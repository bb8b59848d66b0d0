//! The command line: `cairn serve`, `check-config`, `account …`, `admin …`.
//!
//! Every failure ends as one line on standard error that says what went
//! wrong and what to do, and a non-zero exit status.

mod accounts;
mod appliance;
mod bundles;
mod radio;
mod relay;
mod serve;
use accounts::*;
use appliance::*;
use bundles::*;
use radio::*;
use relay::*;
use serve::*;

use crate::app::{self, Hub};
use crate::config::{Config, Overrides};
use crate::datadir::{self, Layout};
use crate::domain::Password;
use crate::domain::units::human_age;
use crate::mail::Accounts;
use crate::store::Store;
use crate::store::settings::{
    ADMIN_PASSWORD as SETTING_ADMIN_PASSWORD, SETUP_CODE as SETTING_SETUP_CODE,
};
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
    /// The Internet gateway: the DNS records it needs.
    #[command(subcommand)]
    Gateway(GatewayCommand),
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

#[derive(Args, Debug)]
struct PasswordArgs {
    /// The password (visible to other users of this machine in the process list; prefer --password-stdin).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
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
    let result = runtime.block_on(run(cli));
    // A command may leave a blocking read behind (`radio sim` reads its
    // standard input): dropping the runtime would wait for it forever.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
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
        Command::Gateway(cmd) => gateway(load_config(&cli, cli.config.as_deref())?, cmd).await,
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
            firstboot(&cli, &config, &paths).await
        }
        Command::Appliance(ApplianceCommand::FirstbootData) => {
            firstboot_data_step(&load_config(&cli, cli.config.as_deref())?).await
        }
        Command::Appliance(ApplianceCommand::Wifi {
            from,
            hostapd,
            restart,
        }) => wifi(from, hostapd, restart.as_deref()),
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

/// Run `work` on the hub's relay, then close its database whatever
/// `work` returned.
async fn with_relay<F, Fut>(config: &Config, work: F) -> Result<()>
where
    F: FnOnce(crate::relay::Relay) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let relay = open_relay(config).await?;
    let result = work(relay.clone()).await;
    relay.store().close().await;
    result
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

/// An error and its causes on one line, each cause once: many errors
/// already repeat their source's words in their own, and would otherwise
/// say the same thing twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}
