#!/usr/bin/env python3
"""faster-whisper on the long recordings of `hearken bench offline --long`: a corpus clip by id,
or `concat:MINUTES` (the corpus's clips of one language end to end with 0.5 s of silence between
them, repeated until the recording lasts that long, exactly as hearken builds it). Each is
transcribed window after window (`WhisperModel.transcribe`) and with the batched pipeline
(`BatchedInferencePipeline`, batch 8, its default VAD chunking), greedy, at float32.

usage: faster_whisper_long.py --model-dir DIR --corpus DIR [--lang en] [--threads 2]
                              [--long librivox_sonnets_1_3,concat:15]
"""
import argparse
import json
import os
import time

import jiwer
import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from whisper_normalizer.english import EnglishTextNormalizer

from faster_whisper_peer import load_wav

GAP_SECONDS = 0.5


def recording(spec, corpus, lang):
    clips = [json.loads(line) for line in open(os.path.join(corpus, "manifest.jsonl"))]
    if spec.startswith("concat:"):
        wanted = int(float(spec.split(":")[1]) * 60 * 16000)
        clips = [c for c in clips if c["lang"] == lang]
        audio = [load_wav(os.path.join(corpus, c["file"])) for c in clips]
        gap = np.zeros(int(GAP_SECONDS * 16000), dtype=np.float32)
        parts, text, length, i = [], [], 0, 0
        while length < wanted:
            clip, samples = clips[i % len(clips)], audio[i % len(clips)]
            parts += [samples, gap]
            text.append(clip["text"].strip())
            length += len(samples) + len(gap)
            i += 1
        return spec, np.concatenate(parts), " ".join(text)
    clip = next(c for c in clips if c["id"] == spec)
    return spec, load_wav(os.path.join(corpus, clip["file"])), clip["text"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--lang", default="en")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--long", default="librivox_sonnets_1_3,concat:15")
    args = parser.parse_args()
    normalize = EnglishTextNormalizer()
    model = WhisperModel(args.model_dir, device="cpu", compute_type="float32",
                         cpu_threads=args.threads)
    batched = BatchedInferencePipeline(model=model)
    batched.transcribe(np.zeros(16000, dtype=np.float32), language=args.lang)  # warm-up
    print(f"{'faster-whisper float32':<22} {'audio s':>9} {'way':>11} {'wall s':>8} "
          f"{'RTF':>8} {'WER':>8} {'wall ratio':>10}")
    for spec in args.long.split(","):
        name, audio, reference = recording(spec, args.corpus, args.lang)
        seconds = len(audio) / 16000
        walls = {}
        for way in ("sequential", "batched"):
            started = time.time()
            if way == "sequential":
                segments, _ = model.transcribe(audio, language=args.lang, beam_size=1)
            else:
                segments, _ = batched.transcribe(audio, language=args.lang, beam_size=1,
                                                 batch_size=8)
            text = " ".join(s.text for s in segments)
            walls[way] = time.time() - started
            out = jiwer.process_words(normalize(reference), normalize(text) or "<empty>")
            errors = out.substitutions + out.deletions + out.insertions
            wer = errors / len(normalize(reference).split())
            ratio = f"{walls['batched'] / walls['sequential']:.2f}" if way == "batched" else ""
            print(f"{name:<22} {seconds:>9.1f} {way:>11} {walls[way]:>8.2f} "
                  f"{walls[way] / seconds:>8.4f} {100 * wer:>7.2f}% {ratio:>10}", flush=True)


if __name__ == "__main__":
    main()
