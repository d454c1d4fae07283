"""`mmdesk analyze` end to end on real media with real models and onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdesk.cli import main
from mmdesk.core.labels import LABELS

RAVDESS_HAPPY = "av/ravdess_actor05/01-01-03-01-01-02-05.mp4"


def analyze(tmp_path: Path, clip: Path, *extra: str) -> list[dict]:
    out = tmp_path / (clip.stem + ".jsonl")
    assert main(["analyze", str(clip), "--out", str(out), "--quiet", *extra]) == 0
    return [json.loads(x) for x in out.read_text().splitlines()]


def windows(records: list[dict]) -> list[dict]:
    return [r for r in records if r["type"] == "window"]


def test_ravdess_clip_face_and_speech(tmp_path, assets, pack_dir) -> None:
    clip = assets / RAVDESS_HAPPY
    records = analyze(tmp_path, clip)
    meta, end = records[0], records[-1]
    assert meta["type"] == "meta" and end["type"] == "end" and end["complete"] is True
    assert meta["source"]["width"] == 1280 and meta["source"]["has_audio"]
    assert set(meta["models"]) >= {"face_expression", "vad", "voice_emotion", "text_encoder", "text_emotion"}
    assert all(len(m["sha256"]) == 64 for m in meta["models"].values())
    assert meta["providers"]["face_expression"] in ("CPUExecutionProvider", "CUDAExecutionProvider")
    wins = windows(records)
    assert [w["start"] for w in wins][:3] == [0.0, 0.5, 1.0]
    assert wins[-1]["end"] == pytest.approx(meta["source"]["duration"], abs=0.05)
    # one actor, frontal, lit: the face is found in every window, near the frame centre
    for w in wins:
        face = w["face"]
        assert face["present"], w
        x, y, bw, bh = face["box"]
        assert 400 < x + bw / 2 < 880 and 100 < y + bh / 2 < 600 and bw > 100
        assert sum(face["probs"].values()) == pytest.approx(1.0, abs=1e-4)
        assert list(face["probs"]) == list(LABELS)
    # she speaks in the middle of the clip: the windows covering it hear speech
    middle = [w for w in wins if w["start"] <= 1.5 <= w["end"]]
    assert middle and all(w["voice"]["present"] and w["voice"]["vad_prob"] > 0.8 for w in middle)
    assert all(sum(w["voice"]["probs"].values()) == pytest.approx(1.0, abs=1e-4) for w in middle)
    # no subtitles: her words come from speech-to-text, in the windows where she says them
    assert meta["text_source"] == "asr"
    assert all(w["text"]["present"] and w["text"]["origins"] == ["asr"] for w in middle)


def test_face_and_speech_land_in_the_right_windows(tmp_path, face_then_speech, speech_duration, pack_dir) -> None:
    records = analyze(tmp_path, face_then_speech, "--window", "1.0", "--hop", "0.5")
    wins = windows(records)
    duration = records[0]["source"]["duration"]  # 6 s plus the AAC encoder's padding
    assert [w["start"] for w in wins][:11] == [i * 0.5 for i in range(11)]
    assert wins[-1]["end"] == pytest.approx(duration, abs=0.03)
    for w in wins:
        if w["end"] <= 3.0:
            assert not w["face"]["present"] and w["face"]["reason"] == "no face found", w
        if w["start"] >= 3.0:
            assert w["face"]["present"], w
        speech_start, speech_end = 1.0, 1.0 + speech_duration
        if w["end"] <= speech_start - 0.05 or w["start"] >= speech_end + 0.3:
            assert not w["voice"]["present"], w
            assert w["voice"]["vad_prob"] < 0.5
        if w["start"] >= speech_start and w["end"] <= speech_end - 0.3:
            assert w["voice"]["present"], w


def test_subtitles_become_window_text(tmp_path, face_then_speech, pack_dir) -> None:
    clip = tmp_path / "subbed.mp4"
    clip.write_bytes(face_then_speech.read_bytes())
    clip.with_suffix(".srt").write_text(
        "1\n00:00:01,000 --> 00:00:02,400\nWow, great food.\n\n"
        "2\n00:00:04,000 --> 00:00:05,000\nI am so scared of what comes next.\n", encoding="utf-8")
    wins = windows(analyze(tmp_path, clip))
    first = wins[0]
    assert first["text"]["present"] and first["text"]["text"] == "Wow, great food."
    assert first["text"]["origins"] == ["subtitle"]
    scared = [w for w in wins if w["start"] >= 3.0 and w["text"]["present"]]
    assert scared and scared[0]["text"]["label"] == "fearful"
    assert sum(first["text"]["probs"].values()) == pytest.approx(1.0, abs=1e-4)
    # --no-subtitles turns them off (and --no-asr the transcription that would replace them)
    assert not any(w["text"]["present"] for w in windows(analyze(tmp_path, clip, "--no-subtitles", "--no-asr")))


def test_csv_output_has_one_row_per_window(tmp_path, assets, pack_dir) -> None:
    import csv

    out = tmp_path / "r.csv"
    assert main(["analyze", str(assets / RAVDESS_HAPPY), "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert len(rows) == meta["end"]["windows"] > 3
    assert all(r["face_present"] == "1" for r in rows)
