"""Audio features for the voice emotion model, shared by training and the runtime.

Pure numpy + soxr (no torch, no librosa): the runtime computes exactly what the model was trained on.

The voice model reads Whisper's own front end (its first layers are Whisper tiny.en's encoder, see
models/cards/voice_emotion.md), so the features are Whisper's log-mel: ``features_for_model`` takes
16 kHz mono float32 samples in [-1, 1] -> ``trim_silence`` (quiet ends cut) -> ``level_normalise`` (loud
frames to -20 dBFS) ->
``whisper_logmel`` (80 bands, 10 ms frames, log10, floored 8 decades under the window's maximum,
(x + 4) / 4) -> at most MAX_SECONDS -> the ONNX model's ``logmel`` input ``float32 [batch, 80, frames]``.
The same log-mel feeds speech-to-text (``mmdesk.asr.onnx_whisper``).

The constants below are fixed by the model and also written into its json, so a loader can check them
against this module (``check_preprocessing``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmdesk.core.types import AUDIO_RATE

# --- feature constants (the model was trained with exactly these) -------------------------------
# Level normalisation first (``level_normalise``): recordings differ by 30 dB and more (EmoDB is
# peak-normalised, the RAVDESS files peak near -28 dBFS, a desk microphone anywhere in between); Whisper's
# log-mel is floored relative to the window's maximum but its offset still follows the level. The audio
# is scaled so that the 95th percentile of its 25 ms frame RMS (a loud speech frame, robust to clicks and
# to a window that is mostly pause) sits at LEVEL_TARGET_DBFS, with at most LEVEL_MAX_GAIN_DB of
# amplification so a near-silent window is not blown up to speech level.
LEVEL_PERCENTILE = 95.0
LEVEL_TARGET_DBFS = -20.0
LEVEL_MAX_GAIN_DB = 40.0
LEVEL_SILENCE_RMS = 1e-5  # below this (about -100 dBFS) the audio is left as it is
SAMPLE_RATE = AUDIO_RATE  # 16 kHz: every audio chunk inside mmdesk
N_FFT = 400  # 25 ms analysis window at 16 kHz (400 / 16000 s), Hann, the usual speech frame
HOP = 160  # 10 ms hop (160 / 16000 s) -> 100 frames per second
N_MELS = 80  # Whisper's 80 Slaney mel bands, 0 Hz to Nyquist
FEATURES = "whisper-logmel"  # the ``kind`` in the model json's preprocessing
# Shortest audio the model is asked to classify: 0.5 s; the runtime skips shorter speech.
MIN_SECONDS = 0.5
# Whisper's encoder has positions for 30 s (1,500 steps of 20 ms); longer audio is cut to its first 30 s.
MAX_SECONDS = 30.0
MAX_FRAMES = int(MAX_SECONDS * SAMPLE_RATE) // HOP  # 3,000
# The utterance length of the training data (EmoDB files are cut to 2 s) and of the runtime's windows.
TRAIN_SECONDS = 2.0
# Silence at either end is cut before the features (``trim_silence``): the model pools over time, and EmoDB's
# files are tight speech while a 2 s window or a RAVDESS file has pauses around the words. Frames quieter
# than the loudest by more than TRIM_DB go, keeping TRIM_PAD_SECONDS of edge and at least MIN_SECONDS.
# Three seeds, leave-one-speaker-out: English RAVDESS UAR 0.33 -> 0.41, German EmoDB 0.863 -> 0.857.
TRIM_DB = 35.0
TRIM_PAD_SECONDS = 0.05


def to_mono_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """float32 mono at 16 kHz from (n,) or (n, channels) / (channels, n) samples at ``sample_rate``."""
    x = np.asarray(samples)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:  # average channels; the shorter axis is the channel axis
        x = x.mean(axis=1 if x.shape[1] <= x.shape[0] else 0)
    elif x.ndim != 1:
        raise ValueError(f"audio must be 1-D or 2-D, got shape {x.shape}")
    if int(sample_rate) != SAMPLE_RATE:
        # soxr's HQ mode, trimmed/padded to ceil(n * ratio): exactly librosa.resample(res_type="soxr_hq"),
        # without importing librosa (numba + llvmlite + scipy: ~250 MB in the installed app)
        import soxr

        n_out = int(np.ceil(x.shape[0] * SAMPLE_RATE / int(sample_rate)))
        y = soxr.resample(x, int(sample_rate), SAMPLE_RATE, quality="soxr_hq")[:n_out]
        x = np.pad(y, (0, n_out - y.shape[0]))
    return np.ascontiguousarray(x, dtype=np.float32)


def load_audio(path: str | Path) -> np.ndarray:
    """A sound file as 16 kHz mono float32 in [-1, 1] (resampled with soxr when needed)."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (n, channels)
    return to_mono_16k(data.mean(axis=1), sr)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_mels: int, fmin: float, fmax: float, sample_rate: int = SAMPLE_RATE,
                   n_fft: int = N_FFT) -> np.ndarray:
    """A (n_mels, n_fft // 2 + 1) Slaney-normalised mel filterbank (read-only, cached); Whisper's is 80 bands
    from 0 Hz to Nyquist (:func:`whisper_mel_filters`).

    The same numbers as ``librosa.filters.mel`` (htk=False, norm="slaney"; a test compares them), in numpy:
    librosa's first call costs ~2 s per process (and ~20 s in a new environment while numba
    compiles), which the desktop app would pay at every start.
    """
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # shared by every caller
    return weights


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    """Periodic Hann window of N_FFT samples (scipy's get_window('hann', fftbins=True), as librosa)."""
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)


def level_dbfs(samples: np.ndarray) -> float:
    """The LEVEL_PERCENTILE-th percentile of 25 ms / 10 ms frame RMS, in dBFS (-inf for silence)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.size == 0:
        return float("-inf")
    padded = np.pad(x, (N_FFT // 2, N_FFT // 2))
    n = 1 + (padded.size - N_FFT) // HOP if padded.size >= N_FFT else 0
    if n <= 0:
        rms = np.sqrt(np.mean(x.astype(np.float64) ** 2, keepdims=True))
    else:
        frames = np.lib.stride_tricks.as_strided(
            padded, shape=(n, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0]), writeable=False
        )
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    level = float(np.percentile(rms, LEVEL_PERCENTILE))
    return 20.0 * np.log10(level) if level > 0 else float("-inf")


def level_normalise(samples: np.ndarray) -> np.ndarray:
    """Samples scaled so that ``level_dbfs`` is LEVEL_TARGET_DBFS (gain at most LEVEL_MAX_GAIN_DB)."""
    x = np.asarray(samples, dtype=np.float32)
    level = level_dbfs(x)
    if not np.isfinite(level) or level < 20.0 * np.log10(LEVEL_SILENCE_RMS):
        return x.copy()
    gain_db = min(LEVEL_TARGET_DBFS - level, LEVEL_MAX_GAIN_DB)
    return (x * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def whisper_mel_filters(n_mels: int = N_MELS) -> np.ndarray:
    """Whisper's Slaney-style mel filterbank [n_mels, N_FFT // 2 + 1]: 0 Hz to Nyquist, as Whisper (and
    faster-whisper) build it."""
    return mel_filterbank(n_mels, 0.0, SAMPLE_RATE / 2, SAMPLE_RATE, N_FFT)


def whisper_logmel(audio: np.ndarray, n_mels: int = N_MELS, padding: int = HOP) -> np.ndarray:
    """Whisper's log-mel spectrogram [n_mels, frames] of 16 kHz audio (``padding`` zero samples appended),
    computed as faster-whisper's ``FeatureExtractor.__call__``: centred reflect-padded STFT (Hann 400, hop
    160), power, mel, log10 floored at 1e-10 and at max - 8, then (x + 4) / 4."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"whisper_logmel expects 1-D 16 kHz mono samples, got shape {x.shape}")
    if padding:
        x = np.pad(x, (0, padding))
    if x.size < N_FFT // 2 + 1:  # reflect padding needs more samples than half a window
        x = np.pad(x, (0, N_FFT // 2 + 1 - x.size))
    x = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (HOP * x.strides[0], x.strides[0]))
    spec = np.fft.rfft(frames * _hann(), n=N_FFT, axis=-1).T.astype(np.complex64)
    power = np.abs(spec[:, :-1]) ** 2
    # float64 product: a float32 one varies in its last bit with the BLAS thread count, and the voice
    # model's int8 MatMuls (activations quantized at run time) can turn that into 1e-3 in a probability
    mel = (whisper_mel_filters(n_mels).astype(np.float64) @ power.astype(np.float64)).astype(np.float32)
    log_spec = np.log10(np.clip(mel, 1e-10, None))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def frames_for(n_samples: int) -> int:
    """Number of log-mel frames ``whisper_logmel`` gives for ``n_samples`` (one hop of padding appended)."""
    return int(n_samples + HOP) // HOP


def preprocessing_dict() -> dict[str, Any]:
    """The ``preprocessing`` block stored in the model json."""
    return {
        "kind": FEATURES,
        "features": "Whisper log-mel: log10 mel power, floored at max - 8, (x + 4) / 4 (faster-whisper's "
                    "FeatureExtractor)",
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "win_length": N_FFT,
        "hop": HOP,
        "n_mels": N_MELS,
        "fmin": 0.0,
        "fmax": SAMPLE_RATE / 2,
        "mel_scale": "slaney",
        "level": {
            "method": "scale so the percentile of 25 ms frame RMS is the target",
            "percentile": LEVEL_PERCENTILE,
            "target_dbfs": LEVEL_TARGET_DBFS,
            "max_gain_db": LEVEL_MAX_GAIN_DB,
        },
        "trim": {"method": "cut the ends whose 25 ms frames are more than db under the loudest",
                 "db": TRIM_DB, "pad_seconds": TRIM_PAD_SECONDS, "min_seconds": MIN_SECONDS},
        "pipeline": "first max_seconds -> trim_silence -> level_normalise -> whisper_logmel "
                    "(mmdesk.perception.voice_features.features_for_model)",
        "min_seconds": MIN_SECONDS,
        "max_seconds": MAX_SECONDS,
        "train_seconds": TRAIN_SECONDS,
    }


def check_preprocessing(pre: Mapping[str, Any]) -> None:
    """ValueError when a model json's preprocessing does not match this module's constants."""
    if pre.get("kind") != FEATURES:
        raise ValueError(f"voice model features {pre.get('kind') or 'log-mel CNN (64 bands)'!r}, this code computes "
                         f"{FEATURES!r}")
    expected = {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS}
    for key, value in expected.items():
        if key not in pre or float(pre[key]) != float(value):
            raise ValueError(f"voice model preprocessing {key}={pre.get(key)!r}, this code computes {value!r}")


def trim_silence(samples: np.ndarray) -> np.ndarray:
    """``samples`` without the stretches at either end whose 25 ms frames are more than TRIM_DB under the
    loudest frame (TRIM_PAD_SECONDS of them kept); at least MIN_SECONDS (centred on the sound) stays."""
    x = np.asarray(samples, dtype=np.float32)
    n, keep = x.size, int(MIN_SECONDS * SAMPLE_RATE)
    if n <= keep:
        return x
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP].astype(np.float64)
    level = 10.0 * np.log10((frames * frames).mean(axis=1) + 1e-20)
    loud = np.flatnonzero(level > level.max() - TRIM_DB)
    pad = int(TRIM_PAD_SECONDS * SAMPLE_RATE)
    a, b = max(0, int(loud[0]) * HOP - pad), min(n, int(loud[-1]) * HOP + N_FFT + pad)
    if b - a < keep:
        a = min(max(0, (a + b) // 2 - keep // 2), n - keep)
        b = a + keep
    return x[a:b]


def raw_features(samples: np.ndarray, trim: bool = True) -> np.ndarray:
    """``float32 (N_MELS, frames)``: Whisper log-mel of at most MAX_SECONDS of audio, its silent ends cut
    (``trim``) and its level normalised."""
    x = np.asarray(samples, dtype=np.float32)[: int(MAX_SECONDS * SAMPLE_RATE)]
    if trim:
        x = trim_silence(x)
    return whisper_logmel(level_normalise(x))[:, :MAX_FRAMES]


def features_for_model(samples: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """``float32 (1, N_MELS, frames)``: the voice model's ``logmel`` input for 16 kHz mono audio.

    ``preprocessing`` is the model json's (or manifest entry's) ``preprocessing`` block, checked by the
    loader (``check_preprocessing``); silence is trimmed when the model was trained so (``trim``).
    """
    return raw_features(samples, trim=bool(preprocessing.get("trim")))[None]
