//! Bundles through a folder — a USB stick's mount point, a Syncthing
//! folder, a shared drive — over the [`Folder`] carrier: what the names
//! mean, which bundles to take, which of ours were taken, and one bundle
//! per peer in place of many.
//!
//! The carrier makes a bundle appear whole or not at all; readers skip
//! its temporary files, other tools' temporary and conflict files, and
//! bundles addressed to other nodes.

use super::bundle::Header;
use super::node::fingerprint;
use super::{Exported, Imported, Relay, RelayError, Result};
use crate::domain::PeerId;
use std::path::{Path, PathBuf};

/// Final names end so.
pub const EXTENSION: &str = "cairn";

/// The final file name of a bundle: recipient, sender, sequence.
pub fn bundle_name(to: &[u8; 32], from: &[u8; 32], seq: u64) -> String {
    format!(
        "to-{}-from-{}-{seq:010}.{EXTENSION}",
        fingerprint(to),
        fingerprint(from)
    )
}

/// Batch SMTP files for classic peers end so.
pub const BSMTP_EXTENSION: &str = "bsmtp";

/// The final file name of an export: a bundle's, or for a classic peer a
/// batch SMTP file named after the peer.
pub fn export_name(e: &Exported, from: &[u8; 32]) -> String {
    match &e.peer_key {
        Some(to) => bundle_name(to, from, e.seq),
        None => format!(
            "to-{}-from-{}-{:010}.{BSMTP_EXTENSION}",
            e.peer,
            fingerprint(from),
            e.seq
        ),
    }
}

/// Whether a finished file in a folder is named as a bundle.
pub fn is_candidate(name: &str) -> bool {
    name.ends_with(&format!(".{EXTENSION}"))
}

/// Export a bundle for `peer` into `dir`; returns its path and what it
/// carries. The outbox changes only once the file is complete and synced.
pub async fn export(relay: &Relay, peer: &str, dir: &Path) -> Result<(PathBuf, Exported)> {
    write(relay, peer, dir, &[]).await
}

/// [`export`], acknowledging `again` too.
async fn write(
    relay: &Relay,
    peer: &str,
    dir: &Path,
    again: &[String],
) -> Result<(PathBuf, Exported)> {
    let folder = relay.carriers().folder(dir);
    let staged = folder.stage()?;
    // Dropped on any error below, the staged file is removed.
    let (out, exported) = relay
        .export_with(
            peer,
            std::io::BufWriter::with_capacity(256 << 10, staged),
            again,
        )
        .await?;
    let name = export_name(&exported, &relay.identity().public);
    let dest = tokio::task::spawn_blocking(move || -> Result<PathBuf> {
        let staged = out.into_inner().map_err(|e| RelayError::Io {
            path: name.clone(),
            source: e.into_error(),
        })?;
        Ok(staged.publish(&name)?)
    })
    .await
    .map_err(|e| RelayError::BadItem(format!("export task failed: {e}")))??;
    relay.sent(&exported).await?;
    Ok((dest, exported))
}

/// Look at the bundles this node left in `dir` for a peer: one that is
/// gone was taken (the peer's import deletes what it committed) or
/// removed by hand. With `deletion_acks` that counts as the peer's
/// acknowledgement of the items it carried; without, the bundle is just
/// forgotten and its items wait for the real acknowledgement. A missing
/// bundle proves nothing when the folder is not the one it was written to
/// (an empty mount point, another stick): its record waits. Returns how
/// many items left the outbox.
pub async fn taken(
    relay: &Relay,
    peer_id: PeerId,
    dir: &Path,
    deletion_acks: bool,
) -> Result<usize> {
    let store = relay.store();
    let folder = relay.carriers().folder(dir);
    let key = dir.display().to_string();
    let left = store.folder_bundles(&key, peer_id).await?;
    if left.is_empty() {
        return Ok(0);
    }
    let Some(here) = folder.id() else {
        return Ok(0);
    };
    let mut acked = 0;
    for b in left {
        if b.folder_id != here || folder.contains(&b.name) {
            continue;
        }
        if deletion_acks {
            let n = store.folder_bundle_taken(&b).await?;
            tracing::info!(bundle = %b.name, items = n, "a bundle was taken from the folder: its items count as acknowledged");
            acked += n;
        } else {
            store.folder_bundle_forget(&b.dir, &b.name).await?;
        }
    }
    Ok(acked)
}

/// What [`replace`] did.
#[derive(Debug)]
pub struct Left {
    pub path: PathBuf,
    pub exported: Exported,
    /// Older bundles of ours for the same peer that the new one replaced.
    pub replaced: usize,
}

/// Leave a new bundle for a peer in `dir` (an uplink's folder) in place
/// of the ones this node left there before: the new one carries every item
/// still in flight and the acknowledgements the old ones carried, so a
/// stick that goes back and forth holds one bundle per peer, not one per
/// trip.
pub async fn replace(relay: &Relay, peer: &str, dir: &Path) -> Result<Left> {
    let store = relay.store();
    let p = relay.peer(peer).await?;
    let folder = relay.carriers().folder(dir);
    let key = dir.display().to_string();
    let here = folder.id_or_make()?;
    let older: Vec<_> = store
        .folder_bundles(&key, p.id)
        .await?
        .into_iter()
        .filter(|b| b.folder_id == here && folder.contains(&b.name))
        .collect();
    let again: Vec<String> = older.iter().flat_map(|b| b.ack_list()).collect();
    let (path, exported) = write(relay, peer, dir, &again).await?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if exported.peer_key.is_some() {
        store
            .folder_bundle_add(&key, &name, p.id, &here, &exported.item_ids, &exported.acks)
            .await?;
    }
    let mut replaced = 0;
    for b in older {
        // Forgotten first: a crash between the two leaves a stray old
        // bundle (harmless: its items are in the new one, the peer takes
        // them once), never a missing one that would read as taken.
        store.folder_bundle_forget(&b.dir, &b.name).await?;
        if folder.contains(&b.name) {
            folder.remove(&b.name)?;
            replaced += 1;
        }
    }
    Ok(Left {
        path,
        exported,
        replaced,
    })
}

/// What one pass over a folder did.
#[derive(Debug, Default)]
pub struct FolderImport {
    pub imported: Vec<(PathBuf, Imported)>,
    /// Bundles that were refused, with why; they stay where they are.
    pub refused: Vec<(PathBuf, RelayError)>,
    /// Bundles for other nodes (left alone).
    pub others: usize,
}

/// Import every bundle in `dir` addressed to this node. With `delete`,
/// a bundle is removed once imported (the sender may read that as the
/// acknowledgement, as on a shared Syncthing folder).
pub async fn import(relay: &Relay, dir: &Path, delete: bool) -> Result<FolderImport> {
    let folder = relay.carriers().folder(dir);
    let names: Vec<String> = folder
        .bundles()?
        .into_iter()
        .filter(|n| is_candidate(n))
        .collect();
    let me = relay.identity().public;
    let mut out = FolderImport::default();
    for name in names {
        let path = dir.join(&name);
        let header = folder
            .open(&name)
            .map_err(RelayError::from)
            .and_then(|mut f| Header::read(&mut f).map_err(RelayError::from));
        match header {
            Ok(h) if h.to != me || h.from == me => {
                out.others += 1;
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                out.refused.push((path, e));
                continue;
            }
        }
        let file = folder.open(&name)?;
        match relay
            .import(std::io::BufReader::with_capacity(256 << 10, file))
            .await
        {
            Ok(report) => {
                if delete {
                    // Replaced by its sender meanwhile: gone either way.
                    folder.remove(&name)?;
                }
                out.imported.push((path, report));
            }
            Err(e) if e.is_temporary() => return Err(e),
            Err(e) => out.refused.push((path, e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bundle_names_are_candidates() {
        assert!(is_candidate("to-a-from-b-0000000001.cairn"));
        for n in ["notes.txt", "to-a-from-b-0000000001.bsmtp", "cairn"] {
            assert!(!is_candidate(n), "{n}");
        }
    }
}
