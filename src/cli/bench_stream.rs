//! `hearken bench stream`: N concurrent gRPC streaming sessions against an in-process server,
//! each sending corpus clips in 100 ms LINEAR16 frames; prints time to first interim (from the
//! stream's start, and from when its speech onset's audio was sent), commit
//! lag (p50/p90: when a word's `committed_delta` arrived minus when the end of its audio was
//! sent, from the word timings), final latency after the end of audio (p50/p95), mean batch
//! size and streamed WER against the offline WER of the same clips, per N; `--json FILE`
//! writes the same per N.
//!
//! With `--background-file`, a whole file is transcribed over and over (`Recognize`) while
//! the streams run, as a server also taking uploads would; `--live-priority on,off` measures
//! the scheduler with and without live requests going ahead of such files, in one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio_stream::StreamExt;

use super::corpus_run::{CorpusArgs, LoadedClip, percentile};
use super::load::{ModelArgs, VadArgs, WorkerArgs};
use crate::engine::EngineConfig;
use crate::engine::WhisperBackend;
use crate::eval::{WerCounts, english_wer};
use crate::grpc::ServerOptions;
use crate::grpc::client::pcm16_stream;
use crate::grpc::proto::RecognitionConfig;
use crate::grpc::proto::speech_client::SpeechClient;
use crate::grpc::proto::speech_event::Kind;
use crate::grpc::proto::streaming_recognize_response::Event;
use crate::model::whisper::decode::PhaseTimes;
use crate::server::{RunningServer, ServeConfig};
use crate::service::Limits;

/// Frame length sent by each simulated client.
const FRAME_SECONDS: f64 = 0.1;
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
    /// Also write the figures of every round to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
}

/// The figures of one round (one session count), as printed and as `--json` writes them.
#[derive(Debug, serde::Serialize)]
struct RoundSummary {
    sessions: usize,
    live_priority: bool,
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

/// What one streamed clip measured.
#[derive(Debug, Clone)]
struct ClipResult {
    clip_id: String,
    reference: String,
    hypothesis: String,
    first_interim: Option<Duration>,
    /// From the speech onset's audio to the first interim (see [`RoundSummary`]).
    first_words: Option<Duration>,
    /// For each committed word: when it arrived minus when the end of its audio was sent.
    commit_lags: Vec<Duration>,
    final_latency: Duration,
    counts: WerCounts,
}

pub(super) fn stream(args: StreamArgs) -> anyhow::Result<()> {
    let clips = Arc::new(args.corpus.load()?);
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
    let mut rounds = Vec::new();
    for &priority in &args.live_priority {
        rounds.extend(runtime.block_on(measure(&args, &clips, background.clone(), priority))?);
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

/// Every session count of `args` against a fresh server with `live_priority`.
async fn measure(
    args: &StreamArgs,
    clips: &Arc<Vec<LoadedClip>>,
    background: Option<Arc<Vec<u8>>>,
    live_priority: Switch,
) -> anyhow::Result<Vec<RoundSummary>> {
    let model = args.model.load()?;
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
        vad: args.vad.detector()?,
        long_files: crate::service::LongFiles::default(),
    };
    let config_vad = config.vad.name();
    let server = RunningServer::start(WhisperBackend::from(model), config).await?;
    println!(
        "hearken bench stream: model {}, {} clips, {} pace, {} worker(s) × {} thread(s), \
         max batch {}, max wait {} ms, live priority {}, vad {}{}",
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
        let results = round(&server, clips, n, args.clips_per_session, args.realtime).await?;
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
        let mut interims: Vec<Duration> = results.iter().filter_map(|r| r.first_interim).collect();
        let mut first_words: Vec<Duration> = results.iter().filter_map(|r| r.first_words).collect();
        let mut finals: Vec<Duration> = results.iter().map(|r| r.final_latency).collect();
        let mut lags: Vec<Duration> = results
            .iter()
            .flat_map(|r| r.commit_lags.iter().copied())
            .collect();
        let total = results
            .iter()
            .fold(WerCounts::default(), |acc, r| acc + r.counts);
        let seconds = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let summary = RoundSummary {
            sessions: n,
            live_priority: live_priority == Switch::On,
            clips: results.len(),
            first_interim_p50_s: seconds(percentile(&mut interims, 0.5)),
            first_words_p50_s: seconds(percentile(&mut first_words, 0.5)),
            commit_lag_p50_s: seconds(percentile(&mut lags, 0.5)),
            commit_lag_p90_s: seconds(percentile(&mut lags, 0.9)),
            final_p50_s: seconds(percentile(&mut finals, 0.5)),
            final_p95_s: seconds(percentile(&mut finals, 0.95)),
            mean_batch,
            wer: total.wer(),
            offline_wer,
            background_rtf,
            model_phases,
        };
        print_row(&summary);
        println!("{:>8} model time: {model_phases}", "");
        if args.per_clip {
            print_clips(&results);
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
async fn offline_wer(server: &RunningServer, clips: &[LoadedClip]) -> anyhow::Result<f64> {
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
        total += english_wer(&clip.clip.text, &text);
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

/// `n` sessions, each streaming `per_session` clips in turn.
async fn round(
    server: &RunningServer,
    clips: &Arc<Vec<LoadedClip>>,
    n: usize,
    per_session: Option<usize>,
    realtime: bool,
) -> anyhow::Result<Vec<ClipResult>> {
    let client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await?
        .max_decoding_message_size(64 << 20);
    let mut tasks = Vec::new();
    for session in 0..n {
        let (mut client, clips) = (client.clone(), Arc::clone(clips));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let turns = per_session
                .unwrap_or_else(|| clips.len().div_ceil(n))
                .max(1);
            for k in 0..turns {
                let index = session + k * n;
                if per_session.is_none() && index >= clips.len() {
                    break;
                }
                let clip = &clips[index % clips.len()];
                out.push(stream_clip(&mut client, clip, realtime).await?);
            }
            anyhow::Ok(out)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.context("session task")??);
    }
    Ok(results)
}

async fn stream_clip(
    client: &mut SpeechClient<tonic::transport::Channel>,
    clip: &LoadedClip,
    realtime: bool,
) -> anyhow::Result<ClipResult> {
    let started = Instant::now();
    let config = RecognitionConfig {
        interim_results: true,
        word_timestamps: true,
        ..Default::default()
    };
    let (requests, audio_done) = pcm16_stream(
        config,
        &clip.samples,
        Duration::from_secs_f64(FRAME_SECONDS),
        realtime,
    );
    let mut responses = client.streaming_recognize(requests).await?.into_inner();
    let (mut first_interim, mut finals, mut last_final) = (None, Vec::new(), started);
    // The first utterance's speech onset, as the server's VAD places it (stream seconds).
    let mut speech_onset: Option<f64> = None;
    // Words committed so far per utterance, and each committed word's arrival and end.
    let mut committed_words = std::collections::HashMap::new();
    let mut commits: Vec<(Instant, f64)> = Vec::new();
    while let Some(response) = responses.next().await {
        let event = response?.event;
        if let Some(Event::Speech(speech)) = &event
            && speech.kind() == Kind::SpeechStarted
        {
            speech_onset.get_or_insert(speech.time);
        }
        if let Some(Event::Transcript(t)) = event {
            // `words` lists the committed words first, one per word of `committed`.
            let count = t.committed.split_whitespace().count();
            let before = committed_words.insert(t.utterance_id, count).unwrap_or(0);
            let arrived = Instant::now();
            commits.extend(
                t.words
                    .iter()
                    .take(count)
                    .skip(before)
                    .map(|w| (arrived, w.end)),
            );
            let text = format!("{}{}", t.committed, t.tentative);
            if first_interim.is_none() && !t.is_final && !text.trim().is_empty() {
                first_interim = Some(arrived);
            }
            if t.is_final {
                finals.push(t.committed.trim().to_string());
                last_final = Instant::now();
            }
        }
    }
    let sent = audio_done.await.unwrap_or_default();
    let audio_end = sent.last().copied().unwrap_or(started);
    let commit_lags = commits
        .iter()
        .filter_map(|&(arrived, end)| {
            // The frame that carried the word's last sample; its send time ends the word.
            let frame = ((end / FRAME_SECONDS).ceil() as usize).saturating_sub(1);
            let sent_at = sent.get(frame).or(sent.last())?;
            Some(arrived.saturating_duration_since(*sent_at))
        })
        .collect();
    let first_words = first_interim.zip(speech_onset).and_then(|(at, start)| {
        let frame = (start / FRAME_SECONDS).floor() as usize;
        Some(at.saturating_duration_since(*sent.get(frame)?))
    });
    let hypothesis = finals.join(" ");
    Ok(ClipResult {
        clip_id: clip.clip.id.clone(),
        reference: clip.clip.text.clone(),
        counts: english_wer(&clip.clip.text, &hypothesis),
        hypothesis,
        first_interim: first_interim.map(|at| at.saturating_duration_since(started)),
        first_words,
        commit_lags,
        final_latency: last_final.saturating_duration_since(audio_end),
    })
}

/// Per-clip WER lines, with both transcripts for clips that have errors.
fn print_clips(results: &[ClipResult]) {
    for r in results {
        let mut lags = r.commit_lags.clone();
        let secs =
            |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64()));
        println!(
            "  {:<32} {:>3}/{:<3} errors  final after {:.2} s  commit lag p50/p90 {}/{} s",
            r.clip_id,
            r.counts.errors(),
            r.counts.reference_words,
            r.final_latency.as_secs_f64(),
            secs(percentile(&mut lags, 0.5)),
            secs(percentile(&mut lags, 0.9)),
        );
        if r.counts.errors() > 0 {
            println!("    ref: {}\n    hyp: {}", r.reference, r.hypothesis);
        }
    }
}
