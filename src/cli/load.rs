//! Model arguments shared by the subcommands, and loading a model from them.

use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::model::device::DeviceSpec;
use crate::model::silero::SileroVad;
use crate::model::store::{DEFAULT_MODEL, ModelStore};
use crate::model::whisper::WhisperModel;
use crate::model::whisper::precision::CpuPrecision;
use crate::session::Detector;

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
    /// Precision of the CPU's matrix products (every projection of the encoder and decoder, the
    /// encoder's attention): `auto` (bf16 where the CPU has AVX512_BF16, else f32), `f32`,
    /// `bf16`, or `int8` (projections in int8 with AVX512_VNNI, attention as `auto`). Sums stay
    /// f32 or i32; GPUs run f16.
    #[arg(long, env = "HEARKEN_PRECISION", default_value = "auto")]
    pub(super) precision: CpuPrecision,
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
        let model = WhisperModel::load_with(&resolved.dir, &device, self.precision)
            .with_context(|| format!("loading model from {}", resolved.dir.display()))?;
        let products = model.network.products();
        tracing::info!(model = %resolved.id, dir = %resolved.dir.display(), %products, seconds = started.elapsed().as_secs_f64(), "model loaded");
        Ok(model)
    }
}

/// How many engine workers share the model, and the threads each one's math uses.
#[derive(Debug, Clone, Args)]
pub(super) struct WorkerArgs {
    /// Engine workers: each admits and runs its own batches on the shared model (weights are
    /// loaded once). Default: 2 on a machine with 2 cores or more, else 1. On 2 cores, two
    /// single-threaded workers did 1.5× the work of one two-threaded worker, and 8 live
    /// streams' final latency p95 fell from 4.32 s to 1.56 s.
    #[arg(long, env = "HEARKEN_MODEL_WORKERS", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(super) model_workers: Option<u32>,
    /// Threads for each worker's model math (default: every core when there is one worker,
    /// else cores / workers, at least 1).
    #[arg(long, env = "HEARKEN_THREADS_PER_WORKER", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(super) threads_per_worker: Option<u32>,
}

impl WorkerArgs {
    /// The engine's `(workers, threads_per_worker)`.
    pub(super) fn engine(&self) -> (usize, Option<usize>) {
        let cores = rayon::current_num_threads();
        let workers = self.model_workers.map_or(cores.min(2), |w| w as usize);
        let threads = match (self.threads_per_worker, workers) {
            (Some(t), _) => Some(t as usize),
            (None, 1) => None,
            (None, w) => Some((cores / w).max(1)),
        };
        (workers, threads)
    }
}

/// Which speech detector gates streams and whole files.
#[derive(Debug, Clone, Args)]
pub(super) struct VadArgs {
    /// `silero` (Silero VAD, fetched like a model on first use), `energy` (a level threshold,
    /// no model), or `auto`: Silero when it can be fetched or is cached, else energy with a
    /// warning.
    #[arg(long, env = "HEARKEN_VAD", default_value = "auto", value_parser = ["auto", "silero", "energy"])]
    pub(super) vad: String,
}

impl VadArgs {
    /// Loads the chosen detector; `auto` falls back to energy instead of failing.
    pub(super) fn detector(&self) -> anyhow::Result<Detector> {
        match self.vad.as_str() {
            "energy" => Ok(Detector::Energy),
            "silero" => Ok(Detector::Silero(load_silero()?)),
            _ => Ok(match load_silero() {
                Ok(model) => Detector::Silero(model),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "Silero VAD unavailable; gating speech with the energy detector"
                    );
                    Detector::Energy
                }
            }),
        }
    }
}

impl VadArgs {
    /// The Silero detector, or why it cannot be had.
    pub(super) fn silero() -> anyhow::Result<Detector> {
        Ok(Detector::Silero(load_silero()?))
    }
}

fn load_silero() -> anyhow::Result<std::sync::Arc<SileroVad>> {
    let path = ModelStore::from_env()
        .silero_vad()
        .context("fetching Silero VAD (`--vad energy` needs no model)")?;
    let model = SileroVad::load(&path).with_context(|| format!("loading {}", path.display()))?;
    tracing::info!(path = %path.display(), "Silero VAD loaded");
    Ok(std::sync::Arc::new(model))
}

/// How whole files' windows are encoded (`serve` and `transcribe --file-encoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum FileEncoder {
    /// The audio present (at least 10 s) plus a cached silent window for the rest: the cost
    /// follows the audio.
    Trimmed,
    /// Whisper's padded 30 s windows.
    Padded,
}

impl FileEncoder {
    /// The engine's encoding of whole files' windows (a multilingual model pads regardless).
    pub(super) fn frames(self) -> crate::model::whisper::decode::EncoderFrames {
        use crate::model::whisper::decode::EncoderFrames;
        match self {
            Self::Trimmed => EncoderFrames::AudioOnly,
            Self::Padded => EncoderFrames::FullFirstWindow,
        }
    }
}
