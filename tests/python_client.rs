//! The Python client package (`clients/python/hearken_client`) against real servers: starts
//! two in-process with the default model, one open on plaintext and one over TLS (a CA the
//! test makes) that wants an API key (its tenant may hold one session at a time, so a second
//! is refused with a retry hint), and runs `clients/python/tests` with pytest on the source
//! tree. Python, grpcio, grpcio-tools,
//! protobuf and pytest are required, not optional: a missing one fails the test with the
//! install command.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use hearken::engine::WhisperBackend;
use hearken::eval::default_corpus_dir;
use hearken::model::whisper::WhisperModel;
use hearken::server::{RunningServer, ServeConfig};
use hearken::service::tenants::digest_line;
use hearken::service::{Limits, Tenants};

/// The key of the keyed server's one tenant.
const KEY: &str = "hk_python_client_test";
/// The tests `clients/python/tests` holds; a test that stops being collected fails this.
const EXPECTED: &str = "26 passed";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A server for tiny.en; with `keyed`, over TLS and letting in only [`KEY`], for one session
/// at a time.
async fn start(keyed: Option<&support::Pki>) -> RunningServer {
    let tenants = keyed.map(|_| {
        Tenants::parse(&format!(
            "[[tenant]]\nid = \"python\"\nkeys = [\"{}\"]\nmax_sessions = 1\n",
            digest_line(KEY)
        ))
        .expect("tenants parse")
    });
    let config = ServeConfig {
        tenants,
        tls: keyed.map(support::Pki::server_files),
        ..support::serve_config(Limits::default(), false)
    };
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

fn pytest(server: &str, keyed_server: &str, ca: &Path) -> Output {
    Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg("clients/python/tests")
        .current_dir(repo())
        .env("PYTHONPATH", "clients/python")
        .env("HEARKEN_TEST_SERVER", server)
        .env("HEARKEN_TEST_KEYED_SERVER", keyed_server)
        .env("HEARKEN_TEST_API_KEY", KEY)
        .env("HEARKEN_TEST_CA", ca)
        .env("HEARKEN_CORPUS_DIR", default_corpus_dir())
        // The client reads a key from here by default; the tests decide which key is sent.
        .env_remove("HEARKEN_API_KEY")
        .env_remove("HEARKEN_SERVER")
        .output()
        .expect("python3 runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_passes_against_real_servers() {
    support::require_python_modules(
        "grpc, grpc_tools, google.protobuf, pytest",
        "clients/python/requirements.txt",
    );
    let pki = support::Pki::new();
    let open = start(None).await;
    let keyed = start(Some(&pki)).await;
    let server = open.grpc_addr.to_string();
    let keyed_server = format!("https://127.0.0.1:{}", keyed.grpc_addr.port());
    let ca = pki.path("ca.crt");
    let output = tokio::task::spawn_blocking(move || pytest(&server, &keyed_server, &ca))
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Shown with --nocapture (add PYTEST_ADDOPTS=--durations=0 for the slow tests).
    println!("{report}");
    assert!(output.status.success(), "pytest failed:\n{report}");
    assert!(report.contains(EXPECTED), "expected {EXPECTED}:\n{report}");
    open.shutdown().await.unwrap();
    keyed.shutdown().await.unwrap();
}
