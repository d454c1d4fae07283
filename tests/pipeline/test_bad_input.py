"""Bad input never crashes: one line naming the problem and what to do (exit 2), or a documented
degradation, and finished windows are kept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mmdesk.cli import main


def sh(*cmd: str) -> None:
    subprocess.run(list(cmd), check=True, capture_output=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory, ffmpeg) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = d / "good.mp4"
    sh(ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:d=6",
       "-f", "lavfi", "-i", "sine=f=440:d=6", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25",
       "-c:a", "aac", "-shortest", str(good))
    files = {"good": good}
    (d / "empty.mp4").write_bytes(b"")
    files["empty"] = d / "empty.mp4"
    (d / "random.mp4").write_bytes(bytes(range(256)) * 400)
    files["random"] = d / "random.mp4"
    data = good.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    files["truncated"] = d / "truncated.mp4"
    # a fragmented mp4 cut in the middle keeps its index: decoding stops partway
    frag = d / "frag.mp4"
    sh(ffmpeg, "-v", "error", "-y", "-i", str(good), "-c", "copy", "-movflags", "frag_keyframe+empty_moov", str(frag))
    fdata = frag.read_bytes()
    (d / "frag_cut.mp4").write_bytes(fdata[: int(len(fdata) * 0.6)])
    files["frag_cut"] = d / "frag_cut.mp4"
    corrupt = bytearray(data)
    mid = len(corrupt) // 2
    corrupt[mid : mid + 4000] = bytes(4000)
    (d / "corrupt.mp4").write_bytes(bytes(corrupt))
    files["corrupt"] = d / "corrupt.mp4"
    noaudio = d / "noaudio.mp4"
    sh(ffmpeg, "-v", "error", "-y", "-i", str(good), "-an", "-c:v", "copy", str(noaudio))
    files["noaudio"] = noaudio
    novideo = d / "novideo.m4a"
    sh(ffmpeg, "-v", "error", "-y", "-i", str(good), "-vn", "-c:a", "copy", str(novideo))
    files["novideo"] = novideo
    for name, args in {
        "8k": ["-ar", "8000"], "96k": ["-ar", "96000"], "6ch": ["-ac", "6"], "24bit": ["-c:a", "pcm_s24le"],
    }.items():
        p = d / f"a_{name}.wav"
        sh(ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=3", *args, str(p))
        files[name] = p
    big = d / "4k.mp4"
    sh(ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=3840x2160:rate=10:d=2",
       "-f", "lavfi", "-i", "sine=f=440:d=2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
       "-c:a", "aac", "-shortest", str(big))
    files["4k"] = big
    latin = d / "latin.mp4"
    latin.write_bytes(data)
    latin.with_suffix(".srt").write_bytes(
        "1\n00:00:00,500 --> 00:00:02,000\nC'est déjà l'été, très agréable.\n".encode("cp1252"))
    files["latin"] = latin
    return files


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["analyze", *args, "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("case,needle", [
    ("missing", "does not exist"),
    ("directory", "is a directory"),
    ("empty", "empty"),
    ("random", "not a media file"),
    ("truncated", "truncated"),
])
def test_unreadable_input_is_one_clear_line(tmp_path, capsys, media, case, needle) -> None:
    path = {"missing": tmp_path / "nope.mp4", "directory": tmp_path}.get(case) or media[case]
    code, err = run_cli(capsys, str(path), "--out", str(tmp_path / "o.jsonl"))
    assert code == 2
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1 and lines[0].startswith("mmdesk: error:"), err
    assert needle in lines[0].lower() and path.name in lines[0], err


def test_clip_cut_partway_keeps_finished_windows(tmp_path, capsys, media, pack_dir) -> None:
    out = tmp_path / "o.jsonl"
    code, err = run_cli(capsys, str(media["frag_cut"]), "--out", str(out))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    wins = [r for r in rows if r["type"] == "window"]
    assert len(wins) >= 3 and wins[0]["face"]["present"] is False  # testsrc has no face
    end = rows[-1]
    assert end["type"] == "end"
    if code == 2:  # the decoder noticed the cut: reported, windows kept
        assert end["complete"] is False and "frag_cut.mp4" in err
    else:  # the demuxer saw a shorter file: every window up to the cut is there
        assert code == 0 and wins[-1]["end"] < 6.0


def test_mid_file_corruption_is_survived(tmp_path, capsys, media, pack_dir) -> None:
    out = tmp_path / "o.jsonl"
    code, err = run_cli(capsys, str(media["corrupt"]), "--out", str(out))
    assert code in (0, 2)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sum(r["type"] == "window" for r in rows) >= 6
    assert rows[-1]["type"] == "end"


def test_no_audio_track_marks_voice_absent(tmp_path, capsys, media, pack_dir) -> None:
    out = tmp_path / "o.jsonl"
    code, _ = run_cli(capsys, str(media["noaudio"]), "--out", str(out))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert code == 0
    assert any("no audio track" in n for n in rows[0]["notes"])
    wins = [r for r in rows if r["type"] == "window"]
    assert wins and all(w["voice"] == {"present": False, "vad_prob": 0.0, "speech_fraction": 0.0,
                                       "reason": "no audio track"} for w in wins)


@pytest.mark.parametrize("case", ["novideo", "8k", "96k", "6ch", "24bit"])
def test_audio_only_and_odd_formats(tmp_path, capsys, media, pack_dir, case) -> None:
    out = tmp_path / "o.jsonl"
    code, _ = run_cli(capsys, str(media[case]), "--out", str(out))
    assert code == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    wins = [r for r in rows if r["type"] == "window"]
    assert wins and all(w["face"]["reason"] == "no video track" for w in wins)
    # a pure tone is not speech: the VAD must say so, whatever the input format
    assert all(not w["voice"]["present"] for w in wins)
    duration = rows[0]["source"]["duration"]
    assert wins[-1]["end"] == pytest.approx(duration, abs=0.05)


def test_non_utf8_subtitle_is_read(tmp_path, capsys, media, pack_dir) -> None:
    out = tmp_path / "o.jsonl"
    code, _ = run_cli(capsys, str(media["latin"]), "--out", str(out))
    assert code == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    wins = [r for r in rows if r["type"] == "window"]
    assert wins[0]["text"]["text"] == "C'est déjà l'été, très agréable."
    assert any("cp1252" in n for n in rows[0]["notes"] + rows[-1]["notes"])


@pytest.mark.slow
def test_4k_clip(tmp_path, capsys, media, pack_dir) -> None:
    out = tmp_path / "o.jsonl"
    code, _ = run_cli(capsys, str(media["4k"]), "--out", str(out))
    assert code == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows[0]["source"]["width"] == 3840
    wins = [r for r in rows if r["type"] == "window"]
    # 0–2 s, then the partial windows 0.5–2, 1–2 and 1.5–2 s
    assert [(w["start"], w["end"], w["partial"]) for w in wins] == [
        (0.0, 2.0, False), (0.5, 2.0, True), (1.0, 2.0, True), (1.5, 2.0, True)]


def test_bad_settings(tmp_path, capsys, media) -> None:
    code, err = run_cli(capsys, str(media["good"]), "--window", "1", "--hop", "3")
    assert code == 2 and "hop" in err
