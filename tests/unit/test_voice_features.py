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
    assert vf.N_MELS == 80 and vf.MAX_FRAMES == 3000


@pytest.mark.parametrize("seconds", [0.5, 1.0, 2.0, 3.37])
def test_whisper_logmel_shape_range_and_dtype(seconds):
    x = _tone(seconds)
    f = vf.whisper_logmel(x)
    assert f.dtype == np.float32
    assert f.shape == (vf.N_MELS, vf.frames_for(len(x)))
    assert vf.frames_for(2 * vf.SAMPLE_RATE) == 201
    assert np.isfinite(f).all() and f.max() - f.min() <= 2.0 + 1e-6  # floored 8 decades under the max, / 4


def test_tone_peaks_in_its_band_and_odd_input():
    low, high = vf.whisper_logmel(_tone(1.0, 200.0)), vf.whisper_logmel(_tone(1.0, 3000.0))
    assert low.mean(axis=1).argmax() < high.mean(axis=1).argmax()
    assert vf.whisper_logmel(np.zeros(0, np.float32)).shape == (vf.N_MELS, 1)  # no crash on nothing
    assert np.isfinite(vf.whisper_logmel(np.zeros(16000, np.float32))).all()
    with pytest.raises(ValueError):
        vf.whisper_logmel(np.zeros((2, 100), np.float32))


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


def test_preprocessing_dict_round_trip_and_features_for_model():
    pre = vf.preprocessing_dict()
    vf.check_preprocessing(pre)
    x = vf.features_for_model(_tone(2.0, amp=0.01), pre)
    assert x.shape == (1, vf.N_MELS, 201) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], vf.whisper_logmel(vf.level_normalise(_tone(2.0, amp=0.01))), atol=1e-6)
    # the level does not matter (within the gain cap): a quiet and a loud recording give the same input
    np.testing.assert_allclose(vf.features_for_model(_tone(2.0, amp=0.5), pre), x, atol=1e-4)
    # Whisper's positions end at 30 s: longer audio is cut, not an error
    assert vf.features_for_model(_tone(31.0), pre).shape == (1, vf.N_MELS, vf.MAX_FRAMES)
    with pytest.raises(ValueError):
        vf.check_preprocessing({**pre, "hop": 256})
    with pytest.raises(ValueError, match="64 bands"):  # the CNN's preprocessing, from an old pack
        vf.check_preprocessing({k: v for k, v in pre.items() if k != "kind"})


def test_trim_silence_cuts_quiet_ends_and_keeps_half_a_second():
    rng = np.random.default_rng(0)
    burst = (0.1 * rng.standard_normal(12000)).astype(np.float32)  # 0.75 s of sound
    quiet = (1e-5 * rng.standard_normal(16000)).astype(np.float32)  # -100 dB: more than 35 dB under it
    x = np.concatenate([quiet, burst, quiet])
    y = vf.trim_silence(x)
    pad = vf.TRIM_PAD_SECONDS * vf.SAMPLE_RATE
    assert len(burst) <= len(y) <= len(burst) + 2 * (pad + vf.N_FFT)  # a frame may overlap each edge
    assert np.abs(y).max() == np.abs(burst).max()  # the sound is all there
    short = vf.trim_silence(np.concatenate([quiet, burst[:1600], quiet]))  # 0.1 s of sound
    assert len(short) == int(vf.MIN_SECONDS * vf.SAMPLE_RATE) and np.abs(short).max() == np.abs(burst[:1600]).max()
    assert len(vf.trim_silence(np.zeros(32000, np.float32))) == 32000  # nothing louder than anything: kept
    assert len(vf.trim_silence(burst[:4000])) == 4000  # shorter than the minimum: left as it is
    # the model's json decides: a model trained without trimming is fed untrimmed features
    pre = vf.preprocessing_dict()
    assert vf.features_for_model(x, pre).shape[2] < vf.features_for_model(x, {k: v for k, v in pre.items()
                                                                                if k != "trim"}).shape[2]


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

    code = "import sys, mmdesk.perception.voice_features as v, numpy as np; v.raw_features(np.zeros(1600, 'float32')); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_mel_filterbank_is_librosa_mel() -> None:
    """The runtime builds its filterbanks in numpy (no numba start-up); they must equal librosa's."""
    import librosa

    ref = librosa.filters.mel(sr=vf.SAMPLE_RATE, n_fft=vf.N_FFT, n_mels=80, fmin=0.0, fmax=8000.0)
    np.testing.assert_allclose(vf.whisper_mel_filters(), ref, atol=1e-7)
    ref64 = librosa.filters.mel(sr=vf.SAMPLE_RATE, n_fft=vf.N_FFT, n_mels=64, fmin=50.0, fmax=8000.0)
    np.testing.assert_allclose(vf.mel_filterbank(64, 50.0, 8000.0), ref64, atol=1e-7)
