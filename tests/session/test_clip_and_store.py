"""Clip analysis on a worker thread, the session model, saving, reopening and exporting."""

from __future__ import annotations

import copy
import csv
import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mmdesk.analysis.clip import analyse_clip
from mmdesk.analysis.records import window_record
from mmdesk.core.labels import LABELS
from mmdesk.errors import MmdeskError
from mmdesk.session.clip import ClipJob, ClipSettings
from mmdesk.session.model import MODALITIES, SessionData, view_of
from mmdesk.session.store import export_csv, export_jsonl, load_session, save_session
from mmdesk.sync.windower import WindowSpec


def run_job(path: Path, engine, **kw) -> tuple[list[dict], list[float], list[str], ClipJob]:
    records: list[dict] = []
    progress: list[float] = []
    failed: list[str] = []
    job = ClipJob(path, engine, ClipSettings(), on_record=records.append, on_progress=progress.append,
                  on_failed=failed.append, **kw)
    return records, progress, failed, job


@pytest.fixture(scope="module")
def analysed(ravdess_clip: Path, engine) -> list[dict]:
    records, progress, failed, job = run_job(ravdess_clip, engine)
    job.start()
    assert job.join(120) and not failed
    assert progress[-1] == 1.0 and progress == sorted(progress)
    return records


def test_clip_job_writes_the_records_of_mmdesk_analyze(analysed: list[dict], ravdess_clip: Path, engine) -> None:
    meta, *windows, end = analysed
    assert meta["type"] == "meta" and meta["source"]["path"] == str(ravdess_clip.resolve())
    assert meta["models"]["face_expression"]["sha256"] and meta["providers"]["face_expression"].endswith("Provider")
    assert end["type"] == "end" and end["complete"] and end["windows"] == len(windows) == 6
    # the same windows as the synchronous pipeline that `mmdesk analyze` runs
    with engine.busy:
        direct = [window_record(r) for r in analyse_clip(ravdess_clip, engine.analyzer(), WindowSpec(2.0, 0.5))]
    assert [w["face"]["probs"] for w in windows] == [d["face"]["probs"] for d in direct]
    assert [w["voice"].get("probs") for w in windows] == [d["voice"].get("probs") for d in direct]
    assert sum(w["face"]["present"] for w in windows) == 6  # a frontal face throughout


def test_cancel_keeps_finished_windows(ravdess_clip: Path, engine) -> None:
    got_one = threading.Event()
    records: list[dict] = []

    def on_record(r: dict) -> None:
        records.append(r)
        if r["type"] == "window":
            got_one.set()
            job.cancel()

    job = ClipJob(ravdess_clip, engine, on_record=on_record)
    job.start()
    assert job.join(60)
    end = records[-1]
    assert end["type"] == "end" and not end["complete"] and end["error"] == "cancelled"
    assert 1 <= end["windows"] == sum(r["type"] == "window" for r in records) < 6


def test_bad_clip_fails_with_one_line(tmp_path: Path, engine) -> None:
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    records, _, failed, job = run_job(bad, engine)
    job.start()
    assert job.join(30)
    assert records == [] and len(failed) == 1 and "noise.mp4" in failed[0] and "\n" not in failed[0]


def test_session_model_reads_the_records(analysed: list[dict]) -> None:
    data = SessionData()
    for r in analysed:
        data.add(r)
    assert len(data) == 6 and data.end is not None
    s = data.series("face")
    w3 = data.windows[3]
    assert s.t[3] == pytest.approx((w3["start"] + w3["end"]) / 2)
    assert s.probs[3] == pytest.approx([w3["face"]["probs"][label] for label in LABELS])
    assert data.nearest(1.45) == 1 and data.nearest(99.0) == 5
    fusion = all("fused" in w for w in data.windows)
    assert data.fusion_available == fusion
    if not fusion:  # no fusion model: nothing fused to plot, and nothing is made up
        assert view_of(w3, "fused") is None and np.isnan(data.series("fused").probs).all()
        assert not data.interaction_counts() and np.isnan(data.contributions()[1]).all()
    else:
        f = data.series("fused")
        assert f.probs[3] == pytest.approx([w3["fused"]["probs"][label] for label in LABELS])
        assert f.sarcasm[3] == pytest.approx(w3["fused"]["sarcasm"])
        assert sum(data.interaction_counts().values()) == 6


def test_session_model_values_follow_late_and_replaced_windows(analysed: list[dict]) -> None:
    """The per-window values are kept between questions (a live view asks several times a second):
    they must still be right when a window arrives late or is delivered again with new values."""
    meta, *windows, _end = analysed
    changed = copy.deepcopy(windows[2])
    changed["face"]["probs"] = {label: float(label == "angry") for label in LABELS}
    if changed.get("interaction"):
        changed["interaction"]["type"] = "emergence"
    data = SessionData()
    data.add(meta)
    for w in [windows[0], windows[1], windows[3], windows[2], windows[4], windows[5], changed]:
        data.add(w)
        data.series("face"), data.contributions(), data.interaction_counts()  # asked as the panels do
    expected = windows[:2] + [changed] + windows[3:]
    assert data.windows == expected
    s = data.series("face")
    assert s.t == pytest.approx([(w["start"] + w["end"]) / 2 for w in expected])
    assert s.probs == pytest.approx(np.array([[w["face"]["probs"][label] for label in LABELS] for w in expected]))
    t, values = data.contributions()
    assert np.array_equal(t, s.t)
    want = [[w["attribution"]["values"][m] for m in MODALITIES] if w.get("attribution") else [np.nan] * 3
            for w in expected]
    assert np.allclose(values, want, equal_nan=True)
    assert data.interaction_counts() == Counter(w["interaction"]["type"] for w in expected if w.get("interaction"))
    assert data.nearest(float(s.t[2])) == 2
    assert not s.probs.flags.writeable  # shared with the next caller: nobody may change them


def test_save_reopen_and_export(analysed: list[dict], tmp_path: Path) -> None:
    data = SessionData()
    for r in analysed:
        data.add(r)
    path = save_session(tmp_path / "s.jsonl", data, {"timeline": "face", "selected": 2})
    again = load_session(path)
    assert again.windows == data.windows and again.end == data.end
    assert again.meta["app"]["selected"] == 2 and again.meta["models"] == data.meta["models"]
    rows = list(csv.DictReader(export_csv(tmp_path / "s.csv", data).read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 6 and float(rows[2]["face_happy"]) == pytest.approx(data.windows[2]["face"]["probs"]["happy"])
    lines = export_jsonl(tmp_path / "s.out.jsonl", data).read_text().splitlines()
    assert [json.loads(x) for x in lines] == data.records()


def test_reopen_damaged_and_foreign_files(analysed: list[dict], tmp_path: Path) -> None:
    p = tmp_path / "cut.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in analysed[:5])
    p.write_text(text + '{"type": "window", "index": 4, "sta')  # killed mid-write
    data = load_session(p)
    assert len(data) == 4 and data.end is None and "1 unreadable line" in data.meta["notes"][-1]
    for content in ("hello\n", ""):
        (tmp_path / "x.jsonl").write_text(content)
        with pytest.raises(MmdeskError, match="holds no mmdesk records"):
            load_session(tmp_path / "x.jsonl")
    with pytest.raises(MmdeskError, match="not found"):
        load_session(tmp_path / "missing.jsonl")
    with pytest.raises(MmdeskError, match="does not exist"):
        save_session(tmp_path / "no" / "s.jsonl", data)
