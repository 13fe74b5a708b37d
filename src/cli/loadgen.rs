//! `hearken loadgen TARGET`: sessions of real speech against a speech server, measured from
//! the outside: a sweep of concurrencies or a Poisson arrival rate, or a search for the
//! largest concurrency meeting latency targets. Everything is in [`crate::loadgen`]; this
//! module reads the arguments and prints.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::eval::default_corpus_dir;
use crate::loadgen::report::{table_header, table_row};
use crate::loadgen::{
    Aggregate, CapacitySearch, Clip, CorpusSelection, Pace, RoundReport, RunOptions, RunReport,
    Slo, Target, Workload, load_corpus, load_files, run_round,
};
use crate::session::StreamingPolicy;

/// Arguments of `hearken loadgen`.
#[derive(Debug, Args)]
pub(super) struct LoadgenArgs {
    /// The server: `grpc://HOST:PORT` or `grpcs://` (hearken's gRPC streaming), `ws://` or
    /// `wss://` (OpenAI's Realtime transcription WebSocket, e.g. `ws://HOST:8000`), `http://`
    /// or `https://` (OpenAI's `/v1/audio/transcriptions`).
    target: String,
    /// Concurrent sessions, one round per value (`1,2,4,8,16`).
    #[arg(long, value_delimiter = ',', conflicts_with = "rate")]
    sessions: Vec<usize>,
    /// Instead of a concurrency: open sessions at Poisson-distributed times, this many per
    /// second on average, for `--duration` (one round per value).
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// How long each round opens sessions (`90s`, `2m`, `500ms`); sessions under way finish.
    /// Without it a concurrency round plays every clip once, shared among its sessions.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Each session plays this many clips in turn (a concurrency round without --duration).
    #[arg(long)]
    clips_per_session: Option<usize>,
    /// Send audio as fast as the server takes it instead of at real-time pace.
    #[arg(long)]
    fast: bool,
    /// A corpus directory with `manifest.jsonl` (references give streamed WER). Default:
    /// `$HEARKEN_CORPUS_DIR` or `../shared/corpus`, unless --files are given.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Corpus languages to play (`en`, `de,fr`, `all`).
    #[arg(long, default_value = "en")]
    lang: String,
    /// Skip corpus clips longer than this many seconds.
    #[arg(long)]
    max_clip_seconds: Option<f64>,
    /// Play at most this many corpus clips.
    #[arg(long)]
    limit: Option<usize>,
    /// Audio files to play instead of a corpus (no references: no WER).
    #[arg(long, num_args = 1.., conflicts_with = "corpus")]
    files: Vec<PathBuf>,
    /// Sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "HEARKEN_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM CA certificates to trust for TLS targets instead of the system's roots.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The model to ask for (default: the server's; `whisper-1` for HTTP).
    #[arg(long)]
    model: Option<String>,
    /// The spoken language to send (default: none; the server's model decides).
    #[arg(long)]
    language: Option<String>,
    /// gRPC targets: which rule commits words before an utterance ends, `local-agreement` or
    /// `align-att` (default: the server's, local-agreement).
    #[arg(long)]
    policy: Option<StreamingPolicy>,
    /// HTTP targets: ask for `stream=true` and time the first delta.
    #[arg(long)]
    stream: bool,
    /// Latency targets, e.g. `final_p95=2s,commit_p90=4s,first_interim_p50=1s,wer=12%`; each
    /// round says what it missed.
    #[arg(long)]
    slo: Option<String>,
    /// Search for the largest concurrency meeting --slo (doubling, then bisecting), each
    /// probe a round of --duration (default 60 s).
    #[arg(long, requires = "slo")]
    capacity: bool,
    /// The most sessions --capacity tries.
    #[arg(long, default_value_t = 64)]
    max_sessions: usize,
    /// Seeds the arrival times of --rate.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write every session's record and each round's figures to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a self-contained HTML page with the table and SVG plots.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

pub(super) fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(loadgen(args))
}

async fn loadgen(args: LoadgenArgs) -> anyhow::Result<()> {
    let target = Arc::new(target(&args)?);
    let clips = Arc::new(clips(&args)?);
    let slo = args.slo.as_deref().map(Slo::parse).transpose()?;
    let pace = if args.fast {
        Pace::Fast
    } else {
        Pace::RealTime
    };
    let options = RunOptions {
        pace,
        duration: args
            .duration
            .or(args.capacity.then_some(Duration::from_secs(60))),
        clips_per_session: args.clips_per_session,
        seed: args.seed,
    };
    let audio: f64 = clips.iter().map(Clip::seconds).sum();
    println!(
        "hearken loadgen: {} ({}), {} clips ({audio:.0} s of audio), {} pace{}",
        target.display,
        target.protocol,
        clips.len(),
        if args.fast { "fast" } else { "real-time" },
        options
            .duration
            .map(|d| format!(", rounds of {} s", d.as_secs_f64()))
            .unwrap_or_default()
    );
    let mut report = RunReport::new(&target, pace, clips.len(), args.slo.clone());
    println!("{}", table_header());
    let measure = async |workload: Workload, report: &mut RunReport| {
        let round = run_round(&target, &clips, workload, &options).await?;
        let aggregate = Aggregate::of(&round);
        println!("{}", table_row(&aggregate));
        let misses = slo
            .as_ref()
            .map(|s| s.misses(&aggregate))
            .unwrap_or_default();
        if !misses.is_empty() {
            println!("{:>16} misses: {}", "", misses.join("; "));
        }
        print_errors(&aggregate, &round);
        let passed = misses.is_empty();
        report.rounds.push(RoundReport {
            aggregate,
            misses,
            round,
        });
        anyhow::Ok(passed)
    };
    if args.capacity {
        let mut search = CapacitySearch::new(args.max_sessions);
        while let Some(n) = search.next() {
            let passed = measure(Workload::Concurrency(n), &mut report).await?;
            search.report(n, passed);
        }
        report.capacity = search.largest();
        match search.largest() {
            Some(n) => println!(
                "largest concurrency meeting {}: {n}",
                args.slo.as_deref().unwrap_or("")
            ),
            None => println!("no concurrency met {}", args.slo.as_deref().unwrap_or("")),
        }
    } else {
        for workload in workloads(&args) {
            measure(workload, &mut report).await?;
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.report {
        std::fs::write(path, crate::loadgen::report::html(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The rounds asked for: each rate, else each concurrency (default 1).
fn workloads(args: &LoadgenArgs) -> Vec<Workload> {
    if !args.rate.is_empty() {
        return args.rate.iter().map(|&r| Workload::Arrivals(r)).collect();
    }
    match args.sessions.as_slice() {
        [] => vec![Workload::Concurrency(1)],
        sessions => sessions.iter().map(|&n| Workload::Concurrency(n)).collect(),
    }
}

fn target(args: &LoadgenArgs) -> anyhow::Result<Target> {
    let mut target = Target::parse(&args.target)?;
    target.api_key = args.api_key.clone();
    target.model = args.model.clone();
    target.language = args.language.clone();
    target.http_stream = args.stream;
    target.policy = args.policy;
    anyhow::ensure!(
        args.policy.is_none() || target.protocol == crate::loadgen::Protocol::Grpc,
        "--policy is for grpc:// targets (OpenAI's protocols have no such setting)"
    );
    if let Some(path) = &args.ca {
        anyhow::ensure!(
            target.tls(),
            "--ca needs a TLS target (grpcs://, wss://, https://)"
        );
        target.ca_pem =
            Some(std::fs::read(path).with_context(|| format!("reading --ca {}", path.display()))?);
    }
    anyhow::ensure!(
        !args.stream || target.protocol == crate::loadgen::Protocol::Http,
        "--stream is for http:// targets (the streaming protocols always stream)"
    );
    Ok(target)
}

fn clips(args: &LoadgenArgs) -> anyhow::Result<Vec<Clip>> {
    let clips = if args.files.is_empty() {
        let dir = args.corpus.clone().unwrap_or_else(default_corpus_dir);
        let selection = CorpusSelection {
            languages: args.lang.split(',').map(|l| l.trim().to_string()).collect(),
            max_seconds: args.max_clip_seconds,
            limit: args.limit,
        };
        load_corpus(&dir, &selection)?
    } else {
        load_files(&args.files)?
    };
    anyhow::ensure!(!clips.is_empty(), "no clips selected to play");
    Ok(clips)
}

/// The codes of failed and refused sessions, with one message each.
fn print_errors(aggregate: &Aggregate, round: &crate::loadgen::Round) {
    for (code, count) in &aggregate.errors_by_code {
        let message = round
            .sessions
            .iter()
            .find(|s| s.code.as_ref() == Some(code))
            .and_then(|s| s.message.clone())
            .unwrap_or_default();
        println!("{:>16} {count} × {code}: {message}", "");
    }
}

/// `90s`, `2m`, `500ms` or plain seconds.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let (number, unit) = match value.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a duration like 90s, 2m or 500ms"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "{value:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{value:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
    }
}
