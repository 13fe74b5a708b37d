//! Chunked jobs on the scheduler with a scripted backend: chunks share batches, the caller
//! reads one job in the recording's order and times, dropping it cancels every chunk.

use std::time::Duration;

use crate::audio::ChunkPlan;
use crate::engine::backend::scripted::{say, silence};
use crate::engine::{Engine, EngineConfig, EngineError, JobEvent, JobHandle, JobOptions};
use crate::engine::{ScriptedBackend, WindowUpdate};
use crate::model::whisper::decode::Transcript;

const TIMEOUT: Duration = Duration::from_secs(10);
const SR: f64 = 16_000.0;

fn engine(backend: &ScriptedBackend, max_batch: usize, max_wait_ms: u64) -> Engine {
    let config = EngineConfig {
        max_batch,
        max_wait: Duration::from_millis(max_wait_ms),
        ..EngineConfig::default()
    };
    Engine::start(backend.clone(), config)
}

/// `words`, each after `gap` seconds of silence (and `gap` after the last): the recording and
/// where each word sounds.
fn spaced(words: &[&str], gap: f64) -> (Vec<f32>, Vec<(f64, f64)>) {
    let mut audio = Vec::new();
    let mut regions = Vec::new();
    for word in words {
        audio.extend(silence(gap));
        let start = audio.len() as f64 / SR;
        audio.extend(say(&[word]));
        regions.push((start, start + 0.4));
    }
    audio.extend(silence(gap));
    (audio, regions)
}

/// One chunk per word (a padded word is 1.2 s; two would not fit in 2 s).
fn one_chunk_per_word(audio: &[f32], regions: &[(f64, f64)]) -> ChunkPlan {
    let plan = ChunkPlan::new(audio, regions, 0.4, 2.0);
    assert_eq!(plan.len(), regions.len());
    plan
}

/// Every event of `handle`: the window updates, then the transcript.
async fn read(mut handle: JobHandle) -> Result<(Vec<WindowUpdate>, Transcript), EngineError> {
    let mut windows = Vec::new();
    loop {
        let event = tokio::time::timeout(TIMEOUT, handle.next())
            .await
            .expect("the job goes on")
            .expect("the job ends with Done or Failed");
        match event {
            JobEvent::Window(window) => windows.push(window),
            JobEvent::Done(transcript) => {
                assert!(handle.next().await.is_none(), "nothing after Done");
                return Ok((windows, transcript));
            }
            JobEvent::Failed(error) => return Err(error),
        }
    }
}

#[tokio::test]
async fn chunks_share_one_batch_and_read_as_one_job_in_the_recordings_times() {
    let backend = ScriptedBackend::english();
    let engine = engine(&backend, 8, 200);
    let (audio, regions) = spaced(&["one", "two", "three", "four"], 10.0);
    let total = audio.len() as f64 / SR;
    let plan = one_chunk_per_word(&audio, &regions);
    let job = JobOptions {
        word_timestamps: true,
        ..JobOptions::default()
    };
    let handle = engine.submit_chunked(audio.into(), plan, &job).unwrap();
    let (windows, transcript) = read(handle).await.unwrap();

    assert_eq!(backend.batches(), [4], "all four chunks in one model call");
    assert_eq!(transcript.text, "one two three four");
    assert!((transcript.duration - total).abs() < 1e-6);
    let ids: Vec<usize> = transcript.segments.iter().map(|s| s.id).collect();
    assert_eq!(ids, [0, 1, 2, 3]);
    for (segment, &(start, end)) in transcript.segments.iter().zip(&regions) {
        let word = &segment.words[0];
        assert!((word.start - start).abs() < 0.05, "{word:?} vs {start}");
        assert!((word.end - end).abs() < 0.05, "{word:?} vs {end}");
    }
    // Windows come in the recording's order, numbered on, with growing progress.
    let texts: Vec<&str> = windows
        .iter()
        .flat_map(|w| w.segments.iter().map(|s| s.text.trim()))
        .collect();
    assert_eq!(texts, ["one", "two", "three", "four"]);
    let window_ids: Vec<usize> = windows
        .iter()
        .flat_map(|w| w.segments.iter().map(|s| s.id))
        .collect();
    assert_eq!(window_ids, ids);
    assert!(
        windows
            .windows(2)
            .all(|p| p[0].done_seconds <= p[1].done_seconds)
    );
    assert!(
        windows
            .iter()
            .all(|w| (w.total_seconds - total).abs() < 1e-6)
    );
}

#[tokio::test]
async fn a_slow_first_chunk_holds_back_the_later_chunks_events_not_their_work() {
    // 1 s windows: the first chunk (three words, 3.8 s padded) takes four steps, the second
    // (two words, 2.4 s) three. Each word sits in a window of its own.
    let backend = ScriptedBackend::english().with_window(1.0);
    let engine = engine(&backend, 8, 100);
    let mut audio = silence(1.0);
    for word in ["five", "six", "seven"] {
        audio.extend(say(&[word]));
        audio.extend(silence(0.35));
    }
    let first = (1.0, audio.len() as f64 / SR);
    let (rest, rest_regions) = spaced(&["eight", "nine"], 5.0);
    let offset = audio.len() as f64 / SR;
    audio.extend(rest);
    let mut regions = vec![first];
    regions.extend(rest_regions.iter().map(|&(a, b)| (a + offset, b + offset)));
    let plan = ChunkPlan::new(&audio, &regions, 0.4, 4.0);
    assert_eq!(plan.len(), 2, "{:?}", plan.spans());
    let handle = engine
        .submit_chunked(audio.into(), plan, &JobOptions::default())
        .unwrap();
    let (windows, transcript) = read(handle).await.unwrap();
    assert_eq!(transcript.text, "five six seven eight nine");
    let texts: Vec<&str> = windows
        .iter()
        .flat_map(|w| w.segments.iter().map(|s| s.text.trim()))
        .collect();
    assert_eq!(texts, ["five", "six", "seven", "eight", "nine"]);
    assert!(
        windows
            .windows(2)
            .all(|p| p[0].done_seconds <= p[1].done_seconds)
    );
    let batches = backend.batches();
    assert_eq!(batches[0], 2, "both chunks started together: {batches:?}");
    assert_eq!(
        batches.last(),
        Some(&1),
        "the long one ran on alone: {batches:?}"
    );
}

#[tokio::test]
async fn dropping_the_handle_cancels_every_chunk_and_few_are_queued_at_once() {
    let backend = ScriptedBackend::english();
    // Batches of one: two chunks in flight at a time.
    let engine = engine(&backend, 1, 0);
    let paused = backend.pause();
    let (audio, regions) = spaced(&["one", "two", "three", "four", "five", "six"], 3.0);
    let plan = one_chunk_per_word(&audio, &regions);
    let handle = engine
        .submit_chunked(audio.into(), plan, &JobOptions::default())
        .unwrap();
    backend.wait_for_batches(1, TIMEOUT);
    assert_eq!(
        engine.queued(),
        1,
        "one chunk running, one queued, four waiting"
    );
    drop(handle);
    assert_eq!(engine.queued(), 0);
    drop(paused);
    let after = engine
        .submit(say(&["nine"]).into(), &JobOptions::default())
        .unwrap();
    assert_eq!(after.finish().await.unwrap().text, "nine");
    // The running chunk finishes the step it is in; the queued one never runs; the other four
    // were never queued.
    let stats = engine.stats();
    assert_eq!(stats.jobs_submitted, 3, "{stats:?}");
    assert_eq!(stats.jobs_cancelled_queued, 1, "{stats:?}");
    assert_eq!(stats.batches, 2, "{stats:?}");
}

#[tokio::test]
async fn later_chunks_wait_for_the_first_ones_language_unless_it_is_given() {
    let backend = ScriptedBackend::multilingual();
    let engine = engine(&backend, 8, 100);
    let (audio, regions) = spaced(&["one", "two", "three"], 4.0);
    let plan = one_chunk_per_word(&audio, &regions);
    let handle = engine
        .submit_chunked(audio.clone().into(), plan.clone(), &JobOptions::default())
        .unwrap();
    let (_, transcript) = read(handle).await.unwrap();
    assert_eq!(transcript.text, "one two three");
    assert_eq!(transcript.language, "en");
    assert_eq!(
        backend.batches(),
        [1, 2],
        "detected on the first chunk alone"
    );
    let german = JobOptions {
        language: Some("de".into()),
        ..JobOptions::default()
    };
    let handle = engine.submit_chunked(audio.into(), plan, &german).unwrap();
    let (_, transcript) = read(handle).await.unwrap();
    assert_eq!(transcript.language, "de");
    assert_eq!(backend.batches(), [1, 2, 3]);
}

#[tokio::test]
async fn a_failed_chunk_fails_the_job_and_bad_options_are_refused_at_once() {
    let backend = ScriptedBackend::english();
    let engine = engine(&backend, 8, 50);
    let (audio, regions) = spaced(&["one", "two"], 3.0);
    let plan = one_chunk_per_word(&audio, &regions);
    backend.fail_next(1);
    let handle = engine
        .submit_chunked(audio.clone().into(), plan.clone(), &JobOptions::default())
        .unwrap();
    let error = read(handle).await.unwrap_err();
    assert!(matches!(error, EngineError::Model(_)), "{error:?}");
    let french = JobOptions {
        language: Some("fr".into()),
        ..JobOptions::default()
    };
    let refused = engine
        .submit_chunked(audio.into(), plan, &french)
        .unwrap_err();
    assert!(matches!(refused, EngineError::Rejected(_)), "{refused:?}");
    assert_eq!(backend.batches().len(), 1, "the refused job never ran");
}

#[tokio::test]
async fn two_idle_workers_split_the_chunks_between_them() {
    let backend = ScriptedBackend::english().with_cost(Duration::from_millis(50), Duration::ZERO);
    let config = EngineConfig {
        max_batch: 8,
        max_wait: Duration::from_millis(50),
        workers: 2,
        ..EngineConfig::default()
    };
    let engine = Engine::start(backend.clone(), config);
    // Both workers reach the queue before the burst, as on a server that has been up a while.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (audio, regions) = spaced(&["one", "two", "three", "four", "five", "six"], 3.0);
    let plan = one_chunk_per_word(&audio, &regions);
    let handle = engine
        .submit_chunked(audio.into(), plan, &JobOptions::default())
        .unwrap();
    let (_, transcript) = read(handle).await.unwrap();
    assert_eq!(transcript.text, "one two three four five six");
    // One worker alone would have taken all six (batches of up to 8); shared, each takes some
    // (how many depends on which wakes first as the chunks arrive).
    let batches = backend.batches();
    assert_eq!(batches.len(), 2, "{batches:?}");
    assert!(batches.iter().all(|&rows| rows >= 2), "{batches:?}");
}
