//! Service-mesh and browser access: health, reflection and grpc-web over HTTP/1.1.

mod support;

use hearken::engine::WhisperBackend;
use hearken::grpc::SERVICE_NAME;
use hearken::grpc::proto::streaming_recognize_response::Event;
use hearken::grpc::proto::{
    ListModelsRequest, ListModelsResponse, RecognizeRequest, RecognizeResponse,
    StreamingRecognizeResponse,
};
use hearken::model::whisper::WhisperModel;
use hearken::server::RunningServer;
use hearken::service::Limits;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn start() -> RunningServer {
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    let config = hearken::server::ServeConfig {
        // The grpc-web calls below come from a page on this origin.
        origins: hearken::service::Origins::parse("http://example.test").unwrap(),
        ..support::serve_config(Limits::default(), false)
    };
    RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

/// One grpc-web call over plain HTTP/1.1 to the gRPC port, from a page on an allowed origin:
/// returns the data frames and the trailer text.
async fn grpc_web_call(
    server: &RunningServer,
    method: &str,
    message: &[u8],
) -> (Vec<Vec<u8>>, String) {
    let (frames, trailers, headers) =
        grpc_web_at(server.grpc_addr, "http://example.test", method, message).await;
    assert!(headers.starts_with("http/1.1 200"), "{headers}");
    assert!(
        headers.contains("access-control-allow-origin: http://example.test"),
        "{headers}"
    );
    (frames, trailers)
}

/// One grpc-web call to `addr` from a page on `origin`: data frames, trailer text, headers.
async fn grpc_web_at(
    addr: std::net::SocketAddr,
    origin: &str,
    method: &str,
    message: &[u8],
) -> (Vec<Vec<u8>>, String, String) {
    let mut body = vec![0u8];
    body.extend((message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /hearken.speech.v1.Speech/{method} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\n\
         Origin: {origin}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    if !headers.starts_with("http/1.1 200") {
        return (Vec::new(), String::new(), headers);
    }
    assert!(
        headers.contains("content-type: application/grpc-web"),
        "{headers}"
    );
    let mut payload = raw[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    let (mut frames, mut trailers) = (Vec::new(), String::new());
    let mut rest = payload.as_slice();
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = &rest[5..5 + len];
        if flag & 0x80 != 0 {
            trailers = String::from_utf8_lossy(frame).to_string();
        } else {
            frames.push(frame.to_vec());
        }
        rest = &rest[5 + len..];
    }
    (frames, trailers, headers)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_unary_and_server_streaming_calls_work_over_http1() {
    let server = start().await;
    let (frames, trailers) =
        grpc_web_call(&server, "ListModels", &ListModelsRequest {}.encode_to_vec()).await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let models = ListModelsResponse::decode(frames[0].as_slice()).unwrap();
    assert!(models.models.iter().any(|m| m.id == "tiny.en" && m.loaded));

    let (clip, _) = support::clip("jfk");
    let wav = std::fs::read(&clip.file).unwrap();
    let request = RecognizeRequest {
        config: None,
        audio: wav,
    };
    let (frames, trailers) = grpc_web_call(&server, "Recognize", &request.encode_to_vec()).await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let unary = RecognizeResponse::decode(frames[0].as_slice()).unwrap();
    let wer = hearken::eval::english_wer(&clip.text, &unary.text).wer();
    assert!(wer <= 0.15, "{:?}", unary.text);

    let (frames, trailers) =
        grpc_web_call(&server, "RecognizeStream", &request.encode_to_vec()).await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let events: Vec<StreamingRecognizeResponse> = frames
        .iter()
        .map(|f| StreamingRecognizeResponse::decode(f.as_slice()).unwrap())
        .collect();
    assert!(matches!(events[0].event, Some(Event::SessionStarted(_))));
    let streamed: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Transcript(t)) => Some(t.committed.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        streamed.join(" "),
        unary.text,
        "grpc-web stream and unary disagree"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_for_the_mesh() {
    let server = start().await;
    let url = format!("http://{}", server.grpc_addr);
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", SERVICE_NAME] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == SERVICE_NAME), "{names:?}");
    assert!(
        names.iter().any(|n| n == "grpc.health.v1.Health"),
        "{names:?}"
    );

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_live_streams_their_finals() {
    use hearken::grpc::proto::streaming_recognize_request::Request;
    use hearken::grpc::proto::{
        AudioChunk, AudioEncoding, RecognitionConfig, StreamingRecognizeRequest,
    };

    let server = start().await;
    let (clip, samples) = support::clip("jfk");
    let mut client = hearken::grpc::proto::speech_client::SpeechClient::connect(format!(
        "http://{}",
        server.grpc_addr
    ))
    .await
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let config = RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: 16_000,
        ..Default::default()
    };
    tx.send(StreamingRecognizeRequest {
        request: Some(Request::Config(config)),
    })
    .await
    .unwrap();
    // The first 4 s ("And so my fellow Americans"), then the client keeps the stream open.
    let pcm = hearken::audio::f32_to_pcm16le(&samples[..64_000]);
    for (i, chunk) in pcm.chunks(3200).enumerate() {
        let audio = AudioChunk {
            data: chunk.to_vec(),
            sequence: i as u64 + 1,
        };
        tx.send(StreamingRecognizeRequest {
            request: Some(Request::Audio(audio)),
        })
        .await
        .unwrap();
    }
    let mut responses = client
        .streaming_recognize(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        responses.next().await.unwrap().unwrap().event,
        Some(Event::SessionStarted(_))
    ));
    let stopping = tokio::spawn(server.shutdown());
    let mut finals = Vec::new();
    while let Some(response) = responses.next().await {
        if let Some(Event::Transcript(t)) = response.expect("stream ends cleanly").event
            && t.is_final
        {
            finals.push(t.committed);
        }
    }
    stopping.await.unwrap().unwrap();
    let text = finals.join(" ").to_lowercase();
    assert!(
        text.contains("fellow americans"),
        "finals on shutdown: {finals:?} ({})",
        clip.id
    );
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_serves_the_browser_app_and_grpc_web_from_its_own_origin() {
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    // No cross-origin caller is allowed: the app's own origin needs no listing.
    let server = RunningServer::start(
        WhisperBackend::from(model),
        support::serve_config(Limits::default(), true),
    )
    .await
    .expect("server starts");
    let http = server.http_addr.unwrap();
    let page = hearken::tls::http_client()
        .unwrap()
        .get(format!("http://{http}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    for id in [
        "id=\"transcript\"",
        "id=\"mic\"",
        "id=\"file\"",
        "id=\"status\"",
    ] {
        assert!(html.contains(id), "the page lacks {id}");
    }
    for asset in ["app.js", "capture-worklet.js", "app.css"] {
        let response = hearken::tls::http_client()
            .unwrap()
            .get(format!("http://{http}/{asset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }

    // A 158 s recording over grpc-web on this port: segments, and progress after each window
    // ending at the whole recording.
    let (clip, _) = support::clip("librivox_sonnets_1_3");
    let request = RecognizeRequest {
        config: None,
        audio: std::fs::read(&clip.file).unwrap(),
    };
    let own_origin = format!("http://{http}");
    let (frames, trailers, _) = grpc_web_at(
        http,
        &own_origin,
        "RecognizeStream",
        &request.encode_to_vec(),
    )
    .await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let events: Vec<Event> = frames
        .iter()
        .filter_map(|f| {
            StreamingRecognizeResponse::decode(f.as_slice())
                .unwrap()
                .event
        })
        .collect();
    let progress: Vec<(f64, f64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::AudioAck(ack) => Some((ack.processed_seconds, ack.backlog_seconds)),
            _ => None,
        })
        .collect();
    assert!(progress.len() >= 3, "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "{progress:?}"
    );
    let (done, left) = *progress.last().unwrap();
    assert_eq!(left, 0.0);
    assert!((done - clip.seconds).abs() < 0.1, "{progress:?}");
    let text: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Transcript(t) => Some(t.committed.clone()),
            _ => None,
        })
        .collect();
    let wer = hearken::eval::english_wer(&clip.text, &text.join(" ")).wer();
    assert!(wer <= 0.15, "WER {wer:.3}");

    // Another origin is refused on this port too.
    let (_, _, headers) = grpc_web_at(
        http,
        "http://evil.test",
        "ListModels",
        &ListModelsRequest {}.encode_to_vec(),
    )
    .await;
    assert!(headers.starts_with("http/1.1 403"), "{headers}");
    server.shutdown().await.unwrap();
}

/// `buf curl` (from the web app's npm toolchain) with no proto files: reflection describes the
/// service, as the README's example shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buf_curl_needs_no_proto_files() {
    let buf =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/web/node_modules/.bin/buf");
    assert!(
        buf.exists(),
        "buf is missing; run: cd clients/web && npm ci"
    );
    let server = start().await;
    let url = |method: &str| format!("http://{}/{SERVICE_NAME}/{method}", server.grpc_addr);
    let curl = |method: String, body: Vec<u8>| {
        let buf = buf.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = std::process::Command::new(buf)
                .args([
                    "curl",
                    "--protocol",
                    "grpc",
                    "--http2-prior-knowledge",
                    "-d",
                    "@-",
                ])
                .arg(method)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&body).unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{output:?}");
            serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
        })
    };
    let models = curl(url("ListModels"), b"{}".to_vec()).await.unwrap();
    assert_eq!(models["models"][0]["id"], "tiny.en", "{models}");
    use base64::Engine as _;
    let (clip, _) = support::clip("jfk");
    let audio =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&clip.file).unwrap());
    let body = serde_json::json!({ "audio": audio })
        .to_string()
        .into_bytes();
    let response = curl(url("Recognize"), body).await.unwrap();
    let wer = hearken::eval::english_wer(&clip.text, response["text"].as_str().unwrap()).wer();
    assert!(wer <= 0.15, "{response}");
    server.shutdown().await.unwrap();
}
