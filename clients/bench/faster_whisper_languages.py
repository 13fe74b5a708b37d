#!/usr/bin/env python3
"""faster-whisper on the corpus's clips per language, scored as `hearken wer` scores them, so the
two can be put side by side with the same multilingual model (e.g. hearken's cached `base`).

Each clip is transcribed whole (greedy, faster-whisper's defaults otherwise), with the language
left to the model to detect unless --given-language. Scoring follows Whisper's evaluations and
hearken's `eval::score`: English through the English normaliser, other languages through the
basic normaliser (whisper-normalizer), WER by words, and CER by characters with whitespace left out
for ja, ko, zh, yue, th, lo, my, km, bo. Corpus-level: total errors / total reference units.

    python3 clients/bench/faster_whisper_languages.py --model-dir ~/.cache/hearken/models/base \
        --corpus ../shared/corpus --lang de,es,fr,it,pt,ru,ja,ko --json fw-base.json
"""
import argparse
import json
import os
import time
import wave

import jiwer
import numpy as np
from faster_whisper import WhisperModel
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

CER_LANGUAGES = {"ja", "ko", "zh", "yue", "th", "lo", "my", "km", "bo"}


def load_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


def units(lang, text, english=EnglishTextNormalizer(), basic=BasicTextNormalizer()):
    """The tokens a transcript in `lang` is scored by."""
    if lang == "en":
        return english(text).split()
    text = basic(text)
    if lang in CER_LANGUAGES:
        return [c for c in text if not c.isspace()]
    return text.split()


def errors(lang, reference, hypothesis):
    """(edit distance, reference units) of one clip."""
    ref, hyp = units(lang, reference), units(lang, hypothesis)
    if not ref:
        return len(hyp), 0
    # jiwer aligns lists of words; characters are joined as one-character words.
    out = jiwer.process_words(" ".join(ref), " ".join(hyp) if hyp else "")
    return out.substitutions + out.deletions + out.insertions, len(ref)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--lang", default="de,es,fr,it,pt,ru,ja,ko")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--given-language", action="store_true", help="name each clip's language")
    ap.add_argument("--json")
    args = ap.parse_args()

    wanted = args.lang.split(",")
    clips = [json.loads(l) for l in open(os.path.join(args.corpus, "manifest.jsonl"))]
    clips = [c for c in clips if c["lang"] in wanted]
    model = WhisperModel(args.model_dir, device="cpu", compute_type=args.compute_type, cpu_threads=args.threads)
    model.transcribe(load_wav(os.path.join(args.corpus, clips[0]["file"])), beam_size=1)  # warm-up
    rows = {}
    for clip in clips:
        audio = load_wav(os.path.join(args.corpus, clip["file"]))
        language = clip["lang"] if args.given_language else None
        start = time.perf_counter()
        segments, info = model.transcribe(audio, language=language, beam_size=1)
        text = "".join(s.text for s in segments).strip()
        wall = time.perf_counter() - start
        errs, n = errors(clip["lang"], clip["text"], text)
        row = rows.setdefault(clip["lang"], {"clips": 0, "errors": 0, "units": 0, "language_correct": 0,
                                             "audio_s": 0.0, "wall_s": 0.0})
        row["clips"] += 1
        row["errors"] += errs
        row["units"] += n
        row["language_correct"] += int(info.language == clip["lang"])
        row["audio_s"] += len(audio) / 16000.0
        row["wall_s"] += wall
        print(f"{clip['id']:<28} {info.language:>4} {100 * errs / max(n, 1):6.1f}%  {text}", flush=True)
    print(f"\n{'lang':<5} {'clips':>5} {'metric':>6} {'faster-whisper':>18} {'language right':>15} {'RTF':>6}")
    out = []
    for lang in wanted:
        row = rows.get(lang)
        if not row:
            continue
        metric = "CER" if lang in CER_LANGUAGES else "WER"
        rate = row["errors"] / max(row["units"], 1)
        figure = "%.2f%% (%d/%d)" % (100 * rate, row["errors"], row["units"])
        right = "%d/%d" % (row["language_correct"], row["clips"])
        print(f"{lang:<5} {row['clips']:>5} {metric:>6} {figure:>18} {right:>15} {row['wall_s'] / row['audio_s']:6.3f}")
        out.append({"lang": lang, "metric": metric, "rate": rate, **row})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model_dir": args.model_dir, "compute_type": args.compute_type,
                       "detect_language": not args.given_language, "languages": out}, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
