//! `hearken bench offline`: real-time factor, WER and peak memory of offline transcription on
//! the corpus at several batch sizes, with faster-whisper's figures beside ours when the
//! `faster_whisper` Python package is installed.
//!
//! Two ways of running the clips: `transcriber` hands the whole corpus to one transcriber
//! (clips batched `batch` at a time, every core on each call), `engine` submits every clip at
//! once to the serving engine (its workers, each with its own threads, batching up to `batch`
//! windows), as a server given all the files at the same time would run them, and `chunked`
//! does the same after preparing each clip as the server prepares a whole file (speech only,
//! long clips cut at pauses into chunks side by side). The long-recording rows
//! ([`super::bench_long`]) time one long recording at a time both ways.

use std::process::Command;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::corpus_run::{self, CorpusArgs, CorpusRun};
use super::load::{ModelArgs, VadArgs, WorkerArgs};
use crate::engine::{Engine, EngineConfig, WhisperBackend};
use crate::model::whisper::decode::PhaseTimes;
use crate::service::LongFiles;
use crate::session::VadConfig;

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
    /// Which ways to run the clips (see the module doc): `transcriber`, `engine`, `chunked`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "transcriber,engine,chunked"
    )]
    mode: Vec<Mode>,
    #[command(flatten)]
    workers: WorkerArgs,
    /// The speech detector of the `chunked` mode and the long recordings.
    #[command(flatten)]
    vad: VadArgs,
    /// Long recordings transcribed one at a time, window after window and in chunks side by
    /// side, on an engine batching up to the largest `--batch`: corpus clip ids, or
    /// `concat:MINUTES` (the corpus's clips end to end). `none` for no such rows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "librivox_sonnets_1_3,concat:15"
    )]
    long: Vec<String>,
    /// Also write every row's figures to this JSON file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// How `bench offline` runs the clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// One transcriber over the whole corpus, every core on each model call.
    Transcriber,
    /// Every clip submitted at once to the serving engine's workers.
    Engine,
    /// As `engine`, each clip prepared as the server prepares a whole file: its speech only,
    /// cut at pauses into chunks of up to 30 s transcribed side by side (`--long-files
    /// batched`).
    Chunked,
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
    let opts = args.corpus.options()?;
    let threads =
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| num_cpus::get().to_string());
    let products = model.network.products();
    println!(
        "hearken bench offline: model {}, device {}, {products} products, {threads} threads, {} clips",
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
    let mut rows = Vec::new();
    if args.mode.contains(&Mode::Transcriber) {
        for &batch in &args.batch {
            reset_peak_memory();
            let before = PhaseTimes::now();
            let run = corpus_run::run(&model, &clips, batch, &opts)?;
            let label = format!("transcriber {threads}t");
            rows.push(print_row(&label, batch, &run, &before));
        }
    }
    // Each engine loads its own copy; the peak memory figures count one model.
    drop(model);
    if args.mode.contains(&Mode::Engine) || args.mode.contains(&Mode::Chunked) {
        let gate = VadConfig::whole_file(args.vad.detector()?);
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
            let job = args.corpus.job()?;
            if args.mode.contains(&Mode::Engine) {
                reset_peak_memory();
                let before = PhaseTimes::now();
                let run = corpus_run::run_on_engine(&engine, &clips, |_| job.clone(), None)?;
                let label = format!("engine {workers}w x {per_worker}t");
                rows.push(print_row(&label, batch, &run, &before));
            }
            if args.mode.contains(&Mode::Chunked) {
                reset_peak_memory();
                let before = PhaseTimes::now();
                let whole_files = Some((&gate, LongFiles::Batched));
                let run = corpus_run::run_on_engine(&engine, &clips, |_| job.clone(), whole_files)?;
                let label = format!("chunked {workers}w x {per_worker}t");
                rows.push(print_row(&label, batch, &run, &before));
            }
        }
    }
    let long = long_rows(&args)?;
    if let Some(path) = &args.json {
        let report =
            serde_json::json!({ "products": products.to_string(), "corpus": rows, "long": long });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !args.no_peer {
        run_peer(&args)?;
    }
    Ok(())
}

/// The long recordings, each transcribed window after window and then in chunks side by side.
fn long_rows(args: &OfflineArgs) -> anyhow::Result<Vec<serde_json::Value>> {
    let specs: Vec<&String> = args.long.iter().filter(|s| *s != "none").collect();
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let gate = VadConfig::whole_file(args.vad.detector()?);
    let (workers, threads_per_worker) = args.workers.engine();
    let max_batch = args.batch.iter().copied().max().unwrap_or(8);
    let config = EngineConfig {
        max_batch,
        workers,
        threads_per_worker,
        ..EngineConfig::default()
    };
    let engine = Engine::start(WhisperBackend::from(args.model.load()?), config);
    let dir = args
        .corpus
        .corpus
        .clone()
        .unwrap_or_else(crate::eval::default_corpus_dir);
    println!(
        "\n{:<22} {:>9} {:>11} {:>8} {:>8} {:>8} {:>10}",
        "long recording", "audio s", "long files", "wall s", "RTF", "WER", "wall ratio"
    );
    let mut rows = Vec::new();
    for spec in specs {
        let recording = super::bench_long::recording(spec, &dir, &args.corpus.lang)?;
        let row = super::bench_long::compare(&engine, &recording, &args.corpus.job()?, &gate)?;
        for (way, run) in [("sequential", &row.sequential), ("batched", &row.batched)] {
            println!(
                "{:<22} {:>9.1} {way:>11} {:>8.2} {:>8.4} {:>7.2}% {:>10}",
                row.id,
                run.audio_seconds,
                run.wall_seconds,
                run.rtf(),
                100.0 * run.total().wer(),
                if way == "batched" {
                    format!("{:.2}", row.ratio())
                } else {
                    String::new()
                },
            );
        }
        rows.push(serde_json::json!({
            "recording": row.id,
            "audio_seconds": row.sequential.audio_seconds,
            "max_batch": max_batch,
            "workers": workers,
            "sequential": run_json(&row.sequential),
            "batched": run_json(&row.batched),
            "batched_over_sequential_wall": row.ratio(),
        }));
    }
    Ok(rows)
}

fn run_json(run: &CorpusRun) -> serde_json::Value {
    let total = run.total();
    serde_json::json!({
        "wall_seconds": run.wall_seconds,
        "rtf": run.rtf(),
        "wer": total.wer(),
        "errors": total.errors(),
        "reference_words": total.reference_words,
    })
}

/// Prints a corpus row, with the model's phases since `before` (summed over workers) under it.
fn print_row(label: &str, batch: usize, run: &CorpusRun, before: &PhaseTimes) -> serde_json::Value {
    let peak = peak_memory();
    let phases = PhaseTimes::now().since(before);
    println!(
        "{label:<22} {batch:>6} {:>9.1} {:>8.2} {:>8.4} {:>11.2}%   peak RSS {}",
        run.audio_seconds,
        run.wall_seconds,
        run.rtf(),
        100.0 * run.total().wer(),
        peak.map_or("n/a".into(), |kb| format!("{:.0} MB", kb as f64 / 1024.0)),
    );
    println!("    model: {phases}");
    let mut row = run_json(run);
    row["phases"] = serde_json::to_value(phases).unwrap_or_default();
    row["mode"] = label.into();
    row["batch"] = batch.into();
    row["audio_seconds"] = run.audio_seconds.into();
    row["peak_rss_kib"] = peak.into();
    row
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
    let long: Vec<&str> = args
        .long
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "none")
        .collect();
    if long.is_empty() {
        return Ok(());
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/bench/faster_whisper_long.py"
    );
    let status = Command::new("python3")
        .arg(script)
        .args(["--model-dir", &model_dir.to_string_lossy()])
        .args(["--corpus", &corpus.to_string_lossy()])
        .args(["--lang", &args.corpus.lang, "--threads", &threads])
        .args(["--long", &long.join(",")])
        .status()?;
    anyhow::ensure!(
        status.success(),
        "faster-whisper long recordings failed: {status}"
    );
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
