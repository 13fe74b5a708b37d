//! The gRPC service end to end: a real server on 127.0.0.1:0 with the default model, driven
//! by the generated client.

mod support;

use std::time::{Duration, Instant};

use hearken::audio::f32_to_pcm16le;
use hearken::engine::WhisperBackend;
use hearken::eval::english_wer;
use hearken::grpc::proto::control::Action;
use hearken::grpc::proto::speech_client::SpeechClient;
use hearken::grpc::proto::streaming_recognize_request::Request as StreamRequest;
use hearken::grpc::proto::streaming_recognize_response::Event;
use hearken::grpc::proto::{
    AudioChunk, AudioEncoding, Control, EndOfStream, RecognitionConfig, RecognizeRequest,
    StreamingRecognizeRequest, StreamingRecognizeResponse,
};
use hearken::model::whisper::WhisperModel;
use hearken::server::{RunningServer, ServeConfig};
use hearken::service::Limits;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

fn config(limits: Limits) -> ServeConfig {
    support::serve_config(limits, false)
}

async fn start(limits: Limits) -> RunningServer {
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    RunningServer::start(WhisperBackend::from(model), config(limits))
        .await
        .expect("server starts")
}

async fn client(server: &RunningServer) -> SpeechClient<Channel> {
    SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .expect("connect")
}

fn linear16_config() -> RecognitionConfig {
    RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: 16_000,
        interim_results: true,
        word_timestamps: true,
        ..Default::default()
    }
}

fn config_message(config: RecognitionConfig) -> StreamingRecognizeRequest {
    StreamingRecognizeRequest {
        request: Some(StreamRequest::Config(config)),
    }
}

fn audio_message(data: Vec<u8>, sequence: u64) -> StreamingRecognizeRequest {
    StreamingRecognizeRequest {
        request: Some(StreamRequest::Audio(AudioChunk { data, sequence })),
    }
}

/// Streams `samples` in 100 ms frames, `pace` times real time, then half-closes.
fn paced_frames(
    samples: Vec<f32>,
    pace: f64,
) -> impl tokio_stream::Stream<Item = StreamingRecognizeRequest> {
    let frames: Vec<Vec<u8>> = samples.chunks(1600).map(f32_to_pcm16le).collect();
    let period = Duration::from_secs_f64(0.1 / pace);
    async_stream(frames, period)
}

fn async_stream(
    frames: Vec<Vec<u8>>,
    period: Duration,
) -> impl tokio_stream::Stream<Item = StreamingRecognizeRequest> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        if tx.send(config_message(linear16_config())).await.is_err() {
            return;
        }
        for (i, frame) in frames.into_iter().enumerate() {
            tokio::time::sleep(period).await;
            if tx.send(audio_message(frame, i as u64 + 1)).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn collect(
    mut responses: tonic::Streaming<StreamingRecognizeResponse>,
) -> Vec<(Instant, StreamingRecognizeResponse)> {
    let mut out = Vec::new();
    while let Some(r) = responses.next().await {
        out.push((Instant::now(), r.expect("stream item")));
    }
    out
}

fn final_text(responses: &[(Instant, StreamingRecognizeResponse)]) -> String {
    responses
        .iter()
        .filter_map(|(_, r)| match &r.event {
            Some(Event::Transcript(t)) if t.is_final => Some(t.committed.trim().to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_clip_gives_interims_then_accurate_finals() {
    let (clip, samples) = support::clip("jfk");
    let duration = samples.len() as f64 / 16_000.0;
    let server = start(Limits::default()).await;
    let mut client = client(&server).await;
    let started = Instant::now();
    let responses = client
        .streaming_recognize(paced_frames(samples, 1.0))
        .await
        .expect("stream opens")
        .into_inner();
    let responses = collect(responses).await;
    let audio_end = started + Duration::from_secs_f64(duration);

    assert!(matches!(
        responses[0].1.event,
        Some(Event::SessionStarted(_))
    ));
    let sequences: Vec<u64> = responses.iter().map(|(_, r)| r.sequence).collect();
    assert_eq!(sequences, (1..=responses.len() as u64).collect::<Vec<_>>());
    let early_interims = responses
        .iter()
        .filter(|(at, r)| {
            let interim = matches!(&r.event, Some(Event::Transcript(t))
                if !t.is_final && !format!("{}{}", t.committed, t.tentative).trim().is_empty());
            *at < audio_end && interim
        })
        .count();
    assert!(
        early_interims > 0,
        "no interim result before the audio ended"
    );

    let text = final_text(&responses);
    let wer = english_wer(&clip.text, &text).wer();
    assert!(wer <= 0.15, "streamed WER {wer:.3}: {text:?}");

    let mut last_start = 0.0;
    for (_, r) in &responses {
        if let Some(Event::Transcript(t)) = &r.event {
            if !t.is_final {
                continue;
            }
            assert!(!t.words.is_empty(), "final without words");
            for w in &t.words {
                assert!(w.start >= last_start - 1e-6, "word starts go backwards");
                assert!(
                    w.start <= w.end && w.end <= duration + 0.05,
                    "word {w:?} outside clip"
                );
                last_start = w.start;
            }
        }
    }
    server.shutdown().await.unwrap();
}

async fn stream_status(
    client: &mut SpeechClient<Channel>,
    messages: Vec<StreamingRecognizeRequest>,
) -> tonic::Status {
    let outcome = client
        .streaming_recognize(tokio_stream::iter(messages))
        .await;
    let mut responses = match outcome {
        Err(status) => return status,
        Ok(r) => r.into_inner(),
    };
    loop {
        match responses.next().await {
            Some(Ok(_)) => continue,
            Some(Err(status)) => return status,
            None => panic!("stream ended without an error"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_codes() {
    let server = start(Limits {
        max_sessions: 2,
        max_message_bytes: 1 << 20,
        ..Limits::default()
    })
    .await;
    let mut client = client(&server).await;

    let audio_first = stream_status(&mut client, vec![audio_message(vec![0; 320], 1)]).await;
    assert_eq!(
        audio_first.code(),
        tonic::Code::InvalidArgument,
        "{audio_first:?}"
    );
    assert!(audio_first.message().contains("config"));

    let odd = stream_status(
        &mut client,
        vec![
            config_message(linear16_config()),
            audio_message(vec![0; 321], 1),
        ],
    )
    .await;
    assert_eq!(odd.code(), tonic::Code::InvalidArgument, "{odd:?}");

    let unknown_model = RecognitionConfig {
        model: "no-such-model".into(),
        ..linear16_config()
    };
    let unknown = stream_status(&mut client, vec![config_message(unknown_model)]).await;
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument, "{unknown:?}");
    assert!(unknown.message().contains("no-such-model"));

    let no_rate = RecognitionConfig {
        sample_rate_hertz: 0,
        ..linear16_config()
    };
    let missing_rate = stream_status(&mut client, vec![config_message(no_rate)]).await;
    assert_eq!(missing_rate.code(), tonic::Code::InvalidArgument);

    let huge = RecognizeRequest {
        config: None,
        audio: vec![0; 2 << 20],
    };
    let too_big = client.recognize(huge).await.unwrap_err();
    assert_eq!(
        too_big.code(),
        tonic::Code::ResourceExhausted,
        "{too_big:?}"
    );

    let not_audio = RecognizeRequest {
        config: None,
        audio: b"this is not audio at all".repeat(20),
    };
    let bad_audio = client.recognize(not_audio).await.unwrap_err();
    assert_eq!(
        bad_audio.code(),
        tonic::Code::InvalidArgument,
        "{bad_audio:?}"
    );

    // Two open streams take both session slots; a third is refused with a retry hint.
    let (hold_tx1, hold_rx1) = tokio::sync::mpsc::channel(1);
    let (hold_tx2, hold_rx2) = tokio::sync::mpsc::channel(1);
    hold_tx1
        .send(config_message(linear16_config()))
        .await
        .unwrap();
    hold_tx2
        .send(config_message(linear16_config()))
        .await
        .unwrap();
    let mut c1 = client.clone();
    let mut c2 = client.clone();
    let s1 = c1
        .streaming_recognize(tokio_stream::wrappers::ReceiverStream::new(hold_rx1))
        .await
        .unwrap();
    let s2 = c2
        .streaming_recognize(tokio_stream::wrappers::ReceiverStream::new(hold_rx2))
        .await
        .unwrap();
    let mut s1 = s1.into_inner();
    let mut s2 = s2.into_inner();
    s1.next().await.unwrap().unwrap();
    s2.next().await.unwrap().unwrap();
    let third = stream_status(&mut client, vec![config_message(linear16_config())]).await;
    assert_eq!(third.code(), tonic::Code::ResourceExhausted, "{third:?}");
    assert!(third.metadata().get("grpc-retry-pushback-ms").is_some());
    let eos = StreamingRecognizeRequest {
        request: Some(StreamRequest::Control(Control {
            action: Some(Action::EndOfStream(EndOfStream {})),
        })),
    };
    hold_tx1.send(eos.clone()).await.unwrap();
    hold_tx2.send(eos).await.unwrap();
    while s1.next().await.is_some() {}
    while s2.next().await.is_some() {}
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognize_returns_the_whole_transcript_and_cancel_empties_the_queue() {
    let (clip, samples) = support::clip("ls_61-70968-0000");
    let server = start(Limits::default()).await;
    let mut client = client(&server).await;
    let config = RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: 16_000,
        word_timestamps: true,
        ..Default::default()
    };
    let response = client
        .recognize(RecognizeRequest {
            config: Some(config.clone()),
            audio: f32_to_pcm16le(&samples),
        })
        .await
        .unwrap()
        .into_inner();
    let wer = english_wer(&clip.text, &response.text).wer();
    assert!(wer <= 0.15, "WER {wer:.3}: {:?}", response.text);
    assert!(
        response.segments.iter().all(|s| !s.words.is_empty()),
        "{:?}",
        response.segments
    );

    // One message holding far more speech than max_lead_seconds (30 s) lets: refused.
    let flood: Vec<f32> = samples.iter().copied().cycle().take(16_000 * 70).collect();
    let overrun = stream_status(
        &mut client,
        vec![
            config_message(linear16_config()),
            audio_message(f32_to_pcm16le(&flood), 1),
        ],
    )
    .await;
    assert_eq!(
        overrun.code(),
        tonic::Code::ResourceExhausted,
        "{overrun:?}"
    );
    assert!(
        overrun.message().contains("max_lead_seconds"),
        "{overrun:?}"
    );

    // Queue many long requests, then drop them: the queue must empty at once.
    let long: Vec<f32> = samples.iter().copied().cycle().take(16_000 * 120).collect();
    let audio = f32_to_pcm16le(&long);
    let mut calls = Vec::new();
    for _ in 0..6 {
        let mut c = client.clone();
        let request = RecognizeRequest {
            config: Some(config.clone()),
            audio: audio.clone(),
        };
        calls.push(tokio::spawn(async move { c.recognize(request).await }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.engine().queued() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.engine().queued() > 0, "jobs never queued");
    for call in &calls {
        call.abort();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.engine().queued() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.engine().queued(), 0, "cancelled jobs stayed queued");
    // A queued job is counted as it leaves the queue; one the worker had already admitted
    // is noticed after the batch step in flight, which takes seconds on a 2-core debug run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.engine().stats().jobs_cancelled() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = server.engine().stats();
    assert!(stats.jobs_cancelled() > 0, "{stats:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_get_their_own_transcripts_in_shared_batches() {
    let ids = [
        "ls_61-70968-0000",
        "fw_stereo_right",
        "sb_spk1_snt1",
        "sb_spk1_snt2",
        "sb_spk2_snt1",
        "sb_spk2_snt2",
        "cmu_goforward",
        "ls_61-70968-0002",
    ];
    let server = start(Limits::default()).await;
    let client = client(&server).await;
    let mut tasks = Vec::new();
    for id in ids {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move {
            let (clip, samples) = support::clip(id);
            let responses = c
                .streaming_recognize(paced_frames(samples, 1.0))
                .await
                .expect("stream opens")
                .into_inner();
            let text = final_text(&collect(responses).await);
            (clip, text)
        }));
    }
    let mut total = hearken::eval::WerCounts::default();
    for task in tasks {
        let (clip, text) = task.await.unwrap();
        let counts = english_wer(&clip.text, &text);
        assert!(
            counts.wer() <= 0.5,
            "{}: {text:?} vs {:?}",
            clip.id,
            clip.text
        );
        total += counts;
    }
    let wer = total.wer();
    assert!(wer <= 0.2, "overall streamed WER {wer:.3}");
    let stats = server.engine().stats();
    assert!(
        stats.largest_batch > 1,
        "no batch held more than one job: {stats:?}"
    );
    server.shutdown().await.unwrap();
}

/// `jfk.wav` re-encoded by ffmpeg with `args` into a temporary `name`; returns its bytes.
fn ffmpeg_jfk(args: &[&str], name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let jfk = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/en/jfk.wav");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i", jfk])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs (apt-get install -y ffmpeg)");
    assert!(status.success(), "ffmpeg {args:?}");
    std::fs::read(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_and_telephony_encodings_stream_too() {
    let server = start(Limits::default()).await;
    let (clip, _) = support::clip("jfk");
    let cases = [
        // A container is decoded when the stream ends.
        (
            AudioEncoding::Mp3,
            0,
            ffmpeg_jfk(&["-b:a", "64k"], "jfk.mp3"),
        ),
        // G.711 at 8 kHz: decoded and resampled chunk by chunk.
        (
            AudioEncoding::Mulaw,
            8_000,
            ffmpeg_jfk(&["-f", "mulaw", "-ar", "8000"], "jfk.ul"),
        ),
    ];
    for (encoding, rate, bytes) in cases {
        let config = RecognitionConfig {
            encoding: encoding as i32,
            sample_rate_hertz: rate,
            ..Default::default()
        };
        let mut messages = vec![config_message(config)];
        for (i, chunk) in bytes.chunks(8 << 10).enumerate() {
            messages.push(audio_message(chunk.to_vec(), i as u64 + 1));
        }
        let responses = client(&server)
            .await
            .streaming_recognize(tokio_stream::iter(messages))
            .await
            .expect("stream accepted")
            .into_inner();
        let text = final_text(&collect(responses).await);
        let wer = english_wer(&clip.text, &text).wer();
        assert!(wer <= 0.15, "{encoding:?}: WER {wer:.3} for {text:?}");
    }
    server.shutdown().await.unwrap();
}
