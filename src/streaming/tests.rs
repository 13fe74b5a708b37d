//! The driver over a real engine and the scripted backend: backlog, overrun, a full queue, a
//! failing model and a closed engine, with no model weights.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::engine::backend::scripted::{say, say_in, silence};
use crate::engine::{EngineConfig, ScriptedBackend};
use crate::session::SessionConfig;

const TIMEOUT: Duration = Duration::from_secs(10);

fn engine(backend: &ScriptedBackend, config: EngineConfig) -> Arc<Engine> {
    Arc::new(Engine::start(backend.clone(), config))
}

fn driver(engine: &Arc<Engine>, max_lead_seconds: f64) -> SessionDriver {
    let policy = SessionPolicy::new(SessionConfig::default()).unwrap();
    SessionDriver::new(
        Arc::clone(engine),
        JobOptions::default(),
        policy,
        max_lead_seconds,
    )
}

/// Starts what the policy asks for and collects its events, without waiting for results.
fn poll_all(driver: &mut SessionDriver) -> Result<Vec<SessionEvent>, DriverError> {
    std::iter::from_fn(|| driver.poll().transpose()).collect()
}

/// Runs jobs until none is left, as a transport's loop would.
async fn settle(driver: &mut SessionDriver) -> Vec<SessionEvent> {
    let mut events = poll_all(driver).unwrap();
    while driver.has_job() {
        let result = tokio::time::timeout(TIMEOUT, driver.next_result())
            .await
            .expect("the engine answers");
        driver.on_result(result);
        events.extend(poll_all(driver).unwrap());
    }
    events
}

/// Feeds `audio` in 100 ms frames, settling after each, as a client at real-time pace whose
/// server keeps up.
async fn stream(driver: &mut SessionDriver, audio: &[f32]) -> Vec<SessionEvent> {
    let mut events = Vec::new();
    for frame in audio.chunks(1_600) {
        driver.push_audio(frame);
        driver.apply_overflow().unwrap();
        events.extend(settle(driver).await);
    }
    events
}

fn finals(events: &[SessionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Update(u) if u.is_final => Some(u.committed.trim().to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn utterances_become_finals_with_the_words_spoken() {
    let backend = ScriptedBackend::english();
    let engine = engine(&backend, EngineConfig::default());
    let mut driver = driver(&engine, 30.0);
    let mut audio = silence(0.5);
    audio.extend(say(&["three", "five", "two"]));
    audio.extend(silence(1.5));
    audio.extend(say(&["nine"]));
    audio.extend(silence(1.5));
    let events = stream(&mut driver, &audio).await;
    assert_eq!(finals(&events), ["three five two", "nine"], "{events:?}");
    assert!(driver.is_done() && driver.is_idle());
    assert_eq!(driver.backlog_seconds(), 0.0);
    assert!((driver.processed_seconds() - driver.stream_seconds()).abs() < 2.0);
}

#[tokio::test]
async fn backlog_counts_unanswered_speech_and_overrun_is_past_twice_the_lead() {
    let backend = ScriptedBackend::english();
    let engine = engine(&backend, EngineConfig::default());
    let mut driver = driver(&engine, 2.0);
    let paused = backend.pause();
    // Silence before speech is not backlog.
    driver.push_audio(&silence(5.0));
    poll_all(&mut driver).unwrap();
    assert_eq!(driver.backlog_seconds(), 0.0);
    // Continuous speech while the model is stuck: every second of it is backlog.
    let speech: Vec<f32> = (0..8).flat_map(|_| say(&["four"])).collect();
    let mut pushed = 0.0;
    for frame in speech.chunks(1_600) {
        driver.push_audio(frame);
        poll_all(&mut driver).unwrap();
        pushed += frame.len() as f64 / 16_000.0;
        let backlog = driver.backlog_seconds();
        assert!(
            (backlog - pushed).abs() < 0.61,
            "backlog {backlog} after {pushed} s"
        );
        assert_eq!(driver.accepts_audio(), backlog < 2.0, "{backlog}");
        match driver.apply_overflow() {
            Ok(()) => assert!(backlog <= 4.0, "{backlog} s should overrun"),
            Err(DriverError::Overrun(Overrun {
                backlog_seconds,
                limit_seconds,
            })) => {
                assert!(backlog_seconds > 4.0, "{backlog_seconds}");
                assert_eq!(limit_seconds, 2.0);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(driver.apply_overflow().is_err(), "never overran");
    // Once the model answers, the backlog shrinks to what is still unanswered.
    drop(paused);
    settle(&mut driver).await;
    assert!(
        driver.backlog_seconds() < pushed - 0.9,
        "{}",
        driver.backlog_seconds()
    );
}

#[tokio::test]
async fn a_full_queue_skips_interims_and_fails_the_final_without_ending_the_session() {
    let backend = ScriptedBackend::english();
    let config = EngineConfig {
        max_batch: 1,
        max_queued: 1,
        ..EngineConfig::default()
    };
    let engine = engine(&backend, config);
    let paused = backend.pause();
    // One job runs (stuck in its step), one waits: the queue is full.
    let running = engine
        .submit(say(&["one"]).into(), &JobOptions::default())
        .unwrap();
    backend.wait_for_batches(1, TIMEOUT);
    let waiting = engine
        .submit(say(&["one"]).into(), &JobOptions::default())
        .unwrap();
    let mut driver = driver(&engine, 30.0);
    let mut audio = say(&["seven", "seven"]);
    audio.extend(silence(1.5));
    let mut events = Vec::new();
    for frame in audio.chunks(1_600) {
        driver.push_audio(frame);
        events.extend(poll_all(&mut driver).expect("a full queue is not fatal"));
        assert!(!driver.has_job(), "no job was queued");
    }
    assert_eq!(finals(&events), [""], "the final is given up: {events:?}");
    assert!(driver.is_done());
    drop(paused);
    drop((running, waiting));
}

#[tokio::test]
async fn a_failed_batch_costs_one_update_and_the_session_goes_on() {
    let backend = ScriptedBackend::english();
    let engine = engine(&backend, EngineConfig::default());
    let mut driver = driver(&engine, 30.0);
    backend.fail_next(1);
    let mut audio = say(&["six", "six", "eight"]);
    audio.extend(silence(1.5));
    let events = stream(&mut driver, &audio).await;
    assert_eq!(finals(&events), ["six six eight"], "{events:?}");
    assert!(
        backend.batches().len() >= 2,
        "the failed interim, then more"
    );
}

#[tokio::test]
async fn a_closed_engine_ends_the_session() {
    let backend = ScriptedBackend::english();
    let engine = engine(&backend, EngineConfig::default());
    let mut driver = driver(&engine, 30.0);
    engine.close();
    driver.push_audio(&say(&["two", "two"]));
    let error = poll_all(&mut driver).unwrap_err();
    assert!(
        matches!(error, DriverError::Engine(EngineError::ShuttingDown)),
        "{error:?}"
    );
}

#[tokio::test]
async fn drop_oldest_keeps_reading_drops_past_the_lead_and_says_so() {
    let backend = ScriptedBackend::english();
    let engine = engine(&backend, EngineConfig::default());
    let mut driver = driver(&engine, 2.0).with_overflow(Overflow::DropOldest);
    let paused = backend.pause();
    // 5.2 s of continuous speech while the model is stuck: reading never stops, and the
    // backlog never passes the lead for long.
    let speech: Vec<f32> = (0..8).flat_map(|_| say(&["four"])).collect();
    let mut events = Vec::new();
    for frame in speech.chunks(1_600) {
        driver.push_audio(frame);
        driver
            .apply_overflow()
            .expect("drop_oldest refuses nothing");
        events.extend(poll_all(&mut driver).unwrap());
        assert!(driver.accepts_audio());
        assert!(
            driver.backlog_seconds() <= 2.0,
            "backlog {}",
            driver.backlog_seconds()
        );
    }
    let drops: Vec<(f64, f64)> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Speech(crate::session::SpeechEvent::AudioDropped {
                from_seconds,
                to_seconds,
                ..
            }) => Some((*from_seconds, *to_seconds)),
            _ => None,
        })
        .collect();
    assert!(drops.len() >= 2, "{events:?}");
    let said: f64 = drops.iter().map(|(from, to)| to - from).sum();
    assert!((said - driver.dropped_seconds()).abs() < 1e-9);
    // Every second of speech from the VAD's onset (which takes up to 0.5 s to fire) on is
    // either dropped or still waiting.
    let seconds = speech.len() as f64 / 16_000.0;
    let accounted = driver.dropped_seconds() + driver.backlog_seconds();
    assert!(
        accounted <= seconds && accounted > seconds - 0.5,
        "{accounted} of {seconds}"
    );
    assert!(
        events.iter().any(|e| matches!(e,
            SessionEvent::Update(u) if u.is_final && u.audio_dropped)),
        "the cut utterance's final says audio was dropped: {events:?}"
    );
    // The model catches up: the newest speech is transcribed.
    drop(paused);
    let mut tail = say(&["nine"]);
    tail.extend(silence(1.5));
    events = stream(&mut driver, &tail).await;
    let last = finals(&events).pop().expect("a final");
    assert!(last.ends_with("nine"), "{events:?}");
}

/// Consecutive repeats collapsed: the runs in `values`.
fn runs<T: PartialEq + Clone>(values: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for v in values {
        if out.last() != Some(v) {
            out.push(v.clone());
        }
    }
    out
}

#[tokio::test]
async fn each_utterance_detects_its_language_once_and_keeps_it() {
    let backend = ScriptedBackend::multilingual();
    let engine = engine(&backend, EngineConfig::default());
    let mut driver = driver(&engine, 30.0);
    let mut audio = silence(0.5);
    audio.extend(say_in("de", &["three", "five", "two", "one"]));
    audio.extend(silence(1.5));
    audio.extend(say_in("fr", &["nine", "eight", "seven", "six"]));
    audio.extend(silence(1.5));
    // The language the driver reports with each final, as a transport renders it.
    let mut finals_in = Vec::new();
    for frame in audio.chunks(1_600) {
        driver.push_audio(frame);
        for event in settle(&mut driver).await {
            if let SessionEvent::Update(u) = event
                && u.is_final
            {
                finals_in.push((
                    u.committed.trim().to_string(),
                    driver.language().to_string(),
                ));
            }
        }
    }
    assert_eq!(
        finals_in,
        [
            ("three five two one".to_string(), "de".to_string()),
            ("nine eight seven six".to_string(), "fr".to_string())
        ]
    );
    // Interims before a second of speech wait for the model (none was asked for a language
    // it could not yet hear); one request detects, the rest of the utterance is decoded in its
    // language; the next utterance detects afresh.
    let asked = backend.languages_asked();
    let de = Some("de".to_string());
    let fr = Some("fr".to_string());
    assert_eq!(runs(&asked), [None, de, None, fr], "{asked:?}");
    let detections = asked.iter().filter(|l| l.is_none()).count();
    assert_eq!(detections, 2, "one per utterance: {asked:?}");
}

#[tokio::test]
async fn a_configured_language_is_never_detected() {
    let backend = ScriptedBackend::multilingual();
    let engine = engine(&backend, EngineConfig::default());
    let job = JobOptions {
        language: Some("fr".into()),
        ..JobOptions::default()
    };
    let policy = SessionPolicy::new(SessionConfig::default()).unwrap();
    let mut driver = SessionDriver::new(Arc::clone(&engine), job, policy, 30.0);
    assert_eq!(driver.language(), "fr", "known before any result");
    let mut audio = say_in("de", &["four", "four"]);
    audio.extend(silence(1.5));
    let events = stream(&mut driver, &audio).await;
    assert_eq!(finals(&events), ["four four"]);
    let asked = backend.languages_asked();
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|l| l.as_deref() == Some("fr")),
        "{asked:?}"
    );
    assert_eq!(driver.language(), "fr");
}
