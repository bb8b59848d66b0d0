//! The folder carrier: any directory — a USB stick's mount point, a
//! Syncthing folder, a shared drive.
//!
//! A file is written under a hidden temporary name, synced, and renamed to
//! its final name, so a reader (or Syncthing) never sees half a bundle and
//! a stick pulled mid-write leaves only a temp file that nothing imports.
//! Readers skip temp names and other tools' temporary and conflict files.

use crate::relay::carrier::{CarrierError, Folder, Staged};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Temporary names start so (hidden, never taken for a bundle).
pub const TEMP_PREFIX: &str = ".cairn-partial-";

/// The file that names a folder: a random id, made when this node first
/// leaves a bundle there. A hidden name, so no reader takes it for a
/// bundle; Syncthing carries it to the other side like any file.
pub const FOLDER_ID_FILE: &str = ".cairn-folder";

fn error(path: &Path) -> impl Fn(io::Error) -> CarrierError + '_ {
    move |source| CarrierError {
        path: path.display().to_string(),
        source,
    }
}

/// Whether a file name may be a bundle rather than a temporary or
/// conflict file of this or another tool (Syncthing, NNCP, editors).
pub fn is_finished(name: &str) -> bool {
    !name.starts_with('.')
        && !name.starts_with('~')
        && !name.contains(".sync-conflict-")
        && !name.starts_with("nncpxfer")
}

/// A directory on this machine.
pub struct Dir(pub PathBuf);

impl Folder for Dir {
    fn path(&self) -> &Path {
        &self.0
    }

    fn present(&self) -> bool {
        self.0.is_dir()
    }

    fn mounted(&self) -> bool {
        // Its device differs from its parent's (or it is the root).
        use std::os::unix::fs::MetadataExt;
        let (Ok(me), Some(parent)) = (std::fs::metadata(&self.0), self.0.parent()) else {
            return false;
        };
        std::fs::metadata(parent).is_ok_and(|p| p.dev() != me.dev() || p.ino() == me.ino())
    }

    fn bundles(&self) -> Result<Vec<String>, CarrierError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .map_err(error(&self.0))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_finished(n))
            .collect();
        names.sort();
        Ok(names)
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, CarrierError> {
        let path = self.0.join(name);
        let file = File::open(&path).map_err(error(&path))?;
        Ok(Box::new(file))
    }

    fn contains(&self, name: &str) -> bool {
        self.0.join(name).exists()
    }

    fn remove(&self, name: &str) -> Result<(), CarrierError> {
        let path = self.0.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(error(&path)(e)),
            _ => Ok(()),
        }
    }

    fn id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.0.join(FOLDER_ID_FILE)).ok()?;
        let id = text.trim();
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    }

    fn id_or_make(&self) -> Result<String, CarrierError> {
        if let Some(id) = self.id() {
            return Ok(id);
        }
        let mut rnd = [0u8; 16];
        getrandom::fill(&mut rnd).expect("system random source");
        let id = crate::domain::hex(&rnd);
        let path = self.0.join(FOLDER_ID_FILE);
        let mut f = File::create(&path).map_err(error(&path))?;
        f.write_all(format!("{id}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(error(&path))?;
        Ok(id)
    }

    fn stage(&self) -> Result<Box<dyn Staged>, CarrierError> {
        let meta = std::fs::metadata(&self.0).map_err(error(&self.0))?;
        if !meta.is_dir() {
            return Err(CarrierError {
                path: self.0.display().to_string(),
                source: io::Error::other("not a directory"),
            });
        }
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).expect("system random source");
        let tmp = self
            .0
            .join(format!("{TEMP_PREFIX}{}", crate::domain::hex(&rnd)));
        let file = File::create_new(&tmp).map_err(error(&tmp))?;
        Ok(Box::new(StagedFile {
            dir: self.0.clone(),
            tmp,
            file: Some(file),
        }))
    }
}

/// A file under its temporary name in a [`Dir`].
struct StagedFile {
    dir: PathBuf,
    tmp: PathBuf,
    /// `None` once published.
    file: Option<File>,
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not yet published").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not yet published").flush()
    }
}

impl Staged for StagedFile {
    fn publish(mut self: Box<Self>, name: &str) -> Result<PathBuf, CarrierError> {
        let mut file = self.file.take().expect("published once");
        file.flush().map_err(error(&self.tmp))?;
        file.sync_all().map_err(error(&self.tmp))?;
        drop(file);
        let dest = self.dir.join(name);
        if let Err(e) = std::fs::rename(&self.tmp, &dest) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(error(&dest)(e));
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(error(&self.dir))?;
        Ok(dest)
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_tools_files_are_not_finished() {
        assert!(is_finished("to-a-from-b-0000000001.cairn"));
        for n in [
            ".cairn-partial-0011",
            ".syncthing.to-a.cairn.tmp",
            "~syncthing~to-a.cairn.tmp",
            "to-a-from-b-0000000001.sync-conflict-20260101-120000-ABCDEFG.cairn",
            "nncpxfer1234",
        ] {
            assert!(!is_finished(n), "{n}");
        }
    }

    #[test]
    fn a_staged_file_appears_only_when_published() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir(dir.path().to_path_buf());
        let mut s = d.stage().unwrap();
        s.write_all(b"half").unwrap();
        assert!(d.bundles().unwrap().is_empty(), "a temp file is no bundle");
        let path = s.publish("to-x.cairn").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"half");
        assert_eq!(d.bundles().unwrap(), vec!["to-x.cairn".to_string()]);
        // Dropped unpublished: nothing is left behind.
        let mut s = d.stage().unwrap();
        s.write_all(b"abandoned").unwrap();
        drop(s);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
