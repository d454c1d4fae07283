"""Make a short spoken sample clip (espeak-ng voice, test-pattern video, .srt sidecar).

Used by scripts/run.sh when no clip is given and the shared assets are not around.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LINES = [
    (0.3, 2.6, "Wow, great food."),
    (3.2, 5.8, "I am so happy to see you again."),
]


def make_sample(out: Path) -> Path:
    for tool in ("ffmpeg", "espeak-ng"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed to make the sample clip: install it (scripts/setup.sh does)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for i, (start, _, text) in enumerate(LINES):
            wav = Path(tmp) / f"l{i}.wav"
            subprocess.run(["espeak-ng", "-w", str(wav), text], check=True)
            parts.append((start, wav))
        inputs, delays = [], []
        for i, (start, wav) in enumerate(parts):
            inputs += ["-i", str(wav)]
            ms = int(start * 1000)
            delays.append(f"[{i + 1}:a]adelay={ms}|{ms},aresample=16000[a{i}]")
        mix = ";".join(delays) + ";" + "".join(f"[a{i}]" for i in range(len(parts))) + \
            f"amix=inputs={len(parts)}:normalize=0,apad[a]"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=6.5",
             *inputs, "-filter_complex", mix, "-map", "0:v", "-map", "[a]", "-t", "6.5",
             "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)],
            check=True,
        )
    srt = "\n".join(
        f"{i + 1}\n{_ts(a)} --> {_ts(b)}\n{text}\n" for i, (a, b, text) in enumerate(LINES)
    )
    out.with_suffix(".srt").write_text(srt, encoding="utf-8")
    return out


def _ts(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


if __name__ == "__main__":
    print(make_sample(Path(sys.argv[1] if len(sys.argv) > 1 else "sample.mp4")))
