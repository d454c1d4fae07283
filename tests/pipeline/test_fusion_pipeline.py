"""Fusion on a real clip: fused judgement, exact attribution, interaction type and attention per window."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmdesk.core.labels import LABELS
from mmdesk.errors import ModelError
from mmdesk.fusion.attribution import MODALITIES
from mmdesk.fusion.interaction import TYPES

CLIP = "av/ravdess_actor05/01-01-03-01-01-02-05.mp4"  # happy, "Kids are talking by the door"


@pytest.fixture(scope="module")
def manifest(pack_dir: Path):
    from mmdesk.inference.manifest import load_manifest

    m = load_manifest(pack_dir)
    if "fusion" not in m.entries:
        pytest.fail("the model pack has no fusion head: run `mmdesk models build`")
    return m


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, assets: Path, manifest):
    """The clip with a sidecar subtitle (two lines: 0–0.7 s, 0.8–2.6 s): face, voice and text present."""
    from mmdesk.analysis.analyzer import Analyzer, AnalyzerSettings
    from mmdesk.analysis.clip import analyse_clip
    from mmdesk.analysis.records import window_record

    d = tmp_path_factory.mktemp("fusion")
    clip = d / "happy.mp4"
    shutil.copyfile(assets / CLIP, clip)
    (d / "happy.srt").write_text("1\n00:00:00,000 --> 00:00:00,700\nListen.\n\n"
                                 "2\n00:00:00,800 --> 00:00:02,600\nKids are talking by the door.\n",
                                 encoding="utf-8")
    analyzer = Analyzer(manifest, AnalyzerSettings(device="cpu"))
    assert analyzer.fusion is not None, analyzer.fusion_problem
    results, tokens = [], []
    for r in analyse_clip(clip, analyzer, subtitles=True):
        results.append(r)
        tokens.append(dict(analyzer.last_tokens))
    return analyzer, results, [window_record(r) for r in results], tokens


def test_every_window_has_a_consistent_fused_record(analysed) -> None:
    _, _, records, _ = analysed
    assert len(records) >= 5
    for rec in records:
        present = [m for m in MODALITIES if rec[m]["present"]]
        assert present, rec
        fused = rec["fused"]
        assert list(fused["probs"]) == list(LABELS)
        assert sum(fused["probs"].values()) == pytest.approx(1.0, abs=1e-4)
        assert fused["label"] == max(fused["probs"], key=fused["probs"].get)
        assert 0.0 < fused["sarcasm"] < 1.0
        att = rec["attribution"]
        assert att["target"] == fused["label"] and att["full"] == pytest.approx(fused["probs"][fused["label"]], abs=1e-6)
        for a in (att, att["sarcasm"]):  # efficiency: values add up to full - baseline
            assert sum(a["values"].values()) == pytest.approx(a["full"] - a["baseline"], abs=5e-6)
            assert set(a["absent"]) == set(MODALITIES) - set(present)
            assert all(a["values"][m] == 0.0 for m in a["absent"])
        assert att["sarcasm"]["full"] == pytest.approx(fused["sarcasm"], abs=1e-6)
        for m in MODALITIES:
            assert (rec["alone"][m] is None) == (m not in present)
        inter = rec["interaction"]
        assert inter["type"] in TYPES and inter["reason"] and inter["text"]
        assert set(inter["numbers"]["values"]) >= {"none", "+".join(present)}
        assert set(rec["attention"]) == set(present)
        for target, row in rec["attention"].items():
            assert set(row) == set(present) - {target}
            assert all(0.0 <= x <= 1.0 for x in row.values())
            assert sum(row.values()) <= 1.0 + 1e-6


def test_text_windows_have_all_three_modalities_and_an_incongruity(analysed) -> None:
    _, _, records, _ = analysed
    with_text = [r for r in records if r["text"]["present"]]
    assert with_text, "the subtitle overlaps several windows"
    for rec in with_text:
        assert rec["text"]["origins"] == ["subtitle"]
        assert rec["face"]["present"]
        assert 0.0 <= rec["fused"]["incongruity"] <= 1.0
        assert set(rec["fused"]["valence"]) >= {"text", "face"}
    # the line said before is the context of the text and sarcasm models
    later = [r for r in with_text if r["start"] >= 1.0]
    assert later and all(r["text"]["context"] == "Listen." and r["text"]["text"] == "Kids are talking by the door."
                         for r in later)
    assert all(0.0 <= r["text"]["sarcasm"] <= 1.0 for r in with_text)
    no_text = [r for r in records if not r["text"]["present"]]
    assert all(r["fused"]["incongruity"] is None for r in no_text)


def test_record_equals_a_direct_run_of_the_head_on_the_same_tokens(analysed) -> None:
    analyzer, results, records, tokens = analysed
    i = max(range(len(records)), key=lambda k: sum(records[k][m]["present"] for m in MODALITIES))
    r = results[i]
    assert 1 <= len(tokens[i]["face"]) <= 4  # evenly spaced face frames, as many as the head was trained on
    again = analyzer.fusion.fuse(tokens[i], {"face": r.face.probs, "voice": r.voice.probs, "text": r.text.probs})
    assert again.as_record() == {k: records[i][k] for k in ("fused", "alone", "attribution", "interaction", "attention")}
    # the singleton rows are what the head says with one modality shown
    for m, alone in again.alone.items():
        if alone is None:
            continue
        only = analyzer.fusion.fuse({m: tokens[i][m]})
        assert np.allclose(only.probs, alone[0], atol=1e-5)


def test_fusion_costs_little_per_window(analysed) -> None:
    """Recorded, not asserted against a clock: the stage exists and is measured per window."""
    _, results, _, _ = analysed
    assert all("fusion" in r.timings_ms for r in results)


def test_csv_row_carries_the_fused_columns(analysed) -> None:
    from mmdesk.analysis.records import CSV_COLUMNS, csv_row

    _, _, records, _ = analysed
    row = csv_row(records[0])
    assert set(row) <= set(CSV_COLUMNS)
    assert row["interaction"] in TYPES and row["fused_label"] in LABELS
    assert sum(row[f"fused_{label}"] for label in LABELS) == pytest.approx(1.0, abs=1e-4)


def test_a_head_trained_on_other_encoders_is_refused_with_the_fix(manifest) -> None:
    from mmdesk.analysis.analyzer import Analyzer, AnalyzerSettings
    from mmdesk.errors import ModelError
    from mmdesk.fusion.head import FusionHead
    from mmdesk.inference.manifest import Manifest

    fusion = manifest.entries["fusion"]
    trained_with = {**fusion.preprocessing["trained_with"], "face_expression": "0" * 64}
    other = dataclasses.replace(fusion, preprocessing={**fusion.preprocessing, "trained_with": trained_with})
    stale = Manifest(manifest.directory, {**manifest.entries, "fusion": other}, manifest.built)
    with pytest.raises(ModelError, match="mmdesk train fusion"):
        FusionHead(stale, "cpu")
    analyzer = Analyzer(stale, AnalyzerSettings(device="cpu"))
    assert analyzer.fusion is None and "face_expression" in analyzer.fusion_problem
    assert analyzer.fusion_info() == {"available": False, "problem": analyzer.fusion_problem}


def test_sarcasm_is_temperature_scaled_before_attribution(analysed, manifest) -> None:
    """The head's sarcasm logit is divided by the temperature in its json (fitted on held-out sarcasm
    texts, > 1: the raw head is overconfident); every subset's value is, so the Shapley shares still add
    up to the shown value minus the baseline, and a head without the field is left as it is."""
    from mmdesk.core.calibration import temperature_scale
    from mmdesk.fusion.head import FusionHead
    from mmdesk.inference.manifest import Manifest

    analyzer, results, records, tokens = analysed
    head = analyzer.fusion
    t = manifest.entries["fusion"].preprocessing["sarcasm_temperature"]
    assert head.sarcasm_temperature == t > 1
    fusion = manifest.entries["fusion"]
    raw_pre = {k: v for k, v in fusion.preprocessing.items() if k != "sarcasm_temperature"}
    raw_manifest = Manifest(manifest.directory, {**manifest.entries,
                                                 "fusion": dataclasses.replace(fusion, preprocessing=raw_pre)},
                            manifest.built)
    raw_head = FusionHead(raw_manifest, "cpu")
    assert raw_head.sarcasm_temperature == 1.0
    i = max(range(len(records)), key=lambda k: sum(records[k][m]["present"] for m in MODALITIES))
    cal, raw = head.fuse(tokens[i]), raw_head.fuse(tokens[i])
    assert cal.sarcasm == pytest.approx(float(temperature_scale(raw.sarcasm, t)), abs=1e-5)
    assert abs(cal.sarcasm - 0.5) <= abs(raw.sarcasm - 0.5) + 1e-6 and (cal.sarcasm >= 0.5) == (raw.sarcasm >= 0.5)
    a = cal.sarcasm_attribution
    assert sum(a.values.values()) == pytest.approx(a.full - a.baseline, abs=1e-4)
    assert a.full == pytest.approx(cal.sarcasm, abs=1e-6)
    with pytest.raises(ModelError, match="temperature"):
        bad = dataclasses.replace(fusion, preprocessing={**fusion.preprocessing, "sarcasm_temperature": 0})
        FusionHead(Manifest(manifest.directory, {**manifest.entries, "fusion": bad}, manifest.built), "cpu")
