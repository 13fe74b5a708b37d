//! The gRPC half of the bad-input matrix: every malformed, out-of-range, out-of-order or
//! stalled request a buggy or hostile client can send to `StreamingRecognize` and `Recognize`,
//! each answered with the right code and a message naming the problem, with the server still
//! healthy, every slot given back and no panic anywhere.

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::*;
use crate::test_support::{f32le_bytes, panics_so_far};

/// A 16-bit mono WAV of `data` claiming `rate`.
fn wav(rate: u32, data: &[u8]) -> Vec<u8> {
    crate::test_support::wav_with(1, 16, rate, data, None)
}

/// Limits small enough that the size, length and time cases are quick to reach.
fn strict_limits() -> Limits {
    Limits {
        max_message_bytes: 2 << 20,
        max_audio_seconds: 60.0,
        config_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(400),
        ..Limits::default()
    }
}

async fn start_strict(backend: &ScriptedBackend) -> RunningServer {
    let config = serve_config(strict_limits(), EngineConfig::default(), TIMEOUT);
    RunningServer::start(backend.clone(), config).await.unwrap()
}

/// Asserts the server answers its health check SERVING and holds no session.
async fn assert_healthy(server: &RunningServer, case: &str) {
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let check = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .unwrap_or_else(|status| panic!("{case}: health check failed: {status:?}"))
        .into_inner();
    assert_eq!(check.status, ServingStatus::Serving as i32, "{case}");
    wait_until(|| server.service.open_sessions() == 0).await;
}

fn audio(data: Vec<u8>) -> StreamingRecognizeRequest {
    request(Request::Audio(AudioChunk { data, sequence: 1 }))
}

fn config_message(config: RecognitionConfig) -> StreamingRecognizeRequest {
    request(Request::Config(config))
}

fn float32() -> RecognitionConfig {
    RecognitionConfig {
        encoding: AudioEncoding::Float32Le as i32,
        sample_rate_hertz: 16_000,
        ..config()
    }
}

/// One second of speech with `value` at sample `at` (0.5 s into it).
fn speech_with(value: f32) -> Vec<u8> {
    let mut samples = say(&["one", "two"]);
    samples[8_000] = value;
    f32le_bytes(&samples)
}

/// One `StreamingRecognize` case: the messages sent, whether the client then stalls (keeps
/// the stream open and sends nothing) or half-closes, and the status it must end with.
struct StreamCase {
    name: &'static str,
    messages: Vec<StreamingRecognizeRequest>,
    stall: bool,
    code: Code,
    needle: &'static str,
}

fn stream_case(
    name: &'static str,
    messages: Vec<StreamingRecognizeRequest>,
    code: Code,
    needle: &'static str,
) -> StreamCase {
    StreamCase {
        name,
        messages,
        stall: false,
        code,
        needle,
    }
}

fn stream_cases() -> Vec<StreamCase> {
    use Code::{DeadlineExceeded, InvalidArgument, ResourceExhausted};
    let pcm = |config: RecognitionConfig| config_message(linear16(config));
    let rated = |encoding: AudioEncoding, rate: u32| {
        config_message(RecognitionConfig {
            encoding: encoding as i32,
            sample_rate_hertz: rate,
            ..config()
        })
    };
    let speech = f32_to_pcm16le(&say(&["one"]));
    vec![
        // Wrong order and wrong shapes.
        stream_case(
            "audio before any config",
            vec![audio(speech.clone())],
            InvalidArgument,
            "first message of a stream must carry `config`",
        ),
        stream_case(
            "a control before any config",
            vec![control(Action::EndOfStream(EndOfStream {}))],
            InvalidArgument,
            "first message of a stream must carry `config`",
        ),
        stream_case(
            "an empty stream",
            vec![],
            InvalidArgument,
            "the stream ended before any config was sent",
        ),
        stream_case(
            "config sent twice",
            vec![pcm(config()), pcm(config())],
            InvalidArgument,
            "config may be sent only once",
        ),
        stream_case(
            "a control without an action",
            vec![
                pcm(config()),
                request(Request::Control(Control { action: None })),
            ],
            InvalidArgument,
            "control message without an action",
        ),
        stream_case(
            "an empty request message",
            vec![pcm(config()), StreamingRecognizeRequest { request: None }],
            InvalidArgument,
            "empty request message",
        ),
        // Out-of-range and unknown values.
        stream_case(
            "an unknown encoding value",
            vec![config_message(RecognitionConfig {
                encoding: 99,
                ..config()
            })],
            InvalidArgument,
            "unknown audio encoding value 99",
        ),
        stream_case(
            "Silero VAD asked of a server running the energy detector",
            vec![pcm(RecognitionConfig {
                vad: crate::grpc::proto::VoiceActivityDetector::Silero as i32,
                ..config()
            })],
            InvalidArgument,
            "vad SILERO is not available: this server runs with --vad energy",
        ),
        stream_case(
            "an unknown detector",
            vec![pcm(RecognitionConfig { vad: 7, ..config() })],
            InvalidArgument,
            "unknown vad value 7; use SILERO or ENERGY",
        ),
        stream_case(
            "AUTO encoding on a stream",
            vec![config_message(config())],
            InvalidArgument,
            "encoding AUTO is for Recognize",
        ),
        stream_case(
            "LINEAR16 without a sample rate",
            vec![rated(AudioEncoding::Linear16, 0)],
            InvalidArgument,
            "sample_rate_hertz is required for LINEAR16",
        ),
        stream_case(
            "a claimed rate of 1 Hz",
            vec![rated(AudioEncoding::Linear16, 1)],
            InvalidArgument,
            "sample rate 1 Hz is out of range: accepted rates are 8000 to 192000 Hz",
        ),
        stream_case(
            "a claimed rate of 1 MHz",
            vec![rated(AudioEncoding::Float32Le, 1_000_000)],
            InvalidArgument,
            "sample rate 1000000 Hz is out of range",
        ),
        stream_case(
            "MULAW at 7999 Hz",
            vec![rated(AudioEncoding::Mulaw, 7_999)],
            InvalidArgument,
            "sample rate 7999 Hz is out of range",
        ),
        stream_case(
            "1000 channels",
            vec![pcm(RecognitionConfig {
                channels: 1_000,
                ..config()
            })],
            InvalidArgument,
            "channel count 1000 is out of range",
        ),
        stream_case(
            "an unknown task value",
            vec![pcm(RecognitionConfig {
                task: 7,
                ..config()
            })],
            InvalidArgument,
            "unknown task value 7",
        ),
        stream_case(
            "an unknown overflow value",
            vec![pcm(RecognitionConfig {
                overflow: 99,
                ..config()
            })],
            InvalidArgument,
            "unknown overflow value 99; use REJECT or DROP_OLDEST",
        ),
        stream_case(
            "an unknown policy value",
            vec![pcm(RecognitionConfig {
                policy: 5,
                ..config()
            })],
            InvalidArgument,
            "unknown policy value 5; use LOCAL_AGREEMENT or ALIGN_ATT",
        ),
        stream_case(
            "endpointing_ms of a million",
            vec![pcm(RecognitionConfig {
                endpointing_ms: 1_000_000,
                ..config()
            })],
            InvalidArgument,
            "endpointing_ms must be between",
        ),
        stream_case(
            "negative max_lead_seconds",
            vec![pcm(RecognitionConfig {
                max_lead_seconds: -1.0,
                ..config()
            })],
            InvalidArgument,
            "max_lead_seconds must be a positive number",
        ),
        stream_case(
            "NaN max_lead_seconds",
            vec![pcm(RecognitionConfig {
                max_lead_seconds: f32::NAN,
                ..config()
            })],
            InvalidArgument,
            "got NaN",
        ),
        stream_case(
            "a model this server does not serve",
            vec![pcm(RecognitionConfig {
                model: "large-v3".into(),
                ..config()
            })],
            InvalidArgument,
            "large-v3",
        ),
        stream_case(
            "a language the model lacks",
            vec![pcm(RecognitionConfig {
                language: "xx".into(),
                ..config()
            })],
            InvalidArgument,
            "xx",
        ),
        stream_case(
            "translation on an English-only model",
            vec![pcm(RecognitionConfig {
                task: super::super::proto::Task::Translate as i32,
                ..config()
            })],
            InvalidArgument,
            "multilingual",
        ),
        // Corrupt audio.
        stream_case(
            "LINEAR16 with an odd byte count",
            vec![pcm(config()), audio(vec![0; 3_201])],
            InvalidArgument,
            "not a whole number of 2-byte samples",
        ),
        stream_case(
            "bytes that are not the declared container",
            vec![
                config_message(RecognitionConfig {
                    encoding: AudioEncoding::Flac as i32,
                    ..config()
                }),
                audio(speech.clone()),
            ],
            InvalidArgument,
            "the audio was declared as flac but its bytes are unrecognised data",
        ),
        stream_case(
            "a NaN sample in FLOAT32_LE audio",
            vec![config_message(float32()), audio(speech_with(f32::NAN))],
            InvalidArgument,
            "pcm_f32le: sample 8000 (at 0.500 s) is NaN",
        ),
        stream_case(
            "an infinite sample in FLOAT32_LE audio",
            vec![config_message(float32()), audio(speech_with(f32::INFINITY))],
            InvalidArgument,
            "sample 8000 (at 0.500 s) is inf",
        ),
        stream_case(
            "a sample at 1e9 in FLOAT32_LE audio",
            vec![config_message(float32()), audio(speech_with(1e9))],
            InvalidArgument,
            "samples must be finite and within",
        ),
        // Oversize.
        stream_case(
            "a message over --max-message-bytes",
            vec![pcm(config()), audio(vec![0; 3 << 20])],
            ResourceExhausted,
            "message length too large",
        ),
        // Stalled clients.
        StreamCase {
            name: "a client that opens a stream and sends nothing",
            messages: vec![],
            stall: true,
            code: DeadlineExceeded,
            needle: "no config received within 0.4 s",
        },
        StreamCase {
            name: "a client that stalls after its config",
            messages: vec![pcm(config())],
            stall: true,
            code: DeadlineExceeded,
            needle: "no audio or control message for 0.4 s",
        },
        StreamCase {
            name: "a client that stalls mid-audio",
            messages: vec![pcm(config()), audio(speech)],
            stall: true,
            code: DeadlineExceeded,
            needle: "no audio or control message for 0.4 s",
        },
    ]
}

/// Runs one case to its final status.
async fn run_stream_case(server: &RunningServer, case: StreamCase) -> Status {
    let (tx, rx) = mpsc::channel(16);
    for message in case.messages {
        tx.send(message).await.unwrap();
    }
    // Held open for the stall cases, closed (half-close) for the rest.
    let held = case.stall.then_some(tx);
    let mut responses = client(server)
        .await
        .streaming_recognize(ReceiverStream::new(rx))
        .await
        .unwrap_or_else(|status| panic!("{}: refused at open: {status:?}", case.name))
        .into_inner();
    let status = loop {
        match tokio::time::timeout(TIMEOUT, responses.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(status))) => break status,
            Ok(None) => panic!("{}: the stream ended without an error", case.name),
            Err(_) => panic!("{}: no answer within {TIMEOUT:?}", case.name),
        }
    };
    drop(held);
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_streams_are_refused_naming_the_problem_and_the_server_stays_healthy() {
    let panics_before = panics_so_far();
    let backend = ScriptedBackend::english();
    let server = start_strict(&backend).await;
    let cases = stream_cases();
    let count = cases.len();
    for case in cases {
        let (name, code, needle) = (case.name, case.code, case.needle);
        let status = run_stream_case(&server, case).await;
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(needle),
            "{name}: `{needle}` not in {:?}",
            status.message()
        );
        assert_healthy(&server, name).await;
    }
    assert!(count >= 28, "{count} cases");

    // After all that, a well-behaved stream still transcribes.
    let mut stream = Stream::open(&server, Some(config())).await;
    stream.send_audio(&say(&["three", "four"])).await;
    stream.send(Action::EndOfStream(EndOfStream {})).await;
    assert_eq!(stream.finals().await.unwrap(), ["three four"]);
    assert_eq!(
        panics_so_far(),
        panics_before,
        "a bad stream made something panic"
    );
    server.shutdown().await.unwrap();
}

/// One `Recognize` case: the request and the status it must get.
struct RecognizeCase {
    name: &'static str,
    request: RecognizeRequest,
    code: Code,
    needle: &'static str,
}

fn recognize_case(
    name: &'static str,
    config: Option<RecognitionConfig>,
    audio: Vec<u8>,
    code: Code,
    needle: &'static str,
) -> RecognizeCase {
    RecognizeCase {
        name,
        request: RecognizeRequest { config, audio },
        code,
        needle,
    }
}

fn recognize_cases() -> Vec<RecognizeCase> {
    use Code::{InvalidArgument, ResourceExhausted};
    let speech = f32_to_pcm16le(&say(&["one"]));
    let speech_wav = wav(16_000, &speech);
    let raw = |encoding: AudioEncoding, rate: u32| {
        Some(RecognitionConfig {
            encoding: encoding as i32,
            sample_rate_hertz: rate,
            ..config()
        })
    };
    vec![
        recognize_case("no audio", None, vec![], InvalidArgument, "audio is empty"),
        recognize_case(
            "one byte",
            None,
            vec![0],
            InvalidArgument,
            "not a recognised audio format",
        ),
        recognize_case(
            "text, not audio",
            None,
            b"this is a transcript, not audio\n".to_vec(),
            InvalidArgument,
            "not a recognised audio format",
        ),
        recognize_case(
            "a truncated WAV header",
            None,
            speech_wav[..30].to_vec(),
            InvalidArgument,
            "malformed wav",
        ),
        recognize_case(
            "a WAV claiming 1 Hz",
            None,
            wav(1, &[0; 4_000]),
            InvalidArgument,
            "sample rate 1 Hz is out of range",
        ),
        recognize_case(
            "a WAV claiming 0 Hz",
            None,
            wav(0, &[0; 4_000]),
            InvalidArgument,
            "sample rate 0 Hz",
        ),
        recognize_case(
            "a WAV claiming 4 GHz",
            None,
            wav(4_000_000_000, &[0; 4_000]),
            InvalidArgument,
            "4000000000 Hz",
        ),
        recognize_case(
            "a WAV over the length limit",
            None,
            wav(8_000, &vec![0; 8_000 * 2 * 61]),
            ResourceExhausted,
            "at most 60 s",
        ),
        recognize_case(
            "raw LINEAR16 without a rate",
            raw(AudioEncoding::Linear16, 0),
            speech.clone(),
            InvalidArgument,
            "sample_rate_hertz is required for LINEAR16",
        ),
        recognize_case(
            "raw LINEAR16 claiming 1 Hz",
            raw(AudioEncoding::Linear16, 1),
            speech.clone(),
            InvalidArgument,
            "sample rate 1 Hz is out of range",
        ),
        recognize_case(
            "raw LINEAR16 with an odd byte count",
            raw(AudioEncoding::Linear16, 16_000),
            vec![0; 3_201],
            InvalidArgument,
            "not a multiple of the 2-byte sample size",
        ),
        recognize_case(
            "raw FLOAT32_LE with an infinite sample",
            raw(AudioEncoding::Float32Le, 16_000),
            speech_with(f32::NEG_INFINITY),
            InvalidArgument,
            "sample 8000 (at 0.500 s) is -inf",
        ),
        recognize_case(
            "raw audio over the length limit",
            raw(AudioEncoding::Mulaw, 8_000),
            vec![0xff; 8_000 * 61],
            ResourceExhausted,
            "at most 60 s",
        ),
        recognize_case(
            "a WAV declared as FLAC",
            Some(RecognitionConfig {
                encoding: AudioEncoding::Flac as i32,
                ..config()
            }),
            speech_wav.clone(),
            InvalidArgument,
            "declared as flac but its bytes are wav",
        ),
        recognize_case(
            "a model this server does not serve",
            Some(RecognitionConfig {
                model: "large-v3".into(),
                ..config()
            }),
            speech_wav.clone(),
            InvalidArgument,
            "large-v3",
        ),
        recognize_case(
            "a language the model lacks",
            Some(RecognitionConfig {
                language: "xx".into(),
                ..config()
            }),
            speech_wav.clone(),
            InvalidArgument,
            "xx",
        ),
        recognize_case(
            "a request over --max-message-bytes",
            None,
            vec![0; 3 << 20],
            ResourceExhausted,
            "message length too large",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_recognize_requests_are_refused_naming_the_problem() {
    let panics_before = panics_so_far();
    let backend = ScriptedBackend::english();
    let server = start_strict(&backend).await;
    let cases = recognize_cases();
    let count = cases.len();
    let mut client = client(&server).await;
    for case in cases {
        let name = case.name;
        let status = tokio::time::timeout(TIMEOUT, client.recognize(case.request))
            .await
            .unwrap_or_else(|_| panic!("{name}: no answer within {TIMEOUT:?}"))
            .expect_err(name);
        assert_eq!(status.code(), case.code, "{name}: {status:?}");
        assert!(
            status.message().contains(case.needle),
            "{name}: `{}` not in {:?}",
            case.needle,
            status.message()
        );
        assert_healthy(&server, name).await;
    }
    assert!(count >= 16, "{count} cases");
    let ok = client
        .recognize(recognize_request(&say(&["five", "six"])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.text, "five six");
    assert_eq!(
        panics_so_far(),
        panics_before,
        "a bad request made something panic"
    );
    server.shutdown().await.unwrap();
}
