//! `hearken bench offline`: real-time factor, WER and peak memory of offline transcription on
//! the corpus at several batch sizes, with faster-whisper's figures beside ours when the
//! `faster_whisper` Python package is installed.
//!
//! Two ways of running the clips: `transcriber` hands the whole corpus to one transcriber
//! (clips batched `batch` at a time, every core on each call), `engine` submits every clip at
//! once to the serving engine (its workers, each with its own threads, batching up to `batch`
//! windows), as a server given all the files at the same time would run them.

use std::process::Command;

use clap::{Args, Subcommand};

use super::corpus_run::{self, CorpusArgs, CorpusRun, LoadedClip};
use super::load::{ModelArgs, WorkerArgs};
use crate::engine::{Engine, EngineConfig, JobOptions, WhisperBackend};

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub(super) enum BenchCommand {
    /// Whole-file transcription of the corpus.
    Offline(OfflineArgs),
    /// Concurrent gRPC streaming sessions: latency, batch size and streamed WER.
    Stream(super::bench_stream::StreamArgs),
    /// The streaming policy replayed over the corpus in simulated time: streamed WER, traces.
    Policy(super::bench_policy::PolicyArgs),
    /// The speech detectors (energy, Silero) on the corpus between silence and noise pads.
    Vad(super::bench_vad::VadBenchArgs),
}

/// Arguments of `hearken bench offline`.
#[derive(Debug, Args)]
pub(super) struct OfflineArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Batch sizes to measure (clips per model call).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batch: Vec<usize>,
    /// Skip the faster-whisper comparison even if it is installed.
    #[arg(long)]
    no_peer: bool,
    /// Which ways to run the clips (see the module doc): `transcriber`, `engine` or both.
    #[arg(long, value_delimiter = ',', default_value = "transcriber,engine")]
    mode: Vec<Mode>,
    #[command(flatten)]
    workers: WorkerArgs,
}

/// How `bench offline` runs the clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// One transcriber over the whole corpus, every core on each model call.
    Transcriber,
    /// Every clip submitted at once to the serving engine's workers.
    Engine,
}

pub(super) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Offline(args) => offline(args),
        BenchCommand::Stream(args) => super::bench_stream::stream(args),
        BenchCommand::Policy(args) => super::bench_policy::policy(args),
        BenchCommand::Vad(args) => super::bench_vad::vad(args),
    }
}

fn offline(args: OfflineArgs) -> anyhow::Result<()> {
    let model = args.model.load()?;
    let clips = args.corpus.load()?;
    let opts = args.corpus.options();
    let threads =
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| num_cpus::get().to_string());
    println!(
        "hearken bench offline: model {}, device {}, {threads} threads, {} clips",
        args.model.model,
        args.model.device,
        clips.len()
    );
    // Warm-up: first calls pay for allocation and page faults.
    corpus_run::run(&model, &clips[..1.min(clips.len())], 1, &opts)?;
    println!(
        "{:<22} {:>6} {:>9} {:>8} {:>8} {:>12}",
        "hearken", "batch", "audio s", "wall s", "RTF", "WER"
    );
    if args.mode.contains(&Mode::Transcriber) {
        for &batch in &args.batch {
            reset_peak_memory();
            let run = corpus_run::run(&model, &clips, batch, &opts)?;
            print_row(&format!("transcriber {threads}t"), batch, &run);
        }
    }
    // Each engine loads its own copy; the peak memory figures count one model.
    drop(model);
    if args.mode.contains(&Mode::Engine) {
        let (workers, worker_threads) = args.workers.engine();
        let per_worker = worker_threads.map_or(threads, |t| t.to_string());
        for &batch in &args.batch {
            let config = EngineConfig {
                max_batch: batch,
                workers,
                threads_per_worker: worker_threads,
                ..EngineConfig::default()
            };
            let engine = Engine::start(WhisperBackend::from(args.model.load()?), config);
            reset_peak_memory();
            let run = engine_run(&engine, &clips, &args.corpus)?;
            print_row(&format!("engine {workers}w x {per_worker}t"), batch, &run);
        }
    }
    if !args.no_peer {
        run_peer(&args)?;
    }
    Ok(())
}

fn print_row(label: &str, batch: usize, run: &CorpusRun) {
    println!(
        "{label:<22} {batch:>6} {:>9.1} {:>8.2} {:>8.4} {:>11.2}%   peak RSS {}",
        run.audio_seconds,
        run.wall_seconds,
        run.rtf(),
        100.0 * run.total().wer(),
        peak_memory().map_or("n/a".into(), |kb| format!("{:.0} MB", kb as f64 / 1024.0)),
    );
}

/// Submits every clip to `engine` at once and waits for all transcripts, timing the whole.
fn engine_run(
    engine: &Engine,
    clips: &[LoadedClip],
    corpus: &CorpusArgs,
) -> anyhow::Result<CorpusRun> {
    let options = JobOptions {
        language: Some(corpus.lang.clone()),
        trim_encoder: corpus.trim_encoder,
        ..JobOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    let mut jobs = clips
        .iter()
        .map(|c| engine.submit(c.samples.as_slice().into(), &options))
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

/// Runs `clients/bench/faster_whisper_peer.py` when faster-whisper is importable.
fn run_peer(args: &OfflineArgs) -> anyhow::Result<()> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/bench/faster_whisper_peer.py"
    );
    let available = Command::new("python3")
        .args(["-c", "import faster_whisper"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available || !std::path::Path::new(script).is_file() {
        println!(
            "(faster-whisper not installed: `pip install faster-whisper` to print its figures here)"
        );
        return Ok(());
    }
    let model_dir = crate::model::store::ModelStore::from_env()
        .resolve(&args.model.model)?
        .dir;
    let corpus = args
        .corpus
        .corpus
        .clone()
        .unwrap_or_else(crate::eval::default_corpus_dir);
    let threads =
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| num_cpus::get().to_string());
    let status = Command::new("python3")
        .arg(script)
        .args([
            "--model-dir",
            &model_dir.to_string_lossy(),
            "--corpus",
            &corpus.to_string_lossy(),
        ])
        .args(["--lang", &args.corpus.lang, "--threads", &threads])
        .args(
            args.corpus
                .limit
                .map(|l| vec!["--limit".to_string(), l.to_string()])
                .unwrap_or_default(),
        )
        .status()?;
    anyhow::ensure!(status.success(), "faster-whisper peer failed: {status}");
    Ok(())
}

/// Peak resident memory of this process in KiB (Linux `VmHWM`).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets `VmHWM` so each batch size reports its own peak (Linux ≥ 4.0).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
