//! The data directory: its layout, its first creation, and its lock.
//!
//! First start happens in a hidden sibling directory that is renamed into
//! place only when everything in it is complete, so a failed first start
//! leaves nothing behind. A running hub holds an exclusive lock on
//! `cairn.lock`, so two hubs never share one database.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot create the data directory {path}: its parent {parent} is not an existing folder: create it first, or choose another place with --data or CAIRN_DATA"
    )]
    NoParent { path: PathBuf, parent: PathBuf },
    #[error(
        "cannot create the data directory {path}: {source}: choose a writable place with --data or CAIRN_DATA"
    )]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the data directory {path} is a file, not a directory: choose another place with --data or CAIRN_DATA"
    )]
    NotADirectory { path: PathBuf },
    #[error(
        "the data directory {path} is not writable: {source}: fix its permissions or choose another place with --data or CAIRN_DATA"
    )]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the data directory {path} is in use by another running cairn{pid}: stop that one first, or give this one its own --data"
    )]
    InUse { path: PathBuf, pid: String },
    #[error(
        "there is no hub data at {path}: start the hub once with `cairn serve`, or point --data / CAIRN_DATA at it"
    )]
    Missing { path: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where things live inside the data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("cairn.db")
    }
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }
    /// This node's private key for bundles and links to peers.
    pub fn node_key(&self) -> PathBuf {
        self.root.join("node.key")
    }
    /// The gateway's DKIM keys, two per mail domain it signs for.
    pub fn dkim_dir(&self) -> PathBuf {
        self.root.join("dkim")
    }
    pub fn setup_code(&self) -> PathBuf {
        self.root.join("setup-code.txt")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("cairn.lock")
    }
}

/// A first start in progress: a hidden directory beside the final one.
#[derive(Debug)]
pub struct Staging {
    pub dir: PathBuf,
    target: PathBuf,
}

/// Begin a first start when `root` does not exist yet. `Ok(None)` when it does.
pub fn stage(root: &Path) -> Result<Option<Staging>> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => return Ok(None),
        Ok(_) => {
            return Err(Error::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        // Not there (or a parent is not a folder): checked just below.
        Err(_) => {}
    }
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&parent) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(Error::NoParent {
                path: root.to_path_buf(),
                parent,
            });
        }
    }
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cairn-data".into());
    let dir = parent.join(format!(".{name}.partial"));
    // A leftover from a first start that was killed: it never became live.
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    private_dir(&dir).map_err(|source| Error::Create {
        path: root.to_path_buf(),
        source,
    })?;
    Ok(Some(Staging {
        dir,
        target: root.to_path_buf(),
    }))
}

impl Staging {
    /// Make the staged directory the data directory, durably.
    pub fn commit(self) -> Result<()> {
        let err = |source| Error::Create {
            path: self.target.clone(),
            source,
        };
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        std::fs::rename(&self.dir, &self.target).map_err(err)?;
        if let Some(parent) = self.target.parent() {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            File::open(parent).and_then(|d| d.sync_all()).map_err(err)?;
        }
        Ok(())
    }

    /// Throw away a failed first start.
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The exclusive hold of a running hub on its data directory.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Take the data directory for this process, or say who has it.
pub fn lock(layout: &Layout) -> Result<Lock> {
    let root = layout.root();
    let path = layout.lock_file();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| Error::NotWritable {
            path: root.to_path_buf(),
            source,
        })?;
    // A lock this very process let go of a moment ago may still be held
    // for an instant by a child being spawned (a forked child keeps the
    // open file until it execs): a few short retries tell that from a
    // hub that really runs.
    let mut tries = 0;
    let mut held = file.try_lock();
    while matches!(held, Err(TryLockError::WouldBlock)) && tries < 20 {
        let mut pid = String::new();
        let _ = file.rewind().and_then(|_| file.read_to_string(&mut pid));
        if pid.trim() != std::process::id().to_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        tries += 1;
        held = file.try_lock();
    }
    match held {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.rewind().and_then(|_| file.read_to_string(&mut pid));
            let pid = pid.trim();
            return Err(Error::InUse {
                path: root.to_path_buf(),
                pid: if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
            });
        }
        Err(TryLockError::Error(source)) => {
            return Err(Error::NotWritable {
                path: root.to_path_buf(),
                source,
            });
        }
    }
    let write_pid = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())
    };
    write_pid(&mut file).map_err(|source| Error::NotWritable {
        path: root.to_path_buf(),
        source,
    })?;
    Ok(Lock { _file: file })
}

/// Check an existing data directory for commands that must not create one.
pub fn require_existing(layout: &Layout) -> Result<()> {
    match std::fs::metadata(layout.database()) {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Missing {
            path: layout.root().to_path_buf(),
        }),
    }
}

/// Write a file so that a power cut leaves the old or the new one: a
/// fresh temporary file beside it (random name, created exclusively, so
/// nothing planted there is written through), given its mode (0600 when
/// `private`, else 0644), synced, renamed over `path`, and the directory
/// synced.
pub fn write_file(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    write_durably(path, bytes, private, true)
}

/// [`write_file`] for a file that must not be replaced once made (a key
/// that may already be published): fails with `AlreadyExists` when
/// another process made `path` first.
pub fn create_file(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    write_durably(path, bytes, private, false)
}

fn write_durably(path: &Path, bytes: &[u8], private: bool, replace: bool) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".cairn-")
        .suffix(".tmp")
        .tempfile_in(parent)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if private { 0o600 } else { 0o644 };
        match tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
        {
            // The file is ours: refused only by a file system without
            // Unix modes (the FAT boot partition), which keeps its own.
            Err(e) if e.kind() != std::io::ErrorKind::PermissionDenied => return Err(e),
            _ => {}
        }
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let file = if replace {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    }
    .map_err(|e| e.error)?;
    // On FAT (the Pi's boot partition, where HUB-SETUP.txt goes) a file's
    // size and first cluster live in its directory entry, and the entry
    // the rename made holds them only once the file is synced again: the
    // QEMU test, pulling the plug half a minute after first boot, found
    // HUB-SETUP.txt there with 0 bytes.
    file.sync_all()?;
    File::open(parent).and_then(|d| d.sync_all())
}

/// Make a directory only its owner may enter (0700): the data directory
/// holds keys, passwords' hashes and everyone's mail.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Close a data directory that others may read (made by an older cairn,
/// or by hand) to its owner; returns the mode it had when it changed it.
/// One that belongs to another user is left as it is.
pub fn make_private(root: &Path) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let m = std::fs::metadata(root)?;
        let mode = m.mode() & 0o777;
        if mode & 0o077 != 0 && m.uid() == nix::unistd::geteuid().as_raw() {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode & 0o700))?;
            return Ok(Some(mode));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_commit_and_existing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        let s = stage(&root).unwrap().expect("fresh");
        std::fs::write(s.dir.join("x"), "1").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read_to_string(root.join("x")).unwrap(), "1");
        assert!(stage(&root).unwrap().is_none());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_data_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        stage(&root).unwrap().unwrap().commit().unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(make_private(&root).unwrap(), None);
        // One made open by an older cairn, or by hand, is closed.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(make_private(&root).unwrap(), Some(0o755));
        assert_eq!(mode(&root), 0o700);
    }

    #[test]
    fn abandon_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        let s = stage(&root).unwrap().unwrap();
        std::fs::write(s.dir.join("x"), "1").unwrap();
        s.abandon();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn unusable_places() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(stage(&file), Err(Error::NotADirectory { .. })));
        let under_file = file.join("data");
        let e = stage(&under_file).unwrap_err();
        assert!(matches!(e, Error::NoParent { .. }), "{e}");
        let e = stage(&tmp.path().join("no/such/data")).unwrap_err();
        assert!(e.to_string().contains("create"), "{e}");
    }

    #[test]
    fn second_lock_is_refused_with_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let held = lock(&layout).unwrap();
        let e = lock(&layout).unwrap_err().to_string();
        assert!(
            e.contains("in use") && e.contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(held);
        lock(&layout).unwrap();
    }
}
