//! How a streaming session's [`TranscriptionRequest`]s become engine jobs and their transcripts
//! become the policy's [`Hypothesis`]: shared by every transport that streams (gRPC, the
//! Realtime WebSocket) and by the policy replay benchmark, so they all behave alike.

use crate::engine::JobOptions;
use crate::model::whisper::decode::Transcript;
use crate::session::{Hypothesis, SpeechEvent, TimedWord, TranscriptionRequest};

/// Shortest speech (from the detector's onset) whose detected language is kept for the rest
/// of its utterance: on less, Whisper's detection is a guess (a syllable or a breath).
pub const LANGUAGE_DETECTION_SECONDS: f64 = 1.0;

/// Least detection probability that settles an utterance's language before its final
/// request. On the corpus's eight languages with `base`, detection on 1.5 s of speech was
/// right at 0.98 and above and wrong at 0.35 and below (Spanish heard as Hindi, Italian as
/// English); on 2.5 s it was right every time at 0.96 and above.
pub const LANGUAGE_CONFIDENCE: f32 = 0.9;

/// One stream's engine jobs: the options each policy request runs with, and the language each
/// utterance is decoded in.
///
/// When the session names no language, the model detects it on each utterance's first
/// request holding at least [`LANGUAGE_DETECTION_SECONDS`] of speech and detected with at
/// least [`LANGUAGE_CONFIDENCE`] (or on its final request), and the rest of that utterance is
/// decoded in that language: a language re-detected on every interim could flip between two
/// and rewrite the tentative text each time. The next utterance detects afresh, so a speaker
/// may change language between utterances.
///
/// An utterance too short to be detected with confidence before its final request is decoded
/// in the language the stream last settled on with confidence, if any: on a second or two of
/// speech detection is a guess (the corpus's long Spanish reading had one such utterance heard
/// as English).
///
/// Until its language is settled, an utterance shows no words: interims on less than a second
/// of speech are answered "no words yet" without the model (on half a second Whisper hears
/// English in German), and an unsure detection's text is held back. So a stream that names its
/// language shows its first words a second or two sooner than one that leaves it to detection.
#[derive(Debug, Clone)]
pub struct StreamJobs {
    session: JobOptions,
    /// The model detects languages and the session names none.
    detects: bool,
    /// Requests encode only their buffer (English-only models); see [`Self::new`].
    trims: bool,
    /// The utterance whose language is known, and that language.
    pinned: Option<(u64, String)>,
    /// The language last detected with confidence, in any utterance.
    confident: Option<String>,
    /// The open utterance and the stream time its speech started (the detector's onset; its
    /// audio starts earlier, with the pre-roll).
    onset: Option<(u64, f64)>,
    /// The language of the latest result: the configured one, else the last detected.
    language: String,
}

impl StreamJobs {
    /// Jobs for a session whose own options are `session`, on a `multilingual` model or not.
    ///
    /// Only English-only models stream with the trimmed encoder ([`streaming_job_options`]).
    /// On `base` it loses on every count: policy replay of eight clips in eight languages
    /// read 31.4 % WER/CER against 19.6 % with padded windows, at 1.17× their model time (the
    /// decoder loops past the end of short buffers: 2,527 tokens against 587), and ten English
    /// clips 7.5 % against 3.3 % (at 0.28× the model time).
    pub fn new(session: JobOptions, multilingual: bool) -> Self {
        Self {
            language: session.language.clone().unwrap_or_default(),
            detects: multilingual && session.language.is_none(),
            trims: !multilingual,
            session,
            pinned: None,
            confident: None,
            onset: None,
        }
    }

    /// Notes where an utterance's speech started; transports pass every speech event on.
    pub fn on_speech(&mut self, event: &SpeechEvent) {
        if let SpeechEvent::Started {
            utterance_id,
            at_seconds,
        } = *event
        {
            self.onset = Some((utterance_id, at_seconds));
        }
    }

    /// The job for `request`: [`streaming_job_options`], in the utterance's language once it
    /// is known, with padded windows on multilingual models (which detection needs too: on the
    /// trimmed encoding of a short buffer Whisper hears English in German speech).
    pub fn options(&self, request: &TranscriptionRequest) -> JobOptions {
        let mut options = streaming_job_options(&self.session, request);
        if self.detects {
            let pinned = self.pinned_language(request.utterance_id);
            let fallback = request
                .is_final
                .then_some(self.confident.as_deref())
                .flatten();
            options.language = pinned.or(fallback).map(String::from);
        }
        options.trim_encoder &= self.trims;
        options
    }

    /// The answer to `request` when it needs no model: an interim of an utterance whose
    /// language is still to be detected and that holds too little speech to detect it on.
    pub fn answer_without_model(&self, request: &TranscriptionRequest) -> Option<Hypothesis> {
        let too_early = self.detects
            && !request.is_final
            && self.pinned_language(request.utterance_id).is_none()
            && self.speech_seconds(request) < LANGUAGE_DETECTION_SECONDS;
        too_early.then(Hypothesis::default)
    }

    /// The policy's hypothesis from `request`'s transcript, noting the language it was in.
    pub fn on_transcript(
        &mut self,
        request: &TranscriptionRequest,
        transcript: &Transcript,
    ) -> Hypothesis {
        if self.detects && self.pinned_language(request.utterance_id).is_none() {
            if !self.settles_language(request, transcript) {
                return Hypothesis::default();
            }
            if transcript
                .language_probability
                .is_some_and(|p| p >= LANGUAGE_CONFIDENCE)
            {
                self.confident = Some(transcript.language.clone());
            }
            self.pinned = Some((request.utterance_id, transcript.language.clone()));
        }
        if !transcript.language.is_empty() {
            self.language = transcript.language.clone();
        }
        hypothesis(transcript)
    }

    /// Whether `transcript`'s detected language is sure enough to keep for its utterance.
    fn settles_language(&self, request: &TranscriptionRequest, transcript: &Transcript) -> bool {
        let confident = transcript
            .language_probability
            .is_none_or(|p| p >= LANGUAGE_CONFIDENCE);
        let heard = self.speech_seconds(request) >= LANGUAGE_DETECTION_SECONDS;
        request.is_final || (heard && confident)
    }

    /// The language of the latest result: the configured one, else the one the model
    /// detected (empty before the first result of a stream that names none).
    pub fn language(&self) -> &str {
        &self.language
    }

    /// The session's own options (before per-request prompt and timing settings).
    pub fn session(&self) -> &JobOptions {
        &self.session
    }

    /// Seconds of speech in `request`: from the utterance's onset to the request's end.
    fn speech_seconds(&self, request: &TranscriptionRequest) -> f64 {
        let start = match self.onset {
            Some((id, at)) if id == request.utterance_id => at,
            _ => request.audio_start_seconds,
        };
        request.audio_start_seconds + request.duration_seconds() - start
    }

    fn pinned_language(&self, utterance_id: u64) -> Option<&str> {
        match &self.pinned {
            Some((id, language)) if *id == utterance_id => Some(language),
            _ => None,
        }
    }
}

/// The job for one policy request: the session's options with word timings on (agreement works
/// on timed words), and the committed text that left the buffer appended to the session's own
/// prompt. Every request encodes only the buffer, followed by an encoded silent window (policy
/// replay of the English corpus: finals trimmed too, model time 0.421 → 0.337 s per second of
/// stream, streamed WER 7.50 → 8.09 %, 1.06× offline). Interims decode once, without
/// temperature fallback (superseded a second later, a retry is wasted: 362 decodings for 306
/// requests with fallback, the same WER without); the final one keeps the fallback.
pub fn streaming_job_options(session: &JobOptions, request: &TranscriptionRequest) -> JobOptions {
    JobOptions {
        prompt: join_prompt(session.prompt.as_deref(), &request.prompt),
        word_timestamps: true,
        trim_encoder: true,
        single_pass: !request.is_final,
        live: true,
        ..session.clone()
    }
}

/// The model's transcript of a request as the policy's hypothesis (times relative to the
/// request audio, as the engine reports them).
pub fn hypothesis(transcript: &Transcript) -> Hypothesis {
    let words = transcript
        .segments
        .iter()
        .flat_map(|s| s.words.iter())
        .map(|w| TimedWord {
            text: w.word.clone(),
            start: w.start,
            end: w.end,
            probability: w.probability,
        })
        .collect();
    Hypothesis {
        words,
        segment_ends: transcript.segments.iter().map(|s| s.end).collect(),
    }
}

fn join_prompt(configured: Option<&str>, committed: &str) -> Option<String> {
    let joined = match configured {
        Some(c) if !committed.is_empty() => format!("{c} {committed}"),
        Some(c) => c.to_string(),
        None => committed.to_string(),
    };
    Some(joined.trim().to_string()).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::whisper::decode::{Segment, Word};

    /// A request of utterance `utterance` over `[start, end)` seconds of the stream.
    fn request(utterance: u64, start: f64, end: f64, is_final: bool) -> TranscriptionRequest {
        TranscriptionRequest {
            request_id: 0,
            utterance_id: utterance,
            audio: vec![0.0; ((end - start) * 16_000.0) as usize],
            audio_start_seconds: start,
            prompt: String::new(),
            is_final,
        }
    }

    /// A transcript saying "hallo" in `language`, detected with `probability`.
    fn heard(language: &str, probability: f32) -> Transcript {
        let word = Word {
            word: " hallo".into(),
            start: 0.5,
            end: 0.9,
            probability: 0.9,
        };
        Transcript {
            text: "hallo".into(),
            segments: vec![Segment {
                id: 0,
                seek: 0,
                start: 0.5,
                end: 0.9,
                text: " hallo".into(),
                tokens: Vec::new(),
                temperature: 0.0,
                avg_logprob: -0.2,
                compression_ratio: 1.0,
                no_speech_prob: 0.01,
                words: vec![word],
            }],
            language: language.into(),
            language_probability: Some(probability),
            duration: 1.0,
        }
    }

    fn started(utterance_id: u64, at_seconds: f64) -> SpeechEvent {
        SpeechEvent::Started {
            utterance_id,
            at_seconds,
        }
    }

    #[test]
    fn a_language_settles_on_a_second_of_speech_detected_with_confidence() {
        let mut jobs = StreamJobs::new(JobOptions::default(), true);
        jobs.on_speech(&started(1, 0.5));
        // Half a second of speech after the pre-roll: no model, no words.
        let early = request(1, 0.0, 1.0, false);
        assert_eq!(
            jobs.answer_without_model(&early),
            Some(Hypothesis::default())
        );
        // A second and a half, detected unsure: detected again next time, its words held back.
        let unsure = request(1, 0.0, 2.0, false);
        assert_eq!(jobs.answer_without_model(&unsure), None);
        let options = jobs.options(&unsure);
        assert_eq!(options.language, None, "detect");
        assert!(
            !options.trim_encoder,
            "multilingual models stream padded windows"
        );
        assert!(
            jobs.on_transcript(&unsure, &heard("hi", 0.35))
                .words
                .is_empty()
        );
        assert_eq!(jobs.options(&request(1, 0.0, 3.0, false)).language, None);
        // Sure: kept for the rest of the utterance, and reported.
        let sure = request(1, 0.0, 3.0, false);
        assert_eq!(jobs.on_transcript(&sure, &heard("es", 0.96)).words.len(), 1);
        assert_eq!(jobs.language(), "es");
        let later = jobs.options(&request(1, 0.0, 4.0, true));
        assert_eq!(later.language.as_deref(), Some("es"));
        // The next utterance detects afresh.
        jobs.on_speech(&started(2, 6.0));
        let interim = request(2, 5.5, 8.0, false);
        assert_eq!(jobs.options(&interim).language, None);
        assert_eq!(
            jobs.on_transcript(&interim, &heard("ru", 0.97)).words.len(),
            1
        );
        assert_eq!(jobs.language(), "ru");
        // One too short to be sure before its final takes the language last detected with
        // confidence.
        jobs.on_speech(&started(3, 9.0));
        let short_final = request(3, 8.5, 9.6, true);
        assert_eq!(jobs.answer_without_model(&short_final), None);
        assert_eq!(jobs.options(&short_final).language.as_deref(), Some("ru"));
    }

    #[test]
    fn a_first_utterance_too_short_to_be_sure_keeps_what_its_final_heard() {
        let mut jobs = StreamJobs::new(JobOptions::default(), true);
        jobs.on_speech(&started(1, 0.5));
        let short_final = request(1, 0.0, 1.1, true);
        assert_eq!(jobs.options(&short_final).language, None);
        assert_eq!(
            jobs.on_transcript(&short_final, &heard("ko", 0.5))
                .words
                .len(),
            1
        );
        assert_eq!(jobs.language(), "ko");
        // Unsure, so not a fallback for the next short one.
        jobs.on_speech(&started(2, 3.0));
        assert_eq!(jobs.options(&request(2, 2.5, 3.6, true)).language, None);
    }

    #[test]
    fn a_named_language_or_an_english_only_model_never_waits_for_detection() {
        let german = JobOptions {
            language: Some("de".into()),
            ..JobOptions::default()
        };
        let english_only = JobOptions::default();
        for (session, multilingual) in [(german, true), (english_only, false)] {
            let mut jobs = StreamJobs::new(session.clone(), multilingual);
            jobs.on_speech(&started(1, 0.5));
            let early = request(1, 0.0, 1.0, false);
            assert_eq!(jobs.answer_without_model(&early), None);
            let options = jobs.options(&early);
            assert_eq!(options.language, session.language);
            assert_eq!(options.trim_encoder, !multilingual);
            let words = jobs.on_transcript(&early, &heard("de", 0.2)).words;
            assert_eq!(words.len(), 1, "shown whatever the detection said");
        }
    }
}
