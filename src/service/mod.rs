//! The serving core both front ends stand on: the engine handle, the served model's identity,
//! limits, session admission, readiness and the shutdown signal, the whole-file pipeline
//! ([`whole_file`]) and the one error table ([`ServiceError`]).
//!
//! `grpc/` and `http/` translate their protocols onto this and never import each other. A
//! session (a stream, a WebSocket, an HTTP request) holds a [`SessionPermit`] for its whole
//! life: the permit is both its slot under `--max-sessions` and its entry in the task tracker
//! that graceful shutdown waits on.

pub mod access;
mod error;
pub mod result_cache;
pub mod tenants;
pub mod whole_file;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

pub use access::Origins;
pub use error::{ServiceError, openai_type};
pub use result_cache::{ResultCache, ResultCacheSize};
pub use tenants::{Tenant, Tenants};
pub use whole_file::{AudioFormat, LongFiles};

use crate::engine::{Engine, ModelInfo};
use crate::session::Detector;
use crate::telemetry::Metrics;

/// How long a client refused for capacity should wait: a slot frees as soon as any session
/// ends, typically within seconds.
const SESSION_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Server-wide limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request message, bytes.
    pub max_message_bytes: usize,
    /// How far a streaming client may run ahead of transcription, seconds of audio.
    pub max_lead_seconds: f64,
    /// Concurrent sessions (streams, WebSockets and in-flight whole-file requests).
    pub max_sessions: usize,
    /// Longest audio one whole-file request may carry, seconds.
    pub max_audio_seconds: f64,
    /// Largest audio file one HTTP upload may carry, bytes (OpenAI's limit is 25 MB).
    pub max_upload_bytes: usize,
    /// How long a new stream has to send its config.
    pub config_timeout: Duration,
    /// How long a stream may send nothing (no audio, no KeepAlive) once configured.
    pub idle_timeout: Duration,
    /// How slowly an HTTP upload's body may arrive.
    pub body_pace: BodyPace,
    /// Whole-file results kept for identical requests (off unless set; `serve` sets it).
    pub result_cache: ResultCacheSize,
    /// How long a resumable stream is kept after its connection breaks; zero: not at all.
    pub resume_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 32 << 20,
            max_lead_seconds: 30.0,
            max_sessions: 64,
            max_audio_seconds: 4.0 * 3600.0,
            max_upload_bytes: 25 << 20,
            config_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            body_pace: BodyPace::default(),
            result_cache: ResultCacheSize::OFF,
            resume_window: Duration::from_secs(30),
        }
    }
}

/// How slowly a client may send a request body before the read is given up: a stall (no
/// bytes at all) or, past a grace period, an average rate under the minimum. A slow client
/// holds no session slot while it uploads, but it does hold its buffer and a connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyPace {
    /// Longest wait for the next bytes.
    pub stall: Duration,
    /// Lowest average rate, bytes per second, enforced once `grace` has passed.
    pub min_bytes_per_second: u64,
    /// Time before the average rate is enforced (slow starts, small bodies).
    pub grace: Duration,
}

impl Default for BodyPace {
    fn default() -> Self {
        Self {
            stall: Duration::from_secs(10),
            // 64 kbit/s: a weak mobile uplink still clears it; a trickle attack does not.
            min_bytes_per_second: 8 * 1024,
            grace: Duration::from_secs(10),
        }
    }
}

impl BodyPace {
    /// When the read must have progressed past `bytes` (received since `started`, the last
    /// of them at `last_progress`) or be given up: the stall deadline or the moment the
    /// average falls under the minimum, whichever comes first.
    pub fn deadline(&self, started: Instant, bytes: u64, last_progress: Instant) -> Instant {
        let (stall, slow) = self.deadlines(started, bytes, last_progress);
        stall.min(slow)
    }

    /// Why a read that reached [`Self::deadline`] is given up.
    pub fn give_up(&self, started: Instant, bytes: u64, last_progress: Instant) -> ServiceError {
        let (stall, slow) = self.deadlines(started, bytes, last_progress);
        let elapsed = slow.saturating_duration_since(started).as_secs_f64();
        ServiceError::Timeout(if slow < stall {
            format!(
                "the request body is arriving too slowly: {bytes} bytes in {elapsed:.1} s; \
                 the minimum is {} bytes/s",
                self.min_bytes_per_second
            )
        } else {
            format!(
                "the request body stalled: no data for {:.1} s after {bytes} bytes",
                self.stall.as_secs_f64()
            )
        })
    }

    fn deadlines(
        &self,
        started: Instant,
        bytes: u64,
        last_progress: Instant,
    ) -> (Instant, Instant) {
        const NEVER: Duration = Duration::from_secs(86_400 * 365);
        let paid_for = match self.min_bytes_per_second {
            0 => NEVER,
            rate => Duration::from_secs_f64(bytes as f64 / rate as f64).min(NEVER),
        };
        (
            last_progress + self.stall,
            started + paid_for.max(self.grace),
        )
    }
}

const MISSING_KEY: &str = "this server requires an API key: send `authorization: Bearer KEY`";
const NOT_BEARER: &str = "the authorization value must be `Bearer KEY`";
const UNKNOWN_KEY: &str = "invalid API key";

/// The key of a `Bearer KEY` value (the scheme is case-insensitive, as RFC 6750 says).
pub fn bearer_key(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The served model: its id, where it runs and what it can do.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// Id clients use (`tiny.en`).
    pub id: String,
    /// Where it runs (`cpu`, `cuda:0`).
    pub device: String,
}

/// What every session of every protocol shares.
#[derive(Debug)]
pub struct Service {
    engine: Arc<Engine>,
    model: ServedModel,
    limits: Limits,
    slots: Arc<Semaphore>,
    sessions: TaskTracker,
    ready: AtomicBool,
    shutdown: watch::Sender<bool>,
    /// Turns true when live sessions must end their input and finalize.
    finalize: watch::Sender<bool>,
    grace_expired: CancellationToken,
    metrics: Metrics,
    origins: Origins,
    /// `None`: no tenants file, the server is open.
    tenants: Option<Tenants>,
    detector: Detector,
    long_files: LongFiles,
    /// Whole-file results by request (`Limits::result_cache`); `None` when off.
    result_cache: Option<ResultCache>,
}

/// A session's place on the server: its slot, its tenant's slot when the tenant has a
/// session quota, and its entry in the shutdown tracker. Dropping it ends the session.
#[derive(Debug)]
pub struct SessionPermit {
    _slot: OwnedSemaphorePermit,
    _tenant_slot: Option<OwnedSemaphorePermit>,
    _tracked: TaskTrackerToken,
}

/// Who a request is from: one of the tenants, or anyone when the server runs without a
/// tenants file. Cheap to clone; handlers receive it from the front end's authentication.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    tenant: Option<Arc<Tenant>>,
}

impl Caller {
    /// A caller on a server without tenants.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The tenant's id (`anonymous` on an open server), for spans, logs and metrics.
    pub fn tenant_id(&self) -> &str {
        self.tenant.as_deref().map_or("anonymous", Tenant::id)
    }
}

impl Service {
    /// A core over `engine` serving `model` within `limits`; sessions and refusals are
    /// recorded into `metrics`. It starts not ready.
    pub fn new(engine: Arc<Engine>, model: ServedModel, limits: Limits, metrics: Metrics) -> Self {
        let slots = Arc::new(Semaphore::new(limits.max_sessions));
        let observed = Arc::downgrade(&slots);
        let max_sessions = limits.max_sessions;
        metrics.service().observe_sessions(move || {
            Some((max_sessions - observed.upgrade()?.available_permits()) as u64)
        });
        Self {
            engine,
            model,
            slots,
            sessions: TaskTracker::new(),
            ready: AtomicBool::new(false),
            shutdown: watch::Sender::new(false),
            finalize: watch::Sender::new(false),
            grace_expired: CancellationToken::new(),
            metrics,
            origins: Origins::none(),
            tenants: None,
            detector: Detector::Energy,
            long_files: LongFiles::default(),
            result_cache: ResultCache::new(limits.result_cache),
            limits,
        }
    }

    /// Gates streams and whole files with `detector` (energy until this is called).
    pub fn with_detector(mut self, detector: Detector) -> Self {
        self.detector = detector;
        self
    }

    /// The speech detector streams and whole files are gated with.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Transcribes whole files longer than one window the `long_files` way (batched chunks
    /// unless this is called).
    pub fn with_long_files(mut self, long_files: LongFiles) -> Self {
        self.long_files = long_files;
        self
    }

    /// How whole files longer than one window are transcribed.
    pub fn long_files(&self) -> LongFiles {
        self.long_files
    }

    /// The whole-file result cache, when it is on.
    pub fn result_cache(&self) -> Option<&ResultCache> {
        self.result_cache.as_ref()
    }

    /// Requires an API key of one of `tenants` on every request but health checks.
    pub fn with_tenants(mut self, tenants: Tenants) -> Self {
        self.tenants = Some(tenants);
        self
    }

    /// Who sent a request with this `authorization` value (`Bearer KEY`), or why it is
    /// refused. Without a tenants file everyone is let in, as [`Caller::anonymous`]. The
    /// tenant id goes on the current span (the request's), never the key.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ServiceError> {
        let Some(tenants) = &self.tenants else {
            return Ok(Caller::anonymous());
        };
        let key = match authorization.map(str::trim) {
            None | Some("") => return Err(ServiceError::Unauthenticated(MISSING_KEY)),
            Some(value) => bearer_key(value).ok_or(ServiceError::Unauthenticated(NOT_BEARER))?,
        };
        let tenant = tenants
            .authenticate(key)
            .ok_or(ServiceError::Unauthenticated(UNKNOWN_KEY))?;
        tracing::Span::current().record("tenant", tenant.id());
        Ok(Caller {
            tenant: Some(tenant),
        })
    }

    /// Takes `seconds` of audio from the caller's per-minute allowance and counts it.
    pub fn charge_audio(&self, caller: &Caller, seconds: f64) -> Result<(), ServiceError> {
        if let Some(tenant) = &caller.tenant {
            tenant.charge_audio(seconds, Instant::now())?;
        }
        self.metrics
            .service()
            .tenant_audio(caller.tenant_id(), seconds);
        Ok(())
    }

    /// Allows cross-origin browser calls from `origins` (none by default).
    pub fn with_origins(mut self, origins: Origins) -> Self {
        self.origins = origins;
        self
    }

    /// The web origins allowed to call cross-origin.
    pub fn origins(&self) -> &Origins {
        &self.origins
    }

    /// Refuses a browser request from an origin that is neither this server's nor allowed.
    pub fn check_origin(
        &self,
        origin: Option<&str>,
        host: Option<&str>,
    ) -> Result<(), ServiceError> {
        if self.origins.permits(origin, host) {
            return Ok(());
        }
        Err(ServiceError::OriginNotAllowed {
            origin: origin.unwrap_or_default().chars().take(200).collect(),
        })
    }

    /// The engine every session submits to.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The served model's id.
    pub fn model_id(&self) -> &str {
        &self.model.id
    }

    /// Where the served model runs.
    pub fn device(&self) -> &str {
        &self.model.device
    }

    /// What the served model can do (languages, translation).
    pub fn model_info(&self) -> &ModelInfo {
        self.engine.model()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The server's instruments; their Prometheus view is `metrics().registry().render()`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Takes a session slot (every protocol shares them), or says why not: the server is
    /// shutting down, or every slot is taken.
    pub fn open_session(&self, caller: &Caller) -> Result<SessionPermit, ServiceError> {
        if self.is_shutting_down() {
            self.metrics.service().session_rejected("shutting_down");
            return Err(crate::engine::EngineError::ShuttingDown.into());
        }
        let tenant_slot = match &caller.tenant {
            Some(tenant) => tenant.take_slot().inspect_err(|_| {
                self.metrics.service().session_rejected("tenant_quota");
            })?,
            None => None,
        };
        let slot = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            self.metrics.service().session_rejected("capacity");
            ServiceError::TooManySessions {
                limit: self.limits.max_sessions,
                retry_after: SESSION_RETRY_AFTER,
            }
        })?;
        self.metrics.service().tenant_session(caller.tenant_id());
        Ok(SessionPermit {
            _slot: slot,
            _tenant_slot: tenant_slot,
            _tracked: self.sessions.token(),
        })
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the server takes work (the model is warm and no shutdown has begun): what
    /// health checks report.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.is_shutting_down()
    }

    /// Marks the server ready once warm.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A signal that turns true when live sessions must finalize what they have and end
    /// ([`Self::finalize_live`]).
    pub fn finalize_signal(&self) -> watch::Receiver<bool> {
        self.finalize.subscribe()
    }

    /// Resolves once live sessions must finalize, for a session's `select!` on its
    /// [`Self::finalize_signal`].
    pub async fn finalizing(signal: &mut watch::Receiver<bool>) {
        // A closed signal means the server is going away too.
        let _ = signal.wait_for(|stop| *stop).await;
    }

    /// Begins shutdown: new sessions are refused (health turns NOT_SERVING, so balancers
    /// send them elsewhere) while live ones keep streaming until [`Self::finalize_live`].
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Tells live sessions to end their input and finalize what they have; the engine runs
    /// their finals ahead of whole files, which are unlikely to make the grace.
    pub fn finalize_live(&self) {
        self.engine.prefer_live();
        self.finalize.send_replace(true);
    }

    /// Waits until every session has ended, or `grace` has passed; false when sessions were
    /// still open then.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.sessions.close();
        tokio::time::timeout(grace, self.sessions.wait())
            .await
            .is_ok()
    }

    /// Tells sessions still open after the shutdown grace to end now, each with
    /// [`ServiceError::GraceExpired`] in its protocol's words.
    pub fn expire_grace(&self) {
        self.grace_expired.cancel();
    }

    /// Resolves with the error a session ends with once [`Self::expire_grace`] was called.
    pub async fn grace_expired(&self) -> ServiceError {
        self.grace_expired.cancelled().await;
        ServiceError::GraceExpired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineConfig, ScriptedBackend};

    fn service(max_sessions: usize) -> Service {
        let engine = Engine::start(ScriptedBackend::english(), EngineConfig::default());
        let model = ServedModel {
            id: "scripted".into(),
            device: "cpu".into(),
        };
        let limits = Limits {
            max_sessions,
            ..Limits::default()
        };
        Service::new(Arc::new(engine), model, limits, Metrics::in_memory())
    }

    #[tokio::test]
    async fn sessions_take_slots_until_none_is_left() {
        let service = service(2);
        let first = service.open_session(&Caller::anonymous()).unwrap();
        let _second = service.open_session(&Caller::anonymous()).unwrap();
        let refused = service.open_session(&Caller::anonymous()).unwrap_err();
        assert!(
            matches!(refused, ServiceError::TooManySessions { limit: 2, .. }),
            "{refused:?}"
        );
        assert_eq!(refused.retry_after(), Some(SESSION_RETRY_AFTER));
        assert_eq!(service.open_sessions(), 2);
        drop(first);
        assert_eq!(service.open_sessions(), 1);
        assert!(service.open_session(&Caller::anonymous()).is_ok());
    }

    #[tokio::test]
    async fn shutdown_refuses_new_sessions_and_waits_for_open_ones() {
        let service = Arc::new(service(4));
        service.set_ready(true);
        assert!(service.is_ready());
        let permit = service.open_session(&Caller::anonymous()).unwrap();
        let mut signal = service.finalize_signal();
        service.begin_shutdown();
        assert!(
            !service.is_ready(),
            "health turns NOT_SERVING with shutdown"
        );
        assert!(!*signal.borrow_and_update(), "live sessions keep streaming");
        service.finalize_live();
        assert!(*signal.borrow_and_update());
        let refused = service.open_session(&Caller::anonymous()).unwrap_err();
        assert_eq!(refused.grpc_code(), tonic::Code::Unavailable);
        // The open session ends a little later: drain returns then, not at the grace.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(permit);
        });
        let started = tokio::time::Instant::now();
        assert!(service.drain(Duration::from_secs(10)).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn drain_gives_up_after_the_grace() {
        let service = service(4);
        let _stuck = service.open_session(&Caller::anonymous()).unwrap();
        service.begin_shutdown();
        assert!(!service.drain(Duration::from_millis(50)).await);
        assert_eq!(service.open_sessions(), 1);
    }
}
