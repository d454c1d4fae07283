"""Result files are written incrementally and atomically; CSV flattens the same records."""

from __future__ import annotations

import csv
import json

import pytest

from mmdesk.analysis.records import CSV_COLUMNS, window_record
from mmdesk.analysis.writers import RecordWriter
from mmdesk.core.labels import LABELS
from mmdesk.core.types import FaceResult, TextResult, VoiceResult, WindowResult
from mmdesk.errors import MmdeskError

P = tuple([0.1, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1])


def result(i: int) -> WindowResult:
    return WindowResult(
        i, i * 0.5, i * 0.5 + 2,
        FaceResult(True, P, box=(1, 2, 30, 40), score=0.9, frames_with_face=3, frames_analysed=4, detector="yunet"),
        VoiceResult(False, vad_prob=0.1, reason="no speech detected"),
        TextResult(True, P, text="wow, great food", origins=("subtitle",)),
    )


def test_jsonl_is_complete_only_after_close_and_partial_lines_are_whole(tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    w = RecordWriter(out, "jsonl")
    w.write({"type": "meta", "version": "x"})
    w.write(window_record(result(0)))
    assert not out.exists()
    partial = (tmp_path / "r.jsonl.partial").read_text().splitlines()
    assert [json.loads(x)["type"] for x in partial] == ["meta", "window"]  # flushed, whole lines
    w.write(window_record(result(1)))
    w.close()
    assert not (tmp_path / "r.jsonl.partial").exists()
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["type"] for r in rows] == ["meta", "window", "window"]
    win = rows[1]
    assert win["face"]["label"] == "happy" and win["face"]["box"] == [1, 2, 30, 40]
    assert sum(win["face"]["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    assert list(win["face"]["probs"]) == list(LABELS)
    assert win["voice"] == {"present": False, "vad_prob": 0.1, "speech_fraction": 0.0, "reason": "no speech detected"}
    assert win["text"]["text"] == "wow, great food" and win["text"]["origins"] == ["subtitle"]


def test_csv_rows_and_meta_sidecar(tmp_path) -> None:
    out = tmp_path / "r.csv"
    w = RecordWriter(out, "csv")
    w.write({"type": "meta", "version": "x"})
    for i in range(3):
        w.write(window_record(result(i)))
    w.write({"type": "end", "complete": True, "windows": 3})
    w.close()
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 and list(rows[0]) == list(CSV_COLUMNS)
    assert rows[2]["start"] == "1.0" and rows[0]["face_happy"] == "0.4" and rows[0]["voice_happy"] == ""
    assert rows[0]["text"] == "wow, great food"
    side = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert side["meta"]["version"] == "x" and side["end"]["windows"] == 3


def test_out_pointing_at_a_directory_is_refused(tmp_path) -> None:
    with pytest.raises(MmdeskError, match="is a directory"):
        RecordWriter(tmp_path, "jsonl")
    with pytest.raises(MmdeskError, match="does not exist"):
        RecordWriter(tmp_path / "missing" / "r.jsonl", "jsonl")
