//! The long-recording rows of `hearken bench offline`: one recording at a time on the serving
//! engine, transcribed as the server transcribes a whole file both ways (`--long-files
//! sequential`: window after window; `batched`: chunks cut at pauses, side by side), with the
//! wall time of each and their ratio.
//!
//! A recording is a corpus clip named by its id, or `concat:MINUTES`: the corpus's clips of
//! the chosen language end to end, 0.5 s of silence between them, repeated until the recording
//! lasts that long, its reference the clips' references in the same order.

use std::path::Path;

use anyhow::Context;

use super::corpus_run::{self, CorpusRun, LoadedClip};
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::engine::{Engine, JobOptions};
use crate::eval::{CorpusClip, load_manifest};
use crate::service::LongFiles;
use crate::session::VadConfig;

/// Silence between the clips of a `concat:` recording.
const CONCAT_GAP_SECONDS: f64 = 0.5;

/// The recording `spec` names: a clip id of the corpus in `dir`, or `concat:MINUTES` of its
/// clips in `lang`.
pub(super) fn recording(spec: &str, dir: &Path, lang: &str) -> anyhow::Result<LoadedClip> {
    let clips =
        load_manifest(dir).with_context(|| format!("reading corpus at {}", dir.display()))?;
    if let Some(minutes) = spec.strip_prefix("concat:") {
        let minutes: f64 = minutes
            .parse()
            .with_context(|| format!("`{spec}`: expected concat:MINUTES"))?;
        let clips = clips
            .into_iter()
            .filter(|c| c.lang == lang)
            .map(load)
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!clips.is_empty(), "no `{lang}` clips to concatenate");
        return Ok(concatenation(&clips, minutes * 60.0));
    }
    let clip = clips
        .into_iter()
        .find(|c| c.id == spec)
        .with_context(|| format!("no clip `{spec}` in {}", dir.display()))?;
    load(clip)
}

fn load(clip: CorpusClip) -> anyhow::Result<LoadedClip> {
    let samples = crate::audio::load_file(&clip.file)
        .with_context(|| format!("decoding {}", clip.file.display()))?;
    Ok(LoadedClip { clip, samples })
}

/// `clips` (at least one) end to end, repeated until the recording lasts `seconds`.
fn concatenation(clips: &[LoadedClip], seconds: f64) -> LoadedClip {
    let gap = vec![0.0; (CONCAT_GAP_SECONDS * f64::from(WHISPER_SAMPLE_RATE)) as usize];
    let wanted = (seconds * f64::from(WHISPER_SAMPLE_RATE)) as usize;
    let (mut samples, mut text) = (Vec::new(), Vec::new());
    for clip in clips.iter().cycle() {
        if samples.len() >= wanted {
            break;
        }
        samples.extend_from_slice(&clip.samples);
        samples.extend_from_slice(&gap);
        text.push(clip.clip.text.trim());
    }
    let first = &clips[0].clip;
    let clip = CorpusClip {
        id: format!("concat_{:.0}min", seconds / 60.0),
        file: first.file.clone(),
        lang: first.lang.clone(),
        seconds: samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE),
        text: text.join(" "),
    };
    LoadedClip { clip, samples }
}

/// One recording transcribed both ways on the same engine.
pub(super) struct LongRow {
    pub(super) id: String,
    pub(super) sequential: CorpusRun,
    pub(super) batched: CorpusRun,
}

impl LongRow {
    /// Batched wall time over sequential.
    pub(super) fn ratio(&self) -> f64 {
        self.batched.wall_seconds / self.sequential.wall_seconds
    }
}

/// Transcribes `recording` window after window, then in chunks side by side.
pub(super) fn compare(
    engine: &Engine,
    recording: &LoadedClip,
    job: &JobOptions,
    gate: &VadConfig,
) -> anyhow::Result<LongRow> {
    let one = std::slice::from_ref(recording);
    let sequential = corpus_run::run_on_engine(
        engine,
        one,
        |_| job.clone(),
        Some((gate, LongFiles::Sequential)),
    )?;
    let batched = corpus_run::run_on_engine(
        engine,
        one,
        |_| job.clone(),
        Some((gate, LongFiles::Batched)),
    )?;
    Ok(LongRow {
        id: recording.clip.id.clone(),
        sequential,
        batched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_concatenation_repeats_clips_until_long_enough_with_their_references() {
        let clips: Vec<LoadedClip> = [("a", 2.0, "one two"), ("b", 1.0, "three")]
            .into_iter()
            .map(|(name, seconds, text)| LoadedClip {
                clip: CorpusClip {
                    id: name.into(),
                    file: format!("{name}.wav").into(),
                    lang: "en".into(),
                    seconds,
                    text: text.into(),
                },
                samples: vec![0.1; (seconds * 16_000.0) as usize],
            })
            .collect();
        // 2.5 s + 1.5 s per round: 7 s needs a, b, a, b (8 s).
        let long = concatenation(&clips, 7.0);
        assert_eq!(long.clip.text, "one two three one two three");
        assert_eq!(long.samples.len(), 8 * 16_000);
        assert_eq!(long.clip.id, "concat_0min");
    }
}
