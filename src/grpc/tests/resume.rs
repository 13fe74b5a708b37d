//! Resumable streams over the scripted backend: a stream cut mid-utterance and continued on a
//! new connection loses and repeats nothing; tokens are their tenant's and expire with their
//! window; a resume needs no free slot; a late or impossible resume is refused by name.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use std::net::SocketAddr;

use super::*;
use crate::grpc::proto::{ResumeSession, SessionResumed, StreamingRecognizeResponse};
use crate::testing::CutProxy;

fn resumable() -> RecognitionConfig {
    RecognitionConfig {
        resumable: true,
        ..config()
    }
}

/// `samples` as 100 ms chunks numbered from `first`.
fn chunks(samples: &[f32], first: u64) -> Vec<AudioChunk> {
    samples
        .chunks(1_600)
        .zip(first..)
        .map(|(frame, sequence)| AudioChunk {
            data: f32_to_pcm16le(frame),
            sequence,
        })
        .collect()
}

/// One connection of a session, speaking raw requests and keeping every response.
struct Connection {
    tx: mpsc::Sender<StreamingRecognizeRequest>,
    responses: Streaming<StreamingRecognizeResponse>,
    seen: Vec<StreamingRecognizeResponse>,
}

impl Connection {
    /// A call on a connection of its own to `addr` (the server, or a proxy to it).
    async fn open(addr: SocketAddr, first: Request, key: Option<&str>) -> Self {
        let (tx, rx) = mpsc::channel(512);
        tx.send(request(first)).await.unwrap();
        let responses = SpeechClient::connect(format!("http://{addr}"))
            .await
            .unwrap()
            .streaming_recognize(with_key(ReceiverStream::new(rx), key))
            .await
            .unwrap()
            .into_inner();
        Self {
            tx,
            responses,
            seen: Vec::new(),
        }
    }

    async fn start(addr: SocketAddr, key: Option<&str>) -> (Self, String) {
        let first = Request::Config(linear16(resumable()));
        let mut connection = Self::open(addr, first, key).await;
        let Some(Event::SessionStarted(started)) = connection.next().await.unwrap() else {
            panic!("SessionStarted first");
        };
        assert_eq!(started.resume_window_seconds, 30.0);
        (connection, started.resume_token)
    }

    async fn resume(addr: SocketAddr, token: &str, last: u64, key: Option<&str>) -> Self {
        let resume = ResumeSession {
            token: token.to_string(),
            last_response_sequence: last,
        };
        Self::open(addr, Request::Resume(resume), key).await
    }

    async fn send(&self, chunks: &[AudioChunk]) {
        for chunk in chunks {
            let audio = request(Request::Audio(chunk.clone()));
            self.tx.send(audio).await.unwrap();
        }
    }

    async fn next(&mut self) -> Result<Option<Event>, Status> {
        let next = tokio::time::timeout(TIMEOUT, self.responses.next())
            .await
            .expect("the server answers in time");
        let Some(response) = next.transpose()? else {
            return Ok(None);
        };
        self.seen.push(response.clone());
        Ok(response.event)
    }

    /// Reads until `SessionResumed`.
    async fn resumed(&mut self) -> SessionResumed {
        loop {
            match self.next().await.unwrap() {
                Some(Event::SessionResumed(resumed)) => return resumed,
                Some(_) => {}
                None => panic!("the stream ended before SessionResumed"),
            }
        }
    }

    /// Reads until the final with `text`.
    async fn until_final(&mut self, text: &str) {
        loop {
            match self.next().await.unwrap() {
                Some(Event::Transcript(t)) if t.is_final && t.committed.trim() == text => return,
                Some(_) => {}
                None => panic!("the stream ended before the final {text:?}"),
            }
        }
    }

    /// Says the audio is over (`EndOfStream`).
    async fn end_audio(&self) {
        let end = control(Action::EndOfStream(EndOfStream {}));
        self.tx.send(end).await.unwrap();
    }

    /// Ends the audio and reads to the end of the stream, which must be clean.
    async fn finish(&mut self) {
        self.end_audio().await;
        self.drain_to_end().await;
    }

    /// Reads to the end of the stream, which must be clean.
    async fn drain_to_end(&mut self) {
        while self.next().await.unwrap().is_some() {}
    }

    /// This connection's share of the session: what it received, once `proxy` cut it.
    async fn cut(self, proxy: &CutProxy) -> Vec<StreamingRecognizeResponse> {
        assert!(proxy.cut() >= 1, "the proxy carried the connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.seen
    }

    fn last_sequence(&self) -> u64 {
        self.seen.last().map_or(0, |r| r.sequence)
    }
}

/// The texts of the finals among `responses`.
fn finals(responses: &[StreamingRecognizeResponse]) -> Vec<String> {
    responses
        .iter()
        .filter_map(|r| match &r.event {
            Some(Event::Transcript(t)) if t.is_final => Some(t.committed.trim().to_string()),
            _ => None,
        })
        .collect()
}

fn resume_limits(window: Duration, max_sessions: usize) -> Limits {
    Limits {
        resume_window: window,
        max_sessions,
        ..Limits::default()
    }
}

async fn start_with(backend: &ScriptedBackend, limits: Limits) -> RunningServer {
    let config = serve_config(limits, EngineConfig::default(), TIMEOUT);
    RunningServer::start(backend.clone(), config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_utterance_resumes_with_nothing_lost_or_repeated() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let mut first_part = say(&["one", "two"]);
    first_part.extend(silence(1.5));
    first_part.extend(say(&["three"]));
    let first_chunks = chunks(&first_part, 1);
    let mut second_part = say(&["four"]);
    second_part.extend(silence(1.5));
    let second_chunks = chunks(&second_part, first_chunks.len() as u64 + 1);

    let proxy = CutProxy::start(server.grpc_addr).await.unwrap();
    let (mut before, token) = Connection::start(proxy.addr, None).await;
    assert_eq!(token.len(), 64);
    before.send(&first_chunks).await;
    before.until_final("one two").await;
    let last_seen = before.last_sequence();
    // The cut: the connection goes mid-utterance ("three" is open), unannounced.
    let before = before.cut(&proxy).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut after = Connection::resume(proxy.addr, &token, last_seen, None).await;
    // Every chunk the client still had is resent: the ones the server has are skipped.
    after.send(&first_chunks).await;
    let resumed = after.resumed().await;
    assert!(
        resumed.last_audio_sequence <= first_chunks.len() as u64,
        "{resumed:?}"
    );
    assert!(resumed.detached_seconds >= 0.15, "{resumed:?}");
    after.send(&second_chunks).await;
    after.finish().await;

    let mut all = before;
    all.extend(after.seen);
    let sequences: Vec<u64> = all.iter().map(|r| r.sequence).collect();
    let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
    assert_eq!(sequences, expected, "every response once, in order");
    assert_eq!(finals(&all), ["one two", "three four"]);
    // The same audio without a cut gives the same finals.
    let mut whole = Stream::open(&server, Some(config())).await;
    let mut audio = first_part.clone();
    audio.extend(&second_part);
    whole.send_audio(&audio).await;
    whole.send(Action::EndOfStream(EndOfStream {})).await;
    assert_eq!(whole.finals().await.unwrap(), finals(&all));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_while_cut_off_hands_over_its_last_final_on_resume() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let proxy = CutProxy::start(server.grpc_addr).await.unwrap();
    let (before, token) = Connection::start(proxy.addr, None).await;
    // The model is held while the audio and the end of the stream go in, and the client
    // vanishes: the final is made with nobody connected.
    let paused = backend.pause();
    let audio = chunks(&say(&["five", "six"]), 1);
    before.send(&audio).await;
    before.end_audio().await;
    tokio::time::sleep(Duration::from_millis(300)).await; // on the server, not yet transcribed
    let last_seen = before.last_sequence();
    before.cut(&proxy).await;
    drop(paused);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut after = Connection::resume(server.grpc_addr, &token, last_seen, None).await;
    let resumed = after.resumed().await;
    assert_eq!(resumed.last_audio_sequence, audio.len() as u64);
    assert!(resumed.replayed_responses >= 1, "{resumed:?}");
    after.drain_to_end().await;
    assert_eq!(finals(&after.seen), ["five six"]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_takes_over_a_connection_the_server_still_holds() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let (mut old, token) = Connection::start(server.grpc_addr, None).await;
    let mut new = Connection::resume(server.grpc_addr, &token, old.last_sequence(), None).await;
    let resumed = new.resumed().await;
    assert_eq!(
        (resumed.last_audio_sequence, resumed.replayed_responses),
        (0, 0)
    );
    let status = loop {
        match old.next().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the old connection ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().contains("resumed on another connection"));
    // The session goes on over the new connection.
    let mut audio = say(&["seven"]);
    audio.extend(silence(1.5));
    new.send(&chunks(&audio, 1)).await;
    new.until_final("seven").await;
    new.finish().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_resumes_and_unnumbered_audio_are_refused_by_name() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let (mut live, token) = Connection::start(server.grpc_addr, None).await;

    let mut unknown = Connection::resume(server.grpc_addr, "no-such-token", 0, None).await;
    let status = unknown.next().await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().contains("--resume-window-seconds"),
        "{status:?}"
    );

    let mut ahead = Connection::resume(server.grpc_addr, &token, 99, None).await;
    let status = ahead.next().await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("99 was never sent"), "{status:?}");

    // Both refusals left the session as it was.
    live.send(&[AudioChunk {
        data: f32_to_pcm16le(&silence(0.1)),
        sequence: 0,
    }])
    .await;
    let status = loop {
        match live.next().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("unnumbered audio was accepted"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("numbers its audio chunks"),
        "{status:?}"
    );

    // A stream that did not ask is not resumable.
    let mut plain = Stream::open(&server, Some(config())).await;
    let Some(Event::SessionStarted(started)) = plain.next().await.unwrap() else {
        panic!("SessionStarted first");
    };
    assert!(started.resume_token.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_its_tenants_and_a_resume_needs_no_free_slot() {
    let backend = ScriptedBackend::english();
    let serve = ServeConfig {
        tenants: Some(tenants()),
        ..serve_config(Limits::default(), EngineConfig::default(), TIMEOUT)
    };
    let server = RunningServer::start(backend, serve).await.unwrap();
    // acme may hold one session: its resumable stream, cut off, still holds it.
    let proxy = CutProxy::start(server.grpc_addr).await.unwrap();
    let (before, token) = Connection::start(proxy.addr, Some("Bearer hk_acme")).await;
    let last_seen = before.last_sequence();
    before.cut(&proxy).await;
    let first = Request::Config(linear16(config()));
    let mut client = client(&server).await;
    let (tx, rx) = mpsc::channel(1);
    tx.send(request(first)).await.unwrap();
    let refused = client
        .streaming_recognize(with_key(ReceiverStream::new(rx), Some("Bearer hk_acme")))
        .await;
    let status = match refused {
        Err(status) => status,
        Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    let mut thief =
        Connection::resume(server.grpc_addr, &token, last_seen, Some("Bearer hk_beta")).await;
    let status = thief.next().await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "another tenant's token: {status:?}"
    );

    let mut after =
        Connection::resume(server.grpc_addr, &token, last_seen, Some("Bearer hk_acme")).await;
    after.resumed().await;
    let mut audio = say(&["eight"]);
    audio.extend(silence(1.5));
    after.send(&chunks(&audio, 1)).await;
    after.until_final("eight").await;
    after.finish().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_not_resumed_within_its_window_ends_and_frees_its_slot() {
    let backend = ScriptedBackend::english();
    let server = start_with(&backend, resume_limits(Duration::from_millis(400), 1)).await;
    let first = Request::Config(linear16(resumable()));
    let proxy = CutProxy::start(server.grpc_addr).await.unwrap();
    let mut cut = Connection::open(proxy.addr, first, None).await;
    let Some(Event::SessionStarted(started)) = cut.next().await.unwrap() else {
        panic!("SessionStarted first");
    };
    cut.cut(&proxy).await;
    assert_eq!(server.service.open_sessions(), 1, "held for its window");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.service.open_sessions(), 0, "given up after it");
    let mut late = Connection::resume(server.grpc_addr, &started.resume_token, 1, None).await;
    assert_eq!(late.next().await.unwrap_err().code(), Code::NotFound);
    let mut next = Stream::open(&server, Some(config())).await;
    assert!(matches!(
        next.next().await.unwrap(),
        Some(Event::SessionStarted(_))
    ));
    drop(next);

    // With the window at zero nothing is resumable, whatever the config asks.
    let server_without = start_with(&backend, resume_limits(Duration::ZERO, 1)).await;
    let first = Request::Config(linear16(resumable()));
    let mut plain = Connection::open(server_without.grpc_addr, first, None).await;
    let Some(Event::SessionStarted(started)) = plain.next().await.unwrap() else {
        panic!("SessionStarted first");
    };
    assert!(started.resume_token.is_empty());
    assert!(!started.effective_config.unwrap().resumable);
    server.shutdown().await.unwrap();
    drop(plain);
    server_without.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_half_close_ends_a_resumable_streams_audio_only_after_a_grace() {
    let backend = ScriptedBackend::english();
    let server = start(&backend).await;
    let (connection, _) = Connection::start(server.grpc_addr, None).await;
    connection.send(&chunks(&say(&["nine"]), 1)).await;
    let Connection {
        tx, mut responses, ..
    } = connection;
    let half_closed = std::time::Instant::now();
    drop(tx); // no EndOfStream: a proxy could be passing on a broken connection
    let mut finals = Vec::new();
    while let Some(response) = responses.next().await {
        if let Some(Event::Transcript(t)) = response.unwrap().event
            && t.is_final
        {
            finals.push((half_closed.elapsed(), t.committed.trim().to_string()));
        }
    }
    let [(after, text)] = finals.as_slice() else {
        panic!("one final: {finals:?}");
    };
    assert_eq!(text, "nine");
    assert!(*after >= Duration::from_millis(1_900), "{after:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_ends_a_resumable_session_and_frees_its_slot_at_once() {
    let backend = ScriptedBackend::english();
    let server = start_with(&backend, resume_limits(Duration::from_secs(30), 1)).await;
    let proxy = CutProxy::start(server.grpc_addr).await.unwrap();
    let (before, token) = Connection::start(proxy.addr, None).await;
    let last_seen = before.last_sequence();
    before.cut(&proxy).await;
    assert_eq!(server.service.open_sessions(), 1, "kept for a resume");
    // A client that cancels takes the session over and says so.
    let mut ending = Connection::resume(server.grpc_addr, &token, last_seen, None).await;
    let cancel = control(Action::Cancel(crate::grpc::proto::Cancel {}));
    ending.tx.send(cancel).await.unwrap();
    ending.drain_to_end().await;
    assert_eq!(server.service.open_sessions(), 0);
    let mut late = Connection::resume(server.grpc_addr, &token, last_seen, None).await;
    assert_eq!(late.next().await.unwrap_err().code(), Code::NotFound);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resuming_client_cancels_its_session_and_the_slot_is_free_at_once() {
    use crate::grpc::client::resume::resumable_session;
    let backend = ScriptedBackend::english();
    let server = start_with(&backend, resume_limits(Duration::from_secs(30), 1)).await;
    let client = SpeechClient::connect(format!("http://{}", server.grpc_addr))
        .await
        .unwrap();
    let (audio_tx, audio_rx) = mpsc::channel(64);
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let mut cancel_tx = Some(cancel_tx);
    let mut audio = say(&["one"]);
    audio.extend(silence(1.5));
    for chunk in chunks(&audio, 1) {
        audio_tx.send(chunk).await.unwrap();
    }
    // The audio never ends: only the cancel, sent on the first final, ends the session.
    let outcome = resumable_session(
        client,
        Default::default(),
        linear16(config()),
        ReceiverStream::new(audio_rx),
        Box::pin(async move {
            let _ = cancel_rx.await;
        }),
        |response| {
            if let Some(Event::Transcript(t)) = &response.event
                && t.is_final
                && let Some(cancel) = cancel_tx.take()
            {
                let _ = cancel.send(());
            }
            Ok(())
        },
    )
    .await
    .unwrap();
    assert!(outcome.cancelled && outcome.resumes == 0, "{outcome:?}");
    assert_eq!(
        server.service.open_sessions(),
        0,
        "the slot is free at once"
    );
    drop(audio_tx);
    server.shutdown().await.unwrap();
}
