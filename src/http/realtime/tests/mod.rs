//! The Realtime socket's transport rules on a real listener with the scripted backend: what a
//! misbehaving client is told, and how the socket closes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::engine::ScriptedBackend;
use crate::server::{RunningServer, ServeConfig};
use crate::service::Limits;

mod bad_input;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn start(limits: Limits) -> RunningServer {
    RunningServer::start(ScriptedBackend::english(), config(limits))
        .await
        .unwrap()
}

fn config(limits: Limits) -> ServeConfig {
    ServeConfig {
        limits,
        ..ServeConfig::loopback()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &RunningServer) -> Socket {
    let url = format!(
        "ws://{}/v1/realtime?intent=transcription",
        server.http_addr.unwrap()
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Reads until the server closes: the `error` events' codes, and the close code.
async fn until_closed(socket: &mut Socket) -> (Vec<String>, Option<CloseCode>) {
    let mut errors = Vec::new();
    loop {
        let message = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .expect("the server closes in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let event: Value = serde_json::from_str(&text).unwrap();
                if event["type"] == "error" {
                    errors.push(event["error"]["code"].as_str().unwrap_or("").to_string());
                }
            }
            Some(Ok(Message::Close(frame))) => return (errors, frame.map(|f| f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (errors, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_gets_an_error_and_close_1009() {
    let server = start(Limits {
        max_message_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    let mut socket = connect(&server).await;
    let audio = "A".repeat(100 * 1024);
    let event = format!(r#"{{"type":"input_audio_buffer.append","audio":"{audio}"}}"#);
    socket.send(Message::Text(event.into())).await.unwrap();
    let (errors, code) = until_closed(&mut socket).await;
    assert_eq!(errors, ["message_too_large"]);
    assert_eq!(code, Some(CloseCode::Size));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_closed_with_a_timeout_error() {
    let server = start(Limits {
        idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    // Before the connect: the server's clock starts at the upgrade, before the client's
    // handshake returns.
    let started = std::time::Instant::now();
    let mut socket = connect(&server).await;
    let (errors, code) = until_closed(&mut socket).await;
    assert_eq!(errors, ["timeout"]);
    assert_eq!(code, Some(CloseCode::Policy));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.service.open_sessions(), 0, "the slot is free");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_pass_their_key_as_a_subprotocol_and_no_key_is_refused_before_upgrade() {
    use crate::service::tenants::digest_line;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tenants = crate::service::Tenants::parse(&format!(
        "[[tenant]]\nid = \"web\"\nkeys = [\"{}\"]\n",
        digest_line("hk_web")
    ))
    .unwrap();
    let config = ServeConfig {
        tenants: Some(tenants),
        ..config(Limits::default())
    };
    let server = RunningServer::start(ScriptedBackend::english(), config)
        .await
        .unwrap();
    let url = format!(
        "ws://{}/v1/realtime?intent=transcription",
        server.http_addr.unwrap()
    );
    let refused = tokio_tungstenite::connect_async(url.clone())
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(response.status(), 401);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "realtime, openai-insecure-api-key.hk_web".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = tokio::time::timeout(TIMEOUT, socket.next()).await.unwrap();
    let Some(Ok(Message::Text(text))) = first else {
        panic!("{first:?}");
    };
    let event: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(event["type"], "session.created");
    drop(socket);
    server.shutdown().await.unwrap();
}

/// Reads events until one of `kind` arrives.
async fn wait_for(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let message = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} in time"));
        if let Some(Ok(Message::Text(text))) = message {
            let event: Value = serde_json::from_str(&text).unwrap();
            assert_ne!(event["type"], "error", "{event}");
            if event["type"] == kind {
                return event;
            }
        } else {
            panic!("socket ended waiting for {kind}: {message:?}");
        }
    }
}

/// Sends `audio` (16 kHz) as one `input_audio_buffer.append`.
async fn append(socket: &mut Socket, audio: &[f32]) {
    use base64::Engine as _;
    let pcm = base64::engine::general_purpose::STANDARD.encode(crate::audio::f32_to_pcm16le(audio));
    let event = serde_json::json!({"type": "input_audio_buffer.append", "audio": pcm});
    socket
        .send(Message::Text(event.to_string().into()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_language_is_honoured_and_otherwise_detected_per_item() {
    use crate::engine::backend::scripted::{say_in, silence};
    let backend = ScriptedBackend::multilingual();
    let server = RunningServer::start(backend.clone(), config(Limits::default()))
        .await
        .unwrap();
    for language in ["de", ""] {
        let mut socket = connect(&server).await;
        wait_for(&mut socket, "session.created").await;
        let update = serde_json::json!({"type": "session.update", "session": {
            "type": "transcription",
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 16_000},
                "transcription": {"language": language}}}}});
        socket
            .send(Message::Text(update.to_string().into()))
            .await
            .unwrap();
        wait_for(&mut socket, "session.updated").await;
        // Jobs before this point (the server's warm-up) are not this session's.
        let asked_before = backend.languages_asked().len();
        // Spoken in French.
        let mut audio = say_in("fr", &["two", "five", "two", "five"]);
        audio.extend(silence(1.5));
        append(&mut socket, &audio).await;
        let done = wait_for(
            &mut socket,
            "conversation.item.input_audio_transcription.completed",
        )
        .await;
        assert_eq!(
            done["transcript"].as_str().unwrap().trim(),
            "two five two five"
        );
        let asked = backend.languages_asked()[asked_before..].to_vec();
        if language == "de" {
            assert!(
                asked.iter().all(|l| l.as_deref() == Some("de")),
                "{asked:?}"
            );
        } else {
            assert_eq!(asked[0], None, "detected first: {asked:?}");
            assert!(
                asked
                    .iter()
                    .all(|l| l.is_none() || l.as_deref() == Some("fr")),
                "then kept: {asked:?}"
            );
        }
    }
    server.shutdown().await.unwrap();
}

/// Every event type of one utterance, up to its completion, with `include` as sent.
async fn utterance_events(server: &RunningServer, include: Value) -> Vec<Value> {
    use crate::engine::backend::scripted::{say, silence};
    let mut socket = connect(server).await;
    wait_for(&mut socket, "session.created").await;
    let update = serde_json::json!({"type": "session.update", "session": {
        "type": "transcription", "include": include,
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16_000}}}}});
    socket
        .send(Message::Text(update.to_string().into()))
        .await
        .unwrap();
    let updated = wait_for(&mut socket, "session.updated").await;
    let mut events = vec![updated];
    // Spoken in pieces, so interims run while the words arrive.
    let words = [
        "one", "two", "three", "four", "five", "six", "seven", "eight",
    ];
    for pair in words.chunks(2) {
        append(&mut socket, &say(pair)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    append(&mut socket, &silence(1.5)).await;
    loop {
        let message = tokio::time::timeout(TIMEOUT, socket.next()).await.unwrap();
        let Some(Ok(Message::Text(text))) = message else {
            panic!("socket ended: {message:?}");
        };
        let event: Value = serde_json::from_str(&text).unwrap();
        let done = event["type"] == "conversation.item.input_audio_transcription.completed";
        events.push(event);
        if done {
            return events;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tentative_text_is_sent_only_to_sessions_that_include_it() {
    let server = start(Limits::default()).await;
    let tentative = "conversation.item.input_audio_transcription.tentative";

    let events = utterance_events(
        &server,
        serde_json::json!([super::config::INCLUDE_TENTATIVE]),
    )
    .await;
    assert_eq!(
        events[0]["session"]["include"],
        serde_json::json!([super::config::INCLUDE_TENTATIVE])
    );
    let shown: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == tentative)
        .map(|e| e["tentative"].as_str().unwrap())
        .collect();
    assert!(
        shown.iter().any(|t| !t.trim().is_empty()),
        "no tentative words before the final: {events:#?}"
    );
    let item = events.last().unwrap()["item_id"].clone();
    assert!(
        events
            .iter()
            .filter(|e| e["type"] == tentative)
            .all(|e| e["item_id"] == item)
    );

    // OpenAI's clients never ask (and OpenAI's own include entries are accepted, ignored).
    let events = utterance_events(
        &server,
        serde_json::json!(["item.input_audio_transcription.logprobs"]),
    )
    .await;
    assert_eq!(events[0]["session"]["include"], serde_json::json!([]));
    assert!(events.iter().all(|e| e["type"] != tentative), "{events:#?}");
    assert_eq!(
        events.last().unwrap()["transcript"]
            .as_str()
            .unwrap()
            .trim(),
        "one two three four five six seven eight"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_says_so_to_a_plain_request_as_browsers_ask_after_a_refused_upgrade() {
    let server = start(Limits {
        max_sessions: 1,
        ..Limits::default()
    })
    .await;
    let url = format!(
        "http://{}/v1/realtime?intent=transcription",
        server.http_addr.unwrap()
    );
    // With a slot free, a request that is no upgrade is told so.
    let free = crate::tls::http_client()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(free.status(), 400);
    let mut socket = connect(&server).await;
    wait_for(&mut socket, "session.created").await;
    // With none, the same request learns why an upgrade would be refused.
    let full = crate::tls::http_client()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 429);
    let body: Value = full.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session"),
        "{body}"
    );
    drop(socket);
    server.shutdown().await.unwrap();
}
