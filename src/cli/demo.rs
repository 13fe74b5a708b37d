//! `hearken demo [FILE]`: the whole service in one command. It starts `hearken serve` (same
//! flags, same defaults), streams FILE to it over gRPC at real-time pace printing interim and
//! final results as they arrive, sends the same file to the OpenAI-compatible endpoint, then
//! keeps serving so the printed `curl`/`grpcurl` lines can be tried.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio_stream::StreamExt;

use super::serve::{ReadyServer, ServeArgs, run_then};
use crate::grpc::client::pcm16_stream;
use crate::grpc::proto::speech_client::SpeechClient;
use crate::grpc::proto::streaming_recognize_response::Event;
use crate::grpc::proto::{RecognitionConfig, TranscriptUpdate};

/// The sample that ships with the repository.
const DEFAULT_FILE: &str = "clients/samples/hello.wav";

/// Arguments of `hearken demo`.
#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Audio file to stream (any format hearken decodes).
    #[arg(default_value = DEFAULT_FILE)]
    file: PathBuf,
    #[command(flatten)]
    serve: ServeArgs,
}

pub(super) fn run(args: DemoArgs) -> anyhow::Result<()> {
    let samples = crate::audio::load_file(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let file = args.file;
    run_then(args.serve, move |server| async move {
        stream_over_grpc(&server, &file, &samples).await?;
        if let Some(http) = server.http_addr {
            post_over_http(local(http), &file).await?;
        }
        print_next_steps(&server, &file);
        Ok(())
    })
}

/// Streams the file in 100 ms frames at real-time pace and prints each update.
async fn stream_over_grpc(
    server: &ReadyServer,
    file: &std::path::Path,
    samples: &[f32],
) -> anyhow::Result<()> {
    let seconds = samples.len() as f64 / 16_000.0;
    println!(
        "\n== gRPC StreamingRecognize: {} ({seconds:.1} s) in real time",
        file.display()
    );
    let mut client = SpeechClient::connect(format!("http://{}", local(server.grpc_addr))).await?;
    let config = RecognitionConfig {
        interim_results: true,
        word_timestamps: true,
        ..Default::default()
    };
    let (requests, _) = pcm16_stream(config, samples, Duration::from_millis(100), true);
    let started = Instant::now();
    let mut responses = client.streaming_recognize(requests).await?.into_inner();
    while let Some(response) = responses.next().await {
        if let Some(Event::Transcript(update)) = response?.event {
            print_update(&update, started.elapsed());
        }
    }
    Ok(())
}

fn print_update(update: &TranscriptUpdate, at: Duration) {
    let at = at.as_secs_f64();
    if update.is_final {
        println!(
            "  {at:5.2} s  final   [{:.2}–{:.2} s] {}",
            update.start,
            update.end,
            update.committed.trim()
        );
    } else {
        println!(
            "  {at:5.2} s  interim {}|{}",
            update.committed.trim_start(),
            update.tentative
        );
    }
}

/// `POST /v1/audio/transcriptions` with the file, as an OpenAI SDK would send it.
async fn post_over_http(http: SocketAddr, file: &std::path::Path) -> anyhow::Result<()> {
    let url = format!("http://{http}/v1/audio/transcriptions");
    println!("\n== POST {url}");
    let bytes = std::fs::read(file)?;
    let name = file
        .file_name()
        .map_or("audio".into(), |n| n.to_string_lossy().into_owned());
    let body = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let boundary = "hearken-demo-boundary";
        let mut form = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        form.extend_from_slice(&bytes);
        form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut response = ureq::post(&url)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .send(&form[..])?;
        Ok(response.body_mut().read_to_string()?)
    })
    .await??;
    println!("  {}", body.trim());
    Ok(())
}

fn print_next_steps(server: &ReadyServer, file: &std::path::Path) {
    let grpc = local(server.grpc_addr);
    println!("\n== The server keeps running (Ctrl-C stops it). Try:");
    if let Some(http) = server.http_addr.map(local) {
        println!("  open http://{http}/ in a browser: your microphone live, or a file");
        println!(
            "  curl http://{http}/v1/audio/transcriptions -F file=@{} -F response_format=verbose_json",
            file.display()
        );
        println!("  curl http://{http}/v1/models");
    }
    println!("  grpcurl -plaintext {grpc} list");
    println!("  grpcurl -plaintext {grpc} hearken.speech.v1.Speech/ListModels");
}

/// A listening address a local client can dial (a wildcard bind becomes loopback).
fn local(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}
