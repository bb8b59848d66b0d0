//! Bundles and batch SMTP by NNCP: a bundle goes to a peer's NNCP node as
//! an exec job, and the far side runs `cairn bundle import -` as the exec
//! handle; a classic peer gets one job per message.
//!
//! Only when the NNCP carrier has queued a job — the packet is synced in
//! the NNCP spool — do its items count as sent.

use super::carrier::{Job, Spool};
use super::{Exported, Relay, RelayError, Result};
use std::path::Path;

/// Whether `name` can be an NNCP node's name or id (letters, digits,
/// `-`, `_`, `.`): what uplinks and classic peers accept.
pub fn node_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The exec handle name peers configure for cairn bundles by default.
pub const DEFAULT_HANDLE: &str = "cairn-bundle";

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
    let spool = relay.carriers().nncp(&node, cfg);
    if !p.is_classic() {
        let handle = handle.unwrap_or(DEFAULT_HANDLE);
        let (bundle, exported) = relay.export(peer, Vec::new()).await?;
        exec(spool.as_ref(), handle, &[], &bundle).await?;
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
        exec(spool.as_ref(), handle, &args, &body).await?;
        relay.sent(&exported).await?;
        total.absorb(exported);
    }
    Ok(total)
}

/// The exec handle Postfix nodes map to their sendmail(1).
pub const SENDMAIL_HANDLE: &str = "sendmail";

/// `nncp-exec NODE HANDLE ARGS… < body`: Ok means queued and synced.
async fn exec(spool: &dyn Spool, handle: &str, args: &[String], body: &[u8]) -> Result<()> {
    spool.queue(Job { handle, args, body }).await?;
    Ok(())
}
