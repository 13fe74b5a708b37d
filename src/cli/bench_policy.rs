//! `hearken bench policy`: the streaming policy replayed over corpus clips in simulated time,
//! with the real model but no network and no clock. Each clip is fed in 100 ms frames and every
//! request the policy makes is transcribed before the next frame, so the run is deterministic:
//! the same audio gives the same commits. It measures what the policy costs in accuracy
//! (streamed WER against offline WER of the same clips) and `--trace` shows each hypothesis and
//! commit, which is how policy changes are tuned.
//!
//! It also gives the policy's own latency, which no amount of compute removes: the commit lag
//! in simulated time (for each committed word, the audio received when it was committed minus
//! the word's end), and what the requests cost the model (audio seconds per request, model
//! time per phase), the load side of live capacity.

use clap::Args;

use super::corpus_run::{CorpusArgs, LoadedClip, percentile};
use super::load::{ModelArgs, VadArgs};
use crate::engine::{Engine, EngineConfig, JobOptions, WhisperBackend};
use crate::eval::{WerCounts, score};
use crate::model::whisper::decode::PhaseTimes;
use crate::session::{
    Output, SessionConfig, SessionPolicy, SpeechEvent, StreamingPolicy, TranscriptUpdate,
};
use crate::streaming::StreamJobs;

/// Frame length fed to the policy.
const FRAME_SECONDS: f64 = 0.1;

/// Arguments of `hearken bench policy`.
#[derive(Debug, Args)]
pub(super) struct PolicyArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Only these clips (ids from the manifest).
    #[arg(long, value_delimiter = ',')]
    clip: Vec<String>,
    /// Print every request, hypothesis and update.
    #[arg(long)]
    trace: bool,
    /// Utterance audio that makes its first request due (the session default: 0.7 s).
    #[arg(long)]
    first_chunk_seconds: Option<f64>,
    /// Which words commit before an utterance ends: local-agreement (the default) or
    /// align-att.
    #[arg(long, default_value = "local-agreement")]
    policy: StreamingPolicy,
    /// AlignAtt only: how close to the end of the heard audio a committed word may end, in
    /// seconds (default 0.8).
    #[arg(long)]
    align_att_margin: Option<f64>,
    #[command(flatten)]
    vad: VadArgs,
}

pub(super) fn policy(args: PolicyArgs) -> anyhow::Result<()> {
    let model = args.model.load()?;
    let clips: Vec<LoadedClip> = args
        .corpus
        .load()?
        .into_iter()
        .filter(|c| args.clip.is_empty() || args.clip.contains(&c.clip.id))
        .collect();
    anyhow::ensure!(!clips.is_empty(), "no clips selected");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let engine = Engine::start(WhisperBackend::from(model), EngineConfig::default());
    let mut config = SessionConfig::default();
    config.vad.detector = args.vad.detector()?;
    if let Some(first) = args.first_chunk_seconds {
        config.first_chunk_seconds = first;
    }
    config.policy = match (args.policy, args.align_att_margin) {
        (StreamingPolicy::AlignAtt { .. }, Some(margin_seconds)) => {
            StreamingPolicy::AlignAtt { margin_seconds }
        }
        (_, Some(_)) => anyhow::bail!("--align-att-margin needs --policy align-att"),
        (policy, None) => policy,
    };
    config.validate()?;
    let session = args.corpus.job()?;
    println!(
        "hearken bench policy: {}, vad {}, first request at {} s",
        config.policy,
        config.vad.detector.name(),
        config.first_chunk_seconds
    );
    let mut total = WerCounts::default();
    let (mut requests, mut request_audio_s) = (0, 0.0);
    let (mut lags, mut first_words) = (Vec::new(), Vec::new());
    let phases_before = PhaseTimes::now();
    for clip in &clips {
        let replay = runtime.block_on(replay(&engine, clip, &config, &session, args.trace))?;
        requests += replay.requests;
        request_audio_s += replay.request_audio_s;
        lags.extend_from_slice(&replay.commit_lags);
        first_words.extend_from_slice(&replay.first_words_lags);
        let counts = score(&clip.clip.lang, &clip.clip.text, &replay.text);
        println!(
            "{:<32} {:>3}/{:<3} errors  {:>3} requests",
            clip.clip.id,
            counts.errors(),
            counts.reference_words,
            replay.requests
        );
        if counts.errors() > 0 {
            println!("    ref: {}\n    hyp: {}", clip.clip.text, replay.text);
        }
        total += counts;
    }
    println!(
        "streamed WER {:.2} % ({} errors / {} words), {} clips, {} requests",
        100.0 * total.wer(),
        total.errors(),
        total.reference_words,
        clips.len(),
        requests
    );
    let phases = PhaseTimes::now().since(&phases_before);
    let audio_s = clips.iter().map(|c| c.samples.len()).sum::<usize>() as f64
        / f64::from(crate::audio::WHISPER_SAMPLE_RATE);
    let quantile = |values: &mut Vec<f64>, q: f64| {
        percentile(values, q).map_or("-".into(), |l: f64| format!("{l:.2} s"))
    };
    println!(
        "policy commit lag (simulated time, no compute) p50 {} p90 {}; {:.2} requests and \
         {:.1} s of request audio per second of stream",
        quantile(&mut lags, 0.5),
        quantile(&mut lags, 0.9),
        requests as f64 / audio_s,
        request_audio_s / audio_s,
    );
    println!(
        "policy first words lag (simulated time: audio received when an utterance first shows \
         text minus its speech onset) p50 {}",
        quantile(&mut first_words, 0.5)
    );
    println!(
        "model time {:.3} s per second of stream, {:.0} ms per request: {phases}",
        phases.total_s() / audio_s,
        1e3 * phases.total_s() / requests.max(1) as f64,
    );
    Ok(())
}

/// What replaying one clip produced.
pub(super) struct Replay {
    /// The finals joined, as a client would show them.
    pub(super) text: String,
    /// The language of each utterance that ended with text, in order.
    pub(super) languages: Vec<String>,
    requests: usize,
    /// Seconds of audio over every request.
    request_audio_s: f64,
    /// Per committed word: audio received when it was committed minus the word's end.
    commit_lags: Vec<f64>,
    /// Per utterance that showed text: audio received when it first did minus its speech
    /// onset (the VAD's `SpeechStarted`; the word timings put the first word's start early,
    /// in the pre-roll).
    first_words_lags: Vec<f64>,
    /// Speech onset of utterances that have not shown text yet.
    onsets: std::collections::HashMap<u64, f64>,
    /// Committed words so far, per utterance.
    committed: std::collections::HashMap<u64, usize>,
}

/// Streams `clip` through the policy with `session`'s job options, as one live session would
/// be served.
pub(super) async fn replay(
    engine: &Engine,
    clip: &LoadedClip,
    config: &SessionConfig,
    session: &JobOptions,
    trace: bool,
) -> anyhow::Result<Replay> {
    let mut policy = SessionPolicy::new(config.clone())?;
    let mut jobs = StreamJobs::new(session.clone(), engine.model().multilingual);
    let mut out = Replay {
        text: String::new(),
        languages: Vec::new(),
        requests: 0,
        request_audio_s: 0.0,
        commit_lags: Vec::new(),
        first_words_lags: Vec::new(),
        onsets: Default::default(),
        committed: Default::default(),
    };
    let frame = (FRAME_SECONDS * 16_000.0) as usize;
    for samples in clip.samples.chunks(frame) {
        policy.push_audio(samples);
        drain(engine, &mut policy, &mut jobs, &mut out, trace).await?;
    }
    policy.finalize();
    drain(engine, &mut policy, &mut jobs, &mut out, trace).await?;
    Ok(out)
}

/// Runs every request the policy has made, feeding results back until it has nothing to do.
async fn drain(
    engine: &Engine,
    policy: &mut SessionPolicy,
    jobs: &mut StreamJobs,
    out: &mut Replay,
    trace: bool,
) -> anyhow::Result<()> {
    while let Some(output) = policy.poll() {
        match output {
            Output::Transcribe(request) => {
                if let Some(hypothesis) = jobs.answer_without_model(&request) {
                    policy.submit(request.request_id, hypothesis);
                    continue;
                }
                out.requests += 1;
                out.request_audio_s += request.duration_seconds();
                let options = jobs.options(&request);
                let transcript = engine
                    .submit(request.audio.as_slice().into(), &options)?
                    .transcript()
                    .await?;
                let hypothesis = jobs.on_transcript(&request, &transcript);
                if trace {
                    println!(
                        "  request {} [{:.2}..{:.2}]{} {} prompt {:?}\n    hyp: {}",
                        request.request_id,
                        request.audio_start_seconds,
                        request.audio_start_seconds + request.duration_seconds(),
                        if request.is_final { " final" } else { "" },
                        language_label(&transcript),
                        request.prompt,
                        timed_text(&hypothesis.words, request.audio_start_seconds)
                    );
                }
                policy.submit(request.request_id, hypothesis);
            }
            Output::Update(update) => {
                if trace {
                    print_update(&update);
                }
                let now = policy.stream_seconds();
                if !update.text().trim().is_empty()
                    && let Some(onset) = out.onsets.remove(&update.utterance_id)
                {
                    out.first_words_lags.push((now - onset).max(0.0));
                }
                let before = out
                    .committed
                    .insert(update.utterance_id, update.committed_words)
                    .unwrap_or(0);
                out.commit_lags.extend(
                    update.words[before.min(update.committed_words)..update.committed_words]
                        .iter()
                        .map(|w| (now - w.end).max(0.0)),
                );
                if update.is_final {
                    let text = update.committed.trim();
                    if !text.is_empty() {
                        out.languages.push(jobs.language().to_string());
                        if !out.text.is_empty() {
                            out.text.push(' ');
                        }
                        out.text.push_str(text);
                    }
                }
            }
            Output::Speech(event) => {
                jobs.on_speech(&event);
                if let SpeechEvent::Started {
                    utterance_id,
                    at_seconds,
                } = event
                {
                    out.onsets.insert(utterance_id, at_seconds);
                }
                if trace {
                    println!("  {event:?}");
                }
            }
        }
    }
    Ok(())
}

/// The transcript's language, with the detection's probability when it was detected.
fn language_label(transcript: &crate::model::whisper::decode::Transcript) -> String {
    match transcript.language_probability {
        Some(p) => format!("{} ({p:.2})", transcript.language),
        None => transcript.language.clone(),
    }
}

fn timed_text(words: &[crate::session::TimedWord], offset: f64) -> String {
    words
        .iter()
        .map(|w| format!("{}@{:.2}-{:.2}", w.text, w.start + offset, w.end + offset))
        .collect::<Vec<_>>()
        .join("")
}

fn print_update(update: &TranscriptUpdate) {
    println!(
        "    update u{} r{}{}: committed +{:?} | tentative {:?}",
        update.utterance_id,
        update.revision,
        if update.is_final { " FINAL" } else { "" },
        update.committed_delta,
        update.tentative
    );
}
