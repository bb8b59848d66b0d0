//! `cairn bundle`, `cairn bsmtp` and `cairn sendmail`: mail carried as
//! files, and what classic mail nodes hand over.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum BsmtpCommand {
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
pub(super) enum BundleCommand {
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

pub(super) async fn bundle(config: Config, cmd: &BundleCommand) -> Result<()> {
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

pub(super) async fn bundle_inner(
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
pub(super) enum ClassicInput<'a> {
    Batch(&'a PathBuf),
    Message {
        from: Option<String>,
        rcpts: Vec<String>,
    },
}

pub(super) async fn classic_import(
    config: Config,
    peer: Option<&str>,
    input: ClassicInput<'_>,
) -> Result<()> {
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
