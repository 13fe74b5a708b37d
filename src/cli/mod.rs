//! The `hearken` command line: argument parsing and one module per subcommand.
//!
//! Subcommands only wire library pieces together and print; model, decoding and formatting
//! logic lives in the library so the servers reuse it.

mod bench;
mod bench_long;
mod bench_policy;
mod bench_stream;
mod bench_vad;
mod corpus_run;
mod demo;
mod keys;
mod load;
mod loadgen;
mod models;
mod serve;
mod stream;
mod transcribe;
mod wer;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The version line: crate version plus the git revision it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("HEARKEN_GIT_REVISION"),
    ")"
);

/// Self-hosted speech-to-text with Whisper.
#[derive(Debug, Parser)]
#[command(name = "hearken", version = VERSION, about)]
pub struct Cli {
    /// CPU threads for model math (default: all cores).
    #[arg(long, global = true, env = "HEARKEN_THREADS")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Transcribe an audio file (wav, flac, mp3, ogg, m4a) and print the transcript.
    Transcribe(transcribe::TranscribeArgs),
    /// Serve, stream a file to the server over gRPC and HTTP, print the results, keep serving.
    Demo(demo::DemoArgs),
    /// Serve the gRPC speech API (native gRPC and grpc-web on one port).
    Serve(serve::ServeArgs),
    /// Stream a file or stdin to a remote hearken and print the transcript as it settles.
    Stream(stream::StreamArgs),
    /// List known models and which are cached locally.
    Models(models::ModelsArgs),
    /// Benchmarks: real-time factor, WER and peak memory on the speech corpus.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Load a speech server (hearken's gRPC, OpenAI Realtime or HTTP) with sessions of real
    /// speech and measure latency, commit lag, WER and capacity.
    Loadgen(loadgen::LoadgenArgs),
    /// Word error rate of the transcripts of the corpus, clip by clip and overall.
    Wer(wer::WerArgs),
    /// API keys for the tenants file of `serve --tenants`.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Parses the command line and runs it; errors are printed with their causes.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets logging up itself, with its OpenTelemetry exporters.
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) {
        crate::telemetry::init_logging(None);
    }
    // Unset, candle counts the physical cores again (reading /proc/cpuinfo) on every matmul;
    // pinning its own answer makes Silero VAD's many small products 4x cheaper.
    if let Some(threads) = cli.threads.or_else(|| {
        std::env::var_os("RAYON_NUM_THREADS")
            .is_none()
            .then(candle_core::utils::get_num_threads)
    }) {
        set_threads(threads);
    }
    let result = match cli.command {
        Command::Transcribe(args) => transcribe::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Stream(args) => stream::run(args),
        Command::Models(args) => models::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Wer(args) => wer::run(args),
        Command::Loadgen(args) => loadgen::run(args),
        Command::Keys(cmd) => keys::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The math kernels (gemm, via rayon) read their thread count from the environment once.
fn set_threads(threads: usize) {
    // SAFETY: called at start-up, before any other thread exists.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.max(1).to_string()) };
}
