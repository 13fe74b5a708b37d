//! `hearken wer`: transcribe the corpus and print each clip's WER (CER for languages written
//! without spaces) and the figure per language, offline and, with `--streamed`, live.

use clap::Args;

use super::bench_policy::replay;
use super::corpus_run::{self, ClipScore, CorpusArgs, CorpusRun, LoadedClip};
use super::load::{ModelArgs, VadArgs};
use crate::engine::{Engine, EngineConfig, WhisperBackend};
use crate::eval::{Metric, WerCounts};
use crate::service::LongFiles;
use crate::session::{SessionConfig, VadConfig};

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
    /// Also stream each clip as a live session would be served (the streaming policy in
    /// simulated real time, as `bench policy` does) and print the streamed figure beside the
    /// offline one. The offline side then runs through the engine as the server runs a file.
    #[arg(long, conflicts_with = "speech_only")]
    streamed: bool,
    /// Write the per-language figures as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    #[command(flatten)]
    vad: VadArgs,
}

pub(super) fn run(args: WerArgs) -> anyhow::Result<()> {
    let clips = args.corpus.load()?;
    anyhow::ensure!(!clips.is_empty(), "no clips in --lang {}", args.corpus.lang);
    let (offline, streamed) = if args.long_files.is_some() || args.streamed {
        let config = EngineConfig {
            max_batch: args.batch,
            ..EngineConfig::default()
        };
        let engine = Engine::start(WhisperBackend::from(args.model.load()?), config);
        let gate = VadConfig::whole_file(args.vad.detector()?);
        let whole_files = args.long_files.map(|long_files| (&gate, long_files));
        let job_for = |clip: &_| args.corpus.job_for(clip);
        let offline = corpus_run::run_on_engine(&engine, &clips, job_for, whole_files)?;
        let streamed = args
            .streamed
            .then(|| stream_all(&engine, &clips, &args))
            .transpose()?;
        (offline, streamed)
    } else if args.speech_only {
        let gate = VadConfig::whole_file(args.vad.detector()?);
        let opts = args.corpus.options()?;
        let model = args.model.load()?;
        let offline = corpus_run::run_speech_only(&model, &clips, args.batch, &opts, &gate)?;
        (offline, None)
    } else {
        let opts = args.corpus.options()?;
        let offline = corpus_run::run(&args.model.load()?, &clips, args.batch, &opts)?;
        (offline, None)
    };
    print_clips(&offline, streamed.as_ref());
    let rows = by_language(&offline, streamed.as_ref());
    print_languages(&rows, &offline);
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "model": args.model.model,
            "detect_language": args.corpus.detect_language,
            "languages": rows.iter().map(LanguageRow::json).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Streams every clip through the policy on `engine`, one session after another.
fn stream_all(engine: &Engine, clips: &[LoadedClip], args: &WerArgs) -> anyhow::Result<CorpusRun> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut config = SessionConfig::default();
    config.vad.detector = args.vad.detector()?;
    let started = std::time::Instant::now();
    let mut transcripts = Vec::with_capacity(clips.len());
    for clip in clips {
        let session = args.corpus.job_for(&clip.clip);
        let replay = runtime.block_on(replay(engine, clip, &config, &session, false))?;
        transcripts.push(corpus_run::Transcribed {
            text: replay.text,
            language: streamed_language(&replay.languages),
        });
    }
    Ok(CorpusRun::new(clips, transcripts, started.elapsed()))
}

/// The languages a stream's utterances were decoded in, `+`-joined when they differ.
fn streamed_language(utterances: &[String]) -> String {
    let mut distinct: Vec<&str> = Vec::new();
    for language in utterances {
        if !distinct.contains(&language.as_str()) {
            distinct.push(language);
        }
    }
    distinct.join("+")
}

fn print_clips(offline: &CorpusRun, streamed: Option<&CorpusRun>) {
    println!(
        "{:<28} {:>7} {:>4} {:>8} {:>8}  hypothesis",
        "clip", "seconds", "lang", "offline", "streamed"
    );
    for (i, s) in offline.scores.iter().enumerate() {
        let live = streamed.map(|run| &run.scores[i]);
        let metric = Metric::for_language(&s.lang).name();
        println!(
            "{:<28} {:>7.1} {:>4} {:>7.1}% {:>8}  {}",
            s.id,
            s.seconds,
            s.language,
            100.0 * s.counts.wer(),
            live.map_or(String::new(), |l| format!("{:.1}%", 100.0 * l.counts.wer())),
            s.hypothesis
        );
        if let Some(live) = live {
            println!(
                "{:<28} {:>7} {:>4} {metric:>8}  {}",
                "", "", live.language, live.hypothesis
            );
        }
    }
}

/// One language's figures.
struct LanguageRow {
    lang: String,
    metric: Metric,
    clips: usize,
    offline: WerCounts,
    streamed: Option<WerCounts>,
    /// Clips whose offline transcript came out in the clip's language.
    offline_detected: usize,
    /// Streamed utterances decoded in the clip's language, and all streamed utterances.
    streamed_detected: Option<(usize, usize)>,
}

impl LanguageRow {
    /// Streamed over offline error rate; none when offline made no error.
    fn ratio(&self) -> Option<f64> {
        let streamed = self.streamed?;
        (self.offline.errors() > 0).then(|| streamed.wer() / self.offline.wer())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "lang": self.lang,
            "metric": self.metric.name(),
            "clips": self.clips,
            "reference_units": self.offline.reference_words,
            "offline_errors": self.offline.errors(),
            "offline_rate": self.offline.wer(),
            "streamed_errors": self.streamed.map(|s| s.errors()),
            "streamed_rate": self.streamed.map(|s| s.wer()),
            "streamed_to_offline": self.ratio(),
            "offline_language_correct": self.offline_detected,
            "streamed_utterances": self.streamed_detected.map(|(_, n)| n),
            "streamed_utterances_language_correct": self.streamed_detected.map(|(ok, _)| ok),
        })
    }
}

fn by_language(offline: &CorpusRun, streamed: Option<&CorpusRun>) -> Vec<LanguageRow> {
    offline
        .languages()
        .into_iter()
        .map(|lang| {
            fn in_language<'a>(run: &'a CorpusRun, lang: &str) -> Vec<&'a ClipScore> {
                run.scores.iter().filter(|s| s.lang == lang).collect()
            }
            let in_lang = |run| in_language(run, lang);
            let streamed_detected = streamed.map(|run| {
                in_lang(run)
                    .iter()
                    .flat_map(|s| s.language.split('+'))
                    .fold((0, 0), |(ok, n), l| (ok + usize::from(l == lang), n + 1))
            });
            LanguageRow {
                lang: lang.to_string(),
                metric: Metric::for_language(lang),
                clips: in_lang(offline).len(),
                offline: offline.total_in(lang),
                streamed: streamed.map(|run| run.total_in(lang)),
                offline_detected: in_lang(offline)
                    .iter()
                    .filter(|s| s.language == lang)
                    .count(),
                streamed_detected,
            }
        })
        .collect()
}

fn print_languages(rows: &[LanguageRow], offline: &CorpusRun) {
    println!(
        "\n{:<5} {:>5} {:>6} {:>16} {:>16} {:>8} {:>17}",
        "lang", "clips", "metric", "offline", "streamed", "ratio", "language right"
    );
    for row in rows {
        let rate = |c: WerCounts| {
            format!(
                "{:.2}% ({}/{})",
                100.0 * c.wer(),
                c.errors(),
                c.reference_words
            )
        };
        let detected = match row.streamed_detected {
            Some((ok, n)) => format!("{}/{} + {ok}/{n} utt", row.offline_detected, row.clips),
            None => format!("{}/{}", row.offline_detected, row.clips),
        };
        println!(
            "{:<5} {:>5} {:>6} {:>16} {:>16} {:>8} {:>17}",
            row.lang,
            row.clips,
            row.metric.name(),
            rate(row.offline),
            row.streamed.map_or("-".into(), rate),
            row.ratio().map_or("-".into(), |r| format!("{r:.2}x")),
            detected
        );
    }
    let total = offline.total();
    let only = |metric| rows.iter().all(|r| r.metric == metric);
    let (metric, units) = if only(Metric::Wer) {
        ("WER", "words")
    } else if only(Metric::Cer) {
        ("CER", "characters")
    } else {
        ("WER/CER", "words or characters")
    };
    println!(
        "corpus {metric} {:.2}% ({} errors: {} sub, {} del, {} ins / {} {units}) over {} clips, {:.1} s of audio",
        100.0 * total.wer(),
        total.errors(),
        total.substitutions,
        total.deletions,
        total.insertions,
        total.reference_words,
        offline.scores.len(),
        offline.audio_seconds
    );
}
