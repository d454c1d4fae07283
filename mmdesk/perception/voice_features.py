"""Log-mel features for the voice emotion model, shared by training and the runtime.

Pure numpy + soxr (no torch, no librosa): the runtime computes exactly what the model was trained on.

Pipeline (``features_for_model``): 16 kHz mono float32 samples in [-1, 1] -> ``level_normalise``
(loud frames to -20 dBFS) -> ``logmel`` (64 bands, 10 ms frames) -> ``normalise`` with the per-band
mean/std that training measured and stored in the model's json (``preprocessing.mean`` /
``preprocessing.std``) -> the ONNX model's ``logmel`` input ``float32 [batch, 64, frames]``, whose
output ``probs`` is ``float32 [batch, 7]`` in ``LABELS`` order. Any length of at least MIN_SECONDS
works: the model pools over time.

The feature constants below are fixed by the model and also written into the json, so a loader can
check them against this module (``check_preprocessing``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmdesk.core.types import AUDIO_RATE

# --- feature constants (the model was trained with exactly these) -------------------------------
# Level normalisation first (``level_normalise``): recordings differ by 30 dB and more (EmoDB is
# peak-normalised, the RAVDESS files peak near -28 dBFS, a desk microphone anywhere in between), and
# a model that sees raw levels learns the corpus, not the emotion. The audio is scaled so that the
# 95th percentile of its 25 ms frame RMS (a loud speech frame, robust to clicks and to a window that
# is mostly pause) sits at LEVEL_TARGET_DBFS, with at most LEVEL_MAX_GAIN_DB of amplification so a
# near-silent window is not blown up to speech level.
LEVEL_PERCENTILE = 95.0
LEVEL_TARGET_DBFS = -20.0
LEVEL_MAX_GAIN_DB = 40.0
LEVEL_SILENCE_RMS = 1e-5  # below this (about -100 dBFS) the audio is left as it is
SAMPLE_RATE = AUDIO_RATE  # 16 kHz: every audio chunk inside mmdesk
N_FFT = 400  # 25 ms analysis window at 16 kHz (400 / 16000 s), Hann, the usual speech frame
HOP = 160  # 10 ms hop (160 / 16000 s) -> 100 frames per second
N_MELS = 64  # 64 mel bands (Slaney mel scale, librosa's default) between FMIN and FMAX
FMIN = 50.0  # below 50 Hz there is only rumble / mains hum, no voice energy
FMAX = 8000.0  # the Nyquist frequency at 16 kHz
LOG_FLOOR = 1e-6  # log(power + LOG_FLOOR): keeps digital silence finite
# The value every band takes on digital silence (all-zero samples): log(LOG_FLOOR) = -13.8155.
SILENCE_LOGMEL = float(np.log(LOG_FLOOR))
# Shortest audio the model is asked to classify: 0.5 s (51 frames); the runtime skips shorter speech.
MIN_SECONDS = 0.5
# The crop length used in training: the 2 s analysis window (201 frames with centred framing).
TRAIN_SECONDS = 2.0
# Per-band MEAN / STD are *not* constants of this module: training measures them over every frame
# of every training utterance (``band_stats``), stores them in the model json's ``preprocessing``,
# and the runtime passes them to ``normalise``. They belong to one trained model, not to the code.


def frames_for(n_samples: int) -> int:
    """Number of log-mel frames for ``n_samples`` (centred framing: 1 + n // HOP)."""
    return 1 + int(n_samples) // HOP


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
    """A (n_mels, n_fft // 2 + 1) Slaney-normalised mel filterbank (read-only, cached): the voice model's
    (:func:`_mel_basis`) and Whisper's (``mmdesk.asr.onnx_whisper``, 80 bands from 0 Hz).

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


def _mel_basis() -> np.ndarray:
    """The voice model's (N_MELS, N_FFT // 2 + 1) filterbank, FMIN..FMAX."""
    return mel_filterbank(N_MELS, FMIN, FMAX)


@functools.lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    """Periodic Hann window of N_FFT samples (scipy's get_window('hann', fftbins=True), as librosa)."""
    n = np.arange(N_FFT)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)


def _power_spectrogram(x: np.ndarray) -> np.ndarray:
    """|STFT|² (N_FFT // 2 + 1, 1 + len(x) // HOP): centred frames, zero padding, periodic Hann."""
    padded = np.pad(x, (N_FFT // 2, N_FFT // 2))
    n = 1 + (padded.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0]), writeable=False
    )
    spec = np.fft.rfft(frames * _hann(), axis=1)
    return (spec.real**2 + spec.imag**2).T.astype(np.float32)


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


def logmel(samples: np.ndarray) -> np.ndarray:
    """Log mel power spectrogram ``float32 (N_MELS, frames)`` of 16 kHz mono samples.

    ``frames = 1 + len(samples) // HOP`` (centred frames, zero padded at the edges). The same
    numbers as ``librosa.feature.melspectrogram(power=2.0, center=True, pad_mode="constant")`` with
    these constants (a test compares them), computed in numpy with a cached filterbank.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"logmel expects 1-D 16 kHz mono samples, got shape {x.shape}")
    if x.size == 0:
        return np.full((N_MELS, 1), SILENCE_LOGMEL, dtype=np.float32)
    mel = _mel_basis() @ _power_spectrogram(x)
    return np.log(mel + LOG_FLOOR).astype(np.float32)


def normalise(
    features: np.ndarray, mean: Sequence[float] | np.ndarray, std: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Per-band standardisation ``(logmel - mean) / std`` over axis -2 (the mel axis).

    Works on ``(N_MELS, frames)`` and ``(batch, N_MELS, frames)``; returns float32.
    """
    m = np.asarray(mean, dtype=np.float32).reshape(-1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(-1, 1)
    if m.shape[0] != features.shape[-2] or s.shape[0] != features.shape[-2]:
        raise ValueError(f"mean/std have {m.shape[0]}/{s.shape[0]} bands, features have {features.shape[-2]}")
    return ((np.asarray(features, dtype=np.float32) - m) / s).astype(np.float32)


def band_stats(features: Sequence[np.ndarray], min_std: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std (float64) over every frame of every ``(N_MELS, frames)`` array."""
    total = np.zeros(N_MELS, dtype=np.float64)
    total_sq = np.zeros(N_MELS, dtype=np.float64)
    count = 0
    for f in features:
        f64 = np.asarray(f, dtype=np.float64)
        total += f64.sum(axis=1)
        total_sq += (f64 * f64).sum(axis=1)
        count += f64.shape[1]
    if count == 0:
        raise ValueError("band_stats needs at least one frame")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    return mean, np.maximum(std, min_std)


def preprocessing_dict(mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """The ``preprocessing`` block stored in the model json."""
    return {
        "features": "log mel power spectrogram, log(power + log_floor), librosa, centred Hann frames",
        "sample_rate": SAMPLE_RATE,
        "n_fft": N_FFT,
        "win_length": N_FFT,
        "hop": HOP,
        "n_mels": N_MELS,
        "fmin": FMIN,
        "fmax": FMAX,
        "mel_scale": "slaney",
        "log_floor": LOG_FLOOR,
        "level": {
            "method": "scale so the percentile of 25 ms frame RMS is the target",
            "percentile": LEVEL_PERCENTILE,
            "target_dbfs": LEVEL_TARGET_DBFS,
            "max_gain_db": LEVEL_MAX_GAIN_DB,
        },
        "normalise": "(logmel - mean[band]) / std[band]",
        "pipeline": "level_normalise -> logmel -> normalise (mmdesk.perception.voice_features.features_for_model)",
        "mean": [round(float(v), 6) for v in mean],
        "std": [round(float(v), 6) for v in std],
        "min_seconds": MIN_SECONDS,
        "train_seconds": TRAIN_SECONDS,
    }


def check_preprocessing(pre: Mapping[str, Any]) -> None:
    """ValueError when a model json's preprocessing does not match this module's constants."""
    expected = {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "fmin": FMIN, "fmax": FMAX}
    for key, value in expected.items():
        if key not in pre or float(pre[key]) != float(value):
            raise ValueError(f"voice model preprocessing {key}={pre.get(key)!r}, this code computes {value!r}")
    if len(pre.get("mean", ())) != N_MELS or len(pre.get("std", ())) != N_MELS:
        raise ValueError(f"voice model preprocessing needs {N_MELS} mean and std values")


def raw_features(samples: np.ndarray) -> np.ndarray:
    """``logmel(level_normalise(samples))``: the un-standardised features of 16 kHz mono audio."""
    return logmel(level_normalise(samples))


def features_for_model(samples: np.ndarray, preprocessing: Mapping[str, Any]) -> np.ndarray:
    """``float32 (1, N_MELS, frames)``: the voice model's ``logmel`` input for 16 kHz mono audio.

    ``preprocessing`` is the model json's (or manifest entry's) ``preprocessing`` block; this is the
    whole runtime pipeline: level_normalise -> logmel -> normalise(mean, std).
    """
    return normalise(raw_features(samples), preprocessing["mean"], preprocessing["std"])[None]
