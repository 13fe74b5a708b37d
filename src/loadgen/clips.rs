//! The audio a load run plays: corpus clips with their references, or any audio files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context;

use crate::audio::{WHISPER_SAMPLE_RATE, f32_to_pcm16le, resample};
use crate::eval::load_manifest;
use crate::http::realtime::client::PROTOCOL_RATE;

/// One clip every session of a run may play.
#[derive(Debug, Clone)]
pub struct Clip {
    /// The manifest id, or the file's name.
    pub id: String,
    /// The speech's language from the manifest (`None` for a plain file).
    pub lang: Option<String>,
    /// 16 kHz mono samples.
    pub samples: Vec<f32>,
    /// The reference transcript, when the clip comes from a corpus: streamed WER needs it.
    pub reference: Option<String>,
    /// 100 ms PCM16 frames at the Realtime protocol's rate, made once for every session.
    realtime_frames: OnceLock<Arc<Vec<Vec<u8>>>>,
}

impl Clip {
    /// A clip of 16 kHz mono `samples`.
    pub fn new(
        id: String,
        lang: Option<String>,
        samples: Vec<f32>,
        reference: Option<String>,
    ) -> Self {
        Self {
            id,
            lang,
            samples,
            reference,
            realtime_frames: OnceLock::new(),
        }
    }

    /// The clip as the Realtime protocol sends it: 100 ms PCM16 frames at 24 kHz, resampled
    /// on the first call only (CPU work: call it off the async workers first).
    pub fn realtime_frames(&self) -> anyhow::Result<Arc<Vec<Vec<u8>>>> {
        if let Some(frames) = self.realtime_frames.get() {
            return Ok(Arc::clone(frames));
        }
        let samples = resample(&self.samples, WHISPER_SAMPLE_RATE, PROTOCOL_RATE)?;
        let frames = samples
            .chunks(PROTOCOL_RATE as usize / 10)
            .map(f32_to_pcm16le)
            .collect();
        Ok(Arc::clone(
            self.realtime_frames.get_or_init(|| Arc::new(frames)),
        ))
    }

    /// The clip's length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE)
    }
}

/// Which clips of a corpus to take.
#[derive(Debug, Clone, Default)]
pub struct CorpusSelection {
    /// Languages to keep (`["all"]` or empty for every one).
    pub languages: Vec<String>,
    /// Skip clips longer than this (seconds).
    pub max_seconds: Option<f64>,
    /// Keep at most this many (after the other filters).
    pub limit: Option<usize>,
}

/// The clips of the corpus at `dir` (a `manifest.jsonl` with references) that `selection`
/// keeps, decoded.
pub fn load_corpus(dir: &Path, selection: &CorpusSelection) -> anyhow::Result<Vec<Clip>> {
    let manifest =
        load_manifest(dir).with_context(|| format!("reading the corpus at {}", dir.display()))?;
    let wanted = |lang: &str| {
        selection.languages.is_empty()
            || selection.languages.iter().any(|l| l == "all" || l == lang)
    };
    manifest
        .into_iter()
        .filter(|c| wanted(&c.lang))
        .filter(|c| selection.max_seconds.is_none_or(|max| c.seconds <= max))
        .take(selection.limit.unwrap_or(usize::MAX))
        .map(|c| {
            let samples = crate::audio::load_file(&c.file)
                .with_context(|| format!("decoding {}", c.file.display()))?;
            Ok(Clip::new(c.id, Some(c.lang), samples, Some(c.text)))
        })
        .collect()
}

/// Audio files (any format the decoder reads) as clips without references.
pub fn load_files(paths: &[PathBuf]) -> anyhow::Result<Vec<Clip>> {
    paths
        .iter()
        .map(|path| {
            let samples = crate::audio::load_file(path)
                .with_context(|| format!("decoding {}", path.display()))?;
            let id = path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into(),
            );
            Ok(Clip::new(id, None, samples, None))
        })
        .collect()
}
