//! The scheduler with a scripted backend: batches, admission order, deadlines, cancellation
//! and failures, with real threads and no model weights.

use std::time::{Duration, Instant};

use super::backend::scripted::{say, silence};
use super::*;

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(max_batch: usize, max_wait: Duration) -> EngineConfig {
    EngineConfig {
        max_batch,
        max_wait,
        ..EngineConfig::default()
    }
}

fn submit(engine: &Engine, words: &[&str]) -> JobHandle {
    engine
        .submit(say(words).into(), &JobOptions::default())
        .expect("queued")
}

async fn text(handle: JobHandle) -> String {
    tokio::time::timeout(TIMEOUT, handle.finish())
        .await
        .expect("the job finishes")
        .expect("the job succeeds")
        .text
}

#[tokio::test]
async fn batches_are_capped_and_filled_oldest_first() {
    let backend = ScriptedBackend::english();
    let engine = Engine::start(backend.clone(), config(2, Duration::from_millis(200)));
    let paused = backend.pause();
    let first = submit(&engine, &["one"]);
    // The first job runs alone once its wait is over; four more queue behind it meanwhile.
    backend.wait_for_batches(1, TIMEOUT);
    let rest: Vec<JobHandle> = ["two", "three", "four", "five"]
        .iter()
        .map(|w| submit(&engine, &[w]))
        .collect();
    assert_eq!(engine.queued(), 4);
    drop(paused);
    assert_eq!(text(first).await, "one");
    for (handle, word) in rest.into_iter().zip(["two", "three", "four", "five"]) {
        assert_eq!(text(handle).await, word);
    }
    assert_eq!(backend.batches(), [1, 2, 2]);
    let stats = engine.stats();
    assert_eq!((stats.batches, stats.rows, stats.largest_batch), (3, 5, 2));
    assert_eq!((stats.jobs_admitted, stats.jobs_done), (5, 5));
}

#[tokio::test]
async fn a_partial_batch_waits_max_wait_and_a_full_one_does_not() {
    let wait = Duration::from_millis(1000);
    let backend = ScriptedBackend::english();
    let engine = Engine::start(backend.clone(), config(2, wait));
    let started = Instant::now();
    assert_eq!(text(submit(&engine, &["one"])).await, "one");
    assert!(
        started.elapsed() >= wait,
        "ran after {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let pair = [submit(&engine, &["two"]), submit(&engine, &["three"])];
    for handle in pair {
        text(handle).await;
    }
    // A full batch does not wait (a generous bound: the machine may be busy).
    assert!(
        started.elapsed() < wait,
        "ran after {:?}",
        started.elapsed()
    );
    assert_eq!(backend.batches(), [1, 2]);
}

#[tokio::test]
async fn long_jobs_keep_running_while_short_ones_join_and_leave() {
    let backend = ScriptedBackend::english()
        .with_window(1.0)
        .with_cost(Duration::from_millis(100), Duration::ZERO);
    let engine = Engine::start(backend.clone(), config(4, Duration::from_millis(5)));
    let mut long_audio = Vec::new();
    for word in ["one", "two", "three", "four", "five", "six"] {
        long_audio.extend(say(&[word]));
        long_audio.extend(silence(0.35));
    }
    let long = engine
        .submit(long_audio.into(), &JobOptions::default())
        .unwrap();
    backend.wait_for_batches(2, TIMEOUT);
    let short = submit(&engine, &["nine"]);
    assert_eq!(text(short).await, "nine");
    let long_text = text(long).await;
    assert_eq!(long_text.split_whitespace().count(), 6, "{long_text}");
    let batches = backend.batches();
    assert!(
        batches.contains(&2),
        "the short job shared a step: {batches:?}"
    );
    assert_eq!(
        batches.last(),
        Some(&1),
        "and left before the long one: {batches:?}"
    );
    assert_eq!(batches.iter().sum::<usize>(), 6 + 1, "{batches:?}");
}

#[tokio::test]
async fn dropping_handles_cancels_queued_and_running_jobs() {
    let backend = ScriptedBackend::english().with_window(0.5);
    let engine = Engine::start(backend.clone(), config(1, Duration::ZERO));
    let paused = backend.pause();
    let running = submit(&engine, &["one", "two", "three"]);
    backend.wait_for_batches(1, TIMEOUT);
    let queued = submit(&engine, &["four"]);
    assert_eq!(engine.queued(), 1);
    drop(queued);
    assert_eq!(engine.queued(), 0, "a queued job leaves at once");
    assert_eq!(engine.stats().jobs_cancelled(), 1);
    drop(running);
    drop(paused);
    // The running job leaves after its current step; the engine then serves others.
    assert_eq!(text(submit(&engine, &["five"])).await, "five");
    let stats = engine.stats();
    assert_eq!(
        (stats.jobs_cancelled(), stats.jobs_done),
        (2, 1),
        "{stats:?} {:?}",
        backend.batches()
    );
    assert_eq!(
        (stats.jobs_cancelled_queued, stats.jobs_cancelled_running),
        (1, 1)
    );
}

#[tokio::test]
async fn job_counters_reconcile_through_every_fate() {
    let backend = ScriptedBackend::english().with_window(0.5);
    let engine = Engine::start(
        backend.clone(),
        EngineConfig {
            max_queued: 2,
            ..config(1, Duration::ZERO)
        },
    );
    let paused = backend.pause();
    let running = submit(&engine, &["one", "two", "three"]); // cancelled while running
    backend.wait_for_batches(1, TIMEOUT);
    let doomed = submit(&engine, &["four"]); // cancelled while queued
    let filler = submit(&engine, &["five"]); // done
    let full = engine.submit(say(&["six"]).into(), &JobOptions::default());
    assert!(matches!(full, Err(EngineError::Saturated { .. })));
    let invalid = JobOptions {
        language: Some("xx".into()),
        ..JobOptions::default()
    };
    assert!(engine.submit(say(&["six"]).into(), &invalid).is_err());
    let mid = engine.stats();
    assert_eq!(
        (mid.queued_or_lost(), mid.running_or_lost()),
        (2, 1),
        "{mid:?}"
    );
    drop(doomed);
    drop(running);
    drop(paused);
    assert_eq!(text(filler).await, "five");
    backend.fail_next(1);
    let failing = submit(&engine, &["seven"]);
    let failed = tokio::time::timeout(TIMEOUT, failing.finish())
        .await
        .unwrap();
    assert!(failed.is_err());
    assert_eq!(text(submit(&engine, &["eight"])).await, "eight");
    let stats = engine.stats();
    assert_eq!(stats.jobs_submitted, 7, "{stats:?}");
    assert_eq!(
        (
            stats.jobs_rejected,
            stats.jobs_cancelled_queued,
            stats.jobs_cancelled_running,
            stats.jobs_failed,
            stats.jobs_done
        ),
        (2, 1, 1, 1, 2),
        "{stats:?}"
    );
    assert_eq!(
        (stats.queued_or_lost(), stats.running_or_lost()),
        (0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_model_failure_fails_every_job_in_its_batch_and_only_those() {
    let backend = ScriptedBackend::english();
    let engine = Engine::start(backend.clone(), config(4, Duration::from_millis(100)));
    backend.fail_next(1);
    let batch = [submit(&engine, &["one"]), submit(&engine, &["two"])];
    for handle in batch {
        let error = tokio::time::timeout(TIMEOUT, handle.finish())
            .await
            .unwrap()
            .unwrap_err();
        let EngineError::Model(detail) = error else {
            panic!("{error:?}")
        };
        assert!(detail.contains("scripted failure"), "{detail}");
    }
    assert_eq!(text(submit(&engine, &["three"])).await, "three");
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let backend = ScriptedBackend::english();
    let engine = Engine::start(
        backend.clone(),
        EngineConfig {
            max_batch: 1,
            max_queued: 1,
            ..EngineConfig::default()
        },
    );
    let german = JobOptions {
        language: Some("de".into()),
        ..JobOptions::default()
    };
    assert!(matches!(
        engine.validate(&german),
        Err(EngineError::Rejected(_))
    ));
    let paused = backend.pause();
    let _running = submit(&engine, &["one"]);
    backend.wait_for_batches(1, TIMEOUT);
    let _waiting = submit(&engine, &["two"]);
    let full = engine.submit(say(&["three"]).into(), &JobOptions::default());
    assert!(
        matches!(full, Err(EngineError::Saturated { queued: 1 })),
        "{full:?}"
    );
    engine.close();
    let closed = engine.submit(say(&["three"]).into(), &JobOptions::default());
    assert!(
        matches!(closed, Err(EngineError::ShuttingDown)),
        "{closed:?}"
    );
    drop(paused);
}

/// A model whose steps cost 50 ms per second of audio decoded, over 10 s windows: a long
/// file's step takes 500 ms, a live request's 1.3 s buffer 65 ms.
fn costly_backend() -> ScriptedBackend {
    ScriptedBackend::english()
        .with_window(10.0)
        .with_audio_cost(Duration::from_millis(50))
}

fn live() -> JobOptions {
    JobOptions {
        live: true,
        ..JobOptions::default()
    }
}

fn long_file(engine: &Engine) -> JobHandle {
    let audio: Vec<f32> = (0..92).flat_map(|_| say(&["six"])).collect();
    engine.submit(audio.into(), &JobOptions::default()).unwrap()
}

/// Submits a live request while a file's step is under way; its latency.
async fn live_latency(engine: &Engine) -> Duration {
    let started = std::time::Instant::now();
    let handle = engine
        .submit(say(&["three", "four"]).into(), &live())
        .unwrap();
    assert_eq!(text(handle).await, "three four");
    started.elapsed()
}

#[tokio::test]
async fn a_live_request_waits_for_at_most_one_file_step() {
    let backend = costly_backend();
    let engine = Engine::start(backend.clone(), config(8, Duration::ZERO));
    let file = long_file(&engine);
    backend.wait_for_batches(2, TIMEOUT);
    // The step under way (≤ 500 ms), then one for the live row alone (65 ms); sharing the
    // file's next step instead would take 565 ms more.
    let latency = live_latency(&engine).await;
    assert!(latency < Duration::from_millis(800), "{latency:?}");
    assert!(
        !backend.batches().contains(&2),
        "the live row ran alone: {:?}",
        backend.batches()
    );
    drop(file);
}

#[tokio::test]
async fn when_live_work_is_preferred_files_wait_until_it_is_done() {
    let backend = costly_backend();
    let engine = Engine::start(backend.clone(), config(8, Duration::ZERO));
    let file = long_file(&engine);
    backend.wait_for_batches(2, TIMEOUT);
    engine.prefer_live();
    let before = backend.batches().len();
    // 12 s of live audio: two windows, both run alone, back to back.
    let mut audio: Vec<f32> = (0..18).flat_map(|_| say(&["two"])).collect();
    audio.extend(say(&["nine"]));
    let handle = engine.submit(audio.into(), &live()).unwrap();
    let text = text(handle).await;
    assert!(text.ends_with("nine"), "{text}");
    // The file's next step may not have been recorded yet when the live result arrives.
    let batches = backend.wait_for_batches(before + 3, TIMEOUT);
    assert_eq!(
        batches[before..before + 3],
        [1, 1, 1],
        "the file's step under way, then the live windows alone: {batches:?}"
    );
    drop(file);
}

#[tokio::test]
async fn files_filling_the_batch_step_back_for_a_live_request() {
    let backend = costly_backend();
    let engine = Engine::start(backend.clone(), config(2, Duration::ZERO));
    let files = [long_file(&engine), long_file(&engine)];
    backend.wait_for_batches(2, TIMEOUT);
    // Both slots hold files that need seconds more: the live request still runs after the
    // step under way (two files: ≤ 1 s), alone.
    let latency = live_latency(&engine).await;
    assert!(latency < Duration::from_millis(1_300), "{latency:?}");
    // The file that stepped back is resumed, not restarted: both finish whole, with the
    // same text.
    let [first, second] = files;
    let (first, second) = (text(first).await, text(second).await);
    assert_eq!(first, second);
    assert!(first.split_whitespace().count() >= 92, "{first}");
    let stats = engine.stats();
    assert_eq!(
        (stats.jobs_admitted, stats.jobs_done),
        (3, 3),
        "a readmitted file is not admitted twice: {stats:?}"
    );
}

/// Two workers run two batches at once on the one backend; each job is served once, and
/// dropping the engine joins both workers.
#[tokio::test]
async fn two_workers_run_batches_side_by_side() {
    let backend = ScriptedBackend::english();
    let engine = Engine::start(
        backend.clone(),
        EngineConfig {
            workers: 2,
            threads_per_worker: Some(1),
            ..config(1, Duration::ZERO)
        },
    );
    let paused = backend.pause();
    let first = submit(&engine, &["one"]);
    let second = submit(&engine, &["two"]);
    // Both batches start while steps are blocked: a single worker would be stuck in the first.
    assert_eq!(backend.wait_for_batches(2, TIMEOUT), [1, 1]);
    drop(paused);
    assert_eq!(text(first).await, "one");
    assert_eq!(text(second).await, "two");
    assert_eq!(engine.stats().jobs_done, 2);
    drop(engine);
    assert_eq!(backend.batches(), [1, 1]);
}
