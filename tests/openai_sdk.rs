//! OpenAI's official Python SDK against the gateway: starts a server in-process and runs
//! `clients/python/test_openai_sdk.py` with pytest. Python, `openai` and `pytest` are required,
//! not optional: a missing one fails the test with the install command.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use hearken::engine::WhisperBackend;
use hearken::eval::default_corpus_dir;
use hearken::model::whisper::WhisperModel;
use hearken::server::RunningServer;
use hearken::service::Limits;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pytest(base_url: &str) -> Output {
    Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg("clients/python/test_openai_sdk.py")
        .current_dir(repo())
        .env("HEARKEN_BASE_URL", base_url)
        .env("HEARKEN_CORPUS_DIR", default_corpus_dir())
        .output()
        .expect("python3 runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_passes_against_the_gateway() {
    support::require_python_modules("openai, pytest", "clients/python/requirements.txt");
    let model = WhisperModel::load(&support::default_model_dir(), &candle_core::Device::Cpu)
        .expect("load model");
    let config = support::serve_config(Limits::default(), true);
    let server = RunningServer::start(WhisperBackend::from(model), config)
        .await
        .expect("server starts");
    let base_url = format!("http://{}/v1", server.http_addr.expect("http is on"));
    let output = tokio::task::spawn_blocking(move || pytest(&base_url))
        .await
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pytest failed:\n{report}");
    assert!(report.contains("6 passed"), "{report}");
    server.shutdown().await.unwrap();
}
