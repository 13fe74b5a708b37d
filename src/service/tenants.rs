//! API keys and tenants: who is calling, and how much of the server they may use.
//!
//! `hearken serve --tenants FILE` reads a TOML file of tenants, each with one or more keys and
//! optional quotas:
//!
//! ```toml
//! [[tenant]]
//! id = "acme"
//! keys = ["sha256:5e88…"]          # `hearken keys new acme` prints a key and this line
//! max_sessions = 8                 # concurrent streams, sockets and whole-file requests
//! audio_seconds_per_minute = 600   # audio accepted per minute, a minute's worth in a burst
//! ```
//!
//! Keys are stored as SHA-256 digests, so the file is not a secret worth stealing, and a
//! presented key is hashed and compared with every digest in constant time (no early exit, no
//! length leak), so response timing says nothing about how close a guess was. Keys are never
//! logged; the tenant id is what spans, logs and metrics carry.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ServiceError;

/// A tenants file that cannot be used; the message names the file, the tenant and the field.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// The file could not be read.
    #[error("cannot read the tenants file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape, or a value is out of range.
    #[error("invalid tenants file {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the tenant and field when known.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tenant: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    keys: Vec<String>,
    max_sessions: Option<usize>,
    audio_seconds_per_minute: Option<f64>,
}

/// What one tenant may use at once and per minute; `None` is unlimited (within the server's
/// own limits).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quotas {
    /// Concurrent sessions.
    pub max_sessions: Option<usize>,
    /// Seconds of audio accepted per minute.
    pub audio_seconds_per_minute: Option<f64>,
}

/// One tenant at run time: its id, key digests, quotas and their live state.
pub struct Tenant {
    id: Arc<str>,
    digests: Vec<[u8; 32]>,
    quotas: Quotas,
    slots: Option<Arc<Semaphore>>,
    audio: Option<Mutex<Bucket>>,
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Digests stay out of logs too.
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .field("keys", &self.digests.len())
            .field("quotas", &self.quotas)
            .finish()
    }
}

impl Tenant {
    fn new(id: &str, digests: Vec<[u8; 32]>, quotas: Quotas) -> Self {
        Self {
            id: id.into(),
            digests,
            slots: quotas.max_sessions.map(|n| Arc::new(Semaphore::new(n))),
            audio: quotas
                .audio_seconds_per_minute
                .map(|per_minute| Mutex::new(Bucket::full(per_minute, Instant::now()))),
            quotas,
        }
    }

    /// The tenant's id, as spans, logs and metrics carry it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its quotas.
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    /// One of its session slots, when it has a session quota.
    pub(super) fn take_slot(&self) -> Result<Option<OwnedSemaphorePermit>, ServiceError> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        Arc::clone(slots)
            .try_acquire_owned()
            .map(Some)
            .map_err(|_| ServiceError::TenantQuota {
                tenant: self.id.to_string(),
                quota: format!(
                    "{} concurrent sessions",
                    self.quotas.max_sessions.unwrap_or(0)
                ),
                retry_after: Duration::from_secs(2),
            })
    }

    /// Takes `seconds` of audio from its per-minute allowance.
    pub(super) fn charge_audio(&self, seconds: f64, now: Instant) -> Result<(), ServiceError> {
        let Some(bucket) = &self.audio else {
            return Ok(());
        };
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        bucket
            .take(seconds, now)
            .map_err(|wait| ServiceError::TenantQuota {
                tenant: self.id.to_string(),
                quota: format!(
                    "{} s of audio per minute",
                    self.quotas.audio_seconds_per_minute.unwrap_or(0.0)
                ),
                retry_after: wait,
            })
    }
}

/// A token bucket of audio seconds: holds at most a minute's allowance, refills continuously.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    per_minute: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(per_minute: f64, now: Instant) -> Self {
        Self {
            per_minute,
            tokens: per_minute,
            at: now,
        }
    }

    /// Takes `amount`, or says how long until it could be taken (a whole minute's worth at
    /// most: more than that never fits).
    fn take(&mut self, amount: f64, now: Instant) -> Result<(), Duration> {
        let rate = self.per_minute / 60.0;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.per_minute);
        self.at = now;
        if amount <= self.tokens {
            self.tokens -= amount;
            return Ok(());
        }
        let missing = amount.min(self.per_minute) - self.tokens;
        Err(Duration::from_secs_f64(
            (missing / rate).max(0.0).ceil().max(1.0),
        ))
    }
}

/// The tenants of a server with a tenants file. Clones share the tenants' live quota state.
#[derive(Debug, Default, Clone)]
pub struct Tenants {
    tenants: Vec<Arc<Tenant>>,
}

impl Tenants {
    /// Reads and checks a tenants file.
    pub fn load(path: &Path) -> Result<Self, TenantsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TenantsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| TenantsError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses a tenants file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut tenants: Vec<Arc<Tenant>> = Vec::new();
        for entry in file.tenant {
            let id = entry.id.trim();
            if id.is_empty() || id.len() > 64 || !id.chars().all(valid_id_char) {
                return Err(format!(
                    "tenant id `{id}` must be 1 to 64 letters, digits, `-`, `_` or `.`"
                ));
            }
            if tenants.iter().any(|t| t.id() == id) {
                return Err(format!("tenant `{id}` appears twice"));
            }
            if entry.keys.is_empty() {
                return Err(format!("tenant `{id}` has no keys"));
            }
            let digests = entry
                .keys
                .iter()
                .map(|k| parse_digest(k).map_err(|e| format!("tenant `{id}`: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(0) = entry.max_sessions {
                return Err(format!("tenant `{id}`: max_sessions must be at least 1"));
            }
            if let Some(rate) = entry.audio_seconds_per_minute
                && !(rate > 0.0 && rate.is_finite())
            {
                return Err(format!(
                    "tenant `{id}`: audio_seconds_per_minute must be a positive number"
                ));
            }
            let quotas = Quotas {
                max_sessions: entry.max_sessions,
                audio_seconds_per_minute: entry.audio_seconds_per_minute,
            };
            tenants.push(Arc::new(Tenant::new(id, digests, quotas)));
        }
        if tenants.is_empty() {
            return Err(
                "no [[tenant]] entries: with a tenants file, every request needs a key \
                        of one of its tenants"
                    .to_string(),
            );
        }
        let all: Vec<[u8; 32]> = tenants.iter().flat_map(|t| t.digests.clone()).collect();
        if (1..all.len()).any(|i| all[..i].contains(&all[i])) {
            return Err("the same key is listed twice".to_string());
        }
        Ok(Self { tenants })
    }

    /// The tenant a presented key belongs to. Every digest is compared, in constant time.
    pub fn authenticate(&self, key: &str) -> Option<Arc<Tenant>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for tenant in &self.tenants {
            for known in &tenant.digests {
                if bool::from(known.ct_eq(&digest)) {
                    found = Some(Arc::clone(tenant));
                }
            }
        }
        found
    }

    /// The tenants, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.iter()
    }
}

fn valid_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn parse_digest(entry: &str) -> Result<[u8; 32], String> {
    let hex = entry.strip_prefix("sha256:").ok_or_else(|| {
        "keys are stored as `sha256:<64 hex digits>` (`hearken keys new TENANT` prints one), \
         never as the key itself"
            .to_string()
    })?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>();
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("`{entry}` is not sha256: followed by 64 hex digits"))
}

/// A fresh API key (`hk_` and 32 random bytes, URL-safe base64) and the digest line that lets
/// a tenant use it.
pub fn new_key() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let key = format!(
        "hk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    Ok((key.clone(), digest_line(&key)))
}

/// `sha256:<hex>` of a key, as the tenants file stores it.
pub fn digest_line(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(keys: &[&str], extra: &str) -> String {
        let keys: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{}\"", digest_line(k)))
            .collect();
        format!(
            "[[tenant]]\nid = \"acme\"\nkeys = [{}]\n{extra}\n",
            keys.join(", ")
        )
    }

    #[test]
    fn keys_find_their_tenant_and_nothing_else_does() {
        let tenants = Tenants::parse(&file(&["hk_one", "hk_two"], "max_sessions = 2")).unwrap();
        assert_eq!(tenants.authenticate("hk_one").unwrap().id(), "acme");
        assert_eq!(tenants.authenticate("hk_two").unwrap().id(), "acme");
        assert!(tenants.authenticate("hk_three").is_none());
        assert!(tenants.authenticate("").is_none());
        // The file holds digests only.
        assert!(!file(&["hk_one"], "").contains("hk_one"));
    }

    #[test]
    fn a_fresh_key_is_random_and_its_line_authenticates_it() {
        let (key, line) = new_key().unwrap();
        let (other, _) = new_key().unwrap();
        assert_ne!(key, other);
        assert!(key.starts_with("hk_") && key.len() == 3 + 43, "{key}");
        let text = format!("[[tenant]]\nid = \"t\"\nkeys = [\"{line}\"]\n");
        let tenants = Tenants::parse(&text).unwrap();
        assert_eq!(tenants.authenticate(&key).unwrap().id(), "t");
    }

    #[test]
    fn bad_files_are_refused_naming_the_tenant_and_field() {
        let cases = [
            ("", "no [[tenant]] entries"),
            (
                "[[tenant]]\nid = \"a\"\nkeys = [\"hk_plain\"]\n",
                "never as the key itself",
            ),
            (
                "[[tenant]]\nid = \"a\"\nkeys = [\"sha256:abc\"]\n",
                "64 hex digits",
            ),
            (
                "[[tenant]]\nid = \"a\"\nkeys = []\n",
                "tenant `a` has no keys",
            ),
            ("[[tenant]]\nid = \"a b\"\nkeys = []\n", "tenant id `a b`"),
            (
                &file(&["k"], "max_sessions = 0"),
                "max_sessions must be at least 1",
            ),
            (
                &file(&["k"], "audio_seconds_per_minute = -5.0"),
                "audio_seconds_per_minute",
            ),
            (
                &file(&["k"], "max_session = 3"),
                "unknown field `max_session`",
            ),
            (
                &format!("{}{}", file(&["k"], ""), file(&["j"], "")),
                "tenant `acme` appears twice",
            ),
        ];
        for (text, needle) in cases {
            let err = Tenants::parse(text).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn session_quota_and_audio_bucket() {
        let tenants = Tenants::parse(&file(
            &["k"],
            "max_sessions = 1\naudio_seconds_per_minute = 60.0",
        ))
        .unwrap();
        let tenant = tenants.authenticate("k").unwrap();
        let held = tenant.take_slot().unwrap();
        assert!(held.is_some());
        let refused = tenant.take_slot().unwrap_err();
        assert!(
            refused.to_string().contains("1 concurrent sessions"),
            "{refused}"
        );
        drop(held);
        assert!(tenant.take_slot().is_ok());

        let t0 = Instant::now();
        tenant.charge_audio(50.0, t0).unwrap();
        let refused = tenant.charge_audio(20.0, t0).unwrap_err();
        // 10 s left, 1 s refills per second: 10 more seconds.
        assert_eq!(refused.retry_after(), Some(Duration::from_secs(10)));
        tenant
            .charge_audio(20.0, t0 + Duration::from_secs(10))
            .unwrap();
        // Refills stop at a minute's worth.
        tenant
            .charge_audio(60.0, t0 + Duration::from_secs(3_600))
            .unwrap();
        assert!(
            tenant
                .charge_audio(1.0, t0 + Duration::from_secs(3_600))
                .is_err()
        );
    }
}
