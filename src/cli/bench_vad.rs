//! `hearken bench vad`: how well and how cheaply each speech detector finds the corpus's speech.
//!
//! Every clip is played between two 3 s pads of one kind (digital silence, or white, pink or
//! brown noise made by sox) and fed to each detector in 20 ms pushes, as a stream would be. The
//! clip's span is the speech; the pads are not. Per detector and pad kind it prints:
//! frame-level precision and recall of the detector's utterances (at 10 ms resolution; recall is
//! a lower bound, since a clip's own pauses count as speech), utterances started inside a pad,
//! the onset error (utterance start minus clip start) and how long after the clip started the
//! detector said so, and the detector's cost per second of audio. `--json FILE` writes the same.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::corpus_run::{CorpusArgs, LoadedClip, percentile};
use super::load::VadArgs;
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::session::{Detector, Vad, VadConfig, VadEvent, regions};

const SR: f64 = WHISPER_SAMPLE_RATE as f64;
const PAD_SECONDS: f64 = 3.0;
/// Samples per push: 20 ms, a typical client frame.
const PUSH: usize = 320;
/// Resolution of the frame-level scores (10 ms).
const FRAME: usize = 160;

/// Arguments of `hearken bench vad`.
#[derive(Debug, Args)]
pub(super) struct VadBenchArgs {
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Pad kinds: `silence`, `white`, `pink`, `brown` (noise from sox at `--noise-volume`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "silence,white,pink,brown"
    )]
    pads: Vec<String>,
    /// Peak amplitude of the noise pads (sox `vol`; 0.05 is about −35 dBFS RMS for white).
    #[arg(long, default_value_t = 0.05)]
    noise_volume: f64,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// One detector over one pad kind, every clip.
#[derive(Debug, Default, serde::Serialize)]
struct Score {
    detector: String,
    pad: String,
    precision: f64,
    recall: f64,
    /// Utterances whose start lies in a pad (more than 100 ms from the clip).
    false_starts: usize,
    /// Clips with no utterance overlapping them.
    missed_clips: usize,
    onset_error_p50: f64,
    /// Stream time at which the start was reported, minus the clip's start.
    onset_reported_p50: f64,
    onset_reported_p90: f64,
    /// Detector time per second of audio, milliseconds.
    cost_ms_per_audio_second: f64,
}

pub(super) fn vad(args: VadBenchArgs) -> anyhow::Result<()> {
    let clips = args.corpus.load()?;
    let silero = VadArgs::silero()?;
    let detectors = [Detector::Energy, silero];
    println!(
        "hearken bench vad: {} clips between {PAD_SECONDS} s pads, pushes of {} ms",
        clips.len(),
        PUSH * 1000 / WHISPER_SAMPLE_RATE as usize
    );
    println!(
        "{:<8} {:<8} {:>9} {:>7} {:>12} {:>7} {:>12} {:>18} {:>12}",
        "detector",
        "pad",
        "precision",
        "recall",
        "false starts",
        "missed",
        "onset err",
        "reported p50/p90",
        "ms per s"
    );
    let mut scores = Vec::new();
    for pad in &args.pads {
        let noise = pad_audio(pad, args.noise_volume)?;
        for detector in &detectors {
            let score = score(detector, pad, &noise, &clips);
            println!(
                "{:<8} {:<8} {:>9.3} {:>7.3} {:>12} {:>7} {:>+11.2}s {:>8.2} / {:.2} s {:>12.2}",
                score.detector,
                score.pad,
                score.precision,
                score.recall,
                score.false_starts,
                score.missed_clips,
                score.onset_error_p50,
                score.onset_reported_p50,
                score.onset_reported_p90,
                score.cost_ms_per_audio_second
            );
            scores.push(score);
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&scores)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `PAD_SECONDS` of the pad kind: zeros, or sox's noise generator.
fn pad_audio(kind: &str, volume: f64) -> anyhow::Result<Vec<f32>> {
    let samples = (PAD_SECONDS * SR) as usize;
    let noise = match kind {
        "silence" => return Ok(vec![0.0; samples]),
        "white" => "whitenoise",
        "pink" => "pinknoise",
        "brown" => "brownnoise",
        other => bail!("unknown pad kind {other:?}: use silence, white, pink or brown"),
    };
    let output = Command::new("sox")
        .args([
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "32",
            "-e",
            "floating-point",
        ])
        .args(["-t", "raw", "-", "synth", &PAD_SECONDS.to_string(), noise])
        .args(["vol", &volume.to_string()])
        .output()
        .context("running sox to make the noise pads (install sox, or use --pads silence)")?;
    if !output.status.success() {
        bail!("sox failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(output
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn score(detector: &Detector, pad: &str, noise: &[f32], clips: &[LoadedClip]) -> Score {
    let config = VadConfig {
        detector: detector.clone(),
        ..VadConfig::default()
    };
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut score = Score {
        detector: detector.name().into(),
        pad: pad.into(),
        ..Score::default()
    };
    let (mut onset_errors, mut reported) = (Vec::new(), Vec::new());
    let (mut busy, mut audio_seconds) = (0.0, 0.0);
    for clip in clips {
        let mut signal = noise.to_vec();
        let clip_start = signal.len();
        signal.extend_from_slice(&clip.samples);
        let clip_end = signal.len();
        signal.extend_from_slice(noise);
        let mut vad = Vad::new(&config);
        let mut events = Vec::new();
        let started = Instant::now();
        for (i, piece) in signal.chunks(PUSH).enumerate() {
            let now = ((i * PUSH + piece.len()) as f64) / SR;
            events.extend(vad.push(piece).into_iter().map(|e| (now, e)));
        }
        busy += started.elapsed().as_secs_f64();
        audio_seconds += signal.len() as f64 / SR;
        let spans = regions(events.iter().map(|&(_, e)| e), signal.len() as f64 / SR);
        let (start, end) = (clip_start as f64 / SR, clip_end as f64 / SR);
        for f in 0..signal.len() / FRAME {
            let mid = (f * FRAME + FRAME / 2) as f64 / SR;
            let truth = mid >= start && mid < end;
            let said = spans.iter().any(|&(a, b)| mid >= a && mid < b);
            match (truth, said) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                (false, false) => {}
            }
        }
        score.false_starts += spans
            .iter()
            .filter(|&&(a, _)| a < start - 0.1 || a > end + 0.1)
            .count();
        match events.iter().find_map(|&(now, e)| match e {
            VadEvent::SpeechStarted { at_seconds } if at_seconds >= start - 0.1 => {
                Some((now, at_seconds))
            }
            _ => None,
        }) {
            Some((now, at)) if at < end => {
                onset_errors.push(at - start);
                reported.push(now - start);
            }
            _ => score.missed_clips += 1,
        }
    }
    score.precision = tp as f64 / (tp + fp).max(1) as f64;
    score.recall = tp as f64 / (tp + fn_).max(1) as f64;
    score.onset_error_p50 = percentile(&mut onset_errors, 0.5).unwrap_or(f64::NAN);
    score.onset_reported_p50 = percentile(&mut reported, 0.5).unwrap_or(f64::NAN);
    score.onset_reported_p90 = percentile(&mut reported, 0.9).unwrap_or(f64::NAN);
    score.cost_ms_per_audio_second = busy * 1000.0 / audio_seconds;
    score
}
