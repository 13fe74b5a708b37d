//! `hearken stream`: a live client for a remote hearken over gRPC, or (`--realtime-ws`) for any
//! server speaking OpenAI's Realtime transcription protocol. It streams a file at real-time pace
//! (or as fast as the server takes it), or raw PCM from stdin as it arrives (so `arecord`,
//! `ffmpeg` or `sox` can pipe a microphone), and prints what the server sends: on a terminal the
//! tentative text rewritten in place and each final on its own line, piped one JSON object per
//! update. Ctrl-C stops the audio and waits for the last final; a second Ctrl-C quits (over gRPC,
//! cancelling the session on the server). A dropped gRPC connection is resumed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::audio::WHISPER_SAMPLE_RATE;
use crate::grpc::client::resume::{CancelSignal, resumable_session};
use crate::grpc::client::{pcm16_chunks, pcm16_reader_chunks, pcm16_reader_stream, pcm16_stream};
use crate::grpc::proto::speech_client::SpeechClient;
use crate::grpc::proto::streaming_recognize_response::Event;
use crate::grpc::proto::{
    AudioEncoding, RecognitionConfig, StreamingPolicy as ProtoPolicy, Task, TranscriptUpdate,
};
use crate::http::realtime::client::{
    self as realtime, PROTOCOL_RATE as REALTIME_RATE, RealtimeOptions,
};
use crate::session::StreamingPolicy;
use tokio_stream::wrappers::ReceiverStream;

/// Audio per message: 100 ms, as a microphone client would send it.
const FRAME: Duration = Duration::from_millis(100);

/// How updates are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Format {
    /// Tentative text rewritten in place, finals on their own lines.
    Text,
    /// One JSON object per transcript update.
    Jsonl,
}

/// Arguments of `hearken stream`.
#[derive(Debug, Args)]
pub(super) struct StreamArgs {
    /// Audio file (any format hearken decodes), or `-` for raw 16-bit little-endian PCM on
    /// stdin (see `--rate` and `--channels`).
    input: String,
    /// The server: `http://HOST:PORT`, or `https://HOST:PORT` for TLS.
    #[arg(long, env = "HEARKEN_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Sample rate of stdin PCM.
    #[arg(long, default_value_t = 16_000)]
    rate: u32,
    /// Channels of stdin PCM (interleaved; downmixed by the server).
    #[arg(long, default_value_t = 1)]
    channels: u32,
    /// Send a file as fast as the server takes it instead of at real-time pace.
    #[arg(long)]
    fast: bool,
    /// Spoken language (ISO code or name); unset, a multilingual model detects it.
    #[arg(long, short)]
    language: Option<String>,
    /// Translate to English (multilingual models).
    #[arg(long)]
    translate: bool,
    /// Text that primes the model: names, spelling, style.
    #[arg(long)]
    prompt: Option<String>,
    /// Model id (see `hearken models`); unset, the server's.
    #[arg(long)]
    model: Option<String>,
    /// Which rule commits words before an utterance ends: `local-agreement` (two agreeing
    /// hypotheses) or `align-att` (sooner: one hypothesis, words the model heard whole).
    /// gRPC only; unset, the server's (local-agreement).
    #[arg(long, conflicts_with = "realtime_ws")]
    policy: Option<StreamingPolicy>,
    /// API key, sent as `authorization: Bearer KEY`.
    #[arg(long, env = "HEARKEN_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM certificate of a CA to trust for `https://` (default: the system's roots).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Output format; `text` on a terminal, `jsonl` when piped.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Speak OpenAI's Realtime transcription protocol to this `ws://` or `wss://` URL instead
    /// of gRPC to `--server` (hearken's HTTP port, or any server speaking it; a bare
    /// `ws://HOST:PORT` gets `/v1/realtime`). Files are sent as 24 kHz PCM16, the protocol's
    /// rate; stdin PCM at `--rate`.
    #[arg(long, value_name = "URL")]
    realtime_ws: Option<String>,
    /// Do not resume the stream when its connection drops (by default the server keeps the
    /// session for its resume window, and the stream reconnects and carries on with no audio
    /// or text lost).
    #[arg(long)]
    no_resume: bool,
}

pub(super) fn run(args: StreamArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(stream(args))
}

async fn stream(args: StreamArgs) -> anyhow::Result<()> {
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Text
    } else {
        Format::Jsonl
    });
    if args.realtime_ws.is_some() {
        return stream_realtime(args, format).await;
    }
    let channel = connect(&args).await?;
    let mut client = SpeechClient::new(channel);
    let config = RecognitionConfig {
        language: args.language.clone().unwrap_or_default(),
        task: if args.translate {
            Task::Translate
        } else {
            Task::Transcribe
        } as i32,
        prompt: args.prompt.clone().unwrap_or_default(),
        model: args.model.clone().unwrap_or_default(),
        interim_results: true,
        word_timestamps: true,
        policy: args.policy.map_or(0, |p| ProtoPolicy::from(p) as i32),
        ..Default::default()
    };
    let mut headers = tonic::metadata::MetadataMap::new();
    if let Some(key) = &args.api_key {
        let value = format!("Bearer {key}")
            .parse()
            .context("the API key is not a valid header value")?;
        headers.insert("authorization", value);
    }
    if !args.no_resume {
        return stream_resumable(&args, client, headers, config, format).await;
    }
    let requests = if args.input == "-" {
        pcm16_reader_stream(config, std::io::stdin(), args.rate, args.channels)
    } else {
        pcm16_stream(config, &file_samples(&args)?, FRAME, !args.fast).0
    };
    // Ending the request stream is the end of the audio: the server still sends the finals.
    let requests = futures_util::StreamExt::take_until(requests, first_interrupt());
    let mut request = tonic::Request::new(requests);
    *request.metadata_mut() = headers;
    let mut responses = client
        .streaming_recognize(request)
        .await
        .map_err(|status| refused(&args.server, &status))?
        .into_inner();
    let mut printer = Printer::new(format);
    while let Some(response) = responses.next().await {
        let response = response.map_err(|status| refused(&args.server, &status))?;
        if let Some(Event::Transcript(update)) = response.event {
            printer.print(&update)?;
        }
    }
    printer.finish()
}

/// The stream as a resumable session: a dropped connection is resumed, not fatal.
async fn stream_resumable(
    args: &StreamArgs,
    client: SpeechClient<Channel>,
    headers: tonic::metadata::MetadataMap,
    config: RecognitionConfig,
    format: Format,
) -> anyhow::Result<()> {
    let (config, audio) = if args.input == "-" {
        let config = RecognitionConfig {
            encoding: AudioEncoding::Linear16 as i32,
            sample_rate_hertz: args.rate,
            channels: args.channels,
            ..config
        };
        let chunks = pcm16_reader_chunks(std::io::stdin(), args.rate, args.channels);
        (config, chunks)
    } else {
        let config = RecognitionConfig {
            encoding: AudioEncoding::Linear16 as i32,
            sample_rate_hertz: WHISPER_SAMPLE_RATE,
            channels: 1,
            ..config
        };
        (
            config,
            pcm16_chunks(&file_samples(args)?, FRAME, !args.fast).0,
        )
    };
    // The end of the audio (or a first Ctrl-C) ends the stream: the server sends the finals. A
    // second Ctrl-C cancels the session, so the server frees it instead of keeping it for a
    // resume.
    let (first, second) = interrupts("cancels");
    let audio = futures_util::StreamExt::take_until(audio, first);
    let mut printer = Printer::new(format);
    let outcome = resumable_session(client, headers, config, audio, second, |response| {
        if let Some(Event::Transcript(update)) = &response.event {
            printer
                .print(update)
                .map_err(|e| tonic::Status::cancelled(e.to_string()))?;
        }
        Ok(())
    })
    .await
    .map_err(|status| refused(&args.server, &status))?;
    printer.finish()?;
    if outcome.cancelled {
        std::process::exit(130);
    }
    if outcome.resumes > 0 {
        eprintln!(
            "hearken stream: the connection dropped {} time(s); the stream resumed each time",
            outcome.resumes
        );
    }
    Ok(())
}

/// The input file's samples at 16 kHz.
fn file_samples(args: &StreamArgs) -> anyhow::Result<Vec<f32>> {
    crate::audio::load_file(&PathBuf::from(&args.input))
        .with_context(|| format!("reading {}", args.input))
}

/// The stream over the Realtime protocol: the same audio and output, item by item.
async fn stream_realtime(args: StreamArgs, format: Format) -> anyhow::Result<()> {
    let ca_pem = match &args.ca {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading --ca {}", path.display()))?)
        }
        None => None,
    };
    let (audio, rate) = realtime_audio(&args)?;
    let options = RealtimeOptions {
        url: args.realtime_ws.clone().unwrap_or_default(),
        api_key: args.api_key.clone(),
        ca_pem,
        rate,
        model: args.model.clone(),
        language: args.language.clone(),
        prompt: args.prompt.clone(),
    };
    anyhow::ensure!(
        !args.translate,
        "--translate is not part of the Realtime protocol; use gRPC (--server)"
    );
    let mut printer = Printer::new(format);
    realtime::transcribe(&options, audio, first_interrupt(), |item| {
        printer.print(&TranscriptUpdate {
            utterance_id: item.index,
            committed: item.committed,
            committed_delta: item.committed_delta,
            tentative: item.tentative,
            is_final: item.is_final,
            stability: if item.is_final { 1.0 } else { 0.0 },
            ..Default::default()
        })
    })
    .await?;
    printer.finish()
}

/// PCM16 chunks of 100 ms for the Realtime protocol, and their rate: a file resampled to
/// 24 kHz (the protocol's rate) and paced unless `--fast`, or stdin downmixed at `--rate`.
fn realtime_audio(args: &StreamArgs) -> anyhow::Result<(ReceiverStream<Vec<u8>>, u32)> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    if args.input == "-" {
        let (rate, channels) = (args.rate, args.channels.max(1));
        crate::audio::check_sample_rate(rate)?;
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            for frame in crate::grpc::client::pcm16_frames(&mut stdin, rate, channels) {
                let Ok(samples) = crate::audio::pcm16le_to_f32(&frame) else {
                    return;
                };
                let mono = crate::audio::downmix_interleaved(&samples, channels as usize);
                if tx
                    .blocking_send(crate::audio::f32_to_pcm16le(&mono))
                    .is_err()
                {
                    return;
                }
            }
        });
        return Ok((ReceiverStream::new(rx), rate));
    }
    let samples = crate::audio::load_file(&PathBuf::from(&args.input))
        .with_context(|| format!("reading {}", args.input))?;
    let samples = crate::audio::resample(&samples, WHISPER_SAMPLE_RATE, REALTIME_RATE)?;
    let frame = REALTIME_RATE as usize / 10;
    let realtime = !args.fast;
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        for (i, chunk) in samples.chunks(frame).enumerate() {
            if realtime {
                tokio::time::sleep_until(started + FRAME * i as u32).await;
            }
            if tx.send(crate::audio::f32_to_pcm16le(chunk)).await.is_err() {
                return;
            }
        }
    });
    Ok((ReceiverStream::new(rx), REALTIME_RATE))
}

/// Resolves on the first Ctrl-C (the audio then ends and the finals are awaited); a second
/// Ctrl-C exits at once.
fn first_interrupt() -> CancelSignal {
    let (first, second) = interrupts("quits");
    tokio::spawn(async move {
        second.await;
        std::process::exit(130);
    });
    first
}

/// Ctrl-C twice: the first resolves the first future (the audio ends and the finals are
/// awaited), the second the second (which `second_does`, as the first one's message says).
fn interrupts(second_does: &'static str) -> (CancelSignal, CancelSignal) {
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "\nhearken stream: audio stopped; waiting for the last final (Ctrl-C again \
             {second_does})"
        );
        let _ = first_tx.send(());
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = second_tx.send(());
        }
    });
    // A signal that can no longer come never resolves.
    let resolved = |rx: tokio::sync::oneshot::Receiver<()>| -> CancelSignal {
        Box::pin(async move {
            if rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    };
    (resolved(first_rx), resolved(second_rx))
}

/// A channel to `args.server`, over TLS for `https://`.
async fn connect(args: &StreamArgs) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(args.server.clone())
        .with_context(|| {
            format!(
                "--server {:?} is not a URL like http://HOST:PORT",
                args.server
            )
        })?
        .connect_timeout(Duration::from_secs(10));
    let endpoint = if args.server.starts_with("https://") {
        let tls = match &args.ca {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading --ca {}", path.display()))?;
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
            }
            None => ClientTlsConfig::new().with_native_roots(),
        };
        endpoint.tls_config(tls)?
    } else {
        anyhow::ensure!(args.ca.is_none(), "--ca needs an https:// --server");
        endpoint
    };
    endpoint
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.server))
}

/// The server's refusal, as the user should read it.
fn refused(server: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "{server} ended the stream: {:?}: {}",
        status.code(),
        status.message()
    )
}

/// Prints updates in the chosen format.
struct Printer {
    format: Format,
    /// A tentative line is on screen (text format), to be rewritten.
    line_open: bool,
    out: std::io::Stdout,
}

impl Printer {
    fn new(format: Format) -> Self {
        Self {
            format,
            line_open: false,
            out: std::io::stdout(),
        }
    }

    fn print(&mut self, update: &TranscriptUpdate) -> anyhow::Result<()> {
        let mut out = self.out.lock();
        match self.format {
            Format::Jsonl => writeln!(out, "{}", update_json(update))?,
            Format::Text if update.is_final => {
                let text = update.committed.trim();
                if self.line_open || !text.is_empty() {
                    writeln!(out, "\r\x1b[2K{text}")?;
                }
                self.line_open = false;
            }
            Format::Text => {
                // Committed text plain, tentative text dimmed, on one line rewritten in place.
                let committed = update.committed.trim_start();
                write!(
                    out,
                    "\r\x1b[2K{committed}\x1b[2m{}\x1b[0m",
                    update.tentative
                )?;
                self.line_open = true;
            }
        }
        out.flush()?;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        if self.line_open {
            writeln!(self.out)?;
        }
        Ok(())
    }
}

/// One update as a JSON object: the proto's fields, words included.
fn update_json(update: &TranscriptUpdate) -> serde_json::Value {
    let words: Vec<serde_json::Value> = update
        .words
        .iter()
        .map(|w| {
            serde_json::json!({
                "word": w.word, "start": w.start, "end": w.end, "probability": w.probability,
            })
        })
        .collect();
    serde_json::json!({
        "utterance_id": update.utterance_id,
        "revision": update.revision,
        "is_final": update.is_final,
        "committed": update.committed,
        "committed_delta": update.committed_delta,
        "tentative": update.tentative,
        "stability": update.stability,
        "start": update.start,
        "end": update.end,
        "language": update.language,
        "audio_dropped": update.audio_dropped,
        "words": words,
    })
}
