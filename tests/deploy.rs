//! deploy/ checked with the real tools: the Kubernetes manifests against the API schemas and
//! against the server (its flags and metrics), the HAProxy and Envoy configurations by the
//! proxies themselves, and three replicas behind HAProxy losing no session while one of them
//! is drained mid-run (deploy/local/scale-test.sh, the script an operator runs). Through
//! either proxy a client's abort frees its work, and a resumable stream whose connection is
//! cut is resumed on the replica that holds it.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use hearken::service::Limits;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn succeeds(what: &str, output: std::io::Result<Output>) -> String {
    let output = output.unwrap_or_else(|e| {
        panic!("{what} could not be run ({e}); .ci/run installs it (see deploy/README.md)")
    });
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_manifests_pass_the_api_schemas_and_match_the_server() {
    support::require_python_modules("kubernetes_validate, yaml", "deploy/requirements.txt");
    let server = support::start_server(support::serve_config(Limits::default(), true)).await;
    let metrics = hearken::tls::http_client()
        .unwrap()
        .get(format!("http://{}/metrics", server.http_addr.unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.shutdown().await.unwrap();
    let help = succeeds(
        "hearken serve --help",
        Command::new(env!("CARGO_BIN_EXE_hearken"))
            .args(["serve", "--help"])
            .output(),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("help"), help).unwrap();
    std::fs::write(dir.path().join("metrics"), metrics).unwrap();
    let report = succeeds(
        "deploy/kubernetes/check.py",
        Command::new("python3")
            .arg("deploy/kubernetes/check.py")
            .arg(dir.path().join("help"))
            .arg(dir.path().join("metrics"))
            .current_dir(ROOT)
            .output(),
    );
    assert!(report.contains("0 problems"), "{report}");
}

/// The variables the proxy configurations read, for replicas on made-up ports.
fn proxy_env(command: &mut Command) -> &mut Command {
    command.envs([
        ("LB_HOST", "127.0.0.1".to_string()),
        ("LB_GRPC_PORT", "19000".into()),
        ("LB_HTTP_PORT", "19001".into()),
        ("LB_GRPC_ADDR", "127.0.0.1:19000".into()),
        ("LB_HTTP_ADDR", "127.0.0.1:19001".into()),
    ]);
    for i in 1..=3 {
        command.envs([
            (format!("HEARKEN_{i}_HOST"), "127.0.0.1".to_string()),
            (format!("HEARKEN_{i}_GRPC_PORT"), format!("1910{i}")),
            (format!("HEARKEN_{i}_HTTP_PORT"), format!("1920{i}")),
            (format!("HEARKEN_{i}_GRPC"), format!("127.0.0.1:1910{i}")),
            (format!("HEARKEN_{i}_HTTP"), format!("127.0.0.1:1920{i}")),
        ]);
    }
    command
}

#[test]
fn the_proxy_configurations_are_valid() {
    let haproxy = succeeds(
        "haproxy -c",
        proxy_env(Command::new("haproxy").args(["-c", "-f", "deploy/haproxy/haproxy.cfg"]))
            .current_dir(ROOT)
            .output(),
    );
    assert!(haproxy.contains("Configuration file is valid"), "{haproxy}");
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("envoy.yaml");
    let template = std::fs::File::open(Path::new(ROOT).join("deploy/envoy/envoy.yaml")).unwrap();
    succeeds(
        "envsubst",
        proxy_env(&mut Command::new("envsubst"))
            .stdin(template)
            .stdout(std::fs::File::create(&rendered).unwrap())
            .output(),
    );
    let envoy = succeeds(
        "envoy --mode validate",
        Command::new("envoy")
            .args(["--mode", "validate", "-c"])
            .arg(&rendered)
            .output(),
    );
    assert!(envoy.contains("OK"), "{envoy}");
}

#[test]
fn three_replicas_behind_haproxy_lose_no_session_when_one_drains() {
    // The model is cached once here, not fetched by three replicas at once.
    support::default_model_dir();
    let summary = succeeds(
        "deploy/local/scale-test.sh haproxy",
        Command::new("deploy/local/scale-test.sh")
            .arg("haproxy")
            .env("HEARKEN_BIN", env!("CARGO_BIN_EXE_hearken"))
            .current_dir(ROOT)
            .output(),
    );
    eprintln!("{summary}");
    assert!(summary.contains(" 0 lost;"), "{summary}");
}

/// A proxy from deploy/ in front of three servers (or one, in all three slots).
struct Proxy {
    child: std::process::Child,
    grpc: String,
    http: String,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start(kind: &str, replicas: [&hearken::server::RunningServer; 3]) -> Self {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (grpc_port, http_port) = (free(), free());
        let grpc = |i: usize| replicas[i - 1].grpc_addr;
        let http = |i: usize| replicas[i - 1].http_addr.expect("replicas serve HTTP");
        let dir = tempfile::tempdir().unwrap();
        let mut command = match kind {
            "haproxy" => {
                let mut c = Command::new("haproxy");
                c.args(["-db", "-f", "deploy/haproxy/haproxy.cfg"]);
                c
            }
            _ => {
                let template =
                    std::fs::read_to_string(Path::new(ROOT).join("deploy/envoy/envoy.yaml"))
                        .unwrap();
                let mut rendered = template
                    .replace("${LB_HOST}", "127.0.0.1")
                    .replace("${LB_GRPC_PORT}", &grpc_port.to_string())
                    .replace("${LB_HTTP_PORT}", &http_port.to_string());
                for i in 1..=3 {
                    rendered = rendered
                        .replace(&format!("${{HEARKEN_{i}_HOST}}"), "127.0.0.1")
                        .replace(
                            &format!("${{HEARKEN_{i}_GRPC_PORT}}"),
                            &grpc(i).port().to_string(),
                        )
                        .replace(
                            &format!("${{HEARKEN_{i}_HTTP_PORT}}"),
                            &http(i).port().to_string(),
                        );
                }
                let config = dir.path().join("envoy.yaml");
                std::fs::write(&config, rendered).unwrap();
                let mut c = Command::new("envoy");
                c.arg("-c")
                    .arg(&config)
                    .args(["--log-level", "warn", "--base-id"]);
                c.arg(grpc_port.to_string());
                c
            }
        };
        command
            .current_dir(ROOT)
            .env("LB_GRPC_ADDR", format!("127.0.0.1:{grpc_port}"));
        command.env("LB_HTTP_ADDR", format!("127.0.0.1:{http_port}"));
        for i in 1..=3 {
            command.env(format!("HEARKEN_{i}_GRPC"), grpc(i).to_string());
            command.env(format!("HEARKEN_{i}_HTTP"), http(i).to_string());
            command.env(format!("HEARKEN_{i}_HTTP_PORT"), http(i).port().to_string());
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{kind} could not be started ({e}); .ci/run installs it"));
        Self {
            child,
            grpc: format!("127.0.0.1:{grpc_port}"),
            http: format!("127.0.0.1:{http_port}"),
            _dir: dir,
        }
    }

    /// Waits until the proxy's health checks have found the replica.
    async fn ready(&self) {
        let client = hearken::tls::http_client().unwrap();
        for _ in 0..150 {
            let health = client
                .get(format!("http://{}/healthz", self.http))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                // Every slot passes its checks (rise 2, 1 s apart), not only the first.
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("the proxy did not become ready");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server has no open session; false if it still has some after 20 s (a
/// session gone quiet would hold its slot until the 30 s idle timeout).
async fn slots_released(server: &hearken::server::RunningServer) -> bool {
    for _ in 0..200 {
        if server.service.open_sessions() == 0 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_aborting_through_either_proxy_frees_its_slot_and_its_work() {
    use hearken::grpc::proto::RecognitionConfig;
    use hearken::grpc::proto::speech_client::SpeechClient;
    use tokio_stream::StreamExt;

    let server = support::start_server(hearken::server::ServeConfig {
        // Window after window: a cancelled upload is dropped at the next window (~1 s),
        // not after a batch of six 30 s chunks.
        long_files: hearken::service::LongFiles::Sequential,
        ..support::serve_config(Limits::default(), true)
    })
    .await;
    let (_, jfk) = support::clip("jfk");
    let (_, sonnets) = support::clip("librivox_sonnets_1_3");
    let wav = hearken::audio::f32_to_wav_pcm16(&sonnets, 16_000);
    for kind in ["haproxy", "envoy"] {
        let proxy = Proxy::start(kind, [&server; 3]);
        proxy.ready().await;

        // A live stream through the proxy, dropped once it is being transcribed.
        let mut client = SpeechClient::connect(format!("http://{}", proxy.grpc))
            .await
            .unwrap();
        let config = RecognitionConfig {
            interim_results: true,
            ..Default::default()
        };
        let frame = std::time::Duration::from_millis(100);
        let (requests, _) = hearken::grpc::client::pcm16_stream(config, &jfk, frame, true);
        // The client gives up on the whole call: its audio stops too (dropping only the
        // responses would leave the request body streaming the clip to its end).
        let aborted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gave_up = std::sync::Arc::clone(&aborted);
        let requests =
            requests.take_while(move |_| !gave_up.load(std::sync::atomic::Ordering::Relaxed));
        let mut responses = client
            .streaming_recognize(requests)
            .await
            .unwrap()
            .into_inner();
        while let Some(response) = responses.next().await {
            if matches!(
                response.unwrap().event,
                Some(hearken::grpc::proto::streaming_recognize_response::Event::Transcript(_))
            ) {
                break;
            }
        }
        assert_eq!(server.service.open_sessions(), 1, "{kind}");
        aborted.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(responses);
        drop(client);
        assert!(
            slots_released(&server).await,
            "{kind}: the stream's slot was kept"
        );

        // A 158 s upload (seconds of model work), abandoned once the model is on it.
        let before = server.engine().stats();
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(wav.clone()).file_name("s.wav"),
            )
            .text("model", "whisper-1")
            .text("stream", "true");
        let url = format!("http://{}/v1/audio/transcriptions", proxy.http);
        let upload = tokio::spawn(async move {
            let response = hearken::tls::http_client()
                .unwrap()
                .post(url)
                .multipart(form)
                .send()
                .await;
            response.unwrap().bytes().await
        });
        let started = std::time::Instant::now();
        while server.engine().stats().jobs_admitted == before.jobs_admitted {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{kind}: the upload never reached the model"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        upload.abort();
        let _ = upload.await;
        assert!(
            slots_released(&server).await,
            "{kind}: the upload's slot was kept"
        );
        // The engine drops a cancelled row when the batch step it is in ends.
        let started = std::time::Instant::now();
        while server.engine().stats().jobs_cancelled() == before.jobs_cancelled() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "{kind}: the abandoned upload's model work went on"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    server.shutdown().await.unwrap();
}

/// Streams resumed on `server` so far (its `hearken.stream.resume` counter).
fn resumed_on(server: &hearken::server::RunningServer) -> u64 {
    let metrics = server.service.metrics().registry().render();
    metrics
        .lines()
        .filter(|l| l.starts_with("hearken_stream_resume_total") && l.contains("\"resumed\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_stream_reaches_the_replica_that_holds_it_through_either_proxy() {
    use hearken::engine::ScriptedBackend;
    use hearken::engine::backend::scripted::{say, silence};
    use hearken::grpc::client::resume::resumable_session;
    use hearken::grpc::proto::speech_client::SpeechClient;
    use hearken::grpc::proto::streaming_recognize_response::Event;
    use hearken::grpc::proto::{AudioChunk, AudioEncoding, RecognitionConfig};
    use hearken::testing::CutProxy;

    let mut replicas = Vec::new();
    for _ in 0..3 {
        let config = support::serve_config(Limits::default(), true);
        let server = hearken::server::RunningServer::start(ScriptedBackend::english(), config);
        replicas.push(server.await.unwrap());
    }
    let chunks = |samples: Vec<f32>, first: u64| -> Vec<AudioChunk> {
        let pcm = |frame: &[f32]| hearken::audio::f32_to_pcm16le(frame);
        let numbered = samples.chunks(1_600).zip(first..);
        numbered
            .map(|(frame, sequence)| AudioChunk {
                data: pcm(frame),
                sequence,
            })
            .collect()
    };
    let mut before_cut = say(&["one", "two"]);
    before_cut.extend(silence(1.5));
    before_cut.extend(say(&["three"]));
    let first_part = chunks(before_cut, 1);
    let mut after_cut = say(&["four"]);
    after_cut.extend(silence(1.5));
    let second_part = chunks(after_cut, first_part.len() as u64 + 1);
    let config = RecognitionConfig {
        encoding: AudioEncoding::Linear16 as i32,
        sample_rate_hertz: 16_000,
        ..Default::default()
    };

    for kind in ["haproxy", "envoy"] {
        let proxy = Proxy::start(kind, [&replicas[0], &replicas[1], &replicas[2]]);
        proxy.ready().await;
        let cut = CutProxy::start(proxy.grpc.parse().unwrap()).await.unwrap();
        let resumed_before: u64 = replicas.iter().map(resumed_on).sum();
        // Sessions hash to replicas at random: with three of them, a resume that went
        // anywhere would miss its session two times in three.
        let sessions = 6;
        for session in 0..sessions {
            let client = SpeechClient::connect(format!("http://{}", cut.addr))
                .await
                .unwrap();
            let (audio_tx, audio_rx) = tokio::sync::mpsc::channel(256);
            let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
            let run = tokio::spawn(resumable_session(
                client,
                Default::default(),
                config.clone(),
                tokio_stream::wrappers::ReceiverStream::new(audio_rx),
                Box::pin(std::future::pending()),
                move |response| {
                    let _ = events_tx.send(response.clone());
                    Ok(())
                },
            ));
            for chunk in &first_part {
                audio_tx.send(chunk.clone()).await.unwrap();
            }
            let mut finals = Vec::new();
            while finals.is_empty() {
                let response = events.recv().await.expect("the session goes on");
                if let Some(Event::Transcript(t)) = response.event
                    && t.is_final
                {
                    finals.push(t.committed.trim().to_string());
                }
            }
            // Mid-utterance ("three" is open): the client's connection to the proxy drops.
            assert_eq!(cut.cut(), 1, "{kind} session {session}");
            for chunk in &second_part {
                audio_tx.send(chunk.clone()).await.unwrap();
            }
            drop(audio_tx);
            let outcome = run.await.unwrap();
            let outcome = outcome.unwrap_or_else(|e| panic!("{kind} session {session}: {e:?}"));
            assert_eq!(outcome.resumes, 1, "{kind} session {session}");
            while let Some(response) = events.recv().await {
                if let Some(Event::Transcript(t)) = response.event
                    && t.is_final
                {
                    finals.push(t.committed.trim().to_string());
                }
            }
            assert_eq!(
                finals,
                ["one two", "three four"],
                "{kind} session {session}"
            );
        }
        let resumed: u64 = replicas.iter().map(resumed_on).sum();
        assert_eq!(resumed - resumed_before, sessions, "{kind}");
    }
    for replica in replicas {
        replica.shutdown().await.unwrap();
    }
}
