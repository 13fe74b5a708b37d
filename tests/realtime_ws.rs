//! The Realtime transcription WebSocket end to end: a real server on 127.0.0.1:0 with the
//! default model, driven with OpenAI's GA and beta event shapes over tokio-tungstenite.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use hearken::engine::WhisperBackend;
use hearken::eval::english_wer;
use hearken::model::whisper::WhisperModel;
use hearken::server::RunningServer;
use hearken::service::Limits;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long any expected event may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// One test at a time: each runs its own server, and the real-time pacing checks (deltas
/// before the audio ends) mean nothing on a machine shared with another test's model.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start(limits: Limits) -> RunningServer {
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    let config = support::serve_config(limits, true);
    RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

fn ws_url(server: &RunningServer) -> String {
    let addr = server.http_addr.expect("http is on");
    format!("ws://{addr}/v1/realtime?intent=transcription")
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// A connected client: a writer and the server's events with their arrival times.
struct Client {
    sink: Sink,
    events: mpsc::UnboundedReceiver<(Instant, Value)>,
    seen: Vec<(Instant, Value)>,
}

impl Client {
    async fn connect(server: &RunningServer, headers: &[(&'static str, &str)]) -> Self {
        let mut request = ws_url(server).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", "Bearer unused".parse().unwrap());
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("upgrade succeeds");
        let (sink, mut stream) = socket.split();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    let event: Value = serde_json::from_str(text.as_str()).expect("JSON event");
                    if tx.send((Instant::now(), event)).is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            sink,
            events,
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, event: Value) {
        self.send_text(event.to_string()).await;
    }

    async fn send_text(&mut self, text: String) {
        self.sink
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    async fn append(&mut self, bytes: &[u8]) {
        let audio = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.send(json!({"type": "input_audio_buffer.append", "audio": audio}))
            .await;
    }

    /// The next event of type `kind`; earlier ones are kept in `seen`.
    async fn wait_for(&mut self, kind: &str) -> Value {
        loop {
            let (at, event) = tokio::time::timeout(EVENT_TIMEOUT, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no `{kind}` event; seen {:?}", self.kinds()))
                .unwrap_or_else(|| panic!("socket closed before `{kind}`"));
            self.seen.push((at, event.clone()));
            if event["type"] == kind {
                return event;
            }
        }
    }

    /// Waits until every committed item is complete and no speech is open, judged only on
    /// everything received so far (the server sends events in the order they happen).
    async fn wait_until_settled(&mut self) {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            while let Ok(received) = self.events.try_recv() {
                self.seen.push(received);
            }
            let count = |kind| self.of_kind(kind).len();
            let completed = count("conversation.item.input_audio_transcription.completed");
            let settled = completed > 0
                && completed == count("input_audio_buffer.committed")
                && count("input_audio_buffer.speech_started")
                    == count("input_audio_buffer.speech_stopped");
            if settled {
                return;
            }
            let (at, event) = tokio::time::timeout(EVENT_TIMEOUT, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("items never settled; seen {:?}", self.kinds()))
                .expect("socket open");
            self.seen.push((at, event));
        }
    }

    fn kinds(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|(_, e)| e["type"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    fn of_kind(&self, kind: &str) -> Vec<&(Instant, Value)> {
        self.seen
            .iter()
            .filter(|(_, e)| e["type"] == kind)
            .collect()
    }
}

/// A corpus clip at `rate` as mono PCM16 little-endian, and its reference.
fn clip_pcm16(id: &str, rate: u32) -> (Vec<u8>, String) {
    let (clip, samples) = support::clip(id);
    let resampled = hearken::audio::resample(&samples, 16_000, rate).expect("resample");
    let bytes = resampled
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32_767.0) as i16).to_le_bytes())
        .collect();
    (bytes, clip.text)
}

/// G.711 mu-law encoding of one linear sample (ITU-T G.711, with the usual bias).
fn mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let sign = if sample < 0 { 0x80 } else { 0 };
    let magnitude = (i32::from(sample).abs().min(CLIP)) + BIAS;
    let exponent = (0..8)
        .rev()
        .find(|e| magnitude & (0x80 << e) != 0)
        .unwrap_or(0);
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

fn transcripts(client: &Client) -> String {
    client
        .of_kind("conversation.item.input_audio_transcription.completed")
        .iter()
        .map(|(_, e)| e["transcript"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ga_session_streams_deltas_and_completions_at_real_time() {
    let _serial = SERIAL.lock().await;
    let server = start(Limits::default()).await;
    let (pcm, reference) = clip_pcm16("jfk", 24_000);
    // The browser form of authorization: tungstenite refuses the handshake unless the server
    // selects one of the offered subprotocols.
    let browser = [(
        "sec-websocket-protocol",
        "realtime, openai-insecure-api-key.sk-unused",
    )];
    let mut client = Client::connect(&server, &browser).await;
    let created = client.wait_for("session.created").await;
    assert_eq!(
        created["session"]["audio"]["input"]["format"]["rate"],
        24_000
    );
    client
        .send(
            json!({"type": "session.update", "session": {"type": "transcription",
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 24_000},
                "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}}}),
        )
        .await;
    client.wait_for("session.updated").await;

    let chunk = 24_000 / 10 * 2; // 100 ms
    let started = Instant::now();
    for (i, frame) in pcm.chunks(chunk).enumerate() {
        client.append(frame).await;
        tokio::time::sleep_until((started + Duration::from_millis(100 * (i as u64 + 1))).into())
            .await;
    }
    let audio_end = Instant::now();
    client.append(&vec![0u8; chunk * 15]).await; // 1.5 s of silence ends the utterance
    let speech = client.wait_for("input_audio_buffer.speech_started").await;
    assert!(speech["item_id"].as_str().unwrap().starts_with("item_"));
    client.wait_until_settled().await;

    let early_deltas = client
        .of_kind("conversation.item.input_audio_transcription.delta")
        .iter()
        .filter(|(at, _)| *at < audio_end)
        .count();
    assert!(
        early_deltas > 0,
        "no delta before the audio ended: {:?}",
        client.kinds()
    );
    assert!(!client.of_kind("input_audio_buffer.committed").is_empty());
    let text = transcripts(&client);
    let wer = english_wer(&reference, &text).wer();
    assert!(wer <= 0.15, "streamed WER {wer:.3}: {text:?}");
    let ids: std::collections::HashSet<_> = client
        .seen
        .iter()
        .map(|(_, e)| e["event_id"].to_string())
        .collect();
    assert_eq!(ids.len(), client.seen.len(), "event ids are unique");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_commit_and_errors_that_leave_the_session_open() {
    let _serial = SERIAL.lock().await;
    let server = start(Limits::default()).await;
    let (pcm, reference) = clip_pcm16("jfk", 24_000);
    let mut client = Client::connect(&server, &[]).await;
    client.wait_for("session.created").await;
    client
        .send(json!({"type": "session.update",
            "session": {"audio": {"input": {"turn_detection": null}}}}))
        .await;
    let updated = client.wait_for("session.updated").await;
    assert!(updated["session"]["audio"]["input"]["turn_detection"].is_null());

    client
        .send(json!({"type": "input_audio_buffer.commit", "event_id": "c1"}))
        .await;
    let error = client.wait_for("error").await;
    assert_eq!(error["error"]["code"], "input_audio_buffer_commit_empty");
    assert_eq!(error["error"]["event_id"], "c1");
    client.send_text("{not json".into()).await;
    assert_eq!(
        client.wait_for("error").await["error"]["code"],
        "invalid_json"
    );
    client.send(json!({"type": "response.create"})).await;
    assert_eq!(
        client.wait_for("error").await["error"]["code"],
        "unknown_event_type"
    );
    client
        .send(json!({"type": "input_audio_buffer.append", "audio": "%%%"}))
        .await;
    assert_eq!(
        client.wait_for("error").await["error"]["code"],
        "invalid_base64"
    );

    for frame in pcm.chunks(24_000 * 2) {
        client.append(frame).await;
    }
    client
        .send(json!({"type": "input_audio_buffer.commit"}))
        .await;
    let committed = client.wait_for("input_audio_buffer.committed").await;
    let completed = client
        .wait_for("conversation.item.input_audio_transcription.completed")
        .await;
    assert_eq!(completed["item_id"], committed["item_id"]);
    let text = completed["transcript"].as_str().unwrap();
    let wer = english_wer(&reference, text).wer();
    assert!(wer <= 0.15, "WER {wer:.3}: {text:?}");
    assert!(
        client
            .of_kind("input_audio_buffer.speech_started")
            .is_empty()
    );

    client
        .send(json!({"type": "input_audio_buffer.clear"}))
        .await;
    client.wait_for("input_audio_buffer.cleared").await;

    // Shutdown commits the open item and completes it before closing the socket.
    for frame in pcm.chunks(24_000 * 2) {
        client.append(frame).await;
    }
    client
        .send(json!({"type": "session.update",
            "session": {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}}))
        .await;
    let refused = client.wait_for("error").await; // an update mid-utterance; the audio is in
    assert_eq!(refused["error"]["code"], "session_update_while_busy");
    let shutdown = tokio::spawn(server.shutdown());
    let completed = client
        .wait_for("conversation.item.input_audio_transcription.completed")
        .await;
    let text = completed["transcript"].as_str().unwrap();
    assert!(english_wer(&reference, text).wer() <= 0.15, "{text:?}");
    let closed = tokio::time::timeout(EVENT_TIMEOUT, client.events.recv()).await;
    assert!(matches!(closed, Ok(None)), "socket still open: {closed:?}");
    shutdown.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beta_session_with_g711_ulaw_and_the_session_limit() {
    let limits = Limits {
        max_sessions: 1,
        ..Limits::default()
    };
    let _serial = SERIAL.lock().await;
    let server = start(limits).await;
    let (clip, samples) = support::clip("jfk");
    let ulaw: Vec<u8> = hearken::audio::resample(&samples, 16_000, 8_000)
        .unwrap()
        .iter()
        .map(|s| mulaw((s.clamp(-1.0, 1.0) * 32_767.0) as i16))
        .collect();
    let mut client = Client::connect(&server, &[("openai-beta", "realtime=v1")]).await;
    client.wait_for("transcription_session.created").await;

    let refused = hearken::tls::http_client()
        .unwrap()
        .get(format!("http://{}/v1/realtime", server.http_addr.unwrap()))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    client
        .send(json!({"type": "transcription_session.update", "session": {
            "input_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 600}}}))
        .await;
    let updated = client.wait_for("transcription_session.updated").await;
    assert_eq!(updated["session"]["input_audio_format"], "g711_ulaw");
    for frame in ulaw.chunks(8_000) {
        client.append(frame).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    client.append(&vec![0xFF; 8_000 * 2]).await; // mu-law silence
    client.wait_until_settled().await;
    let text = transcripts(&client);
    let wer = english_wer(&clip.text, &text).wer();
    assert!(wer <= 0.2, "G.711 WER {wer:.3}: {text:?}");
    server.shutdown().await.unwrap();
}
