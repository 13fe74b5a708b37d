//! Whisper's tokenizer: text ↔ ids through `tokenizer.json`, plus the special tokens that steer
//! decoding (start of transcript, language, task, timestamps, no-speech).
//!
//! Special ids are looked up by name rather than hard-coded, because English-only and
//! multilingual vocabularies (and large-v3) place them differently. Timestamp tokens are not in
//! `tokenizer.json`: they are every id from `<|notimestamps|>` + 1 to the end of the vocabulary.

use std::path::Path;

use tokenizers::Tokenizer;

/// Whisper's languages in vocabulary order: (code, English name).
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
];

/// The English name of a language code (`"en"` → `"english"`).
pub fn language_name(code: &str) -> Option<&'static str> {
    LANGUAGES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// What the decoder is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    /// Write down the speech in its own language.
    #[default]
    Transcribe,
    /// Translate the speech into English.
    Translate,
}

/// Errors of the tokenizer layer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// `tokenizer.json` is missing or unreadable.
    #[error("loading {path}: {detail}")]
    Load {
        /// The file.
        path: String,
        /// The cause.
        detail: String,
    },
    /// A special token Whisper needs is not in the vocabulary.
    #[error("tokenizer has no special token {0}")]
    MissingSpecial(&'static str),
    /// Encoding or decoding failed.
    #[error("tokenizer: {0}")]
    Codec(String),
}

/// Ids of the special tokens.
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    /// `<|endoftext|>`: end of a transcript.
    pub eot: u32,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|startoflm|>`.
    pub sot_lm: u32,
    /// `<|startofprev|>`: introduces the prompt (previous text).
    pub sot_prev: u32,
    /// `<|nospeech|>` (`<|nocaptions|>` in v1/v2 vocabularies).
    pub no_speech: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|0.00|>`; timestamp `i` is `timestamp_begin + i`, 20 ms apart.
    pub timestamp_begin: u32,
}

/// Whisper's tokenizer with its special tokens and languages resolved.
pub struct WhisperTokenizer {
    inner: Tokenizer,
    special: SpecialTokens,
    /// (code, token id) for each language this vocabulary can emit.
    languages: Vec<(&'static str, u32)>,
    multilingual: bool,
}

impl WhisperTokenizer {
    /// Loads `tokenizer.json`; `multilingual` comes from the model's vocabulary size.
    pub fn from_file(path: &Path, multilingual: bool) -> Result<Self, TokenizerError> {
        let inner = Tokenizer::from_file(path).map_err(|e| TokenizerError::Load {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::new(inner, multilingual)
    }

    fn new(inner: Tokenizer, multilingual: bool) -> Result<Self, TokenizerError> {
        let id = |name: &'static str| {
            inner
                .token_to_id(name)
                .ok_or(TokenizerError::MissingSpecial(name))
        };
        let no_timestamps = id("<|notimestamps|>")?;
        let special = SpecialTokens {
            eot: id("<|endoftext|>")?,
            sot: id("<|startoftranscript|>")?,
            translate: id("<|translate|>")?,
            transcribe: id("<|transcribe|>")?,
            sot_lm: id("<|startoflm|>")?,
            sot_prev: id("<|startofprev|>")?,
            no_speech: id("<|nospeech|>").or_else(|_| id("<|nocaptions|>"))?,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
        };
        let languages = LANGUAGES
            .iter()
            .filter_map(|(code, _)| {
                let token = inner.token_to_id(&format!("<|{code}|>"))?;
                (token > special.sot && token < special.translate).then_some((*code, token))
            })
            .collect();
        Ok(Self {
            inner,
            special,
            languages,
            multilingual,
        })
    }

    /// The special token ids.
    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }

    /// Whether the model handles languages other than English (and translation).
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// Language codes the model can be asked for; English-only models answer `["en"]`.
    pub fn language_codes(&self) -> Vec<&'static str> {
        if self.multilingual {
            self.languages.iter().map(|(c, _)| *c).collect()
        } else {
            vec!["en"]
        }
    }

    /// The token of a language code, if this vocabulary has it.
    pub fn language_token(&self, code: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, t)| *t)
    }

    /// All language tokens with their codes, for language detection.
    pub fn language_tokens(&self) -> &[(&'static str, u32)] {
        &self.languages
    }

    /// The decoder's start sequence: `<|startoftranscript|>` then, on multilingual models, the
    /// language and task tokens.
    pub fn sot_sequence(&self, language: Option<u32>, task: Task) -> Vec<u32> {
        let mut seq = vec![self.special.sot];
        if self.multilingual {
            seq.extend(language);
            seq.push(match task {
                Task::Transcribe => self.special.transcribe,
                Task::Translate => self.special.translate,
            });
        }
        seq
    }

    /// Encodes plain text (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Codec(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes text tokens; special and timestamp tokens are skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let text: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&t| t < self.special.eot)
            .collect();
        self.inner
            .decode(&text, false)
            .map_err(|e| TokenizerError::Codec(e.to_string()))
    }

    /// Whether `token` is a timestamp.
    pub fn is_timestamp(&self, token: u32) -> bool {
        token >= self.special.timestamp_begin
    }
}
