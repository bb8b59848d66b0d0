//! Message bodies as content-addressed files under `blobs/`.
//!
//! A body is spooled (in memory while small, then in `tmp/`), hashed as it
//! arrives, and made durable by write → fsync → rename → fsync dir before
//! any database row points at it. A crash leaves at worst a file in `tmp/`
//! or an unreferenced blob; [`Store::sweep`] removes both at start-up.

use super::{Error, Result, Store};
use crate::domain::hex;
use aws_lc_rs::digest;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Bodies up to this size stay in memory until committed; larger ones go to
/// a temp file as they arrive so a 30 MiB upload does not cost 30 MiB RAM.
pub const SPILL_THRESHOLD: usize = 256 << 10;

/// A body being received.
pub struct Spool {
    mem: Vec<u8>,
    file: Option<(std::fs::File, PathBuf)>,
    hasher: digest::Context,
    size: u64,
    tmp_dir: PathBuf,
    blob_dir: PathBuf,
    /// Leave the file when dropped uncommitted (a resumable transfer).
    keep: bool,
}

/// A durable blob file, not yet referenced by any row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedBlob {
    pub hash: String,
    pub size: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Spool {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hex SHA-256 of what was written so far (the blob's name).
    pub fn hash(&self) -> String {
        hex(self.hasher.clone().finish().as_ref())
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        if let Some((f, path)) = &mut self.file {
            return f.write_all(bytes).map_err(io(path));
        }
        self.mem.extend_from_slice(bytes);
        if self.mem.len() > SPILL_THRESHOLD {
            let path = self.tmp_dir.join(format!("{}.part", random_name()));
            let f = std::fs::OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .open(&path)
                .map_err(io(&path))?;
            // Owned by the spool from here, so a failed write (a full
            // disk) leaves no file behind when the spool is dropped.
            self.file = Some((f, path));
            let (f, path) = self.file.as_mut().expect("just set");
            f.write_all(&self.mem).map_err(io(path))?;
            self.mem = Vec::new();
        }
        Ok(())
    }

    /// Read back what was spooled (for content checks before committing).
    pub fn reader(&self) -> Result<Box<dyn BufRead + Send + '_>> {
        match &self.file {
            None => Ok(Box::new(std::io::Cursor::new(&self.mem[..]))),
            Some((_, path)) => {
                let f = std::fs::File::open(path).map_err(io(path))?;
                Ok(Box::new(std::io::BufReader::with_capacity(64 << 10, f)))
            }
        }
    }

    /// Make the body durable under its hash. Runs the slow fsyncs off the
    /// async workers.
    pub async fn commit(mut self) -> Result<StagedBlob> {
        let hash = hex(self.hasher.clone().finish().as_ref());
        let size = self.size;
        let mem = std::mem::take(&mut self.mem);
        let file = self.file.take();
        let tmp_dir = self.tmp_dir.clone();
        let blob_dir = self.blob_dir.clone();
        let staged = StagedBlob {
            hash: hash.clone(),
            size,
        };
        tokio::task::spawn_blocking(move || -> Result<()> {
            let (f, tmp) = match file {
                Some(x) => x,
                None => {
                    let tmp = tmp_dir.join(format!("{}.part", random_name()));
                    let mut f = std::fs::File::create_new(&tmp).map_err(io(&tmp))?;
                    if let Err(e) = f.write_all(&mem) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(io(&tmp)(e));
                    }
                    (f, tmp)
                }
            };
            let result = (|| {
                f.sync_all().map_err(io(&tmp))?;
                drop(f);
                let dir = blob_dir.join(&hash[..2]);
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                let dest = dir.join(&hash);
                // Same content already stored: drop the copy, and make sure
                // the stored one is on disk (a batch commit may still be
                // about to sync it).
                if dest.exists() {
                    std::fs::remove_file(&tmp).map_err(io(&tmp))?;
                    return std::fs::File::open(&dest)
                        .and_then(|f| f.sync_all())
                        .map_err(io(&dest));
                }
                std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
                std::fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io(&dir))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        })
        .await
        .map_err(|e| Error::Io {
            path: self.tmp_dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
        Ok(staged)
    }
}

impl Store {
    /// Make many spooled bodies durable at once: every file is written and
    /// renamed into place, then one filesystem sync covers them all (a
    /// bundle of 10 000 messages costs one flush, not 20 000 fsyncs).
    pub async fn commit_all(&self, spools: Vec<Spool>) -> Result<Vec<StagedBlob>> {
        let blob_dir = self.dirs.blobs.clone();
        let tmp_dir = self.dirs.tmp.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<StagedBlob>> {
            let mut out = Vec::with_capacity(spools.len());
            for mut spool in spools {
                let hash = hex(spool.hasher.clone().finish().as_ref());
                let dir = blob_dir.join(&hash[..2]);
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                let dest = dir.join(&hash);
                let staged = StagedBlob {
                    hash,
                    size: spool.size,
                };
                if dest.exists() {
                    // Already durable; the spool's own file is not needed.
                    if let Some((_, path)) = spool.file.take() {
                        let _ = std::fs::remove_file(path);
                    }
                    out.push(staged);
                    continue;
                }
                let tmp = match spool.file.take() {
                    Some((f, path)) => {
                        drop(f);
                        path
                    }
                    None => {
                        let tmp = tmp_dir.join(format!("{}.part", random_name()));
                        if let Err(e) = std::fs::write(&tmp, &spool.mem) {
                            let _ = std::fs::remove_file(&tmp);
                            return Err(io(&tmp)(e));
                        }
                        tmp
                    }
                };
                if let Err(e) = std::fs::rename(&tmp, &dest) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(io(&dest)(e));
                }
                out.push(staged);
            }
            sync_filesystem(&blob_dir)?;
            Ok(out)
        })
        .await
        .map_err(|e| Error::Io {
            path: self.dirs.blobs.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

/// Flush every written file and rename on the filesystem holding `dir`.
fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = std::fs::File::open(dir).map_err(io(dir))?;
    #[cfg(target_os = "linux")]
    {
        rustix::fs::syncfs(&d).map_err(|e| io(dir)(e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        // No syncfs: sync(2) semantics through the directory handle is not
        // portable, so fall back to the whole-system sync.
        d.sync_all().map_err(io(dir))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // An abandoned body (client vanished, message refused) leaves nothing.
        if let Some((_, path)) = self.file.take()
            && !self.keep
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn random_name() -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("system random source");
    hex(&b)
}

impl Store {
    pub fn spool(&self) -> Spool {
        Spool {
            mem: Vec::new(),
            file: None,
            hasher: digest::Context::new(&digest::SHA256),
            size: 0,
            tmp_dir: self.dirs.tmp.clone(),
            blob_dir: self.dirs.blobs.clone(),
            keep: false,
        }
    }

    /// Where the partial body `name` of a link transfer is kept.
    pub fn partial_path(&self, name: &str) -> PathBuf {
        self.dirs.partial.join(name)
    }

    /// How much of partial body `name` has arrived (0 when none).
    pub fn partial_len(&self, name: &str) -> u64 {
        std::fs::metadata(self.partial_path(name))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// A spool that continues partial body `name` (made if missing): what
    /// is there is hashed again, and the file stays if the spool is
    /// dropped uncommitted, so the next connection resumes at its end.
    /// Blocking: call it off the async workers for large files.
    pub fn spool_resume(&self, name: &str) -> Result<Spool> {
        let path = self.partial_path(name);
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut hasher = digest::Context::new(&digest::SHA256);
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).map_err(io(&path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(Spool {
            mem: Vec::new(),
            file: Some((f, path)),
            hasher,
            size,
            tmp_dir: self.dirs.tmp.clone(),
            blob_dir: self.dirs.blobs.clone(),
            keep: true,
        })
    }

    /// Remove partial bodies last written before `before` (Unix seconds):
    /// transfers nobody resumed. Returns how many went.
    pub fn partial_prune(&self, before: i64) -> u64 {
        let Ok(rd) = std::fs::read_dir(&self.dirs.partial) else {
            return 0;
        };
        let cutoff = std::time::UNIX_EPOCH + std::time::Duration::from_secs(before.max(0) as u64);
        let mut n = 0;
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m < cutoff);
            if old && std::fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Drop partial body `name` (it turned out corrupt).
    pub fn partial_remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.partial_path(name));
    }

    /// A fresh path in the store's temp directory (swept at start-up), for
    /// an upload on its way in.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        self.dirs.tmp.join(format!("{what}-{}.part", random_name()))
    }

    /// The bytes free on the data disk when `size` more would leave less
    /// than `reserve` (`limits.min_free_disk`); `None` when there is room.
    /// A disk whose free space cannot be read counts as having room: a
    /// write that then fails is still stopped by its own error.
    pub fn short_of_disk(&self, reserve: u64, size: u64) -> Option<u64> {
        let s = rustix::fs::statvfs(&self.dirs.blobs).ok()?;
        let free = s.f_bavail.saturating_mul(s.f_frsize);
        (free < reserve.saturating_add(size)).then_some(free)
    }

    /// The path of a blob's file.
    pub fn blob_path(&self, hash: &str) -> PathBuf {
        self.dirs
            .blobs
            .join(hash.get(..2).unwrap_or("xx"))
            .join(hash)
    }

    pub async fn blob_read(&self, hash: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(hash);
        tokio::fs::read(&path)
            .await
            .map_err(|source| Error::Io { path, source })
    }

    /// Start-up clean-up (before any listener): remove temp files left by
    /// a crash, rows of blobs nobody references, and blob files without a row.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        if let Ok(rd) = std::fs::read_dir(&self.dirs.tmp) {
            for e in rd.flatten() {
                if std::fs::remove_file(e.path()).is_ok() {
                    report.temp_files += 1;
                }
            }
        }
        sqlx::query("DELETE FROM blobs WHERE refs <= 0")
            .execute(self.pool())
            .await?;
        let known: std::collections::HashSet<String> =
            sqlx::query_scalar::<_, String>("SELECT hash FROM blobs")
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .collect();
        if let Ok(rd) = std::fs::read_dir(&self.dirs.blobs) {
            for sub in rd.flatten() {
                let Ok(files) = std::fs::read_dir(sub.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if !known.contains(&name) && std::fs::remove_file(f.path()).is_ok() {
                        report.orphan_blobs += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub temp_files: u64,
    pub orphan_blobs: u64,
}
