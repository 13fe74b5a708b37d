//! `hearken wer`: transcribe the corpus and print each clip's WER and the corpus-level figure.

use clap::Args;

use super::corpus_run::{self, CorpusArgs};
use super::load::{ModelArgs, VadArgs};
use crate::engine::{Engine, EngineConfig, WhisperBackend};
use crate::service::LongFiles;
use crate::session::VadConfig;

/// Arguments of `hearken wer`.
#[derive(Debug, Args)]
pub(super) struct WerArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Clips per model call.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Transcribe each clip as the server does a whole file: only its speech, long silences
    /// cut out by the `--vad` detector, times mapped back.
    #[arg(long)]
    speech_only: bool,
    /// Transcribe each clip through the serving engine exactly as the server does a whole
    /// file, long ones the given way (`batched`: cut at pauses into chunks side by side;
    /// `sequential`: window after window). `--batch` is the engine's batch limit.
    #[arg(long, value_enum, conflicts_with = "speech_only")]
    long_files: Option<LongFiles>,
    #[command(flatten)]
    vad: VadArgs,
}

pub(super) fn run(args: WerArgs) -> anyhow::Result<()> {
    let clips = args.corpus.load()?;
    let opts = args.corpus.options();
    let run = if let Some(long_files) = args.long_files {
        let gate = VadConfig::whole_file(args.vad.detector()?);
        let config = EngineConfig {
            max_batch: args.batch,
            ..EngineConfig::default()
        };
        let engine = Engine::start(WhisperBackend::from(args.model.load()?), config);
        let whole_files = Some((&gate, long_files));
        corpus_run::run_on_engine(&engine, &clips, &args.corpus.job(), whole_files)?
    } else if args.speech_only {
        let gate = VadConfig::whole_file(args.vad.detector()?);
        corpus_run::run_speech_only(&args.model.load()?, &clips, args.batch, &opts, &gate)?
    } else {
        corpus_run::run(&args.model.load()?, &clips, args.batch, &opts)?
    };
    println!("{:<24} {:>7} {:>7}  hypothesis", "clip", "seconds", "WER");
    for s in &run.scores {
        println!(
            "{:<24} {:>7.1} {:>6.1}%  {}",
            s.id,
            s.seconds,
            100.0 * s.counts.wer(),
            s.hypothesis
        );
    }
    let total = run.total();
    println!(
        "corpus WER {:.2}% ({} errors: {} sub, {} del, {} ins / {} words) over {} clips, {:.1} s of audio",
        100.0 * total.wer(),
        total.errors(),
        total.substitutions,
        total.deletions,
        total.insertions,
        total.reference_words,
        run.scores.len(),
        run.audio_seconds
    );
    Ok(())
}
