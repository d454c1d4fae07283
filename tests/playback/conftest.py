"""tests/playback: the clip player engine on real RAVDESS clips (../shared/assets) and, for the sound,
an ALSA output device made of the file plugin (PortAudio sees it as the default output)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CLIP = "av/ravdess_actor05/01-01-04-01-01-01-05.mp4"  # 3.27 s, 640x360 H.264 29.97 fps, AAC 48 kHz stereo
BIG_CLIP = "av/ravdess_actor05/01-01-03-01-01-02-05.mp4"  # 1280x720


def _asset(assets: Path, rel: str) -> Path:
    p = assets / rel
    if not p.is_file():
        pytest.skip(f"{p} missing")
    return p


@pytest.fixture(scope="session")
def clip(assets: Path) -> Path:
    return _asset(assets, CLIP)


@pytest.fixture(scope="session")
def big_clip(assets: Path) -> Path:
    return _asset(assets, BIG_CLIP)


ASOUNDRC = """
pcm.mmdesk_out_raw {{
    type file
    slave.pcm "null"
    file "{fifo}"
    format "raw"
}}
pcm.!default {{
    type plug
    slave {{ pcm "mmdesk_out_raw" format FLOAT_LE rate {rate} channels 2 }}
    hint {{ show on description "mmdesk test speaker (ALSA file plugin)" }}
}}
"""
SPEAKER_RATE = 44100  # not the clip's 48 kHz: the player must resample


@dataclass
class AlsaSpeaker:
    """The default ALSA output of a child process (``env``) writes raw float32 stereo into a FIFO that a
    thread here drains into ``data``. The ``null`` slave takes samples as fast as they come (it is not
    paced like a sound card), so this checks what is played, not when."""

    env: dict[str, str]
    data: bytearray = field(default_factory=bytearray)


@pytest.fixture
def alsa_speaker(tmp_path: Path) -> Iterator[AlsaSpeaker]:
    if not sys.platform.startswith("linux"):
        pytest.skip("the ALSA test speaker needs Linux")
    import ctypes.util

    if ctypes.util.find_library("portaudio") is None:
        pytest.skip("PortAudio not installed (apt install libportaudio2)")
    home = tmp_path / "home"
    home.mkdir()
    fifo = tmp_path / "speaker.fifo"
    os.mkfifo(fifo)
    (home / ".asoundrc").write_text(ASOUNDRC.format(fifo=fifo, rate=SPEAKER_RATE))
    fd = os.open(fifo, os.O_RDWR)  # held open read-write: opening the device never blocks
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSA_", "PULSE_", "JACK_"))}
    env["HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), str(HERE)])
    speaker = AlsaSpeaker(env)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            if not select.select([fd], [], [], 0.05)[0]:
                continue
            try:
                speaker.data.extend(os.read(fd, 65536))
            except OSError:
                return

    t = threading.Thread(target=drain, name="alsa-speaker-drain", daemon=True)
    t.start()
    try:
        yield speaker
    finally:
        stop.set()
        t.join(2)
        os.close(fd)


def run_child(speaker: AlsaSpeaker, clip: Path, mode: str, timeout: float = 60) -> dict:
    """tests/playback/audio_child.py in a child process that sees the test speaker."""
    import json

    proc = subprocess.Popen([sys.executable, str(HERE / "audio_child.py"), str(clip), mode], env=speaker.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if time.monotonic() > deadline:
            break
    proc.wait(max(1.0, deadline - time.monotonic()))
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, f"audio child failed ({proc.returncode}):\n{''.join(lines)[-3000:]}\n{err[-3000:]}"
    last = [ln for ln in lines if ln.startswith("{")]
    assert last, f"no result from the audio child:\n{''.join(lines)}\n{err}"
    return json.loads(last[-1])
