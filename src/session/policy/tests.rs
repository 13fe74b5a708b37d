//! The policy driven end to end with synthetic audio and scripted hypotheses.

use super::*;
use crate::session::test_support::hyp;
use crate::session::vad::tests::{noise, silence, tone};
use crate::session::{StreamingPolicy, TimedWord};

/// The default policy, save that every request (the first too) waits for a whole 1 s chunk,
/// which keeps the scripted timelines round.
fn policy(vad: bool) -> SessionPolicy {
    let mut config = SessionConfig::default();
    config.vad.enabled = vad;
    config.first_chunk_seconds = config.min_chunk_seconds;
    SessionPolicy::new(config).unwrap()
}

/// The default policy: an utterance's first request comes at 0.7 s of its audio.
fn default_policy(vad: bool) -> SessionPolicy {
    let mut config = SessionConfig::default();
    config.vad.enabled = vad;
    SessionPolicy::new(config).unwrap()
}

fn drain(p: &mut SessionPolicy) -> Vec<Output> {
    std::iter::from_fn(|| p.poll()).collect()
}

/// Pushes `signal` in 20 ms chunks, draining after each, as a live stream would.
fn feed(p: &mut SessionPolicy, signal: &[f32]) -> Vec<Output> {
    let mut out = Vec::new();
    for chunk in signal.chunks(320) {
        p.push_audio(chunk);
        out.extend(drain(p));
    }
    out
}

fn requests(out: &[Output]) -> Vec<TranscriptionRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Transcribe(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn updates(out: &[Output]) -> Vec<TranscriptUpdate> {
    out.iter()
        .filter_map(|o| match o {
            Output::Update(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

fn only_request(out: &[Output]) -> TranscriptionRequest {
    let r = requests(out);
    assert_eq!(r.len(), 1, "{out:?}");
    r.into_iter().next().unwrap()
}

fn only_update(out: &[Output]) -> TranscriptUpdate {
    let u = updates(out);
    assert_eq!(u.len(), 1, "{out:?}");
    u.into_iter().next().unwrap()
}

/// A perfect recogniser: word `i` is " w{i}" at 0.05 + 0.5 i s (absolute), 0.35 s long; a
/// request hears the words lying wholly inside its audio.
fn scripted(request: &TranscriptionRequest) -> Hypothesis {
    let (from, to) = (
        request.audio_start_seconds,
        request.audio_start_seconds + request.duration_seconds(),
    );
    Hypothesis::from_words(
        (0..200)
            .map(|i| (i, 0.05 + 0.5 * i as f64))
            .filter(|&(_, s)| s >= from && s + 0.35 <= to)
            .map(|(i, s)| TimedWord::new(format!(" w{i}"), s - from, s - from + 0.35))
            .collect(),
    )
}

#[test]
fn silence_and_noise_send_nothing_to_the_model() {
    let mut p = policy(true);
    let mut signal = noise(8.0, 0.01, 5);
    signal.extend(silence(3.0));
    signal.extend(noise(4.0, 0.001, 6));
    assert_eq!(feed(&mut p, &signal), vec![]);
    assert!(p.is_idle());
    assert!(!p.finalize(), "no utterance was open");
    assert_eq!(drain(&mut p), vec![]);
}

#[test]
fn a_burst_then_silence_gives_events_an_interim_and_a_final_request() {
    let mut p = default_policy(true);
    let mut signal = silence(0.5);
    signal.extend(tone(2.0, 0.3));
    signal.extend(silence(1.5));
    let out = feed(&mut p, &signal);
    let events: Vec<&SpeechEvent> = out
        .iter()
        .filter_map(|o| match o {
            Output::Speech(e) => Some(e),
            _ => None,
        })
        .collect();
    let [
        SpeechEvent::Started {
            utterance_id: 1,
            at_seconds: start,
        },
        SpeechEvent::Ended {
            utterance_id: 1,
            at_seconds: end,
        },
    ] = events[..]
    else {
        panic!("{events:?}")
    };
    assert!(
        (start - 0.5).abs() < 0.035 && (end - 2.5).abs() < 0.035,
        "{start} {end}"
    );

    let reqs = requests(&out);
    assert_eq!(
        reqs.len(),
        2,
        "one interim (never answered), then the final"
    );
    let (interim, fin) = (&reqs[0], &reqs[1]);
    assert!(!interim.is_final && fin.is_final);
    assert_eq!((interim.utterance_id, fin.utterance_id), (1, 1));
    // Both start 500 ms before the onset (the pre-roll, clamped at the stream start); the
    // interim comes at 0.7 s of utterance audio, the final ends 300 ms after the last speech.
    assert!((interim.audio_start_seconds - (start - 0.5).max(0.0)).abs() < 1e-3);
    assert!(
        (interim.duration_seconds() - 0.7).abs() < 0.03,
        "{}",
        interim.duration_seconds()
    );
    assert_eq!(fin.audio_start_seconds, interim.audio_start_seconds);
    let fin_end = fin.audio_start_seconds + fin.duration_seconds();
    assert!(
        (fin_end - (end + 0.3)).abs() < 1e-3,
        "final ends at {fin_end}"
    );

    // The unanswered interim is now stale; the final result ends the utterance.
    p.submit(interim.request_id, hyp("hello"));
    assert_eq!(drain(&mut p), vec![]);
    p.submit(fin.request_id, hyp("hello world"));
    let u = only_update(&drain(&mut p));
    assert!(u.is_final);
    assert_eq!((u.committed.as_str(), u.revision), ("hello world", 1));
    assert!((u.words[0].start - fin.audio_start_seconds).abs() < 1e-9);
    assert!(p.is_idle());
}

#[test]
fn align_att_commits_words_aligned_clear_of_the_end_from_one_result() {
    let mut config = SessionConfig::default();
    config.vad.enabled = false;
    config.first_chunk_seconds = config.min_chunk_seconds;
    config.policy = StreamingPolicy::AlignAtt {
        margin_seconds: 0.5,
    };
    let mut p = SessionPolicy::new(config).unwrap();
    // Words 0.2 s apart, 0.15 s long, over 1 s of audio: those ending by 0.5 s are clear.
    let r1 = only_request(&feed(&mut p, &tone(1.0, 0.1)));
    p.submit(r1.request_id, hyp("the quick brown fox jumps"));
    let u1 = only_update(&drain(&mut p));
    assert_eq!(
        (u1.committed_delta.as_str(), u1.tentative.as_str()),
        ("the quick", " brown fox jumps")
    );
    // The next result re-reads the committed words; its later words commit as they clear.
    let r2 = only_request(&feed(&mut p, &tone(1.0, 0.1)));
    let mut words = hyp("the quick brown fix jumped over a lazy dog").words;
    words.iter_mut().skip(3).for_each(|w| {
        w.start += 0.1;
        w.end += 0.1;
    });
    p.submit(r2.request_id, Hypothesis::from_words(words));
    let u2 = only_update(&drain(&mut p));
    assert_eq!(
        (u2.committed_delta.as_str(), u2.tentative.as_str()),
        (" brown fix jumped over a", " lazy dog")
    );
    assert!(p.finalize());
    let fin = only_request(&drain(&mut p));
    p.submit(
        fin.request_id,
        hyp("the quick brown fix jumped over a lazy dog"),
    );
    let done = only_update(&drain(&mut p));
    assert!(done.is_final);
    assert_eq!(done.committed, "the quick brown fix jumped over a lazy dog");
}

#[test]
fn an_align_att_margin_wider_than_a_chunk_is_refused() {
    let config = SessionConfig {
        policy: StreamingPolicy::AlignAtt {
            margin_seconds: 1.5,
        },
        ..SessionConfig::default()
    };
    let err = SessionPolicy::new(config).unwrap_err();
    assert_eq!(err.field, "policy.margin_seconds");
}

#[test]
fn agreement_commits_the_shared_prefix_and_finalize_commits_all() {
    let mut p = policy(false);
    let r1 = only_request(&feed(&mut p, &tone(1.0, 0.1)));
    assert_eq!(
        (r1.request_id, r1.utterance_id, r1.prompt.as_str()),
        (1, 1, "")
    );
    p.submit(r1.request_id, hyp("the quick brown fax"));
    let u1 = only_update(&drain(&mut p));
    assert_eq!(
        (u1.committed.as_str(), u1.tentative.as_str()),
        ("", "the quick brown fax")
    );

    let r2 = only_request(&feed(&mut p, &tone(1.0, 0.1)));
    assert_eq!((r2.audio_start_seconds, r2.duration_seconds()), (0.0, 2.0));
    p.submit(r2.request_id, hyp("the quick brown fox jumps"));
    let u2 = only_update(&drain(&mut p));
    assert_eq!(u2.committed_delta, "the quick brown");
    assert_eq!(u2.tentative, " fox jumps");
    assert_eq!((u2.revision, u2.committed_words, u2.stability), (2, 3, 0.6));

    // The tail changes again: it stays tentative, nothing new is committed.
    feed(&mut p, &tone(1.0, 0.1));
    p.submit(3, hyp("the quick brown fix jumped over"));
    let u3 = only_update(&drain(&mut p));
    assert_eq!(
        (u3.committed_delta.as_str(), u3.tentative.as_str()),
        ("", " fix jumped over")
    );

    feed(&mut p, &tone(0.5, 0.1));
    assert!(p.finalize());
    let fin = only_request(&drain(&mut p));
    assert!(fin.is_final);
    assert_eq!(fin.duration_seconds(), 3.5);
    p.submit(fin.request_id, hyp("the quick brown fox jumped over it"));
    let last = only_update(&drain(&mut p));
    assert!(last.is_final);
    assert_eq!(last.committed, "the quick brown fox jumped over it");
    assert_eq!(
        (last.committed_delta.as_str(), last.tentative.as_str()),
        (" fox jumped over it", "")
    );
    assert!(p.is_idle());
}

#[test]
fn the_first_request_of_an_utterance_comes_before_a_whole_chunk() {
    let mut p = default_policy(false);
    assert_eq!(requests(&feed(&mut p, &tone(0.68, 0.1))).len(), 0);
    let first = only_request(&feed(&mut p, &tone(0.02, 0.1)));
    assert_eq!(
        (first.audio_start_seconds, first.duration_seconds()),
        (0.0, 0.7)
    );
    p.submit(first.request_id, hyp("a"));
    drain(&mut p);
    // The next ones come a whole chunk later.
    assert_eq!(requests(&feed(&mut p, &tone(0.98, 0.1))).len(), 0);
    let second = only_request(&feed(&mut p, &tone(0.02, 0.1)));
    assert_eq!(second.duration_seconds(), 1.7);
}

#[test]
fn finalize_promotes_an_in_flight_request_that_covers_the_audio() {
    let mut p = policy(false);
    let r = only_request(&feed(&mut p, &tone(1.0, 0.1)));
    assert!(p.finalize());
    assert_eq!(drain(&mut p), vec![], "no second model call");
    p.submit(r.request_id, hyp("yes"));
    let u = only_update(&drain(&mut p));
    assert!(u.is_final && u.committed == "yes");
    // Audio after the finalize opens a new utterance.
    let next = only_request(&feed(&mut p, &tone(1.0, 0.1)));
    assert_eq!(next.utterance_id, 2);
    assert_eq!(next.prompt, "yes");
}

#[test]
fn stale_and_unknown_results_are_ignored_and_failures_end_cleanly() {
    let mut p = policy(false);
    let r1 = only_request(&feed(&mut p, &tone(1.0, 0.1)));
    p.submit(r1.request_id, hyp("a b c"));
    drain(&mut p);
    let r2 = only_request(&feed(&mut p, &tone(1.0, 0.1)));
    feed(&mut p, &tone(0.5, 0.1));
    assert!(p.finalize());
    let fin = only_request(&drain(&mut p));
    p.submit(r2.request_id, hyp("a b c d"));
    p.submit(999, hyp("x"));
    assert_eq!(drain(&mut p), vec![]);
    // The final request fails: the utterance ends with its last hypothesis committed.
    p.fail(fin.request_id);
    let u = only_update(&drain(&mut p));
    assert!(u.is_final);
    assert_eq!(u.committed, "a b c");
    p.submit(fin.request_id, hyp("late"));
    assert_eq!(drain(&mut p), vec![]);
    assert!(p.is_idle());
}

#[test]
fn trimming_keeps_absolute_times_and_moves_committed_text_into_the_prompt() {
    let mut p = policy(false);
    let mut answered = Vec::new();
    let mut all_updates = Vec::new();
    for _ in 0..24 {
        for out in feed(&mut p, &tone(1.0, 0.1)) {
            if let Output::Transcribe(r) = out {
                assert!(
                    r.duration_seconds() <= 16.0 + 1e-9,
                    "buffer {}",
                    r.duration_seconds()
                );
                p.submit(r.request_id, scripted(&r));
                all_updates.extend(updates(&drain(&mut p)));
                answered.push(r);
            }
        }
    }
    // The 16th result passed 15 s and cut the buffer after the last committed word, w29.
    let trimmed = answered
        .iter()
        .find(|r| r.audio_start_seconds > 0.0)
        .unwrap();
    assert!(
        (trimmed.audio_start_seconds - 14.9).abs() < 1e-3,
        "{}",
        trimmed.audio_start_seconds
    );
    let expected_prompt: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
    assert_eq!(trimmed.prompt, expected_prompt.join(" "));
    // Words after the cut still carry stream times.
    let late = all_updates.last().unwrap();
    let w40 = late.words.iter().find(|w| w.text == " w40").unwrap();
    assert!((w40.start - 20.05).abs() < 1e-6);

    p.finalize();
    let fin = only_request(&drain(&mut p));
    p.submit(fin.request_id, scripted(&fin));
    let last = only_update(&drain(&mut p));
    let expected: Vec<String> = (0..48).map(|i| format!("w{i}")).collect();
    assert_eq!(last.committed, expected.join(" "), "each word exactly once");
    let deltas: String = all_updates
        .iter()
        .chain([&last])
        .map(|u| u.committed_delta.as_str())
        .collect();
    assert_eq!(deltas, last.committed);
}

#[test]
fn stalled_agreement_is_forced_before_25_s() {
    let mut p = policy(false);
    let mut committed = String::new();
    for second in 0..40 {
        for out in feed(&mut p, &tone(1.0, 0.1)) {
            if let Output::Transcribe(r) = out {
                // Every hypothesis spells its words differently: nothing ever agrees.
                let words = (0..(r.duration_seconds() * 2.0) as usize)
                    .map(|i| format!("r{}x{i}", r.request_id))
                    .collect::<Vec<_>>()
                    .join(" ");
                p.submit(r.request_id, hyp(&words));
                for u in updates(&drain(&mut p)) {
                    committed.clone_from(&u.committed);
                }
            }
        }
        assert!(
            p.buffered_seconds() <= 26.0,
            "{}s in: buffer {}",
            second + 1,
            p.buffered_seconds()
        );
    }
    assert!(!committed.is_empty(), "forced commits made progress");
}

#[test]
fn results_that_stop_coming_split_the_utterance_at_30_s() {
    let mut p = policy(false);
    let out = feed(&mut p, &tone(35.0, 0.1));
    let reqs = requests(&out);
    assert!(
        reqs.iter()
            .all(|r| r.duration_seconds() <= MAX_BUFFER_SECONDS)
    );
    // The first interim never returns; at 30 s the utterance is closed and a new one goes on.
    let ids: Vec<(u64, bool)> = reqs.iter().map(|r| (r.utterance_id, r.is_final)).collect();
    assert_eq!(ids, vec![(1, false), (1, true), (2, false)]);
    assert_eq!(reqs[1].duration_seconds(), 30.0);
    assert_eq!(reqs[2].audio_start_seconds, 30.0);
    assert!((p.buffered_seconds() - 5.0).abs() < 1e-9);
    // The first interim's late answer must not land in the new utterance.
    p.submit(reqs[0].request_id, hyp("stale"));
    assert_eq!(drain(&mut p), vec![]);
    p.submit(reqs[2].request_id, hyp("fresh"));
    let u = only_update(&drain(&mut p));
    assert_eq!((u.utterance_id, u.tentative.as_str()), (2, "fresh"));
}

#[test]
fn the_chunk_grows_while_behind_and_shrinks_back() {
    let mut p = default_policy(false);
    for expected in [1.5, 2.25, 3.375, 4.0, 4.0] {
        p.report_load(true);
        assert!((p.chunk_seconds() - expected).abs() < 1e-9);
    }
    // At 4 s the first request grows in proportion (0.7 s x 4), the next needs 4 s of audio.
    assert!((p.first_chunk_seconds() - 2.8).abs() < 1e-9);
    assert_eq!(requests(&feed(&mut p, &tone(2.78, 0.1))).len(), 0);
    let first = only_request(&feed(&mut p, &tone(0.02, 0.1)));
    p.submit(first.request_id, hyp("a"));
    drain(&mut p);
    assert_eq!(requests(&feed(&mut p, &tone(3.98, 0.1))).len(), 0);
    assert_eq!(requests(&feed(&mut p, &tone(0.02, 0.1))).len(), 1);
    for _ in 0..20 {
        p.report_load(false);
    }
    assert_eq!(p.chunk_seconds(), 1.0);
}

#[test]
fn the_previous_utterance_becomes_the_prompt() {
    let mut p = policy(true);
    let mut signal = silence(0.5);
    signal.extend(tone(0.8, 0.3));
    signal.extend(silence(1.5));
    let fin = requests(&feed(&mut p, &signal))
        .into_iter()
        .find(|r| r.is_final)
        .unwrap();
    p.submit(fin.request_id, hyp("hello there."));
    assert_eq!(only_update(&drain(&mut p)).committed, "hello there.");
    let mut again = tone(1.5, 0.3);
    again.extend(silence(0.1));
    let next = requests(&feed(&mut p, &again));
    assert_eq!(next[0].utterance_id, 2);
    assert_eq!(next[0].prompt, "hello there.");
    assert!(next[0].audio_start_seconds >= fin.audio_start_seconds + fin.duration_seconds());
}

#[test]
fn bad_config_is_refused() {
    let config = SessionConfig {
        min_chunk_seconds: 0.0,
        ..SessionConfig::default()
    };
    assert_eq!(
        SessionPolicy::new(config).unwrap_err().field,
        "min_chunk_seconds"
    );
}

#[test]
fn dropping_audio_cuts_the_utterance_short_and_speech_goes_on_in_a_new_one() {
    let mut p = policy(false);
    let out = feed(&mut p, &tone(3.0, 0.3));
    let first = requests(&out)
        .into_iter()
        .next()
        .expect("an interim request");
    p.submit(first.request_id, scripted(&first));
    let heard = updates(&drain(&mut p));
    assert!(!heard.is_empty() && heard.iter().all(|u| !u.audio_dropped));
    // Transcription fell behind: drop what no result covers, from 1 s to 2.5 s.
    assert!(p.drop_audio(1.0, 2.5));
    let out = drain(&mut p);
    let Some(Output::Speech(SpeechEvent::AudioDropped {
        utterance_id: 1,
        from_seconds,
        to_seconds,
    })) = out.first()
    else {
        panic!("{out:?}")
    };
    assert_eq!((*from_seconds, *to_seconds), (1.0, 2.5));
    let cut = only_update(&out);
    assert!(cut.is_final && cut.audio_dropped, "{cut:?}");
    assert_eq!(cut.utterance_id, 1);
    // The result of a request made before the drop is ignored; speech goes on in a new
    // utterance whose audio starts where the drop ended.
    assert_eq!(p.open_utterance(), Some(2));
    assert!(
        (p.buffered_seconds() - 0.5).abs() < 1e-3,
        "{}",
        p.buffered_seconds()
    );
    assert!(!p.drop_audio(2.5, 2.5), "nothing left to drop");
    p.finalize();
    let last = requests(&drain(&mut p)).pop().expect("a final request");
    assert!((last.audio_start_seconds - 2.5).abs() < 1e-3);
    p.submit(last.request_id, scripted(&last));
    let last = only_update(&drain(&mut p));
    assert!(last.is_final && !last.audio_dropped, "{last:?}");
}
