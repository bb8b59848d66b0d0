//! The NNCP carrier: a bundle goes to a peer's NNCP node with `nncp-exec`
//! (Debian's `nncp`, called as a program, never linked: it is GPL), and the
//! far side runs `cairn bundle import -` as the exec handle.
//!
//! Only when `nncp-exec` exits 0 — the packet is queued and synced in the
//! NNCP spool — do the items count as sent.

use super::{Exported, Relay, RelayError, Result};
use std::path::Path;

/// The exec handle name peers configure for cairn bundles by default.
pub const DEFAULT_HANDLE: &str = "cairn-bundle";
/// Where Debian installs the NNCP tools; the handle's environment has no
/// PATH, and ours may not either.
pub const NNCP_EXEC: &str = "/usr/bin/nncp-exec";

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
    cmd.arg(node).arg(handle).args(args);
    super::run_tool(
        cmd,
        program,
        "install Debian's `nncp` package",
        &format!("nncp-exec {node} {handle}"),
        body,
    )
    .await?;
    Ok(())
}
