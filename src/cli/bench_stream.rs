//! `hearken bench stream`: N concurrent gRPC streaming sessions against an in-process server,
//! each sending corpus clips in 100 ms LINEAR16 frames; prints time to first interim (from the
//! stream's start, and from when its speech onset's audio was sent), commit
//! lag (p50/p90: when a word's `committed_delta` arrived minus when the end of its audio was
//! sent, from the word timings), final latency after the end of audio (p50/p95), mean batch
//! size and streamed WER against the offline WER of the same clips, per N; `--json FILE`
//! writes the same per N. The sessions are the load generator's ([`crate::loadgen`], the
//! same code `hearken loadgen grpc://...` runs), so there is one way of measuring a stream.
//!
//! With `--background-file`, a whole file is transcribed over and over (`Recognize`) while
//! the streams run, as a server also taking uploads would; `--live-priority on,off` measures
//! the scheduler with and without live requests going ahead of such files, in one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::corpus_run::CorpusArgs;
use super::load::{ModelArgs, VadArgs, WorkerArgs};
use crate::engine::EngineConfig;
use crate::engine::WhisperBackend;
use crate::eval::{WerCounts, english_wer};
use crate::grpc::ServerOptions;
use crate::grpc::proto::RecognitionConfig;
use crate::grpc::proto::speech_client::SpeechClient;
use crate::loadgen::{
    Aggregate, Clip, Outcome, Pace, Round, RunOptions, SessionRecord, Target, Workload, run_round,
};
use crate::model::whisper::decode::PhaseTimes;
use crate::model::whisper::precision::CpuPrecision;
use crate::server::{RunningServer, ServeConfig};
use crate::service::Limits;
use crate::session::StreamingPolicy;

/// The capacity goal a session count must meet to count as sustained: commit lag p50 / p90,
/// final latency p95, first interim p50 (seconds, from when the speech onset's audio was sent:
/// the silence a clip starts with is the recording's, not the server's), and streamed WER as a
/// multiple of offline.
const GOAL: RoundGoal = RoundGoal {
    commit_p50_s: 2.0,
    commit_p90_s: 4.0,
    final_p95_s: 2.0,
    first_words_p50_s: 1.0,
    wer_ratio: 1.15,
};

struct RoundGoal {
    commit_p50_s: f64,
    commit_p90_s: f64,
    final_p95_s: f64,
    first_words_p50_s: f64,
    wer_ratio: f64,
}

impl RoundGoal {
    /// What `round` misses of the goal; empty when it meets all of it.
    fn misses(&self, round: &RoundSummary) -> Vec<&'static str> {
        let within = |v: Option<f64>, limit: f64| v.is_some_and(|v| v <= limit);
        [
            (
                within(round.commit_lag_p50_s, self.commit_p50_s),
                "commit p50",
            ),
            (
                within(round.commit_lag_p90_s, self.commit_p90_s),
                "commit p90",
            ),
            (within(round.final_p95_s, self.final_p95_s), "final p95"),
            (
                within(round.first_words_p50_s, self.first_words_p50_s),
                "first words",
            ),
            (round.wer <= self.wer_ratio * round.offline_wer, "WER"),
        ]
        .into_iter()
        .filter(|(met, _)| !met)
        .map(|(_, name)| name)
        .collect()
    }
}

/// Arguments of `hearken bench stream`.
#[derive(Debug, Args)]
pub(super) struct StreamArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    corpus: CorpusArgs,
    #[command(flatten)]
    workers: WorkerArgs,
    #[command(flatten)]
    vad: VadArgs,
    /// Concurrent sessions to measure, one round per value.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    sessions: Vec<usize>,
    /// Send audio at real-time pace (otherwise as fast as backpressure allows).
    #[arg(long)]
    realtime: bool,
    /// Most clips each session streams, one after another (default: the sessions share the
    /// corpus, each clip streamed once).
    #[arg(long)]
    clips_per_session: Option<usize>,
    /// Most windows per model call.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Longest the scheduler waits after the oldest queued job for a fuller batch.
    #[arg(long, default_value_t = 20)]
    max_wait_ms: u64,
    /// Print each clip's WER, and its reference and streamed transcript when they differ.
    #[arg(long)]
    per_clip: bool,
    /// An audio file transcribed again and again, as a whole, while the streams run.
    #[arg(long, value_name = "FILE")]
    background_file: Option<std::path::PathBuf>,
    /// Scheduler settings to measure in turn: `on` runs live requests ahead of whole files
    /// (the server's behaviour), `off` serves every job first come, first served.
    #[arg(long, value_delimiter = ',', default_value = "on")]
    live_priority: Vec<Switch>,
    /// Streaming policies to measure in turn, each against a fresh server: `local-agreement`
    /// (the default), `align-att`.
    #[arg(long, value_delimiter = ',', default_value = "local-agreement")]
    policy: Vec<StreamingPolicy>,
    /// Precisions of the CPU's products to measure in turn, each against a fresh server
    /// (`auto`, `f32`, `bf16`, `int8`); replaces `--precision`, which sets a single one.
    #[arg(long, value_delimiter = ',')]
    precisions: Vec<CpuPrecision>,
    /// Also write the figures of every round to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
}

/// The figures of one round (one session count), as printed and as `--json` writes them.
#[derive(Debug, serde::Serialize)]
struct RoundSummary {
    sessions: usize,
    live_priority: bool,
    /// The streaming policy the sessions asked for.
    policy: &'static str,
    /// What the CPU's matrix products ran in (`--precision` resolved on this CPU).
    products: String,
    clips: usize,
    /// From the stream's start to its first non-empty interim.
    first_interim_p50_s: Option<f64>,
    /// From when the frame holding the clip's speech onset was sent (the server VAD's first
    /// `SPEECH_STARTED`; word timings put a first word's start early, in the pre-roll) to the
    /// first non-empty interim.
    first_words_p50_s: Option<f64>,
    commit_lag_p50_s: Option<f64>,
    commit_lag_p90_s: Option<f64>,
    final_p50_s: Option<f64>,
    final_p95_s: Option<f64>,
    mean_batch: f64,
    wer: f64,
    offline_wer: f64,
    background_rtf: Option<f64>,
    /// Where the model's time went in this round.
    model_phases: PhaseTimes,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

pub(super) fn stream(args: StreamArgs) -> anyhow::Result<()> {
    let clips: Vec<Clip> = args
        .corpus
        .load()?
        .into_iter()
        .map(|c| Clip::new(c.clip.id, Some(c.clip.lang), c.samples, Some(c.clip.text)))
        .collect();
    let clips = Arc::new(clips);
    anyhow::ensure!(!clips.is_empty(), "no clips selected");
    let background = match &args.background_file {
        Some(path) => Some(Arc::new(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let precisions = match args.precisions.is_empty() {
        true => vec![args.model.precision],
        false => args.precisions.clone(),
    };
    let mut rounds = Vec::new();
    for &priority in &args.live_priority {
        for &policy in &args.policy {
            for &precision in &precisions {
                let settings = Settings {
                    live_priority: priority,
                    policy,
                    precision,
                };
                let background = background.clone();
                rounds.extend(runtime.block_on(measure(&args, &clips, background, settings))?);
            }
        }
    }
    if let Some(path) = &args.json {
        let (workers, threads_per_worker) = args.workers.engine();
        let report = serde_json::json!({
            "model": args.model.model,
            "clips": clips.len(),
            "pace": if args.realtime { "real-time" } else { "fast" },
            "max_batch": args.max_batch,
            "max_wait_ms": args.max_wait_ms,
            "model_workers": workers,
            "threads_per_worker": threads_per_worker,
            "background_file": args.background_file,
            "rounds": rounds,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// What one fresh server of a `bench stream` run is set to.
#[derive(Debug, Clone, Copy)]
struct Settings {
    live_priority: Switch,
    policy: StreamingPolicy,
    precision: CpuPrecision,
}

/// Every session count of `args` against a fresh server with `settings`.
async fn measure(
    args: &StreamArgs,
    clips: &Arc<Vec<Clip>>,
    background: Option<Arc<Vec<u8>>>,
    settings: Settings,
) -> anyhow::Result<Vec<RoundSummary>> {
    let Settings {
        live_priority,
        policy,
        precision,
    } = settings;
    let model = ModelArgs {
        precision,
        ..args.model.clone()
    }
    .load()?;
    let products = model.network.products().to_string();
    let (workers, threads_per_worker) = args.workers.engine();
    let config = ServeConfig {
        grpc_addr: "127.0.0.1:0".parse()?,
        http_addr: None,
        model_id: args.model.id(),
        device: args.model.device.to_string(),
        engine: EngineConfig {
            max_batch: args.max_batch,
            max_wait: Duration::from_millis(args.max_wait_ms),
            live_priority: live_priority == Switch::On,
            workers,
            threads_per_worker,
            ..EngineConfig::default()
        },
        limits: Limits::default(),
        origins: Default::default(),
        tenants: None,
        tls: None,
        metrics_addr: None,
        transport: ServerOptions::default(),
        shutdown_grace: Duration::from_secs(5),
        shutdown_finalize: Duration::from_secs(5),
        vad: args.vad.detector()?,
        long_files: crate::service::LongFiles::default(),
    };
    let config_vad = config.vad.name();
    let server = RunningServer::start(WhisperBackend::from(model), config).await?;
    println!(
        "hearken bench stream: model {}, {} clips, {} pace, {} worker(s) × {} thread(s), \
         max batch {}, max wait {} ms, live priority {}, vad {}, policy {}, {products} products{}",
        args.model.model,
        clips.len(),
        if args.realtime { "real-time" } else { "fast" },
        workers,
        threads_per_worker.unwrap_or_else(rayon::current_num_threads),
        args.max_batch,
        args.max_wait_ms,
        if live_priority == Switch::On {
            "on"
        } else {
            "off"
        },
        config_vad,
        policy,
        match &args.background_file {
            Some(path) => format!(", background file {}", path.display()),
            None => String::new(),
        }
    );
    let offline_wer = offline_wer(&server, clips).await?;
    println!("offline WER of these clips: {:.2} %", 100.0 * offline_wer);
    println!(
        "{:>8} {:>6} {:>9} {:>11} {:>10} {:>10} {:>9} {:>9} {:>6} {:>7} {:>7}",
        "sessions",
        "clips",
        "first int",
        "first words",
        "commit p50",
        "commit p90",
        "final p50",
        "final p95",
        "batch",
        "WER",
        "bg RTF"
    );
    let mut sustained = None;
    let mut summaries = Vec::new();
    for &n in &args.sessions {
        let before = server.engine().stats();
        let phases_before = PhaseTimes::now();
        let uploads = background
            .clone()
            .map(|file| spawn_background(&server, file));
        let started = Instant::now();
        let results = round(&server, clips, n, args, policy).await?;
        let background_rtf = match uploads {
            Some(task) => task.stop().await?,
            None => None,
        };
        let after = server.engine().stats();
        let model_phases = PhaseTimes::now().since(&phases_before);
        let batches = after.batches - before.batches;
        let mean_batch = if batches == 0 {
            0.0
        } else {
            (after.rows - before.rows) as f64 / batches as f64
        };
        let wall_s = started.elapsed().as_secs_f64();
        let aggregate = Aggregate::of(&Round {
            workload: Workload::Concurrency(n),
            wall_s,
            sessions: results.clone(),
        });
        let summary = RoundSummary {
            sessions: n,
            live_priority: live_priority == Switch::On,
            policy: policy.name(),
            products: products.clone(),
            clips: results.len(),
            first_interim_p50_s: aggregate.first_interim_s.p50,
            first_words_p50_s: aggregate.first_words_s.p50,
            commit_lag_p50_s: aggregate.commit_lag_s.p50,
            commit_lag_p90_s: aggregate.commit_lag_s.p90,
            final_p50_s: aggregate.final_latency_s.p50,
            final_p95_s: aggregate.final_latency_s.p95,
            mean_batch,
            wer: aggregate.wer.unwrap_or_default(),
            offline_wer,
            background_rtf,
            model_phases,
        };
        print_row(&summary);
        println!("{:>8} model time: {model_phases}", "");
        if args.per_clip {
            print_clips(&results, clips);
        }
        let misses = GOAL.misses(&summary);
        match misses.is_empty() {
            true => sustained = sustained.max(Some(n)),
            false => println!("         misses the goal on: {}", misses.join(", ")),
        }
        summaries.push(summary);
    }
    let goal = format!(
        "commit lag p50 <= {} s and p90 <= {} s, final p95 <= {} s, first interim p50 <= {} s \
         after speech onset, \
         WER <= {}x offline",
        GOAL.commit_p50_s,
        GOAL.commit_p90_s,
        GOAL.final_p95_s,
        GOAL.first_words_p50_s,
        GOAL.wer_ratio
    );
    match sustained {
        Some(n) => println!("largest N meeting the goal ({goal}): {n}"),
        None => println!("no measured N met the goal ({goal})"),
    }
    server.shutdown().await?;
    Ok(summaries)
}

fn print_row(s: &RoundSummary) {
    let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} s"));
    println!(
        "{:>8} {:>6} {:>9} {:>11} {:>10} {:>10} {:>9} {:>9} {:>6.2} {:>6.2}% {:>7}",
        s.sessions,
        s.clips,
        secs(s.first_interim_p50_s),
        secs(s.first_words_p50_s),
        secs(s.commit_lag_p50_s),
        secs(s.commit_lag_p90_s),
        secs(s.final_p50_s),
        secs(s.final_p95_s),
        s.mean_batch,
        100.0 * s.wer,
        s.background_rtf
            .map_or("-".into(), |rtf| format!("{rtf:.3}"))
    );
}

/// The WER of the clips transcribed whole (`Recognize`) by the same server: what streaming
/// is measured against.
async fn offline_wer(server: &RunningServer, clips: &[Clip]) -> anyhow::Result<f64> {
    let mut client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await?
        .max_encoding_message_size(64 << 20);
    let mut total = WerCounts::default();
    for clip in clips {
        let request = crate::grpc::proto::RecognizeRequest {
            config: Some(RecognitionConfig {
                encoding: crate::grpc::proto::AudioEncoding::Linear16 as i32,
                sample_rate_hertz: crate::audio::WHISPER_SAMPLE_RATE,
                ..Default::default()
            }),
            audio: crate::audio::f32_to_pcm16le(&clip.samples),
        };
        let text = client.recognize(request).await?.into_inner().text;
        total += english_wer(clip.reference.as_deref().unwrap_or_default(), &text);
    }
    Ok(total.wer())
}

/// A whole file transcribed over and over beside the streams.
struct Background {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<Option<f64>>>,
}

impl Background {
    /// Stops after the transcription under way; the real-time factor of the finished ones
    /// (wall time over audio time), `None` if none finished.
    async fn stop(self) -> anyhow::Result<Option<f64>> {
        let _ = self.stop.send(());
        self.task.await.context("background task")?
    }
}

fn spawn_background(server: &RunningServer, file: Arc<Vec<u8>>) -> Background {
    let addr = format!("http://{}", server.grpc_addr);
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut client = SpeechClient::connect(addr)
            .await?
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let (mut wall, mut audio) = (0.0, 0.0);
        loop {
            let started = Instant::now();
            let request = crate::grpc::proto::RecognizeRequest {
                config: None,
                audio: file.to_vec(),
            };
            let response = client.recognize(request).await?.into_inner();
            wall += started.elapsed().as_secs_f64();
            audio += response.duration_seconds;
            if stopped.try_recv().is_ok() {
                return anyhow::Ok((audio > 0.0).then(|| wall / audio));
            }
        }
    });
    Background { stop, task }
}

/// `n` sessions through the load generator's gRPC driver, each streaming clips in turn.
async fn round(
    server: &RunningServer,
    clips: &Arc<Vec<Clip>>,
    n: usize,
    args: &StreamArgs,
    policy: StreamingPolicy,
) -> anyhow::Result<Vec<SessionRecord>> {
    let mut target = Target::parse(&format!("grpc://{}", server.grpc_addr))?;
    target.policy = Some(policy);
    let target = Arc::new(target);
    let options = RunOptions {
        pace: if args.realtime {
            Pace::RealTime
        } else {
            Pace::Fast
        },
        duration: None,
        clips_per_session: args.clips_per_session,
        seed: 1,
    };
    let round = run_round(&target, clips, Workload::Concurrency(n), &options).await?;
    if let Some(failed) = round
        .sessions
        .iter()
        .find(|s| s.outcome != Outcome::Completed)
    {
        anyhow::bail!(
            "a session of {} failed: {}: {}",
            failed.clip,
            failed.code.as_deref().unwrap_or_default(),
            failed.message.as_deref().unwrap_or_default()
        );
    }
    Ok(round.sessions)
}

/// Per-clip WER lines, with both transcripts for clips that have errors.
fn print_clips(results: &[SessionRecord], clips: &[Clip]) {
    for r in results {
        let lags = crate::loadgen::Percentiles::of(r.commit_lags_s.clone());
        let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        println!(
            "  {:<32} {:>3}/{:<3} errors  final after {} s  commit lag p50/p90 {}/{} s",
            r.clip,
            r.errors.unwrap_or_default(),
            r.reference_words.unwrap_or_default(),
            secs(r.final_latency_s),
            secs(lags.p50),
            secs(lags.p90),
        );
        if r.errors.unwrap_or_default() > 0 {
            let reference = clips
                .iter()
                .find(|c| c.id == r.clip)
                .and_then(|c| c.reference.as_deref())
                .unwrap_or_default();
            println!("    ref: {reference}\n    hyp: {}", r.hypothesis);
        }
    }
}
