//! The gRPC front end over the scripted backend: the stream controls, endpointing, timeouts,
//! shutdown, failures and refusals, on a real server on loopback with no model weights.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use super::ServerOptions;
use super::proto::control::Action;
use super::proto::speech_client::SpeechClient;
use super::proto::streaming_recognize_request::Request;
use super::proto::streaming_recognize_response::Event;
use super::proto::{
    AudioChunk, AudioEncoding, Control, EndOfStream, Finalize, KeepAlive, RecognitionConfig,
    RecognizeRequest, StreamingRecognizeRequest, StreamingRecognizeResponse,
};
use crate::audio::f32_to_pcm16le;
use crate::engine::backend::scripted::{say, silence};
use crate::engine::{EngineConfig, ScriptedBackend};
use crate::server::{RunningServer, ServeConfig};
use crate::service::Limits;

mod bad_input;
mod resume;

const TIMEOUT: Duration = Duration::from_secs(10);

fn serve_config(limits: Limits, engine: EngineConfig, grace: Duration) -> ServeConfig {
    ServeConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: None,
        model_id: "scripted".into(),
        device: "cpu".into(),
        engine,
        limits,
        origins: Default::default(),
        tenants: None,
        tls: None,
        metrics_addr: None,
        transport: ServerOptions::default(),
        shutdown_grace: grace,
        shutdown_finalize: grace,
        vad: crate::session::Detector::Energy,
        long_files: crate::service::LongFiles::default(),
    }
}

async fn start(backend: &ScriptedBackend) -> RunningServer {
    let config = serve_config(Limits::default(), EngineConfig::default(), TIMEOUT);
    RunningServer::start(backend.clone(), config).await.unwrap()
}

async fn client(server: &RunningServer) -> SpeechClient<Channel> {
    SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap()
}

fn linear16(config: RecognitionConfig) -> RecognitionConfig {
    RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: 16_000,
        ..config
    }
}

fn request(request: Request) -> StreamingRecognizeRequest {
    StreamingRecognizeRequest {
        request: Some(request),
    }
}

fn control(action: Action) -> StreamingRecognizeRequest {
    request(Request::Control(Control {
        action: Some(action),
    }))
}

/// A live stream: the test sends requests as it pleases and reads responses.
struct Stream {
    tx: mpsc::Sender<StreamingRecognizeRequest>,
    responses: Streaming<StreamingRecognizeResponse>,
}

impl Stream {
    async fn open(server: &RunningServer, config: Option<RecognitionConfig>) -> Self {
        let (tx, rx) = mpsc::channel(256);
        if let Some(config) = config {
            tx.send(request(Request::Config(linear16(config))))
                .await
                .unwrap();
        }
        let responses = client(server)
            .await
            .streaming_recognize(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Self { tx, responses }
    }

    async fn send_audio(&self, samples: &[f32]) {
        for (i, frame) in samples.chunks(1_600).enumerate() {
            let chunk = AudioChunk {
                data: f32_to_pcm16le(frame),
                sequence: i as u64 + 1,
            };
            self.tx.send(request(Request::Audio(chunk))).await.unwrap();
        }
    }

    async fn send(&self, action: Action) {
        self.tx.send(control(action)).await.unwrap();
    }

    /// The next event, `Ok(None)` at the end of the stream.
    async fn next(&mut self) -> Result<Option<Event>, Status> {
        let next = tokio::time::timeout(TIMEOUT, self.responses.next())
            .await
            .expect("the server answers in time");
        Ok(next.transpose()?.and_then(|r| r.event))
    }

    /// The next final transcript's text; `None` when the stream ends first.
    async fn next_final(&mut self) -> Result<Option<String>, Status> {
        while let Some(event) = self.next().await? {
            if let Event::Transcript(t) = event
                && t.is_final
            {
                return Ok(Some(t.committed.trim().to_string()));
            }
        }
        Ok(None)
    }

    /// The status the stream ends with, skipping its events.
    ///
    /// # Panics
    /// When the stream ends with OK.
    async fn error(&mut self) -> Status {
        loop {
            match self.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without an error"),
                Err(status) => return status,
            }
        }
    }

    /// Every final until the stream ends.
    async fn finals(&mut self) -> Result<Vec<String>, Status> {
        let mut finals = Vec::new();
        while let Some(text) = self.next_final().await? {
            finals.push(text);
        }
        Ok(finals)
    }
}

fn config() -> RecognitionConfig {
    RecognitionConfig::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpointing_ms_sets_the_pause_that_ends_an_utterance() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let mut audio = say(&["three"]);
    audio.extend(silence(0.6));
    audio.extend(say(&["five"]));
    audio.extend(silence(2.0));
    for (endpointing_ms, expected) in [(300, vec!["three", "five"]), (1500, vec!["three five"])] {
        let config = RecognitionConfig {
            endpointing_ms,
            ..config()
        };
        let mut stream = Stream::open(&server, Some(config)).await;
        let Some(Event::SessionStarted(started)) = stream.next().await.unwrap() else {
            panic!("SessionStarted first")
        };
        assert_eq!(
            started.effective_config.unwrap().endpointing_ms,
            endpointing_ms
        );
        stream.send_audio(&audio).await;
        stream.send(Action::EndOfStream(EndOfStream {})).await;
        assert_eq!(
            stream.finals().await.unwrap(),
            expected,
            "{endpointing_ms} ms"
        );
    }
    server.shutdown().await.unwrap();
}

/// Reads transcript updates until one satisfies `done`; returns it.
async fn update_where(
    stream: &mut Stream,
    done: impl Fn(&super::proto::TranscriptUpdate) -> bool,
) -> super::proto::TranscriptUpdate {
    loop {
        match stream.next().await.unwrap() {
            Some(Event::Transcript(t)) if done(&t) => return t,
            Some(_) => {}
            None => panic!("the stream ended first"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn align_att_commits_a_word_from_the_first_result_that_hears_it_whole() {
    use super::proto::StreamingPolicy;
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    // "three" at 0-0.4 s, "five" at 1.0-1.4 s, then silence to 3 s. The first request (0.7 s)
    // hears only "three"; the model is held until all 3 s have arrived, so the second request
    // hears "five" whole, 1.6 s before its end.
    let mut audio = say(&["three"]);
    audio.extend(silence(0.35));
    audio.extend(say(&["five"]));
    audio.extend(silence(1.35));
    let chunks = audio.len().div_ceil(1_600) as u64;
    for (policy, five_committed_at_once) in [
        (StreamingPolicy::AlignAtt, true),
        (StreamingPolicy::LocalAgreement, false),
        (StreamingPolicy::Unspecified, false),
    ] {
        let config = RecognitionConfig {
            policy: policy as i32,
            interim_results: true,
            // Keeps the utterance open through the silence.
            endpointing_ms: 3_000,
            ..config()
        };
        let paused = backend.pause();
        let mut stream = Stream::open(&server, Some(config)).await;
        let Some(Event::SessionStarted(started)) = stream.next().await.unwrap() else {
            panic!("SessionStarted first")
        };
        let effective = started.effective_config.unwrap().policy();
        let expected = match policy {
            StreamingPolicy::AlignAtt => StreamingPolicy::AlignAtt,
            _ => StreamingPolicy::LocalAgreement,
        };
        assert_eq!(effective, expected, "{policy:?}");
        stream.send_audio(&audio).await;
        loop {
            match stream.next().await.unwrap() {
                Some(Event::AudioAck(ack)) if ack.sequence >= chunks => break,
                Some(_) => {}
                None => panic!("the stream ended first"),
            }
        }
        drop(paused);
        let first_with_five = update_where(&mut stream, |t| {
            format!("{}{}", t.committed, t.tentative).contains("five")
        })
        .await;
        assert!(!first_with_five.is_final, "{policy:?}: {first_with_five:?}");
        assert_eq!(
            first_with_five.committed.contains("five"),
            five_committed_at_once,
            "{policy:?}: {first_with_five:?}"
        );
        stream.send(Action::EndOfStream(EndOfStream {})).await;
        assert_eq!(stream.finals().await.unwrap(), ["three five"], "{policy:?}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_ends_the_utterance_now_and_keep_alive_changes_nothing() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let mut stream = Stream::open(&server, Some(config())).await;
    for _ in 0..3 {
        stream.send(Action::KeepAlive(KeepAlive {})).await;
    }
    // No trailing silence: only Finalize can end this utterance.
    stream.send_audio(&say(&["four", "four"])).await;
    stream.send(Action::Finalize(Finalize {})).await;
    assert_eq!(
        stream.next_final().await.unwrap().as_deref(),
        Some("four four")
    );
    // The stream is still open: a second utterance, then a clean end.
    stream.send(Action::KeepAlive(KeepAlive {})).await;
    let mut audio = say(&["two"]);
    audio.extend(silence(1.5));
    stream.send_audio(&audio).await;
    stream.send(Action::EndOfStream(EndOfStream {})).await;
    assert_eq!(stream.finals().await.unwrap(), ["two"]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_utterance_ends_the_stream_after_the_first_final() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let config = RecognitionConfig {
        single_utterance: true,
        ..config()
    };
    let mut stream = Stream::open(&server, Some(config)).await;
    let mut audio = say(&["six"]);
    audio.extend(silence(1.5));
    audio.extend(say(&["seven"]));
    audio.extend(silence(1.5));
    stream.send_audio(&audio).await;
    // The client never ends its side; the server does, after one utterance.
    assert_eq!(stream.finals().await.unwrap(), ["six"]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_config_times_out_with_a_clear_error() {
    let backend = ScriptedBackend::english();
    let limits = Limits {
        config_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let config = serve_config(limits, EngineConfig::default(), TIMEOUT);
    let server = RunningServer::start(backend, config).await.unwrap();
    let mut stream = Stream::open(&server, None).await;
    let status = stream.next().await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        status.message().contains("no config received within 0.2 s"),
        "{status:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_is_ended_after_the_idle_timeout_and_keep_alive_resets_it() {
    let backend = ScriptedBackend::english();
    let limits = Limits {
        idle_timeout: Duration::from_millis(400),
        max_sessions: 1,
        ..Limits::default()
    };
    let config = serve_config(limits, EngineConfig::default(), TIMEOUT);
    let server = RunningServer::start(backend, config).await.unwrap();
    let mut stream = Stream::open(&server, Some(RecognitionConfig::default())).await;
    stream.next().await.unwrap(); // SessionStarted
    // KeepAlive every 200 ms holds the stream open well past the timeout...
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.send(Action::KeepAlive(KeepAlive {})).await;
    }
    stream.send_audio(&say(&["one"])).await;
    stream.send(Action::Finalize(Finalize {})).await;
    assert_eq!(stream.next_final().await.unwrap().as_deref(), Some("one"));
    // ...then silence ends it, and frees its slot for the next client.
    let status = stream.error().await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status
            .message()
            .contains("no audio or control message for 0.4 s"),
        "{status:?}"
    );
    let mut next = Stream::open(&server, Some(RecognitionConfig::default())).await;
    assert!(matches!(
        next.next().await.unwrap(),
        Some(Event::SessionStarted(_))
    ));
    drop(next);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_open_past_the_shutdown_grace_get_unavailable() {
    let backend = ScriptedBackend::english();
    let grace = Duration::from_millis(300);
    let config = serve_config(Limits::default(), EngineConfig::default(), grace);
    let server = RunningServer::start(backend.clone(), config).await.unwrap();
    let mut stream = Stream::open(&server, Some(RecognitionConfig::default())).await;
    stream.next().await.unwrap(); // SessionStarted
    // The model hangs: the stream's final can never come.
    let warm_batches = backend.batches().len();
    let paused = backend.pause();
    stream.send_audio(&say(&["eight", "eight"])).await;
    backend.wait_for_batches(warm_batches + 1, TIMEOUT);
    let shutdown = tokio::spawn(server.shutdown());
    let status = stream.error().await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("grace period"), "{status:?}");
    drop(paused);
    tokio::time::timeout(TIMEOUT, shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_lets_live_streams_go_on_until_it_must_finalize_them() {
    let backend = ScriptedBackend::english();
    let grace = Duration::from_secs(4);
    let config = ServeConfig {
        shutdown_finalize: Duration::from_secs(1),
        ..serve_config(Limits::default(), EngineConfig::default(), grace)
    };
    let server = RunningServer::start(backend, config).await.unwrap();
    let addr = server.grpc_addr;
    let mut ending = Stream::open(&server, Some(RecognitionConfig::default())).await;
    let mut staying = Stream::open(&server, Some(RecognitionConfig::default())).await;
    for stream in [&mut ending, &mut staying] {
        stream.next().await.unwrap(); // SessionStarted
        stream.send_audio(&say(&["one"])).await;
    }
    let began = tokio::time::Instant::now();
    let shutdown = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New clients are turned away (health NOT_SERVING, the listener closed)...
    let refused = SpeechClient::connect(format!("http://{addr}")).await;
    assert!(refused.is_err(), "a draining server took a new connection");
    // ...while the open streams keep streaming: audio sent after shutdown began is heard.
    ending.send_audio(&say(&["two"])).await;
    ending.send(Action::Finalize(Finalize {})).await;
    assert_eq!(
        ending.next_final().await.unwrap().as_deref(),
        Some("one two")
    );
    drop(ending);
    // A stream that does not end is told to finalize 1 s before the 4 s grace runs out,
    // and gets its final.
    assert_eq!(staying.next_final().await.unwrap().as_deref(), Some("one"));
    let finalized_after = began.elapsed();
    assert!(
        (Duration::from_millis(2_800)..Duration::from_millis(3_900)).contains(&finalized_after),
        "finalized after {finalized_after:?}"
    );
    assert_eq!(staying.next().await.unwrap(), None, "then the stream ends");
    tokio::time::timeout(TIMEOUT, shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

fn recognize_request(samples: &[f32]) -> RecognizeRequest {
    RecognizeRequest {
        config: Some(linear16(config())),
        audio: f32_to_pcm16le(samples),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_failure_is_internal_and_its_detail_stays_on_the_server() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let mut client = client(&server).await;
    let ok = client
        .recognize(recognize_request(&say(&["five", "one"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.text, "five one");
    backend.fail_next(1);
    let status = client
        .recognize(recognize_request(&say(&["five"])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(!status.message().contains("CUDA"), "{status:?}");
    assert!(!status.message().contains("scripted"), "{status:?}");
    server.shutdown().await.unwrap();
}

type RecognizeCall =
    tokio::task::JoinHandle<Result<tonic::Response<super::proto::RecognizeResponse>, Status>>;

async fn spawn_recognize(server: &RunningServer) -> RecognizeCall {
    let mut client = client(server).await;
    tokio::spawn(async move { client.recognize(recognize_request(&say(&["two"]))).await })
}

/// Polls `condition` until it holds.
///
/// # Panics
/// When it does not hold within [`TIMEOUT`].
async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_resource_exhausted_with_a_retry_hint() {
    let backend = ScriptedBackend::english();
    let engine = EngineConfig {
        max_batch: 1,
        max_queued: 1,
        ..EngineConfig::default()
    };
    let config = serve_config(Limits::default(), engine, TIMEOUT);
    let server = RunningServer::start(backend.clone(), config).await.unwrap();
    let warm_batches = backend.batches().len();
    let paused = backend.pause();
    // One call runs (stuck in its step), then one waits: the queue is full.
    let running = spawn_recognize(&server).await;
    wait_until(|| backend.batches().len() > warm_batches).await;
    let waiting = spawn_recognize(&server).await;
    wait_until(|| server.engine().queued() == 1).await;
    let status = client(&server)
        .await
        .recognize(recognize_request(&say(&["two"])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "1000"
    );
    drop(paused);
    for call in [running, waiting] {
        assert_eq!(call.await.unwrap().unwrap().into_inner().text, "two");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_calls_from_unlisted_origins_are_permission_denied() {
    let backend = ScriptedBackend::english();
    let serve = ServeConfig {
        origins: crate::service::Origins::parse("https://app.example.com").unwrap(),
        ..serve_config(Limits::default(), EngineConfig::default(), TIMEOUT)
    };
    let server = RunningServer::start(backend.clone(), serve).await.unwrap();
    let recognize = |origin: Option<&str>| {
        let mut request = tonic::Request::new(RecognizeRequest {
            config: Some(linear16(config())),
            audio: f32_to_pcm16le(&say(&["seven"])),
        });
        if let Some(origin) = origin {
            request
                .metadata_mut()
                .insert("origin", origin.parse().unwrap());
        }
        request
    };
    let mut client = client(&server).await;
    let warm_batches = backend.batches().len();
    let status = client
        .recognize(recognize(Some("https://evil.example")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("--cors-origins"), "{status:?}");
    assert_eq!(
        backend.batches().len(),
        warm_batches,
        "nothing was transcribed"
    );
    for origin in [Some("https://app.example.com"), None] {
        let response = client.recognize(recognize(origin)).await.unwrap();
        assert_eq!(response.into_inner().text.trim(), "seven");
    }
    server.shutdown().await.unwrap();
}

fn tenants() -> crate::service::Tenants {
    use crate::service::tenants::digest_line;
    crate::service::Tenants::parse(&format!(
        "[[tenant]]\nid = \"acme\"\nkeys = [\"{}\"]\nmax_sessions = 1\n\n\
         [[tenant]]\nid = \"beta\"\nkeys = [\"{}\"]\naudio_seconds_per_minute = 2.0\n",
        digest_line("hk_acme"),
        digest_line("hk_beta"),
    ))
    .unwrap()
}

fn with_key<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_name_the_tenant_and_quotas_hold_per_tenant() {
    let backend = ScriptedBackend::english();
    let serve = ServeConfig {
        tenants: Some(tenants()),
        ..serve_config(Limits::default(), EngineConfig::default(), TIMEOUT)
    };
    let server = RunningServer::start(backend, serve).await.unwrap();
    let mut client = client(&server).await;
    let recognize = |words: &[&str], key: Option<&str>| {
        with_key(
            RecognizeRequest {
                config: Some(linear16(config())),
                audio: f32_to_pcm16le(&say(words)),
            },
            key,
        )
    };
    for (key, needle) in [
        (
            None,
            "requires an API key: send `authorization: Bearer KEY`",
        ),
        (Some("Bearer hk_guess"), "invalid API key"),
        (Some("Basic aGs6YWNtZQ=="), "must be `Bearer KEY`"),
    ] {
        let status = client
            .recognize(recognize(&["one"], key))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{key:?}");
        assert!(status.message().contains(needle), "{status:?}");
        assert!(
            !status.message().contains("hk_guess"),
            "keys are never echoed"
        );
    }
    let ok = client
        .recognize(recognize(&["two"], Some("Bearer hk_acme")))
        .await
        .unwrap();
    assert_eq!(ok.into_inner().text.trim(), "two");

    // acme may hold one session: a second is refused while its stream is open; beta is not.
    let (tx, rx) = mpsc::channel(8);
    tx.send(request(Request::Config(linear16(config()))))
        .await
        .unwrap();
    let mut open = client
        .streaming_recognize(with_key(ReceiverStream::new(rx), Some("bearer hk_acme")))
        .await
        .unwrap()
        .into_inner();
    assert!(open.next().await.unwrap().is_ok(), "SessionStarted");
    let status = client
        .recognize(recognize(&["three"], Some("Bearer hk_acme")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("tenant `acme` is over its quota of 1 concurrent sessions"),
        "{status:?}"
    );
    assert!(status.metadata().get("grpc-retry-pushback-ms").is_some());
    let other = client
        .recognize(recognize(&["one"], Some("Bearer hk_beta")))
        .await
        .unwrap();
    assert_eq!(other.into_inner().text.trim(), "one");
    drop(tx);
    while open.next().await.is_some() {}

    // beta has 2 s of audio a minute: "one" took 0.65 s, three words more do not fit.
    let status = client
        .recognize(recognize(&["one", "two", "three"], Some("Bearer hk_beta")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("2 s of audio per minute"),
        "{status:?}"
    );

    // Health stays open for probes.
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    assert!(health.check(check).await.is_ok());

    let metrics = server.service.metrics().registry().render();
    assert!(
        metrics.contains("hearken_tenant_sessions_total{tenant=\"acme\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("hearken_tenant_audio_seconds_total{tenant=\"beta\""),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_a_stream_that_outruns_the_model_alive_and_says_what_it_dropped() {
    use super::proto::Overflow;
    use super::proto::speech_event::Kind;
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let mut speech: Vec<f32> = (0..12).flat_map(|_| say(&["four"])).collect();
    speech.extend(say(&["nine"]));
    let config = |overflow: Overflow| RecognitionConfig {
        max_lead_seconds: 3.0,
        overflow: overflow as i32,
        interim_results: true,
        ..config()
    };

    // The default refuses a client that runs far ahead of a stuck model.
    let paused = backend.pause();
    let mut rejecting = Stream::open(&server, Some(config(Overflow::Reject))).await;
    let chunk = AudioChunk {
        data: f32_to_pcm16le(&speech),
        sequence: 1,
    };
    rejecting
        .tx
        .send(request(Request::Audio(chunk)))
        .await
        .unwrap();
    let status = rejecting.error().await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_lead_seconds"), "{status:?}");

    // DROP_OLDEST reads on, drops what the model cannot reach, and says so.
    let mut dropping = Stream::open(&server, Some(config(Overflow::DropOldest))).await;
    dropping.send_audio(&speech).await;
    // Acknowledged every second of audio: wait for the one at 8 s, which the stuck model
    // cannot have reached.
    let mut events = Vec::new();
    while !events.iter().any(|e| {
        matches!(e, Event::AudioAck(ack) if ack.dropped_seconds > 0.0
            && ack.sequence >= 80)
    }) {
        events.push(dropping.next().await.unwrap().expect("still open"));
    }
    // The model recovers and the client goes on at real-time pace: the newest speech, which
    // was never dropped, is transcribed.
    drop(paused);
    for frame in silence(1.5).chunks(1_600) {
        dropping.send_audio(frame).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dropping.send(Action::EndOfStream(EndOfStream {})).await;
    while let Some(event) = dropping.next().await.unwrap() {
        events.push(event);
    }
    let dropped: f64 = events
        .iter()
        .filter_map(|e| match e {
            Event::Speech(s) if s.kind == Kind::AudioDropped as i32 => Some(s.dropped_seconds),
            _ => None,
        })
        .sum();
    assert!(dropped > 3.0, "{dropped} s dropped: {events:?}");
    let finals: Vec<&super::proto::TranscriptUpdate> = events
        .iter()
        .filter_map(|e| match e {
            Event::Transcript(t) if t.is_final => Some(t),
            _ => None,
        })
        .collect();
    assert!(finals.iter().any(|t| t.audio_dropped), "{finals:?}");
    let last = finals.last().expect("a final");
    assert!(last.committed.ends_with("nine"), "{last:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_get_their_finals_within_a_short_grace_while_a_long_file_runs() {
    // A model whose every step costs 100 ms over 2 s windows: a 60 s file takes 3 s.
    let backend = ScriptedBackend::english()
        .with_cost(Duration::from_millis(100), Duration::ZERO)
        .with_window(2.0);
    let grace = Duration::from_millis(1_500);
    let config = serve_config(Limits::default(), EngineConfig::default(), grace);
    let server = RunningServer::start(backend.clone(), config).await.unwrap();
    let long: Vec<f32> = (0..92).flat_map(|_| say(&["six"])).collect();
    let mut file_client = client(&server).await;
    let file = tokio::spawn(async move {
        file_client
            .recognize(recognize_request(&long))
            .await
            .map(|r| r.into_inner().text)
    });
    // The file is decoding window after window when the streams start.
    backend.wait_for_batches(3, TIMEOUT);
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = Stream::open(&server, Some(RecognitionConfig::default())).await;
        stream.next().await.unwrap(); // SessionStarted
        stream.send_audio(&say(&["three", "four"])).await;
        // Shutdown stops reading: wait until the speech is in.
        while !matches!(stream.next().await.unwrap(), Some(Event::Speech(_))) {}
        streams.push(stream);
    }
    let shutdown = tokio::spawn(server.shutdown());
    for mut stream in streams {
        assert_eq!(
            stream.next_final().await.unwrap().as_deref(),
            Some("three four"),
            "a live stream lost its final to the grace"
        );
    }
    let file = file.await.unwrap();
    assert!(
        matches!(&file, Err(status) if status.code() == Code::Unavailable),
        "the 60 s file cannot finish in 1.5 s: {file:?}"
    );
    tokio::time::timeout(TIMEOUT, shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
