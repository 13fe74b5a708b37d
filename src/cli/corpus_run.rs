//! Transcribing the speech corpus for `bench` and `wer`: load the clips, time one batched run,
//! score every clip against its reference.

use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::audio::{Splice, WHISPER_SAMPLE_RATE};
use crate::engine::{Engine, JobOptions};
use crate::eval::{CorpusClip, WerCounts, default_corpus_dir, load_manifest, score};
use crate::model::whisper::WhisperModel;
use crate::model::whisper::decode::{DecodeOptions, Transcript};
use crate::service::LongFiles;
use crate::service::whole_file::{SpeechOnly, prepare, speech_only};
use crate::session::VadConfig;

/// Which clips to use.
#[derive(Debug, Clone, Args)]
pub(super) struct CorpusArgs {
    /// Corpus directory holding `manifest.jsonl` (default: `$HEARKEN_CORPUS_DIR` or `../shared/corpus`).
    #[arg(long)]
    pub(super) corpus: Option<std::path::PathBuf>,
    /// Only clips in these languages: a code, a comma-separated list (`de,fr`) or `all`.
    #[arg(long, default_value = "en")]
    pub(super) lang: String,
    /// Leave the language to the model to detect (multilingual models) instead of naming each
    /// clip's language from the manifest.
    #[arg(long)]
    pub(super) detect_language: bool,
    /// Only the first N clips (after the language filter).
    #[arg(long)]
    pub(super) limit: Option<usize>,
    /// Encode only the audio present instead of a padded 30 s window.
    #[arg(long)]
    pub(super) trim_encoder: bool,
    /// Decode without timestamps where a window holds the whole audio (a short clip, or one
    /// chunk of a long one), as faster-whisper's batched pipeline does; no server answer does
    /// (see `JobOptions::text_only`).
    #[arg(long)]
    pub(super) text_only: bool,
    /// Beam search with this many hypotheses at temperature 0 (1: greedy).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub(super) beam_size: u16,
}

/// One clip's audio and reference.
pub(super) struct LoadedClip {
    pub(super) clip: CorpusClip,
    pub(super) samples: Vec<f32>,
}

/// One clip's transcript and score.
pub(super) struct ClipScore {
    pub(super) id: String,
    /// The clip's language, from the manifest.
    pub(super) lang: String,
    pub(super) seconds: f64,
    pub(super) hypothesis: String,
    /// The language the transcript is in (detected, or the one given).
    pub(super) language: String,
    /// Word errors, or character errors for a language scored by CER ([`Metric`]).
    pub(super) counts: WerCounts,
}

/// A transcript as the corpus runs score it.
pub(super) struct Transcribed {
    pub(super) text: String,
    pub(super) language: String,
}

impl From<Transcript> for Transcribed {
    fn from(t: Transcript) -> Self {
        Self {
            text: t.text,
            language: t.language,
        }
    }
}

/// A timed run over the corpus.
pub(super) struct CorpusRun {
    pub(super) scores: Vec<ClipScore>,
    pub(super) wall_seconds: f64,
    pub(super) audio_seconds: f64,
}

impl CorpusRun {
    /// Scores `transcripts` (one per clip, in order) of a run that took `wall`.
    pub(super) fn new(
        clips: &[LoadedClip],
        transcripts: Vec<impl Into<Transcribed>>,
        wall: std::time::Duration,
    ) -> Self {
        let scores: Vec<ClipScore> = clips
            .iter()
            .zip(transcripts)
            .map(|(c, t)| {
                let t = t.into();
                ClipScore {
                    id: c.clip.id.clone(),
                    lang: c.clip.lang.clone(),
                    seconds: c.samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE),
                    counts: score(&c.clip.lang, &c.clip.text, &t.text),
                    hypothesis: t.text,
                    language: t.language,
                }
            })
            .collect();
        let audio_seconds = scores.iter().map(|s| s.seconds).sum();
        Self {
            scores,
            wall_seconds: wall.as_secs_f64(),
            audio_seconds,
        }
    }

    pub(super) fn total(&self) -> WerCounts {
        self.scores.iter().map(|s| s.counts).sum()
    }

    /// Errors summed over the clips in `lang`.
    pub(super) fn total_in(&self, lang: &str) -> WerCounts {
        self.scores
            .iter()
            .filter(|s| s.lang == lang)
            .map(|s| s.counts)
            .sum()
    }

    /// The clips' languages, in order of first appearance.
    pub(super) fn languages(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for s in &self.scores {
            if !seen.contains(&s.lang.as_str()) {
                seen.push(&s.lang);
            }
        }
        seen
    }

    pub(super) fn rtf(&self) -> f64 {
        self.wall_seconds / self.audio_seconds
    }
}

impl CorpusArgs {
    /// Reads and decodes the selected clips.
    pub(super) fn load(&self) -> anyhow::Result<Vec<LoadedClip>> {
        let dir = self.corpus.clone().unwrap_or_else(default_corpus_dir);
        let clips =
            load_manifest(&dir).with_context(|| format!("reading corpus at {}", dir.display()))?;
        let wanted: Vec<&str> = self.lang.split(',').map(str::trim).collect();
        let selected = clips
            .into_iter()
            .filter(|c| wanted == ["all"] || wanted.contains(&c.lang.as_str()))
            .take(self.limit.unwrap_or(usize::MAX));
        selected
            .map(|clip| {
                let samples = crate::audio::load_file(&clip.file)
                    .with_context(|| format!("decoding {}", clip.file.display()))?;
                Ok(LoadedClip { clip, samples })
            })
            .collect()
    }

    /// The language every selected clip is decoded in: `None` to detect it.
    fn language(&self) -> anyhow::Result<Option<String>> {
        if self.detect_language {
            return Ok(None);
        }
        anyhow::ensure!(
            !self.lang.contains(',') && self.lang != "all",
            "--lang {} selects several languages: this command decodes one at a time unless \
             --detect-language leaves it to the model",
            self.lang
        );
        Ok(Some(self.lang.clone()))
    }

    /// The engine's job options for these clips.
    pub(super) fn job(&self) -> anyhow::Result<JobOptions> {
        Ok(JobOptions {
            language: self.language()?,
            trim_encoder: self.trim_encoder,
            text_only: self.text_only,
            beam_size: Some(self.beam_size.into()),
            ..JobOptions::default()
        })
    }

    /// The engine's job options for `clip`: its own language unless the model detects it.
    pub(super) fn job_for(&self, clip: &CorpusClip) -> JobOptions {
        JobOptions {
            language: (!self.detect_language).then(|| clip.lang.clone()),
            trim_encoder: self.trim_encoder,
            text_only: self.text_only,
            beam_size: Some(self.beam_size.into()),
            ..JobOptions::default()
        }
    }

    /// The transcriber's options for these clips: the engine's job options under the default
    /// policy, so both paths pick timestamps and encoder frames the same way.
    pub(super) fn options(&self) -> anyhow::Result<DecodeOptions> {
        Ok(self.job()?.decode_options(&DecodeOptions::default()))
    }
}

/// Transcribes every clip with up to `batch` clips per model call, timing the whole run.
pub(super) fn run(
    model: &WhisperModel,
    clips: &[LoadedClip],
    batch: usize,
    opts: &DecodeOptions,
) -> anyhow::Result<CorpusRun> {
    let streams: Vec<&[f32]> = clips.iter().map(|c| c.samples.as_slice()).collect();
    let started = Instant::now();
    let transcripts = model
        .transcriber(batch)
        .transcribe_many(&streams, opts, &mut |_| {})?;
    Ok(CorpusRun::new(clips, transcripts, started.elapsed()))
}

/// [`run`] on the speech of each clip only, as the server transcribes a whole file
/// ([`speech_only`]): long silences cut, times mapped back, clips without speech left empty.
pub(super) fn run_speech_only(
    model: &WhisperModel,
    clips: &[LoadedClip],
    batch: usize,
    opts: &DecodeOptions,
    gate: &VadConfig,
) -> anyhow::Result<CorpusRun> {
    let started = Instant::now();
    let prepared: Vec<(Vec<f32>, Option<Splice>)> = clips
        .iter()
        .map(|c| match speech_only(c.samples.clone(), gate) {
            SpeechOnly::Nothing => (Vec::new(), None),
            SpeechOnly::Whole(samples) => (samples, None),
            SpeechOnly::Cut(samples, splice) => (samples, Some(splice)),
            SpeechOnly::Chunked(..) => unreachable!("speech_only never cuts chunks"),
        })
        .collect();
    let cut = prepared.iter().filter(|(_, s)| s.is_some()).count();
    println!("speech only: {cut} of {} clips cut", clips.len());
    let streams: Vec<&[f32]> = prepared.iter().map(|(s, _)| s.as_slice()).collect();
    let mut transcripts = model
        .transcriber(batch)
        .transcribe_many(&streams, opts, &mut |_| {})?;
    for (transcript, (_, splice)) in transcripts.iter_mut().zip(&prepared) {
        if let Some(splice) = splice {
            crate::engine::unsplice(transcript, splice);
        }
    }
    Ok(CorpusRun::new(clips, transcripts, started.elapsed()))
}

/// Submits every clip at once to `engine`, as a server given all the files at the same time
/// would run them, and waits for all transcripts, timing the whole. With `whole_files`, each
/// clip first goes through the server's whole-file preparation ([`prepare`]: the speech only,
/// long clips cut into chunks side by side when batched); the detector's time counts too.
pub(super) fn run_on_engine(
    engine: &Engine,
    clips: &[LoadedClip],
    options: impl Fn(&CorpusClip) -> JobOptions,
    whole_files: Option<(&VadConfig, LongFiles)>,
) -> anyhow::Result<CorpusRun> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut jobs = clips
        .iter()
        .map(|c| {
            let seconds = c.samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
            let options = options(&c.clip);
            match whole_files {
                None => engine.submit(c.samples.as_slice().into(), &options),
                Some((gate, long_files)) => {
                    prepare(c.samples.clone(), gate, long_files).submit(engine, &options, seconds)
                }
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let transcripts = runtime.block_on(async {
        let mut out = Vec::with_capacity(jobs.len());
        for job in &mut jobs {
            out.push(job.transcript().await?);
        }
        anyhow::Ok(out)
    })?;
    Ok(CorpusRun::new(clips, transcripts, started.elapsed()))
}

/// The `q` quantile of `values` (nearest rank; sorts them), `None` when there are none: one
/// rule for every benchmark's latency figures.
pub(super) fn percentile<T: Copy + PartialOrd>(values: &mut [T], q: f64) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    Some(values[index])
}
