//! Model arguments shared by the subcommands, and loading a model from them.

use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::model::device::DeviceSpec;
use crate::model::store::{DEFAULT_MODEL, ModelStore};
use crate::model::whisper::WhisperModel;

/// Which model to load, and where to run it.
#[derive(Debug, Clone, Args)]
pub(super) struct ModelArgs {
    /// A known model id (`tiny.en`, `base`) or a local model directory (CTranslate2 or
    /// Hugging Face layout). Known models are fetched and cached on first use.
    #[arg(long, short, env = "HEARKEN_MODEL", default_value = DEFAULT_MODEL)]
    pub(super) model: String,
    /// `cpu` or `cuda[:N]` (needs a build with `--features cuda`).
    #[arg(long, env = "HEARKEN_DEVICE", default_value = "cpu")]
    pub(super) device: DeviceSpec,
}

impl ModelArgs {
    /// The id clients name the model by: the catalogue id, or a local directory's name.
    pub(super) fn id(&self) -> String {
        let path = std::path::Path::new(&self.model);
        if path.is_dir() {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| self.model.clone())
        } else {
            self.model.clone()
        }
    }

    /// Resolves (fetching if needed) and loads the model.
    pub(super) fn load(&self) -> anyhow::Result<WhisperModel> {
        let resolved = ModelStore::from_env()
            .resolve(&self.model)
            .with_context(|| format!("resolving model `{}`", self.model))?;
        let device = self.device.open()?;
        let started = Instant::now();
        let model = WhisperModel::load(&resolved.dir, &device)
            .with_context(|| format!("loading model from {}", resolved.dir.display()))?;
        tracing::info!(model = %resolved.id, dir = %resolved.dir.display(), seconds = started.elapsed().as_secs_f64(), "model loaded");
        Ok(model)
    }
}
