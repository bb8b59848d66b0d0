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

/// Export everything queued for `peer` and queue it for NNCP node `node`
/// (for a classic peer, default: the NNCP node on record). A cairn peer
/// gets one bundle for exec handle `handle` (default [`DEFAULT_HANDLE`]);
/// a classic peer gets one job per message (NNCP holds an exec body in
/// memory, so jobs stay message-sized): batch SMTP for handle `rsmtp`, as
/// Exim's NNCP transport sends it, or for handle `sendmail` the message
/// itself with `-f SENDER RCPT…` as arguments, as Postfix's does.
pub async fn send(
    relay: &Relay,
    peer: &str,
    node: Option<&str>,
    cfg: Option<&Path>,
    handle: Option<&str>,
) -> Result<Exported> {
    let p = relay.peer(peer).await?;
    let node = match (node, &p.nncp_node) {
        (Some(n), _) => n.to_string(),
        (None, Some(n)) => n.clone(),
        (None, None) => {
            return Err(RelayError::BadItem(format!(
                "say which NNCP node carries mail for {peer} (--nncp NODE)"
            )));
        }
    };
    if !p.is_classic() {
        let handle = handle.unwrap_or(DEFAULT_HANDLE);
        let (bundle, exported) = relay.export(peer, Vec::new()).await?;
        exec(&node, cfg, handle, &[], &bundle).await?;
        relay.sent(&exported).await?;
        return Ok(exported);
    }
    let handle = handle.unwrap_or(super::classic::NNCP_HANDLE);
    let mut total = Exported::classic(p.clone());
    loop {
        let (batch, exported) = if handle == SENDMAIL_HANDLE {
            relay.export_classic_message(p.clone()).await?
        } else {
            let (b, e) = relay.export_classic(p.clone(), Vec::new(), Some(1)).await?;
            ((Vec::new(), b), e)
        };
        if exported.rows.is_empty() {
            break;
        }
        let (args, body) = batch;
        exec(&node, cfg, handle, &args, &body).await?;
        relay.sent(&exported).await?;
        total.absorb(exported);
    }
    Ok(total)
}

/// The exec handle Postfix nodes map to their sendmail(1).
pub const SENDMAIL_HANDLE: &str = "sendmail";

/// `nncp-exec NODE HANDLE ARGS… < body`: exit 0 means queued and synced.
async fn exec(
    node: &str,
    cfg: Option<&Path>,
    handle: &str,
    args: &[String],
    body: &[u8],
) -> Result<()> {
    let program = if Path::new(NNCP_EXEC).exists() {
        NNCP_EXEC
    } else {
        "nncp-exec"
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.arg("-quiet").arg("-noprogress");
    if let Some(cfg) = cfg {
        cmd.arg("-cfg").arg(cfg);
    }
    cmd.arg(node)
        .arg(handle)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| RelayError::Io {
        path: format!("{program} (install Debian's `nncp` package)"),
        source: e,
    })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(body).await.map_err(io(program))?;
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
    Ok(())
}
