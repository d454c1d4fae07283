"""Aligned-data adapters for `mmdesk train fusion`, each on a small fixture in its published layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmdesk.core.labels import LABELS
from mmdesk.errors import MmdeskError
from mmdesk.training.fusion_aligned import aligned_examples, read_layout

RAV = "av/ravdess_actor05"
HAPPY = "01-01-03-01-01-02-05.mp4"  # statement 01
SAD = "01-01-04-01-02-01-05.mp4"  # statement 02


def _clip(assets: Path, name: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(assets / RAV / name, dest)
    return dest


def test_clips_csv_layout(assets: Path, tmp_path: Path) -> None:
    _clip(assets, HAPPY, tmp_path / "a.mp4")
    _clip(assets, SAD, tmp_path / "b.mp4")
    (tmp_path / "labels.csv").write_text(
        "file,emotion,sarcasm,text,context\n"
        "a.mp4,joy,0,Kids are talking by the door.,\n"
        "b.mp4,sad,true,Dogs are sitting by the door.,What did you see?\n"
        "missing.mp4,angry,,x,\n"
        "a.mp4,boredom,,x,\n", encoding="utf-8")
    items, problems = read_layout("clips-csv", tmp_path / "labels.csv")
    assert [(i.path.name, LABELS[i.emotion], i.sarcasm) for i in items] == [("a.mp4", "happy", 0), ("b.mp4", "sad", 1)]
    assert items[1].context == "What did you see?" and items[0].text.startswith("Kids")
    assert problems == ["missing.mp4: file not found", "a.mp4: no usable emotion or sarcasm label"]


def test_meld_layout(assets: Path, tmp_path: Path) -> None:
    _clip(assets, HAPPY, tmp_path / "dev_splits" / "dia0_utt0.mp4")
    _clip(assets, SAD, tmp_path / "dev_splits" / "dia0_utt1.mp4")
    (tmp_path / "dev_sent_emo.csv").write_text(
        "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
        "1,Oh my God!,Ross,surprise,positive,0,0\n"
        "2,That\u2019s so sad.,Rachel,sadness,negative,0,1\n"
        "3,No clip here.,Joey,anger,negative,1,0\n", encoding="utf-8")
    items, problems = read_layout("meld", tmp_path / "dev_sent_emo.csv")
    assert [(i.path.name, LABELS[i.emotion], i.text, i.context) for i in items] == [
        ("dia0_utt0.mp4", "surprised", "Oh my God!", ""),
        ("dia0_utt1.mp4", "sad", "That's so sad.", "Oh my God!")]
    assert problems == ["dia1_utt0.mp4: file not found"]


def test_mustard_layout(assets: Path, tmp_path: Path) -> None:
    _clip(assets, HAPPY, tmp_path / "utterances_final" / "1_60.mp4")
    data = {"1_60": {"utterance": "It's just a privilege to watch your mind at work.", "speaker": "SHELDON",
                     "context": ["I never would have identified it.", "My apologies. What's your plan?"],
                     "show": "BBT", "sarcasm": True},
            "2_99": {"utterance": "Fine.", "speaker": "PENNY", "context": [], "show": "BBT", "sarcasm": False}}
    (tmp_path / "sarcasm_data.json").write_text(json.dumps(data), encoding="utf-8")
    items, problems = read_layout("mustard", tmp_path / "sarcasm_data.json")
    assert len(items) == 1 and items[0].sarcasm == 1 and items[0].emotion is None
    assert items[0].context == "My apologies. What's your plan?" and items[0].group == "mustard-SHELDON"
    assert problems == ["2_99.mp4: file not found"]


def test_ravdess_layout_and_tokens_from_the_real_pipeline(assets: Path, pack_dir: Path, tmp_path: Path) -> None:
    from mmdesk.analysis.analyzer import Analyzer, AnalyzerSettings
    from mmdesk.inference.manifest import load_manifest

    _clip(assets, SAD, tmp_path / SAD)
    (tmp_path / "03-01-04-01-02-01-05.wav").write_bytes(b"")  # audio-only files are not AV clips
    (tmp_path / "02-01-09-01-02-01-05.mp4").write_bytes(b"")  # unknown emotion code
    items, problems = read_layout("ravdess", tmp_path)
    assert [(i.path.name, LABELS[i.emotion], i.text) for i in items] == [(SAD, "sad", "Dogs are sitting by the door.")]
    assert problems == ["02-01-09-01-02-01-05.mp4: not an audio-visual RAVDESS clip"]

    analyzer = Analyzer(load_manifest(pack_dir), AnalyzerSettings(device="cpu", keep_tokens=True))
    examples, failed = aligned_examples(items, analyzer, log=lambda _: None)
    assert not failed and len(examples) >= 2  # a ~3.5 s clip: windows at 0 and 1 s (and a partial tail)
    ex = examples[0]
    assert ex.emotion == LABELS.index("sad") and ex.sarcasm is None and ex.group == "ravdess-05"
    assert ex.face is not None and ex.face.shape[1] == analyzer.expression.embedding_dim and len(ex.face) == 4
    assert ex.voice is not None and ex.voice.shape[1] == analyzer.voice.frames_dim
    assert ex.text is not None and ex.text.shape[1] == 384 and np.isfinite(ex.face).all()


def test_unknown_layout_and_missing_path_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(MmdeskError, match="does not exist"):
        read_layout("meld", tmp_path / "nope.csv")
    with pytest.raises(MmdeskError, match="unknown aligned layout"):
        read_layout("avi-folder", tmp_path)


@pytest.mark.parametrize("args,needle", [
    (["--aligned", "avi:somewhere"], "is not LAYOUT:PATH. LAYOUT is one of clips-csv, meld, mustard, ravdess"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--fer", "/nonexistent.npz"], "FER2013 npz not found (/nonexistent.npz). pass it with --fer NPZ"),
])
def test_train_fusion_refuses_bad_options_in_one_line(args, needle, capsys) -> None:
    from mmdesk.cli import main

    assert main(["train", "fusion", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
