#!/usr/bin/env python3
"""Reference log-mel spectrogram for hearken's mel parity test (numpy only, no torch/librosa).

Re-implements openai/whisper `audio.log_mel_spectrogram` for one 30 s window:
periodic Hann(400), STFT hop 160 with center=True reflect padding, |X|^2 with the last
frame dropped, librosa's Slaney mel filter bank (htk=False, norm="slaney"), log10 with a
1e-10 clamp, floor at max - 8, then (x + 4) / 4. Everything is computed in float64 and
written as float32, so the fixture is the exact formula and the Rust side is measured
against it rather than against torch's float32 rounding.

Fixture format (`tests/fixtures/mel/<name>_<n_mels>.f32`): little-endian float32,
row-major `[n_mels, K]` holding the first K of the 3000 frames, where K is the first frame
whose STFT window lies entirely in the zero padding after the clip. Every frame from K on
is exactly the floor value `max - 2.0` (asserted below), so it is not stored; the
Rust test checks those frames against that value. K = file_len / (4 * n_mels).

Usage (from the repo root): python3 tests/reference/whisper_mel.py
"""

import os
import sys
import wave

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SAMPLES = 480_000
CHUNK_FRAMES = 3000

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CORPUS = os.path.join(ROOT, "..", "shared", "corpus", "en")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "mel")

# (clip, n_mels): the long clip for the 80-bin models, a short one for large-v3's 128 bins.
CASES = [("jfk", 80), ("sb_spk2_snt2", 128)]


def read_wav(path):
    """PCM16 mono 16 kHz WAV -> float64 samples in [-1, 1), scaled by 1/32768 like Whisper."""
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == SAMPLE_RATE
        raw = w.readframes(w.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0


# --- librosa.filters.mel (htk=False, norm="slaney"), written out from librosa's formula ---

F_SP = 200.0 / 3.0
MIN_LOG_HZ = 1000.0
MIN_LOG_MEL = MIN_LOG_HZ / F_SP
LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    linear = f / F_SP
    log = MIN_LOG_MEL + np.log(np.maximum(f, MIN_LOG_HZ) / MIN_LOG_HZ) / LOGSTEP
    return np.where(f >= MIN_LOG_HZ, log, linear)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    linear = F_SP * m
    log = MIN_LOG_HZ * np.exp(LOGSTEP * (m - MIN_LOG_MEL))
    return np.where(m >= MIN_LOG_MEL, log, linear)


def mel_filters(n_mels, sr=SAMPLE_RATE, n_fft=N_FFT):
    fftfreqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * sr / n_fft
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float64)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    return weights * enorm[:, None], mel_f


# --- Whisper's log_mel_spectrogram on one zero-padded 30 s window ---


def hann_periodic(n=N_FFT):
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def power_spectrogram(window_samples):
    """|STFT|^2 as [201, 3000]: center=True reflect padding, last frame dropped."""
    padded = np.pad(window_samples, N_FFT // 2, mode="reflect")
    n_frames = 1 + (len(padded) - N_FFT) // HOP_LENGTH
    assert n_frames == CHUNK_FRAMES + 1
    idx = np.arange(N_FFT)[None, :] + HOP_LENGTH * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(padded[idx] * hann_periodic()[None, :], axis=1)
    return (np.abs(spec) ** 2).T[:, :-1]


def log_mel(samples, n_mels):
    window = np.zeros(CHUNK_SAMPLES, dtype=np.float64)
    n = min(len(samples), CHUNK_SAMPLES)
    window[:n] = samples[:n]
    filters, _ = mel_filters(n_mels)
    mel = filters @ power_spectrogram(window)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


# --- torch-free self checks ---


def naive_frame_power(window_samples, t):
    """One frame by the textbook definition: explicit reflection and a direct DFT."""
    n = len(window_samples)
    frame = np.empty(N_FFT)
    for k in range(N_FFT):
        j = t * HOP_LENGTH + k - N_FFT // 2
        if j < 0:
            j = -j
        elif j >= n:
            j = 2 * (n - 1) - j
        frame[k] = window_samples[j]
    frame *= hann_periodic()
    bins = np.arange(N_FFT // 2 + 1)[:, None]
    dft = np.exp(-2j * np.pi * bins * np.arange(N_FFT)[None, :] / N_FFT) @ frame
    return np.abs(dft) ** 2


def self_check(samples, n_mels, out):
    w = hann_periodic()
    assert w[0] == 0.0 and abs(w[N_FFT // 2] - 1.0) < 1e-15
    assert np.allclose(w[1:], w[1:][::-1]), "periodic Hann is symmetric about n/2"

    filters, mel_f = mel_filters(n_mels)
    freqs = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    assert abs(mel_f[-1] - SAMPLE_RATE / 2) < 1e-6 and mel_f[0] == 0.0
    assert np.allclose(mel_to_hz(hz_to_mel(mel_f)), mel_f), "mel scale round-trips"
    for i in range(n_mels):
        outside = (freqs <= mel_f[i]) | (freqs >= mel_f[i + 2])
        assert np.all(filters[i][outside] == 0.0), "triangle support is (f_i, f_i+2)"
        # Slaney norm: continuous triangle area 1 => peak height 2 / (f_i+2 - f_i).
        assert filters[i].max() <= 2.0 / (mel_f[i + 2] - mel_f[i]) + 1e-12

    window = np.zeros(CHUNK_SAMPLES)
    window[: len(samples)] = samples[:CHUNK_SAMPLES]
    power = power_spectrogram(window)
    for t in (0, 1, 7, 500, len(samples) // HOP_LENGTH, CHUNK_FRAMES - 1):
        assert np.allclose(power[:, t], naive_frame_power(window, t), rtol=1e-9, atol=1e-12)

    assert out.shape == (n_mels, CHUNK_FRAMES)
    assert out.max() - out.min() <= 2.0 + 1e-12, "floor at max - 8 (= 2 after /4)"
    assert np.isclose(log_mel(np.zeros(10), n_mels), -1.5).all(), "silence is (-10 + 4) / 4"


# Entries of librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) as float32, the table Whisper
# ships in mel_filters.npz (the same numbers Hugging Face's WhisperFeatureExtractor holds):
# [mel, bin, weight], plus the sum of the whole bank. Pins the formula above to librosa's.
LIBROSA_80 = [
    (0, 1, 0.02486259490251541),
    (1, 2, 0.022871771827340126),
    (9, 10, 0.006945197004824877),
    (39, 41, 0.011486922390758991),
    (69, 131, 0.00487553421407938),
    (79, 192, 0.0031647116411477327),
]
LIBROSA_80_SUM = 1.999024


def check_against_librosa():
    filters, _ = mel_filters(80)
    for m, k, v in LIBROSA_80:
        assert float(np.float32(filters[m, k])) == v, (m, k, filters[m, k], v)
    assert abs(filters.sum() - LIBROSA_80_SUM) < 1e-6


def stored_frames(n_samples):
    """First frame whose window [t*hop - 200, t*hop + 200) lies wholly after the clip."""
    return min(CHUNK_FRAMES, -(-(n_samples + N_FFT // 2) // HOP_LENGTH))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    check_against_librosa()
    for name, n_mels in CASES:
        samples = read_wav(os.path.join(CORPUS, name + ".wav"))
        out = log_mel(samples, n_mels)
        self_check(samples, n_mels, out)
        k = stored_frames(len(samples))
        assert np.all(out[:, k:] == out.max() - 2.0), "tail frames are exactly the floor"
        path = os.path.join(OUT_DIR, "%s_%d.f32" % (name, n_mels))
        out[:, :k].astype("<f4").tofile(path)
        print("%s: %d samples, %d of %d frames stored, max %.6f -> %s (%d bytes)"
              % (name, len(samples), k, CHUNK_FRAMES, out.max(), path, os.path.getsize(path)))
    for n_mels, rows in ((80, (0, 40, 79)), (128, (0, 64, 127))):
        filters, _ = mel_filters(n_mels)
        for r in rows:
            k = int(filters[r].argmax())
            print("filters%d[%d]: sum %.9e, peak [%d] = %.9e, nonzero bins %d..=%d" % (
                n_mels, r, filters[r].sum(), k, filters[r, k],
                filters[r].nonzero()[0].min(), filters[r].nonzero()[0].max()))
        print("filters%d: total %.9e, %d nonzero weights" % (
            n_mels, filters.sum(), np.count_nonzero(filters)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
