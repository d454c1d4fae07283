"""MicrophoneSource against a real PortAudio/ALSA capture device fed from a FIFO (see conftest)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from capture_support import HERE, MIC_AMP, MIC_HZ, MIC_RATE, run_child

from mmdesk.capture.microphone import MicrophoneSource, _latency, list_microphones
from mmdesk.errors import DeviceError


def test_is_available_is_a_bool() -> None:
    assert MicrophoneSource.is_available() in (True, False)


def test_list_microphones_never_raises() -> None:
    mics = list_microphones()
    assert isinstance(mics, list)
    for m in mics:
        assert {"index", "name", "channels", "samplerate", "hostapi", "default"} <= set(m)


def test_unknown_device_is_a_device_error() -> None:
    if not MicrophoneSource.is_available():
        pytest.skip("PortAudio missing")
    with pytest.raises(DeviceError, match="no microphone 'no-such-mic-xyz'"):
        MicrophoneSource("no-such-mic-xyz").open()


def test_latency_falls_back_to_block_length() -> None:
    class T:
        inputBufferAdcTime = 0.0
        currentTime = 0.0

    assert _latency(T(), 4410, 44100) == pytest.approx(0.1)
    T.inputBufferAdcTime, T.currentTime = 10.0, 10.03
    assert _latency(T(), 4410, 44100) == pytest.approx(0.03)


def test_records_the_devices_samples_at_16k(alsa_mic) -> None:
    """The default input device (our ALSA plug) at 44.1 kHz stereo → 16 kHz mono, contiguous."""
    r = run_child(alsa_mic, "signal")
    assert r["available"] is True
    names = [m["name"] for m in r["mics"]]
    assert "mmdesk_mic" in names, names
    assert r["info"]["samplerate"] == MIC_RATE and r["info"]["channels"] == 2
    assert r["lost"] is False and r["error"] is None
    # 2 s of reading a real-time device: ~2 s of audio (plus what sat in the FIFO at open)
    assert 1.5 <= r["seconds"] <= 3.2, r
    assert abs(r["peak_hz"] - MIC_HZ) < 5, r
    assert r["rms"] == pytest.approx(MIC_AMP / 2**0.5, rel=0.05), r
    assert r["max_gap"] < 1e-6, "chunks must be contiguous"
    # 440 Hz at amplitude 0.5 sampled at 16 kHz: |2nd difference| <= 0.5 * (2 pi 440 / 16000)^2
    assert r["max_d2"] < 0.03, f"discontinuity in the recorded sine: {r['max_d2']}"
    assert r["first_t"] >= 0 and r["last_end"] <= r["read_done"] + 0.5, r


def test_device_that_stops_delivering_is_lost(alsa_mic) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "mic_child.py"), "lost"],
        env=alsa_mic.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", (line, proc.stderr.read() if proc.stderr else "")
        alsa_mic.pause.set()  # the "device" stops producing samples
        t0 = time.monotonic()
        line = proc.stdout.readline()
        lost_in = time.monotonic() - t0
        assert line.strip() == "LOST", line
        # A real device stalls in poll(), which PortAudio can cancel; our FIFO stalls in read(),
        # which it cannot, so feed it again before the child closes the stream.
        alsa_mic.pause.clear()
        out, err = proc.communicate("\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    import json

    r = json.loads(out.strip().splitlines()[-1])
    assert r["lost"] is True and r["exhausted"] is True
    assert "delivered no audio" in r["error"]
    assert r["close_s"] < 3.0, "close() must not hang on a stalled device"
    assert 0.9 <= lost_in < 5, lost_in  # stall_s=1.0 in the child
