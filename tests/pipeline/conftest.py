"""Real media for end-to-end tests, generated with ffmpeg and espeak-ng from the shared assets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def sh(*cmd: str) -> None:
    subprocess.run(list(cmd), check=True, capture_output=True)


@pytest.fixture(scope="session")
def espeak() -> str:
    exe = shutil.which("espeak-ng")
    if not exe:
        pytest.skip("espeak-ng not installed (scripts/setup.sh installs it)")
    return exe


@pytest.fixture(scope="session")
def face_then_speech(tmp_path_factory, assets: Path, ffmpeg: str, espeak: str) -> Path:
    """6 s clip: black frames 0–3 s then a real face photo 3–6 s; silence 0–1 s, speech from 1 s,
    silence again after ~3.3 s. Known truth for where the face and the voice are."""
    d = tmp_path_factory.mktemp("e2e")
    speech = d / "speech.wav"
    sh(espeak, "-w", str(speech), "Wow, great food. I really love it here.")
    photo = assets / "media" / "test_image.jpg"
    out = d / "face_then_speech.mp4"
    sh(ffmpeg, "-v", "error", "-y",
       "-f", "lavfi", "-i", "color=c=black:s=640x480:r=10:d=3",
       "-loop", "1", "-framerate", "10", "-t", "3", "-i", str(photo),
       "-i", str(speech),
       "-filter_complex",
       "[1:v]scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,setsar=1[f];"
       "[0:v][f]concat=n=2:v=1:a=0[v];[2:a]adelay=1000|1000,aresample=16000,apad[a]",
       "-map", "[v]", "-map", "[a]", "-t", "6", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
       str(out))
    return out


@pytest.fixture(scope="session")
def speech_duration(face_then_speech: Path) -> float:
    import av

    with av.open(str(face_then_speech.parent / "speech.wav")) as c:
        s = c.streams.audio[0]
        return float(s.duration * s.time_base)
