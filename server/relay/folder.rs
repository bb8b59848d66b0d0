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
            .export(peer, std::io::BufWriter::with_capacity(256 << 10, file))
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
                    std::fs::remove_file(&path).map_err(io(&path))?;
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
