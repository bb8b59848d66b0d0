//! The NNCP carrier: a bundle goes to a peer's NNCP node with `nncp-exec`
//! (Debian's `nncp`, called as a program, never linked: it is GPL), and the
//! far side runs `cairn bundle import -` as the exec handle.
//!
//! Only when `nncp-exec` exits 0 — the packet is queued and synced in the
//! NNCP spool — do the items count as sent.

use super::{Exported, Relay, RelayError, Result};
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// The exec handle name peers configure for cairn bundles by default.
pub const DEFAULT_HANDLE: &str = "cairn-bundle";
/// Where Debian installs the NNCP tools; the handle's environment has no
/// PATH, and ours may not either.
pub const NNCP_EXEC: &str = "/usr/bin/nncp-exec";

fn io(what: &str) -> impl Fn(std::io::Error) -> RelayError + '_ {
    move |source| RelayError::Io {
        path: what.to_string(),
        source,
    }
}

/// Export a bundle for `peer` and queue it for NNCP node `node`.
pub async fn send(
    relay: &Relay,
    peer: &str,
    node: &str,
    cfg: Option<&Path>,
    handle: &str,
) -> Result<Exported> {
    let program = if Path::new(NNCP_EXEC).exists() {
        NNCP_EXEC
    } else {
        "nncp-exec"
    };
    let (bundle, exported) = relay.export(peer, Vec::new()).await?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("-quiet").arg("-noprogress");
    if let Some(cfg) = cfg {
        cmd.arg("-cfg").arg(cfg);
    }
    cmd.arg(node)
        .arg(handle)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| RelayError::Io {
        path: format!("{program} (install Debian's `nncp` package)"),
        source: e,
    })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(&bundle).await.map_err(io(program))?;
    drop(stdin);
    let out = child.wait_with_output().await.map_err(io(program))?;
    if !out.status.success() {
        return Err(RelayError::Io {
            path: program.to_string(),
            source: std::io::Error::other(format!(
                "nncp-exec {node} {handle} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        });
    }
    relay.sent(&exported).await?;
    Ok(exported)
}
