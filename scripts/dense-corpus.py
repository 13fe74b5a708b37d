#!/usr/bin/env python3
"""Builds a corpus of dense files: the dev corpus's English clips under 30 s laid end to end with
0.5 s gaps into files of at most 20 s and at most 30 s (26 files, 12-30 s each), with a
manifest whose references are the clips' references joined. Audio that holds several
utterances in one window is where decoding without timestamps, and a beam search, drop
sentences; the dev corpus's clips are one utterance each and do not show it.

usage: scripts/dense-corpus.py OUT_DIR [CORPUS_DIR]   then   hearken wer --corpus OUT_DIR
"""
import json
import sys
import wave
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
src = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parents[2] / "shared/corpus")
clips = [json.loads(line) for line in open(src / "manifest.jsonl")]
clips = [c for c in clips if c["lang"] == "en" and c["seconds"] < 30]
gap = np.zeros(8000, dtype=np.int16)


def load(clip):
    with wave.open(str(src / clip["file"])) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def write(name, group):
    audio = np.concatenate([part for clip in group for part in (load(clip), gap)][:-1])
    with wave.open(str(out / f"{name}.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(audio.tobytes())
    text = " ".join(c["text"] for c in group)
    return {"id": name, "file": f"{name}.wav", "lang": "en", "seconds": len(audio) / 16000, "text": text}


out.mkdir(parents=True, exist_ok=True)
entries = []
for longest in (20, 30):
    group, seconds, first = [], 0.0, len(entries)
    # Forwards then backwards, so each clip lands beside different neighbours.
    for clip in clips + clips[::-1]:
        if group and seconds + clip["seconds"] + 0.5 > longest:
            entries.append(write(f"dense{longest}_{len(entries) - first}", group))
            group, seconds = [], 0.0
        group.append(clip)
        seconds += clip["seconds"] + 0.5
with open(out / "manifest.jsonl", "w") as manifest:
    for entry in entries:
        manifest.write(json.dumps(entry) + "\n")
print(f"{len(entries)} files, {sum(e['seconds'] for e in entries):.0f} s, in {out}")
