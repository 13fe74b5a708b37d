//! Whole-file results by the audio's bytes and everything they were transcribed with: a client
//! that sends the same file again (a retry after a timeout, a pipeline re-run, a page
//! reloaded) gets the transcript without the model. Keys include the tenant, so one tenant's
//! upload never answers another's; the cache is bounded by entries and by bytes.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::engine::JobOptions;
use crate::model::whisper::decode::Transcript;

use super::whole_file::{AudioFormat, LongFiles};

/// How much the cache may hold; zero entries or bytes turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCacheSize {
    /// Most transcripts kept.
    pub entries: u64,
    /// Most bytes of transcripts kept (text, segments, words; an estimate).
    pub bytes: u64,
}

impl ResultCacheSize {
    /// No cache: every request runs the model (the library default; `serve` turns it on).
    pub const OFF: Self = Self {
        entries: 0,
        bytes: 0,
    };
}

/// What identifies a whole-file result: a SHA-256 over the tenant, the served model, the bytes
/// and every option that changes the transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

/// Everything besides the bytes that a result depends on.
#[derive(Debug)]
pub struct KeyParts<'a> {
    /// The caller's tenant (`anonymous` on an open server).
    pub tenant: &'a str,
    /// The served model's id.
    pub model: &'a str,
    /// How the bytes are encoded.
    pub format: &'a AudioFormat,
    /// The job's options (language, task, prompt, temperature, word timings...).
    pub job: &'a JobOptions,
    /// The speech detector's name.
    pub detector: &'a str,
    /// How long files are cut.
    pub long_files: LongFiles,
}

impl KeyParts<'_> {
    /// The parts as text to hash. Their debug forms name every field, so a new option
    /// changes keys by itself.
    pub fn describe(&self) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{}\n{:?}\n{:?}",
            self.tenant, self.model, self.format, self.detector, self.long_files, self.job
        )
    }
}

impl CacheKey {
    /// The key of `bytes` transcribed with `options` ([`KeyParts::describe`]).
    pub fn new(bytes: &[u8], options: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update((options.len() as u64).to_le_bytes());
        hash.update(options.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
        Self(hash.finalize().into())
    }
}

/// The cache, shared by every whole-file request of the server. Cheap to clone.
#[derive(Clone)]
pub struct ResultCache {
    cache: moka::sync::Cache<CacheKey, Arc<Transcript>>,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl ResultCache {
    /// A cache of `size`; `None` when it is off.
    pub fn new(size: ResultCacheSize) -> Option<Self> {
        if size.entries == 0 || size.bytes == 0 {
            return None;
        }
        // Every entry weighs at least bytes / entries, so the byte bound also caps the count.
        let floor = (size.bytes / size.entries).max(1);
        // Least recently used goes first: a resent file is resent soon, not often.
        let cache = moka::sync::Cache::builder()
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .max_capacity(size.bytes)
            .weigher(move |_key: &CacheKey, transcript: &Arc<Transcript>| {
                u32::try_from(estimated_bytes(transcript).max(floor)).unwrap_or(u32::MAX)
            })
            .build();
        Some(Self { cache })
    }

    /// The cached transcript of `key`.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Transcript>> {
        self.cache.get(key)
    }

    /// Keeps `transcript` under `key`.
    pub fn insert(&self, key: CacheKey, transcript: &Transcript) {
        self.cache.insert(key, Arc::new(transcript.clone()));
    }

    /// Transcripts held now (after pending evictions are applied).
    pub fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// About what `transcript` occupies: its texts, tokens and words.
fn estimated_bytes(transcript: &Transcript) -> u64 {
    const SEGMENT: usize = 128;
    const WORD: usize = 48;
    let segments: usize = transcript
        .segments
        .iter()
        .map(|s| {
            SEGMENT
                + s.text.len()
                + 4 * s.tokens.len()
                + s.words.iter().map(|w| WORD + w.word.len()).sum::<usize>()
        })
        .sum();
    (256 + transcript.text.len() + segments) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(tenant: &'a str, job: &'a JobOptions, format: &'a AudioFormat) -> KeyParts<'a> {
        KeyParts {
            tenant,
            model: "tiny.en",
            format,
            job,
            detector: "energy",
            long_files: LongFiles::Batched,
        }
    }

    #[test]
    fn keys_differ_by_bytes_tenant_and_options() {
        let format = AudioFormat::Sniffed {
            extension_hint: None,
        };
        let job = JobOptions::default();
        let german = JobOptions {
            language: Some("de".into()),
            ..JobOptions::default()
        };
        let key = CacheKey::new(b"audio", &parts("a", &job, &format).describe());
        assert_eq!(
            key,
            CacheKey::new(b"audio", &parts("a", &job, &format).describe())
        );
        assert_ne!(
            key,
            CacheKey::new(b"audio!", &parts("a", &job, &format).describe())
        );
        assert_ne!(
            key,
            CacheKey::new(b"audio", &parts("b", &job, &format).describe())
        );
        assert_ne!(
            key,
            CacheKey::new(b"audio", &parts("a", &german, &format).describe())
        );
        let wav = AudioFormat::Sniffed {
            extension_hint: Some("wav".into()),
        };
        assert_ne!(
            key,
            CacheKey::new(b"audio", &parts("a", &job, &wav).describe())
        );
    }

    fn transcript(text: &str) -> Transcript {
        Transcript {
            text: text.into(),
            segments: Vec::new(),
            language: "en".into(),
            language_probability: None,
            duration: 1.0,
        }
    }

    #[test]
    fn the_cache_holds_at_most_its_entries_and_is_off_at_zero() {
        assert!(ResultCache::new(ResultCacheSize::OFF).is_none());
        let cache = ResultCache::new(ResultCacheSize {
            entries: 4,
            bytes: 1 << 20,
        })
        .unwrap();
        let format = AudioFormat::Sniffed {
            extension_hint: None,
        };
        let job = JobOptions::default();
        for i in 0..20u8 {
            let key = CacheKey::new(&[i], &parts("a", &job, &format).describe());
            cache.insert(key, &transcript(&format!("clip {i}")));
        }
        assert!(cache.entries() <= 4, "{}", cache.entries());
        let last = CacheKey::new(&[19], &parts("a", &job, &format).describe());
        assert_eq!(
            cache.get(&last).map(|t| t.text.clone()),
            Some("clip 19".into())
        );
    }

    #[test]
    fn large_transcripts_are_bounded_by_bytes() {
        let cache = ResultCache::new(ResultCacheSize {
            entries: 1000,
            bytes: 64 << 10,
        })
        .unwrap();
        let format = AudioFormat::Sniffed {
            extension_hint: None,
        };
        let job = JobOptions::default();
        let long = "word ".repeat(4000); // 20 kB each
        for i in 0..10u8 {
            cache.insert(
                CacheKey::new(&[i], &parts("a", &job, &format).describe()),
                &transcript(&long),
            );
        }
        assert!(cache.entries() <= 3, "{}", cache.entries());
    }
}

#[cfg(test)]
mod served {
    //! The cache in the whole-file pipeline, on the scripted backend.
    use std::sync::Arc;

    use crate::engine::backend::scripted::{say, silence};
    use crate::engine::{Engine, EngineConfig, JobOptions, ScriptedBackend};
    use crate::service::tenants::digest_line;
    use crate::service::{AudioFormat, Limits, ResultCacheSize, ServedModel, Service, Tenants};
    use crate::telemetry::Metrics;

    fn service(backend: &ScriptedBackend) -> Service {
        let engine = Engine::start(backend.clone(), EngineConfig::default());
        let model = ServedModel {
            id: "tiny.en".into(),
            device: "cpu".into(),
        };
        let limits = Limits {
            result_cache: ResultCacheSize {
                entries: 16,
                bytes: 1 << 20,
            },
            ..Limits::default()
        };
        let tenants = Tenants::parse(&format!(
            "[[tenant]]\nid = \"a\"\nkeys = [\"{}\"]\n[[tenant]]\nid = \"b\"\nkeys = [\"{}\"]\n",
            digest_line("hk_a"),
            digest_line("hk_b")
        ))
        .unwrap();
        Service::new(Arc::new(engine), model, limits, Metrics::in_memory()).with_tenants(tenants)
    }

    /// Transcribes 16 kHz PCM16 `audio` for the tenant of `key`: the text, and whether the
    /// model ran.
    async fn transcribe(
        service: &Service,
        backend: &ScriptedBackend,
        key: &str,
        audio: &[u8],
        job: &JobOptions,
    ) -> (String, bool) {
        let caller = service
            .authenticate(Some(&format!("Bearer {key}")))
            .unwrap();
        let jobs_before = backend.languages_asked().len();
        let format = AudioFormat::Declared {
            encoding: crate::audio::stream::StreamEncoding::Linear16,
            sample_rate: 16_000,
            channels: 1,
        };
        let handle = service
            .submit_file(&caller, audio.to_vec(), format, job)
            .await
            .unwrap();
        let text = handle.finish().await.unwrap().text;
        (text, backend.languages_asked().len() > jobs_before)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_audio_and_options_of_the_same_tenant_skip_the_model() {
        let backend = ScriptedBackend::english();
        let service = service(&backend);
        let mut samples = say(&["three", "five", "seven"]);
        samples.extend(silence(0.5));
        let audio = crate::audio::f32_to_pcm16le(&samples);
        let job = JobOptions::default();

        let (first, ran) = transcribe(&service, &backend, "hk_a", &audio, &job).await;
        assert_eq!((first.as_str(), ran), ("three five seven", true));
        let (again, ran) = transcribe(&service, &backend, "hk_a", &audio, &job).await;
        assert_eq!((again.as_str(), ran), ("three five seven", false), "a hit");
        // Another tenant, other options or other bytes: the model runs.
        let (_, ran) = transcribe(&service, &backend, "hk_b", &audio, &job).await;
        assert!(ran, "tenants never share results");
        let prompted = JobOptions {
            prompt: Some("Numbers.".into()),
            ..JobOptions::default()
        };
        let (_, ran) = transcribe(&service, &backend, "hk_a", &audio, &prompted).await;
        assert!(ran, "other options");
        let mut other = audio.clone();
        other[100] ^= 1;
        let (_, ran) = transcribe(&service, &backend, "hk_a", &other, &job).await;
        assert!(ran, "other bytes");

        let metrics = service.metrics().registry().render();
        assert!(
            metrics.contains("hearken_result_cache_lookups_total{result=\"hit\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("hearken_result_cache_lookups_total{result=\"miss\"} 4"),
            "{metrics}"
        );
    }
}
