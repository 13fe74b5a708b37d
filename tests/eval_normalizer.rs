//! The Rust port of Whisper's English normaliser and jiwer's WER against the Python originals.
//!
//! The fixtures are the Python reference's own output (`tests/reference/make_normalizer_fixture.py`
//! regenerates them); the last test re-scores the peer baseline's recorded hypotheses against the
//! shared dev corpus and must land on the WER it recorded.

use std::fs;
use std::path::{Path, PathBuf};

use hearken::eval::{
    WerCounts, default_corpus_dir, english_wer, load_manifest, normalize_english, word_error_counts,
};
use serde::Deserialize;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/normalizer")
        .join(name)
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows = text.lines().filter(|line| !line.trim().is_empty());
    rows.map(|line| serde_json::from_str(line).expect("fixture line"))
        .collect()
}

#[derive(Deserialize)]
struct NormalizerCase {
    input: String,
    expected: String,
}

#[test]
fn normalizer_matches_python_on_every_fixture_case() {
    let cases: Vec<NormalizerCase> = read_jsonl(&fixture("english_cases.jsonl"));
    assert!(
        cases.len() > 250,
        "fixture looks truncated: {} cases",
        cases.len()
    );
    let mismatches: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let got = normalize_english(&case.input);
            let expected = &case.expected;
            (got != *expected).then(|| {
                format!(
                    "input {:?}\n  python {expected:?}\n  rust   {got:?}",
                    case.input
                )
            })
        })
        .collect();
    for mismatch in &mismatches {
        eprintln!("{mismatch}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from Python",
        mismatches.len(),
        cases.len()
    );
}

#[derive(Deserialize)]
struct WerCase {
    reference: String,
    hypothesis: String,
    substitutions: usize,
    deletions: usize,
    insertions: usize,
    reference_words: usize,
}

#[test]
fn word_error_counts_match_jiwer_split_included() {
    let cases: Vec<WerCase> = read_jsonl(&fixture("wer_cases.jsonl"));
    let mismatches: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let expected = WerCounts {
                substitutions: case.substitutions,
                deletions: case.deletions,
                insertions: case.insertions,
                reference_words: case.reference_words,
            };
            let got = word_error_counts(&case.reference, &case.hypothesis);
            (got != expected).then(|| {
                let (r, h) = (&case.reference, &case.hypothesis);
                format!("ref {r:?} hyp {h:?}\n  jiwer {expected:?}\n  rust  {got:?}")
            })
        })
        .collect();
    for mismatch in &mismatches {
        eprintln!("{mismatch}");
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} pairs differ from jiwer",
        mismatches.len(),
        cases.len()
    );
}

#[test]
fn known_pairs_give_known_counts() {
    let counts = |s, d, i, n| WerCounts {
        substitutions: s,
        deletions: d,
        insertions: i,
        reference_words: n,
    };
    assert_eq!(
        word_error_counts("the cat sat on the mat", "the cat sat on mat"),
        counts(0, 1, 0, 6)
    );
    assert_eq!(
        word_error_counts("the cat sat", "the dog sat down"),
        counts(1, 0, 1, 3)
    );
    assert_eq!(word_error_counts("a b c d", "b c d e"), counts(0, 1, 1, 4));
    // Normalising both sides makes spelled and written numbers agree.
    let written = "6 × 10 = 60 not 600000 that gives us a 12% chance";
    let spoken =
        "six times ten equals sixty not six hundred thousand that gives us a twelve percent chance";
    assert_eq!(
        normalize_english(spoken),
        "6 times 10 equals 60 not 600000 that gives us a 12% chance"
    );
    assert_eq!(
        english_wer(
            "Mr. Smith's colour is grey.",
            "mister smith is color is gray"
        )
        .errors(),
        0
    );
    assert_eq!(english_wer(written, spoken), counts(0, 0, 2, 11));
}

/// One configuration's clips and recorded summary from the peer baseline file.
fn baseline_config<'a>(baseline: &'a Value, compute: &str, beam: u64) -> &'a Value {
    let configs = baseline["configs"].as_array().expect("configs array");
    let found = configs
        .iter()
        .find(|c| c["compute_type"] == compute && c["beam_size"] == beam);
    found.unwrap_or_else(|| panic!("no {compute} beam {beam} config in the baseline"))
}

#[test]
fn rescoring_the_peer_baseline_reproduces_its_recorded_wer() {
    let corpus = default_corpus_dir();
    let clips = load_manifest(&corpus)
        .unwrap_or_else(|e| panic!("{e} (set HEARKEN_CORPUS_DIR to shared/corpus)"));
    let path = corpus.join("../baselines/faster_whisper_cpu_dev.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let baseline: Value = serde_json::from_str(&text).expect("baseline JSON");

    for (compute, beam) in [("float32", 1), ("float32", 5), ("int8", 1), ("int8", 5)] {
        let config = baseline_config(&baseline, compute, beam);
        let mut total = WerCounts::default();
        for run in config["clips"].as_array().expect("clips array") {
            let id = run["id"].as_str().expect("clip id");
            let clip = clips
                .iter()
                .find(|c| c.id == id)
                .unwrap_or_else(|| panic!("{id} not in manifest"));
            assert_eq!(
                (clip.lang.as_str(), run["set"].as_str()),
                ("en", Some("dev")),
                "{id}"
            );
            total += english_wer(&clip.text, run["hyp"].as_str().expect("hyp"));
        }
        let dev = &config["summary"]["dev"];
        let recorded = dev["wer"].as_f64().expect("recorded wer");
        eprintln!(
            "{compute} beam {beam}: wer {:.4} (recorded {recorded}), {total:?}",
            total.wer()
        );
        assert!(
            (total.wer() - recorded).abs() < 0.001,
            "{compute} beam {beam}: {total:?}"
        );
        let field = |name: &str| dev[name].as_u64().expect("count") as usize;
        let expected = WerCounts {
            substitutions: field("substitutions"),
            deletions: field("deletions"),
            insertions: field("insertions"),
            reference_words: field("ref_words"),
        };
        assert_eq!(total, expected, "{compute} beam {beam}");
    }
}
