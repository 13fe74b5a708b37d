//! `hearken transcribe FILE`: decode, transcribe and print in the chosen format.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::load::{FileEncoder, ModelArgs, VadArgs};
use crate::engine::{Engine, EngineConfig, JobEvent, JobOptions, WhisperBackend};
use crate::formats::{RenderOptions, ResponseFormat, render};
use crate::model::whisper::decode::{DecodeOptions, Transcript};
use crate::model::whisper::tokens::Task;
use crate::service::LongFiles;
use crate::service::whole_file::{SpeechOnly, no_speech, prepare};

/// Arguments of `hearken transcribe`.
#[derive(Debug, Args)]
pub(super) struct TranscribeArgs {
    /// The audio file.
    file: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    vad: VadArgs,
    /// Spoken language (ISO code such as `en`, `de`); detected when omitted on multilingual models.
    #[arg(long, short)]
    language: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = ResponseFormat::Text)]
    format: ResponseFormat,
    /// Translate to English instead of transcribing (multilingual models).
    #[arg(long)]
    translate: bool,
    /// Text to prime the decoder with (names, spelling, style).
    #[arg(long)]
    prompt: Option<String>,
    /// How windows are encoded: `trimmed` (the audio present, the rest of the window read from
    /// an encoded silent window) or `padded` (Whisper's 30 s windows). Multilingual models
    /// always pad.
    #[arg(long, value_enum, default_value_t = FileEncoder::Trimmed)]
    file_encoder: FileEncoder,
    /// How a file longer than 30 s is transcribed: `batched` (chunks cut at pauses, side by
    /// side) or `sequential` (window after window).
    #[arg(long, value_enum, default_value_t = LongFiles::Batched)]
    long_files: LongFiles,
    /// Beam search with this many hypotheses (1: greedy). 2, the server's default, with trimmed
    /// windows reads no more errors than greedy padded windows in 0.73× the time; 5 (Whisper's
    /// and faster-whisper's default) fewer on single utterances, more on dense speech.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    beam_size: u16,
}

pub(super) fn run(args: TranscribeArgs) -> anyhow::Result<()> {
    let samples = crate::audio::load_file(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let task = if args.translate {
        Task::Translate
    } else {
        Task::Transcribe
    };
    let job = JobOptions {
        language: args.language.clone(),
        task,
        prompt: args.prompt.clone(),
        // Every format decodes with timestamps (see `JobOptions::text_only`).
        text_only: false,
        beam_size: Some(args.beam_size.into()),
        ..JobOptions::default()
    };
    let gate = crate::session::VadConfig::whole_file(args.vad.detector()?);
    let seconds = samples.len() as f64 / f64::from(crate::audio::WHISPER_SAMPLE_RATE);
    let speech = prepare(samples, &gate, args.long_files);
    let transcript = match speech {
        // Whisper invents text ("you", "Thank you.") when made to decode silence or noise.
        SpeechOnly::Nothing => {
            eprintln!("hearken: no speech in {}", args.file.display());
            no_speech(seconds, &job)
        }
        // Loaded only once there is speech to transcribe.
        speech => transcribe(speech, &args, &job, seconds)?,
    };
    let mut out = std::io::stdout().lock();
    let options = RenderOptions {
        task,
        ..RenderOptions::default()
    };
    out.write_all(render(&transcript, args.format, &options).as_bytes())?;
    if !matches!(
        args.format,
        ResponseFormat::Text | ResponseFormat::Srt | ResponseFormat::Vtt
    ) {
        writeln!(out)?;
    }
    Ok(())
}

/// Runs `speech` through an engine over the model, as the server does, reporting progress on
/// standard error for files longer than one window.
fn transcribe(
    speech: SpeechOnly,
    args: &TranscribeArgs,
    job: &JobOptions,
    seconds: f64,
) -> anyhow::Result<Transcript> {
    let config = EngineConfig {
        policy: DecodeOptions {
            encoder_frames: args.file_encoder.frames(),
            ..DecodeOptions::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::start(WhisperBackend::from(args.model.load()?), config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut handle = speech.submit(&engine, job, seconds)?;
    let long = seconds > 30.0;
    runtime.block_on(async {
        while let Some(event) = handle.next().await {
            match event {
                JobEvent::Window(w) if long => {
                    eprint!(
                        "\rtranscribed {:.0}/{:.0} s",
                        w.done_seconds, w.total_seconds
                    )
                }
                JobEvent::Window(_) => {}
                JobEvent::Done(transcript) => {
                    if long {
                        eprintln!();
                    }
                    return Ok(transcript);
                }
                JobEvent::Failed(error) => return Err(error.into()),
            }
        }
        anyhow::bail!("the engine stopped before the transcript was done")
    })
}
