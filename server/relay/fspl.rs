//! The Filespooler carrier: a bundle becomes one job of an `fspl` queue
//! (Debian's `filespooler`, called as a program, never linked: it is GPL).
//! The queue's `jobs/` directory travels by any means (Syncthing, NNCP, a
//! stick); the receiver runs
//! `fspl queue-process -q DIR /usr/bin/cairn -- bundle import -`.
//!
//! Only when `fspl queue-write` succeeds — the job file is complete in the
//! queue — do the items count as sent.

use super::{Exported, Relay, RelayError, Result};
use std::path::Path;

/// Where Debian installs Filespooler.
pub const FSPL: &str = "/usr/bin/fspl";

fn program() -> &'static str {
    if Path::new(FSPL).exists() {
        FSPL
    } else {
        "fspl"
    }
}

/// Run `fspl ARGS` with `input` on stdin; its stdout.
async fn fspl(args: &[&std::ffi::OsStr], input: &[u8]) -> Result<Vec<u8>> {
    let program = program();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    super::run_tool(
        cmd,
        program,
        "install Debian's `filespooler` package",
        &format!("fspl {}", shown.join(" ")),
        input,
    )
    .await
}

/// Export a bundle for `peer` as the next job of the Filespooler queue
/// `queue`, numbered by the sequence file `seqfile` (made if missing).
pub async fn send(relay: &Relay, peer: &str, queue: &Path, seqfile: &Path) -> Result<Exported> {
    if let Some(dir) = seqfile.parent() {
        std::fs::create_dir_all(dir).map_err(|source| RelayError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let (bundle, exported) = relay.export(peer, Vec::new()).await?;
    let packet = fspl(
        &[
            "prepare".as_ref(),
            "-s".as_ref(),
            seqfile.as_os_str(),
            "-i".as_ref(),
            "-".as_ref(),
        ],
        &bundle,
    )
    .await?;
    fspl(
        &["queue-write".as_ref(), "-q".as_ref(), queue.as_os_str()],
        &packet,
    )
    .await?;
    relay.sent(&exported).await?;
    Ok(exported)
}
