#!/usr/bin/env python3
"""faster-whisper on the same corpus clips, model directory and thread count as
`hearken bench offline`, so both engines are measured in one run on one machine.

Prints one line per configuration in the same columns as hearken's table:
engine, batch, audio seconds, wall seconds, RTF, WER: for each compute type, the files one after
another, then several at once through one model with 2 workers (faster-whisper's strongest CPU
throughput configuration). WER uses the Whisper English
normaliser (whisper-normalizer) and jiwer when installed, else is left out.
"""
import argparse
import json
import os
import time
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from faster_whisper import WhisperModel


def load_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


def scorer():
    try:
        import jiwer
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        return None
    norm = EnglishTextNormalizer()

    def score(refs, hyps):
        refs = [norm(r) for r in refs]
        hyps = [norm(h) for h in hyps]
        out = jiwer.process_words(refs, hyps)
        return out.wer

    return score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--lang", default="en")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--limit", type=int)
    ap.add_argument("--compute-types", default="float32,int8")
    ap.add_argument("--concurrent", type=int, default=8, help="files at once in the pooled run")
    args = ap.parse_args()

    clips = [json.loads(l) for l in open(os.path.join(args.corpus, "manifest.jsonl"))]
    clips = [c for c in clips if c["lang"] == args.lang][: args.limit]
    audio = [load_wav(os.path.join(args.corpus, c["file"])) for c in clips]
    total = sum(len(a) for a in audio) / 16000.0
    score = scorer()
    refs = [c["text"] for c in clips]

    def row(label, hyps, wall):
        wer = f"{100 * score(refs, hyps):.2f}%" if score else "n/a"
        print(f"{label:<22} {1:>6} {total:>9.1f} {wall:>8.2f} {wall / total:>8.4f} {wer:>12}", flush=True)

    def transcribe(model, a):
        return "".join(s.text for s in model.transcribe(a, language=args.lang, beam_size=1)[0]).strip()

    for compute_type in args.compute_types.split(","):
        # faster-whisper's strongest CPU throughput setting: several files at once through one
        # model with 2 workers (../shared/baselines/run_fw_batched.py).
        model = WhisperModel(
            args.model_dir, device="cpu", compute_type=compute_type, cpu_threads=args.threads, num_workers=2
        )
        transcribe(model, audio[0])  # warm-up
        start = time.perf_counter()
        hyps = [transcribe(model, a) for a in audio]
        row(f"fw {compute_type}", hyps, time.perf_counter() - start)
        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrent) as pool:
            hyps = list(pool.map(lambda a: transcribe(model, a), audio))
        row(f"fw {compute_type} {args.concurrent} at once", hyps, time.perf_counter() - start)

if __name__ == "__main__":
    main()
