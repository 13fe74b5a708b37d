//! The other end of the Realtime transcription protocol: a client that streams PCM16 to any
//! server speaking it (hearken, or OpenAI's `wss://api.openai.com/v1/realtime`) and folds the
//! events into one update per change of an item (an utterance). `hearken stream --realtime-ws`
//! runs on it; it knows nothing of gRPC.
//!
//! Only what the protocol defines is relied on: a GA `session.update`, `input_audio_buffer.*`
//! and the transcription item events; hearken's `.tentative` events are asked for and used when
//! the server sends them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use futures_util::{SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::config::INCLUDE_TENTATIVE;

/// The sample rate OpenAI's servers take PCM16 at (hearken takes any).
pub const PROTOCOL_RATE: u32 = 24_000;

/// How long the server gets to answer the handshake and each session step.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long, after the last audio, the server gets to finish every item.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to connect, and what to ask of the session.
#[derive(Debug, Clone, Default)]
pub struct RealtimeOptions {
    /// `ws://` or `wss://`; a URL without a path gets `/v1/realtime`, and `intent=transcription`
    /// is added to the query when absent.
    pub url: String,
    /// Sent as `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// PEM CA certificates to trust for `wss://` instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Sample rate of the PCM16 sent (OpenAI takes 24000 only; hearken any).
    pub rate: u32,
    /// The transcription model asked for; `None` leaves it to the server.
    pub model: Option<String>,
    /// The spoken language; `None` lets a multilingual model detect it.
    pub language: Option<String>,
    /// Text that primes the model.
    pub prompt: Option<String>,
}

/// One change of one item, as a caption shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemUpdate {
    /// 1 for the session's first item, in the order the server announced them.
    pub index: u64,
    /// The server's id of the item.
    pub item_id: String,
    /// Text the server will not change.
    pub committed: String,
    /// What this update added to `committed`.
    pub committed_delta: String,
    /// Words that may still change (hearken's `.tentative` events only).
    pub tentative: String,
    /// The item's transcript is complete.
    pub is_final: bool,
    /// Where the item's speech starts in the session's audio (`speech_started`), if said.
    pub audio_start_ms: Option<u64>,
    /// Where it ends (`speech_stopped`), if said yet.
    pub audio_end_ms: Option<u64>,
}

/// Why the server refused a session or ended it: the handshake's HTTP status, or an `error`
/// event's code, with the server's message. Load generators sort refusals by it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RealtimeRefusal {
    /// The WebSocket upgrade was answered with an HTTP error.
    #[error("{url} refused the session: HTTP {status}: {message}")]
    Handshake {
        /// The session URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// The server sent an `error` event.
    #[error("the server refused: {message}")]
    Event {
        /// The event's `error.code` (or `error.type`), when given.
        code: Option<String>,
        /// The event's `error.message`.
        message: String,
    },
}

/// The events of every item seen, folded into their text.
#[derive(Debug, Default)]
struct Items {
    by_id: HashMap<String, ItemUpdate>,
    next_index: u64,
}

impl Items {
    fn get(&mut self, id: &str) -> &mut ItemUpdate {
        let next_index = &mut self.next_index;
        self.by_id.entry(id.to_string()).or_insert_with(|| {
            *next_index += 1;
            ItemUpdate {
                index: *next_index,
                item_id: id.to_string(),
                committed: String::new(),
                committed_delta: String::new(),
                tentative: String::new(),
                is_final: false,
                audio_start_ms: None,
                audio_end_ms: None,
            }
        })
    }

    fn all_final(&self) -> bool {
        self.by_id.values().all(|item| item.is_final)
    }

    /// The update an event makes, if it changes what an item shows.
    fn apply(&mut self, event: &Value) -> Option<ItemUpdate> {
        let kind = event["type"].as_str()?;
        let id = event["item_id"].as_str()?;
        let text = |field: &str| event[field].as_str().unwrap_or_default().to_string();
        let item = self.get(id);
        item.committed_delta.clear();
        match kind {
            "input_audio_buffer.speech_started" => {
                item.audio_start_ms = event["audio_start_ms"].as_u64();
                return None;
            }
            "input_audio_buffer.speech_stopped" => {
                item.audio_end_ms = event["audio_end_ms"].as_u64();
                return None;
            }
            "input_audio_buffer.committed" => return None,
            "conversation.item.input_audio_transcription.delta" => {
                item.committed_delta = text("delta");
                item.committed.push_str(&item.committed_delta);
            }
            "conversation.item.input_audio_transcription.tentative" => {
                item.tentative = text("tentative");
            }
            "conversation.item.input_audio_transcription.completed" => {
                let transcript = text("transcript");
                // Servers that send no deltas (or fewer) still end with the whole text.
                item.committed_delta = transcript
                    .strip_prefix(item.committed.as_str())
                    .unwrap_or_default()
                    .to_string();
                item.committed = transcript;
                item.tentative.clear();
                item.is_final = true;
            }
            "conversation.item.input_audio_transcription.failed" => {
                item.tentative.clear();
                item.is_final = true;
            }
            _ => return None,
        }
        Some(item.clone())
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// Streams `audio` (PCM16 little-endian mono at `options.rate`, in chunks as they should be
/// sent) through one session and calls `on_update` for every change of an item. After the
/// audio ends (or `stop` resolves) it commits what is left and waits for every item's final.
pub async fn transcribe(
    options: &RealtimeOptions,
    audio: impl Stream<Item = Vec<u8>> + Unpin,
    stop: impl std::future::Future<Output = ()>,
    mut on_update: impl FnMut(ItemUpdate) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut socket = connect(options).await?;
    expect(&mut socket, "session.created").await?;
    send(&mut socket, session_update(options)).await?;
    expect(&mut socket, "session.updated").await?;
    let mut items = Items::default();
    let mut audio = std::pin::pin!(audio.take_until(stop));
    loop {
        tokio::select! {
            chunk = audio.next() => match chunk {
                Some(pcm) => send(&mut socket, append(&pcm)).await?,
                None => break,
            },
            event = next_event(&mut socket) => {
                if let Some(update) = items.apply(&event?) {
                    on_update(update)?;
                }
            }
        }
    }
    send(&mut socket, json!({"type": "input_audio_buffer.commit"})).await?;
    let finish = async {
        // Our commit is answered by a `committed` for an item not yet committed, or by an
        // error when nothing was left to commit; every item is known after it.
        let mut committed: Vec<String> = Vec::new();
        let mut answered = false;
        loop {
            if answered && items.all_final() {
                return Ok::<_, anyhow::Error>(());
            }
            let event = next_event_or_error(&mut socket).await?;
            match event["type"].as_str() {
                Some("error") => answered = true,
                Some("input_audio_buffer.committed") => {
                    let id = event["item_id"].as_str().unwrap_or_default().to_string();
                    answered |= !committed.contains(&id);
                    committed.push(id);
                }
                _ => {}
            }
            if let Some(update) = items.apply(&event) {
                on_update(update)?;
            }
        }
    };
    tokio::time::timeout(FINISH_TIMEOUT, finish)
        .await
        .context("the server did not finish the last utterance within 60 s")??;
    let _ = socket.close(None).await;
    Ok(())
}

/// The socket to `options.url`, over TLS for `wss://`, with the key in the handshake.
async fn connect(options: &RealtimeOptions) -> anyhow::Result<Socket> {
    let url = session_url(&options.url)?;
    let mut request = url.as_str().into_client_request().with_context(|| {
        format!(
            "--realtime-ws {:?} is not a ws:// or wss:// URL",
            options.url
        )
    })?;
    if let Some(key) = &options.api_key {
        let value = format!("Bearer {key}")
            .parse()
            .context("the API key is not a valid header value")?;
        request.headers_mut().insert("authorization", value);
    }
    let uri = request.uri().clone();
    let host = uri.host().context("the URL has no host")?.to_string();
    let tls = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = tokio::time::timeout(
        STEP_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .with_context(|| format!("connecting to {host}:{port} timed out"))?
    .with_context(|| format!("connecting to {host}:{port}"))?;
    let stream: Box<dyn Io> = if tls {
        Box::new(tls_connect(tcp, &host, options.ca_pem.as_deref()).await?)
    } else {
        anyhow::ensure!(options.ca_pem.is_none(), "--ca needs a wss:// URL");
        Box::new(tcp)
    };
    let handshake = tokio_tungstenite::client_async(request, stream);
    let (socket, _) = tokio::time::timeout(STEP_TIMEOUT, handshake)
        .await
        .context("the WebSocket handshake timed out")?
        .map_err(|e| refused(&url, e))?;
    Ok(socket)
}

/// `url` with the Realtime path and the transcription intent filled in where absent.
fn session_url(url: &str) -> anyhow::Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("--realtime-ws {url:?} is not a ws:// or wss:// URL");
    };
    if scheme != "ws" && scheme != "wss" {
        bail!("--realtime-ws {url:?} must start with ws:// or wss://");
    }
    let (authority, path_and_query) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let path = if path == "/" { "/v1/realtime" } else { path };
    let query = if query.split('&').any(|p| p.starts_with("intent=")) {
        query.to_string()
    } else if query.is_empty() {
        "intent=transcription".to_string()
    } else {
        format!("{query}&intent=transcription")
    };
    Ok(format!("{scheme}://{authority}{path}?{query}"))
}

async fn tls_connect(
    tcp: tokio::net::TcpStream,
    host: &str,
    ca_pem: Option<&[u8]>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = crate::tls::client_config(ca_pem, &[]).context("reading --ca")?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .with_context(|| format!("{host:?} is not a valid TLS server name"))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {host}"))
}

/// A refused handshake in words: the HTTP status and the server's error message.
fn refused(url: &str, error: tokio_tungstenite::tungstenite::Error) -> anyhow::Error {
    use tokio_tungstenite::tungstenite::Error;
    match error {
        Error::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(String::from))
                .unwrap_or_else(|| body.trim().to_string());
            RealtimeRefusal::Handshake {
                url: url.to_string(),
                status: status.as_u16(),
                message,
            }
            .into()
        }
        other => anyhow::anyhow!("{url}: {other}"),
    }
}

/// The GA session update: PCM16 at our rate, server turn detection, tentative text if offered.
fn session_update(options: &RealtimeOptions) -> Value {
    let mut transcription = json!({});
    for (field, value) in [
        ("model", &options.model),
        ("language", &options.language),
        ("prompt", &options.prompt),
    ] {
        if let Some(value) = value {
            transcription[field] = json!(value);
        }
    }
    json!({"type": "session.update", "session": {
        "type": "transcription",
        "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": options.rate},
            "transcription": transcription,
            "turn_detection": {"type": "server_vad"},
        }},
        "include": [INCLUDE_TENTATIVE],
    }})
}

fn append(pcm: &[u8]) -> Value {
    let audio = base64::engine::general_purpose::STANDARD.encode(pcm);
    json!({"type": "input_audio_buffer.append", "audio": audio})
}

async fn send(socket: &mut Socket, event: Value) -> anyhow::Result<()> {
    socket
        .send(Message::Text(event.to_string().into()))
        .await
        .context("sending to the server")
}

/// The next event, any type; the socket's end is an error.
async fn next_event_or_error(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .context("the server sent an event that is not JSON");
            }
            Some(Ok(Message::Close(frame))) => {
                let why = frame
                    .map(|f| format!("{}: {}", f.code, f.reason))
                    .unwrap_or_default();
                bail!("the server closed the session ({why})");
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e).context("reading from the server"),
            None => bail!("the server closed the connection"),
        }
    }
}

/// The next event; an `error` event fails the session.
async fn next_event(socket: &mut Socket) -> anyhow::Result<Value> {
    let event = next_event_or_error(socket).await?;
    if event["type"] == "error" {
        let error = &event["error"];
        let code = error["code"].as_str().or(error["type"].as_str());
        return Err(RealtimeRefusal::Event {
            code: code.map(String::from),
            message: error["message"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string(),
        }
        .into());
    }
    Ok(event)
}

/// Waits for an event of `kind`, skipping others.
async fn expect(socket: &mut Socket, kind: &str) -> anyhow::Result<Value> {
    let wait = async {
        loop {
            let event = next_event(socket).await?;
            if event["type"] == kind {
                return Ok(event);
            }
        }
    };
    tokio::time::timeout(STEP_TIMEOUT, wait)
        .await
        .with_context(|| format!("no {kind} from the server within 15 s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_url_gets_the_realtime_path_and_the_transcription_intent() {
        assert_eq!(
            session_url("ws://127.0.0.1:8000").unwrap(),
            "ws://127.0.0.1:8000/v1/realtime?intent=transcription"
        );
        assert_eq!(
            session_url("wss://api.openai.com/v1/realtime?intent=transcription").unwrap(),
            "wss://api.openai.com/v1/realtime?intent=transcription"
        );
        assert_eq!(
            session_url("ws://h/v1/realtime?model=x").unwrap(),
            "ws://h/v1/realtime?model=x&intent=transcription"
        );
        assert!(session_url("http://h").is_err());
        assert!(session_url("h:80").is_err());
    }

    #[test]
    fn events_fold_into_item_updates_in_order() {
        let mut items = Items::default();
        let started = json!({"type": "input_audio_buffer.speech_started", "item_id": "a"});
        assert_eq!(items.apply(&started), None);
        let tentative = json!({"type": "conversation.item.input_audio_transcription.tentative",
            "item_id": "a", "tentative": "hello wor"});
        assert_eq!(items.apply(&tentative).unwrap().tentative, "hello wor");
        let delta = json!({"type": "conversation.item.input_audio_transcription.delta",
            "item_id": "a", "delta": "Hello"});
        let update = items.apply(&delta).unwrap();
        assert_eq!(
            (update.committed.as_str(), update.committed_delta.as_str()),
            ("Hello", "Hello")
        );
        assert!(!items.all_final());
        let done = json!({"type": "conversation.item.input_audio_transcription.completed",
            "item_id": "a", "transcript": "Hello world."});
        let update = items.apply(&done).unwrap();
        assert_eq!(update.committed_delta, " world.");
        assert!(update.is_final && update.tentative.is_empty() && update.index == 1);
        let second = json!({"type": "conversation.item.input_audio_transcription.completed",
            "item_id": "b", "transcript": "Bye."});
        assert_eq!(items.apply(&second).unwrap().index, 2);
        assert!(items.all_final());
    }
}
