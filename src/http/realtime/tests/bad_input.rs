//! The Realtime half of the bad-input matrix: malformed, unknown, out-of-range and
//! out-of-order events, oversize and stalled clients. Each case asserts the `error` event's
//! code and a message naming the problem, then that the session goes on (or, for the few
//! fatal cases, closes with the right code), that the server is healthy and holds no slot,
//! and that nothing panicked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::*;
use crate::engine::backend::scripted::say;
use crate::test_support::panics_so_far;

/// Long enough for any case's exchange, short enough to reach in a test.
const IDLE: Duration = Duration::from_millis(1_500);

/// One case: the messages sent after `session.created`, the `error` event's code and a part
/// of its message, and the close code when the error ends the session.
struct Case {
    name: &'static str,
    messages: Vec<Message>,
    code: &'static str,
    needle: &'static str,
    closes_with: Option<CloseCode>,
}

fn text(event: serde_json::Value) -> Message {
    Message::Text(event.to_string().into())
}

fn update(session: serde_json::Value) -> Message {
    text(serde_json::json!({"type": "session.update", "session": session}))
}

fn append(bytes: &[u8]) -> Message {
    text(serde_json::json!({"type": "input_audio_buffer.append", "audio": BASE64.encode(bytes)}))
}

fn pcm_format(rate: u32) -> serde_json::Value {
    serde_json::json!({"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": rate}}}})
}

fn case(
    name: &'static str,
    messages: Vec<Message>,
    code: &'static str,
    needle: &'static str,
) -> Case {
    Case {
        name,
        messages,
        code,
        needle,
        closes_with: None,
    }
}

fn cases() -> Vec<Case> {
    use serde_json::json;
    let transcription =
        |input: serde_json::Value| json!({"type": "transcription", "audio": {"input": input}});
    let speech = crate::audio::f32_to_pcm16le(&say(&["one", "two"]));
    vec![
        // Not events at all.
        case(
            "a message that is not JSON",
            vec![Message::Text("hello".into())],
            "invalid_json",
            "not a valid JSON event",
        ),
        case(
            "a JSON array",
            vec![Message::Text("[1, 2]".into())],
            "invalid_json",
            "an object with a string `type`",
        ),
        case(
            "an object without a type",
            vec![text(json!({"audio": "AAAA"}))],
            "invalid_json",
            "an object with a string `type`",
        ),
        case(
            "a binary frame",
            vec![Message::Binary(speech[..640].to_vec().into())],
            "invalid_json",
            "binary messages are not events",
        ),
        case(
            "an event type this server does not handle",
            vec![text(json!({"type": "response.create"}))],
            "unknown_event_type",
            "`response.create`",
        ),
        // Wrong shapes.
        case(
            "an append without audio",
            vec![text(json!({"type": "input_audio_buffer.append"}))],
            "invalid_value",
            "audio",
        ),
        case(
            "an append whose audio is a number",
            vec![text(
                json!({"type": "input_audio_buffer.append", "audio": 42}),
            )],
            "invalid_value",
            "audio",
        ),
        case(
            "an append that is not base64",
            vec![text(
                json!({"type": "input_audio_buffer.append", "audio": "!!not base64!!"}),
            )],
            "invalid_base64",
            "not valid base64",
        ),
        case(
            "an append of half a PCM16 sample",
            vec![append(&speech[..641])],
            "invalid_audio",
            "not a whole number of 2-byte samples",
        ),
        case(
            "a session that is a string",
            vec![update(json!("transcription"))],
            "invalid_value",
            "invalid `session.update` event",
        ),
        case(
            "a rate that is a string",
            vec![update(transcription(
                json!({"format": {"type": "audio/pcm", "rate": "fast"}}),
            ))],
            "invalid_value",
            "invalid `session.update` event",
        ),
        // Out-of-range and unsupported values.
        case(
            "a conversation session on the transcription endpoint",
            vec![update(json!({"type": "realtime"}))],
            "invalid_value",
            "transcription sessions only, not `realtime`",
        ),
        case(
            "an unsupported audio format",
            vec![update(transcription(
                json!({"format": {"type": "audio/flac"}}),
            ))],
            "invalid_value",
            "unsupported audio format `audio/flac`",
        ),
        case(
            "a PCM rate of 1 Hz",
            vec![update(pcm_format(1))],
            "invalid_value",
            "sample rate 1 Hz is out of range: accepted rates are 8000 to 192000 Hz",
        ),
        case(
            "a PCM rate of 1 MHz",
            vec![update(pcm_format(1_000_000))],
            "invalid_value",
            "sample rate 1000000 Hz is out of range",
        ),
        case(
            "an unsupported beta audio format",
            vec![text(json!({"type": "transcription_session.update",
                             "session": {"input_audio_format": "opus"}}))],
            "invalid_value",
            "unsupported audio format `opus`",
        ),
        case(
            "another catalogue model than the one served",
            vec![update(transcription(
                json!({"transcription": {"model": "base"}}),
            ))],
            "model_not_found",
            "unknown model `base`",
        ),
        case(
            "semantic turn detection",
            vec![update(transcription(
                json!({"turn_detection": {"type": "semantic_vad"}}),
            ))],
            "invalid_value",
            "unsupported turn detection `semantic_vad`",
        ),
        case(
            "a silence duration of a day",
            vec![update(transcription(
                json!({"turn_detection": {"type": "server_vad",
                                                                 "silence_duration_ms": 86_400_000}}),
            ))],
            "invalid_value",
            "turn_detection.silence_duration_ms must be 30 to 10000 ms (got 86400000)",
        ),
        // Wrong order.
        case(
            "a commit with nothing buffered",
            vec![text(json!({"type": "input_audio_buffer.commit"}))],
            "input_audio_buffer_commit_empty",
            "buffer too small",
        ),
        case(
            "a format change in the middle of an utterance",
            vec![
                update(pcm_format(16_000)),
                append(&speech),
                update(transcription(json!({"format": {"type": "audio/pcmu"}}))),
            ],
            "session_update_while_busy",
            "only between utterances",
        ),
        // Oversize and stalled clients end the session.
        Case {
            name: "a message over --max-message-bytes",
            messages: vec![append(&vec![0; 200 * 1024])],
            code: "message_too_large",
            needle: "over the 131072-byte limit",
            closes_with: Some(CloseCode::Size),
        },
        Case {
            name: "a client that connects and sends nothing",
            messages: vec![],
            code: "timeout",
            needle: "1.5 s",
            closes_with: Some(CloseCode::Policy),
        },
        Case {
            name: "a client that stalls mid-utterance",
            messages: vec![update(pcm_format(16_000)), append(&speech)],
            code: "timeout",
            needle: "1.5 s",
            closes_with: Some(CloseCode::Policy),
        },
    ]
}

/// Reads events until the first `error` and returns it; other events are skipped.
async fn first_error(socket: &mut Socket, name: &str) -> Value {
    loop {
        let message = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: no error event within {TIMEOUT:?}"));
        match message {
            Some(Ok(Message::Text(text))) => {
                let event: Value = serde_json::from_str(&text).unwrap();
                if event["type"] == "error" {
                    return event;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("{name}: the socket ended before an error: {other:?}"),
        }
    }
}

/// Asserts the session still serves: a `clear` is answered with `cleared`.
async fn assert_serving(socket: &mut Socket, name: &str) {
    let clear = serde_json::json!({"type": "input_audio_buffer.clear"});
    socket.send(text(clear)).await.unwrap();
    loop {
        let message = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: the session stopped answering"));
        let Some(Ok(Message::Text(text))) = message else {
            panic!("{name}: the session ended after a recoverable error: {message:?}");
        };
        let event: Value = serde_json::from_str(&text).unwrap();
        if event["type"] == "input_audio_buffer.cleared" {
            return;
        }
    }
}

async fn assert_healthy(server: &RunningServer, name: &str) {
    let url = format!("http://{}/healthz", server.http_addr.unwrap());
    let status = crate::tls::http_client()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "{name}: /healthz");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while server.service.open_sessions() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: a session slot was never given back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_refused_naming_the_problem_and_the_server_stays_healthy() {
    let panics_before = panics_so_far();
    let server = start(Limits {
        max_message_bytes: 128 * 1024,
        idle_timeout: IDLE,
        ..Limits::default()
    })
    .await;
    let cases = cases();
    let count = cases.len();
    for case in cases {
        let name = case.name;
        let mut socket = connect(&server).await;
        for message in case.messages {
            socket.send(message).await.unwrap();
        }
        let error = first_error(&mut socket, name).await;
        assert_eq!(error["error"]["code"], case.code, "{name}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(case.needle),
            "{name}: `{}` not in {message:?}",
            case.needle
        );
        match case.closes_with {
            None => assert_serving(&mut socket, name).await,
            Some(expected) => {
                let (_, code) = until_closed(&mut socket).await;
                assert_eq!(code, Some(expected), "{name}");
            }
        }
        drop(socket);
        assert_healthy(&server, name).await;
    }
    assert!(count >= 24, "{count} cases");
    assert_eq!(
        panics_so_far(),
        panics_before,
        "a bad event made something panic"
    );
    server.shutdown().await.unwrap();
}
