//! The folder carrier: any directory — a USB stick's mount point, a
//! Syncthing folder, a shared drive.
//!
//! A bundle is written under a hidden temporary name, synced, and renamed
//! to its final name, so a reader (or Syncthing) never sees half a bundle
//! and a stick pulled mid-write leaves only a temp file that nothing
//! imports. Readers skip temp names and other tools' temporary and
//! conflict files, and bundles addressed to other nodes.

use super::bundle::Header;
use super::node::fingerprint;
use super::{Exported, Imported, Relay, RelayError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Final names end so; temporary ones start with [`TEMP_PREFIX`].
pub const EXTENSION: &str = "cairn";
pub const TEMP_PREFIX: &str = ".cairn-partial-";

fn io(path: &Path) -> impl Fn(std::io::Error) -> RelayError + '_ {
    move |source| RelayError::Io {
        path: path.display().to_string(),
        source,
    }
}

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

/// Whether a directory entry may be a bundle for a reader to look at.
pub fn is_candidate(name: &str) -> bool {
    !name.starts_with('.')
        && !name.starts_with('~')
        && !name.contains(".sync-conflict-")
        && !name.starts_with("nncpxfer")
        && name.ends_with(&format!(".{EXTENSION}"))
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
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if !meta.is_dir() {
        return Err(RelayError::Io {
            path: dir.display().to_string(),
            source: std::io::Error::other("not a directory"),
        });
    }
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).expect("system random source");
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", crate::domain::hex(&rnd)));
    let file = std::fs::File::create_new(&tmp).map_err(io(&tmp))?;
    let result = async {
        let (file, exported) = relay
            .export_with(
                peer,
                std::io::BufWriter::with_capacity(256 << 10, file),
                again,
            )
            .await?;
        let name = export_name(&exported, &relay.identity().public);
        let dest = dir.join(name);
        let tmp2 = tmp.clone();
        let dir2 = dir.to_path_buf();
        let dest2 = dest.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut file = file.into_inner().map_err(|e| RelayError::Io {
                path: tmp2.display().to_string(),
                source: e.into_error(),
            })?;
            file.flush().map_err(io(&tmp2))?;
            file.sync_all().map_err(io(&tmp2))?;
            drop(file);
            std::fs::rename(&tmp2, &dest2).map_err(io(&dest2))?;
            std::fs::File::open(&dir2)
                .and_then(|d| d.sync_all())
                .map_err(io(&dir2))
        })
        .await
        .map_err(|e| RelayError::BadItem(format!("export task failed: {e}")))??;
        relay.sent(&exported).await?;
        Ok((dest, exported))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The file that names a folder: a random id, made when this node first
/// leaves a bundle there. A hidden name, so no reader takes it for a
/// bundle; Syncthing carries it to the other side like any file.
pub const FOLDER_ID_FILE: &str = ".cairn-folder";

/// The folder's id, if it has a valid one.
fn folder_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(FOLDER_ID_FILE)).ok()?;
    let id = text.trim();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

/// The folder's id, made now if it has none (or a damaged one).
fn folder_id_or_make(dir: &Path) -> Result<String> {
    if let Some(id) = folder_id(dir) {
        return Ok(id);
    }
    let mut rnd = [0u8; 16];
    getrandom::fill(&mut rnd).expect("system random source");
    let id = crate::domain::hex(&rnd);
    let path = dir.join(FOLDER_ID_FILE);
    let mut f = std::fs::File::create(&path).map_err(io(&path))?;
    f.write_all(format!("{id}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io(&path))?;
    Ok(id)
}

/// Look at the bundles this node left in `dir` for a peer: one that is
/// gone was taken (the peer's import deletes what it committed) or
/// removed by hand. With `deletion_acks` that counts as the peer's
/// acknowledgement of the items it carried; without, the bundle is just
/// forgotten and its items wait for the real acknowledgement. A missing
/// bundle proves nothing when the folder is not the one it was written to
/// (an empty mount point, another stick): its record waits. Returns how
/// many items left the outbox.
pub async fn taken(relay: &Relay, peer_id: i64, dir: &Path, deletion_acks: bool) -> Result<usize> {
    let store = relay.store();
    let key = dir.display().to_string();
    let left = store.folder_bundles(&key, peer_id).await?;
    if left.is_empty() {
        return Ok(0);
    }
    let Some(here) = folder_id(dir) else {
        return Ok(0);
    };
    let mut acked = 0;
    for b in left {
        if b.folder_id != here || dir.join(&b.name).exists() {
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
    let key = dir.display().to_string();
    let here = folder_id_or_make(dir)?;
    let older: Vec<_> = store
        .folder_bundles(&key, p.id)
        .await?
        .into_iter()
        .filter(|b| b.folder_id == here && dir.join(&b.name).exists())
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
        let old = dir.join(&b.name);
        match std::fs::remove_file(&old) {
            Ok(()) => replaced += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&old)(e)),
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
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_candidate(n))
        .collect();
    names.sort();
    let me = relay.identity().public;
    let mut out = FolderImport::default();
    for name in names {
        let path = dir.join(&name);
        let header = std::fs::File::open(&path)
            .map_err(io(&path))
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
        let file = std::fs::File::open(&path).map_err(io(&path))?;
        match relay
            .import(std::io::BufReader::with_capacity(256 << 10, file))
            .await
        {
            Ok(report) => {
                if delete {
                    match std::fs::remove_file(&path) {
                        // Replaced by its sender meanwhile: gone either way.
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(io(&path)(e));
                        }
                        _ => {}
                    }
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
    fn other_tools_files_are_not_candidates() {
        assert!(is_candidate("to-a-from-b-0000000001.cairn"));
        for n in [
            ".cairn-partial-0011",
            ".syncthing.to-a.cairn.tmp",
            "~syncthing~to-a.cairn.tmp",
            "to-a-from-b-0000000001.sync-conflict-20260101-120000-ABCDEFG.cairn",
            "nncpxfer1234",
            "notes.txt",
        ] {
            assert!(!is_candidate(n), "{n}");
        }
    }
}
