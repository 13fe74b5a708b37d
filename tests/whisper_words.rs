//! Word-level timestamps with the real default model: words that spell their segments, times in
//! order, and times that land where the speech is (checked on synthetic speech whose word
//! positions are known to the sample).

mod support;

use std::path::Path;
use std::process::Command;

use candle_core::Tensor;
use hearken::model::whisper::WhisperModel;
use hearken::model::whisper::decode::{
    DecodeOptions, Transcript, Word, WordWindow, align_windows, align_words,
};
use hearken::model::whisper::mel::{CHUNK_FRAMES, CHUNK_SAMPLES, HOP_LENGTH};
use hearken::model::whisper::model::EncodedAudio;
use hearken::model::whisper::tokens::Task;

const SAMPLE_RATE: f64 = 16_000.0;

/// The window starting at mel frame `seek` encoded, with the number of frames holding audio;
/// frames past the audio are zero, as the transcriber leaves them.
fn encode_window(model: &WhisperModel, samples: &[f32], seek: usize) -> (EncodedAudio, usize) {
    let start = seek * HOP_LENGTH;
    let end = (start + CHUNK_SAMPLES).min(samples.len());
    let num_frames = (samples.len() / HOP_LENGTH - seek).min(CHUNK_FRAMES);
    let mut mel = model.mel.window(&samples[start..end]);
    for row in mel.chunks_exact_mut(CHUNK_FRAMES) {
        row[num_frames..].fill(0.0);
    }
    let net = &model.network;
    let mel = Tensor::from_vec(mel, (1, model.mel.n_mels(), CHUNK_FRAMES), net.device())
        .and_then(|m| m.to_dtype(net.dtype()))
        .unwrap();
    (net.encode(&mel).unwrap(), num_frames)
}

/// Words of every segment of an English transcript: its windows (segments grouped by `seek`)
/// aligned in one batched call.
fn transcript_words(model: &WhisperModel, samples: &[f32], t: &Transcript) -> Vec<Vec<Word>> {
    let mut seeks: Vec<usize> = t.segments.iter().map(|s| s.seek).collect();
    seeks.dedup();
    let windows: Vec<(EncodedAudio, usize)> = seeks
        .iter()
        .map(|&seek| encode_window(model, samples, seek))
        .collect();
    let language = model.tokenizer.language_token(&t.language);
    let sot = model.tokenizer.sot_sequence(language, Task::Transcribe);
    let segment_tokens: Vec<Vec<Vec<u32>>> = seeks
        .iter()
        .map(|&seek| {
            t.segments
                .iter()
                .filter(|s| s.seek == seek)
                .map(|s| s.tokens.clone())
                .collect()
        })
        .collect();
    let jobs: Vec<WordWindow<'_>> = seeks
        .iter()
        .zip(&windows)
        .zip(&segment_tokens)
        .map(|((&seek, (_, num_frames)), segments)| WordWindow {
            sot_sequence: &sot,
            segments,
            num_frames: *num_frames,
            window_offset: seek as f64 * HOP_LENGTH as f64 / SAMPLE_RATE,
            last_speech_end: seek as f64 * HOP_LENGTH as f64 / SAMPLE_RATE,
        })
        .collect();
    let audio: Vec<EncodedAudio> = windows.into_iter().map(|(a, _)| a).collect();
    let audio = EncodedAudio::stack(&audio).unwrap();
    let per_window = align_windows(&model.network, &model.tokenizer, &audio, &jobs).unwrap();
    per_window.into_iter().flatten().collect()
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Words spell their segments, carry probabilities, and run forward in time inside the audio.
fn check_words(t: &Transcript, words: &[Vec<Word>]) {
    assert_eq!(words.len(), t.segments.len());
    let mut previous_end = 0.0;
    for (segment, words) in t.segments.iter().zip(words) {
        let joined: String = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(squash(&joined), squash(&segment.text), "{words:#?}");
        for w in words {
            assert!(
                previous_end <= w.start && w.start <= w.end && w.end <= t.duration + 1e-9,
                "{w:?} after {previous_end} in {:.2} s of audio",
                t.duration
            );
            assert!(w.probability > 0.0 && w.probability <= 1.0, "{w:?}");
            previous_end = w.end;
        }
    }
}

#[test]
fn words_spell_their_segments_in_time_order() {
    let model = support::default_model();
    for id in ["jfk", "pv_three_speakers"] {
        let (_, samples) = support::clip(id);
        let t = model
            .transcriber(1)
            .transcribe(&samples, &DecodeOptions::default())
            .unwrap();
        let words = transcript_words(model, &samples, &t);
        for w in words.iter().flatten() {
            println!(
                "{id}: {:>6.2} {:>6.2} {:.2} {:?}",
                w.start, w.end, w.probability, w.word
            );
        }
        check_words(&t, &words);
        assert!(words.iter().flatten().count() >= 15, "{id}: too few words");
    }
}

/// Windows of different lengths aligned in one batch (left padding, a different audio length
/// per row) give what each gives alone through [`align_words`].
#[test]
fn a_batch_aligns_each_window_as_if_alone() {
    let model = support::default_model();
    let sot = model.tokenizer.sot_sequence(None, Task::Transcribe);
    let mut audio = Vec::new();
    let mut inputs = Vec::new();
    for id in ["jfk", "sb_spk2_snt2", "pv_cheetah_en"] {
        let (_, samples) = support::clip(id);
        let t = model
            .transcriber(1)
            .transcribe(&samples, &DecodeOptions::default())
            .unwrap();
        assert!(t.segments.iter().all(|s| s.seek == 0), "{id}: one window");
        let (window, num_frames) = encode_window(model, &samples, 0);
        let segments: Vec<Vec<u32>> = t.segments.iter().map(|s| s.tokens.clone()).collect();
        audio.push(window);
        inputs.push((segments, num_frames));
    }
    let windows: Vec<WordWindow<'_>> = inputs
        .iter()
        .map(|(segments, num_frames)| WordWindow {
            sot_sequence: &sot,
            segments,
            num_frames: *num_frames,
            window_offset: 0.0,
            last_speech_end: 0.0,
        })
        .collect();
    let batch = EncodedAudio::stack(&audio).unwrap();
    let together = align_windows(&model.network, &model.tokenizer, &batch, &windows).unwrap();
    for ((window, (segments, num_frames)), together) in audio.iter().zip(&inputs).zip(together) {
        let alone = align_words(
            &model.network,
            &model.tokenizer,
            window,
            &sot,
            segments,
            *num_frames,
            0.0,
        )
        .unwrap();
        let times = |w: &[Vec<Word>]| -> Vec<(String, f64, f64)> {
            w.iter()
                .flatten()
                .map(|w| (w.word.clone(), w.start, w.end))
                .collect()
        };
        assert_eq!(times(&alone), times(&together));
    }
}

/// Speech from `espeak-ng` at 16 kHz, with the silence it adds before and after cut off.
fn speak(text: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&path)
        .arg(text)
        .status()
        .unwrap_or_else(|e| panic!("espeak-ng could not be run ({e}): apt-get install espeak-ng"));
    assert!(status.success(), "espeak-ng failed");
    let samples = hearken::audio::load_file(Path::new(&path)).unwrap();
    let loud = |s: &&f32| s.abs() > 0.01;
    let first = samples.iter().position(|s| loud(&s)).unwrap();
    let last = samples.len() - samples.iter().rev().position(|s| loud(&s)).unwrap();
    samples[first..last].to_vec()
}

fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * SAMPLE_RATE) as usize]
}

/// Where two phrases with a pause between them really are, and the words found for them.
struct Pair {
    first: (f64, f64),
    second: (f64, f64),
    words: Vec<Word>,
    text: String,
}

/// `first`, 2 s of silence, then `second`, transcribed and aligned.
fn speak_pair(first: &str, second: &str) -> Pair {
    let model = support::default_model();
    let (a, b) = (speak(first), speak(second));
    let lead = 0.5;
    let first_end = lead + a.len() as f64 / SAMPLE_RATE;
    let second_start = first_end + 2.0;
    let second_end = second_start + b.len() as f64 / SAMPLE_RATE;
    let samples = [silence(lead), a, silence(2.0), b, silence(0.5)].concat();
    let t = model
        .transcriber(1)
        .transcribe(&samples, &DecodeOptions::default())
        .unwrap();
    let words = transcript_words(model, &samples, &t);
    check_words(&t, &words);
    let words: Vec<Word> = words.into_iter().flatten().collect();
    println!(
        "truth: {first:?} {lead:.2}–{first_end:.2}, {second:?} {second_start:.2}–{second_end:.2}"
    );
    for w in &words {
        println!("found: {:>5.2}–{:>5.2} {:?}", w.start, w.end, w.word);
    }
    Pair {
        first: (lead, first_end),
        second: (second_start, second_end),
        words,
        text: t.text,
    }
}

impl Pair {
    fn word(&self, name: &str) -> &Word {
        self.words
            .iter()
            .find(|w| w.word.to_lowercase().contains(name))
            .unwrap_or_else(|| panic!("no {name:?} in {:?}", self.text))
    }

    /// `last_word` ends with the first phrase; `next_word` starts with the second and ends on
    /// it: neither spreads into the pause. (The first word of a window may start early: the
    /// path starts at the window's first frame, in openai-whisper as here.)
    fn assert_timed(&self, last_word: &str, next_word: &str) {
        const MARGIN: f64 = 0.3;
        let (start, end) = self.first;
        let w = &self.words[0];
        assert!(w.start <= start + MARGIN, "{w:?} vs speech at {start:.2}");
        let w = self.word(last_word);
        assert!(
            (w.end - end).abs() <= MARGIN,
            "{w:?} vs speech ending at {end:.2}"
        );
        let (start, end) = self.second;
        let w = self.word(next_word);
        assert!(
            (w.start - start).abs() <= MARGIN,
            "{w:?} vs speech at {start:.2}"
        );
        assert!(
            w.end > start && w.end <= end + MARGIN,
            "{w:?} vs {start:.2}–{end:.2}"
        );
    }
}

/// "hello", 2 s of silence, "the world": two segments, each word on its own speech.
#[test]
fn words_land_on_the_speech_around_a_pause() {
    speak_pair("hello", "the world").assert_timed("hello", "the");
}

/// The pause falls inside one segment here ("Good morning. Thank you very much."), so only the
/// attention path, not a segment timestamp, can put "Thank" after it.
#[test]
fn a_pause_inside_a_segment_is_found() {
    speak_pair("good morning", "thank you very much").assert_timed("morning", "thank");
}
