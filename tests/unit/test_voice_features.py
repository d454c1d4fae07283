"""Voice features: shapes, constants, level normalisation, standardisation; no torch involved."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mmdesk.perception import voice_features as vf


def _tone(seconds: float = 1.0, freq: float = 440.0, amp: float = 0.1, sr: int = vf.SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_constants_describe_25ms_10ms_frames_at_16k():
    assert vf.SAMPLE_RATE == 16_000
    assert vf.N_FFT / vf.SAMPLE_RATE == 0.025 and vf.HOP / vf.SAMPLE_RATE == 0.010
    assert vf.N_MELS == 64 and vf.FMIN == 50.0 and vf.FMAX == vf.SAMPLE_RATE / 2
    assert vf.SILENCE_LOGMEL == pytest.approx(np.log(vf.LOG_FLOOR))


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.0, 3.37])
def test_logmel_shape_and_dtype(seconds):
    x = _tone(seconds)
    f = vf.logmel(x)
    assert f.dtype == np.float32
    assert f.shape == (vf.N_MELS, vf.frames_for(len(x)))
    assert vf.frames_for(2 * vf.SAMPLE_RATE) == 201
    assert np.isfinite(f).all()


def test_logmel_matches_librosa_melspectrogram():
    import librosa

    x = _tone(1.3, 300.0) + 0.01 * np.random.default_rng(0).standard_normal(int(1.3 * 16000)).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=400, hop_length=160, n_mels=64, fmin=50, fmax=8000,
                                         pad_mode="constant")
    np.testing.assert_allclose(vf.logmel(x), np.log(ref + 1e-6), atol=1e-4)


def test_silence_is_the_floor_and_tone_peaks_in_its_band():
    silent = vf.logmel(np.zeros(16000, np.float32))
    assert np.allclose(silent, vf.SILENCE_LOGMEL)
    low, high = vf.logmel(_tone(1.0, 200.0)), vf.logmel(_tone(1.0, 3000.0))
    assert low.mean(axis=1).argmax() < high.mean(axis=1).argmax()
    assert vf.logmel(np.zeros(0, np.float32)).shape == (vf.N_MELS, 1)
    with pytest.raises(ValueError):
        vf.logmel(np.zeros((2, 100), np.float32))


def test_level_normalise_brings_loud_frames_to_target_and_leaves_silence():
    for amp in (0.003, 0.05, 0.9):
        y = vf.level_normalise(_tone(1.0, amp=amp))
        assert vf.level_dbfs(y) == pytest.approx(vf.LEVEL_TARGET_DBFS, abs=0.05)
    # the gain is capped: a whisper of noise is not lifted to speech level
    faint = vf.level_normalise(_tone(1.0, amp=1e-4))
    assert vf.level_dbfs(faint) < vf.LEVEL_TARGET_DBFS - 5
    z = np.zeros(8000, np.float32)
    assert np.array_equal(vf.level_normalise(z), z)
    # a window that is mostly pause is still set by its speech
    mixed = np.concatenate([np.zeros(24000, np.float32), _tone(0.5, amp=0.02)])
    assert vf.level_dbfs(vf.level_normalise(mixed)) == pytest.approx(vf.LEVEL_TARGET_DBFS, abs=0.1)


def test_normalise_and_band_stats():
    rng = np.random.default_rng(1)
    feats = [rng.normal(3.0, 2.0, size=(vf.N_MELS, n)).astype(np.float32) for n in (50, 120)]
    mean, std = vf.band_stats(feats)
    z = vf.normalise(np.concatenate(feats, axis=1), mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=1), 1, atol=1e-3)
    assert vf.normalise(np.stack(feats[:1] * 3), mean, std).shape == (3, vf.N_MELS, 50)
    with pytest.raises(ValueError):
        vf.normalise(feats[0], mean[:10], std[:10])


def test_preprocessing_dict_round_trip_and_features_for_model():
    pre = vf.preprocessing_dict(np.zeros(vf.N_MELS), np.ones(vf.N_MELS))
    vf.check_preprocessing(pre)
    x = vf.features_for_model(_tone(2.0, amp=0.01), pre)
    assert x.shape == (1, vf.N_MELS, 201) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], vf.logmel(vf.level_normalise(_tone(2.0, amp=0.01))), atol=1e-6)
    with pytest.raises(ValueError):
        vf.check_preprocessing({**pre, "hop": 256})


def test_to_mono_16k_resamples_and_downmixes():
    stereo = np.stack([_tone(1.0, 440.0, sr=48000), _tone(1.0, 440.0, sr=48000)], axis=1)
    y = vf.to_mono_16k(stereo, 48000)
    assert y.dtype == np.float32 and abs(len(y) - 16000) <= 1
    pcm = (np.clip(_tone(0.5), -1, 1) * 32767).astype(np.int16)
    np.testing.assert_allclose(vf.to_mono_16k(pcm, 16000), _tone(0.5), atol=1e-4)


def test_load_audio_real_files(assets):
    emodb = sorted((assets / "voice" / "emodb" / "wav").glob("*.wav"))[0]
    ravdess = sorted((assets / "voice" / "ravdess_actor05").glob("03-*.wav"))[0]
    for path in (emodb, ravdess):  # 22.05 kHz and 48 kHz originals
        import soundfile as sf

        y = vf.load_audio(path)
        assert y.dtype == np.float32 and y.ndim == 1
        assert abs(len(y) / 16000 - sf.info(str(path)).duration) < 0.01
        assert np.abs(y).max() <= 1.0 + 1e-3


def test_module_does_not_import_torch():
    import subprocess

    code = "import sys, mmdesk.perception.voice_features as v, numpy as np; v.logmel(np.zeros(1600, 'float32')); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_numpy_logmel_is_librosa_logmel() -> None:
    """The runtime computes log-mel in numpy (no numba start-up); it must equal librosa's."""
    import librosa

    from mmdesk.perception import voice_features as vf

    rng = np.random.default_rng(3)
    ref_basis = librosa.filters.mel(sr=vf.SAMPLE_RATE, n_fft=vf.N_FFT, n_mels=vf.N_MELS, fmin=vf.FMIN, fmax=vf.FMAX)
    np.testing.assert_allclose(vf._mel_basis(), ref_basis, atol=1e-7)
    for n in (400, 1000, 16000, 32000 + 77):
        x = (rng.standard_normal(n) * 0.1).astype(np.float32)
        spec = librosa.stft(x, n_fft=vf.N_FFT, hop_length=vf.HOP, win_length=vf.N_FFT, window="hann",
                            center=True, pad_mode="constant")
        ref = np.log(ref_basis @ (np.abs(spec) ** 2) + vf.LOG_FLOOR)
        np.testing.assert_allclose(vf.logmel(x), ref, atol=2e-4)
