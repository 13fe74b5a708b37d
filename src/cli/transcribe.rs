//! `hearken transcribe FILE`: decode, transcribe and print in the chosen format.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::load::{ModelArgs, VadArgs};
use crate::formats::{RenderOptions, ResponseFormat, render};
use crate::model::whisper::decode::{DecodeOptions, EncoderFrames, Progress};
use crate::model::whisper::tokens::Task;
use crate::service::whole_file::speech_only;

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
    /// Encode only the audio present instead of a padded 30 s window (faster on short clips).
    #[arg(long)]
    trim_encoder: bool,
}

pub(super) fn run(args: TranscribeArgs) -> anyhow::Result<()> {
    let samples = crate::audio::load_file(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let task = if args.translate {
        Task::Translate
    } else {
        Task::Transcribe
    };
    let opts = DecodeOptions {
        task,
        language: args.language.clone(),
        initial_prompt: args.prompt.clone(),
        encoder_frames: if args.trim_encoder {
            EncoderFrames::AudioOnly
        } else {
            EncoderFrames::FullWindow
        },
        ..DecodeOptions::default()
    };
    let gate = crate::session::VadConfig::whole_file(args.vad.detector()?);
    let seconds = samples.len() as f64 / f64::from(crate::audio::WHISPER_SAMPLE_RATE);
    let (samples, splice) = speech_only(samples, &gate).into_parts();
    if samples.is_empty() {
        // Whisper invents text ("you", "Thank you.") when made to decode silence or noise.
        eprintln!("hearken: no speech in {}", args.file.display());
        let job = crate::engine::JobOptions {
            language: args.language.clone(),
            ..Default::default()
        };
        let transcript = crate::service::whole_file::no_speech(seconds, &job);
        let options = RenderOptions {
            task,
            ..RenderOptions::default()
        };
        std::io::stdout().write_all(render(&transcript, args.format, &options).as_bytes())?;
        return Ok(());
    }
    // Loaded only once there is speech to transcribe.
    let model = args.model.load()?;
    let long = samples.len() > 30 * 16_000;
    let mut report = |p: Progress| {
        if long {
            eprint!(
                "\rtranscribed {:.0}/{:.0} s",
                p.done_seconds, p.total_seconds
            );
        }
    };
    let mut transcript = model
        .transcriber(1)
        .transcribe_many(&[&samples], &opts, &mut report)?
        .pop()
        .expect("one transcript");
    if let Some(splice) = &splice {
        crate::engine::unsplice(&mut transcript, splice);
    }
    if long {
        eprintln!();
    }
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
