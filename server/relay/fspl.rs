//! Bundles by Filespooler: a bundle becomes one job of an `fspl` queue.
//! The queue's `jobs/` directory travels by any means (Syncthing, NNCP, a
//! stick); the receiver runs
//! `fspl queue-process -q DIR /usr/bin/cairn -- bundle import -`.
//!
//! Only when the job is complete in the queue do the items count as sent.

use super::carrier::Job;
use super::{Exported, Relay, Result};
use std::path::Path;

/// Export a bundle for `peer` as the next job of the Filespooler queue
/// `queue`, numbered by the sequence file `seqfile` (made if missing).
pub async fn send(relay: &Relay, peer: &str, queue: &Path, seqfile: &Path) -> Result<Exported> {
    let spool = relay.carriers().fspl(queue, seqfile);
    let (bundle, exported) = relay.export(peer, Vec::new()).await?;
    spool
        .queue(Job {
            handle: "",
            args: &[],
            body: &bundle,
        })
        .await?;
    relay.sent(&exported).await?;
    Ok(exported)
}
