"""`mmdesk eval` on small fixtures in each dataset's layout, built so the answer is known."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from mmdesk.cli import main
from mmdesk.core.labels import EMODB_TO_COMMON, FER2013_LABELS, LABELS, MELD_TO_COMMON
from mmdesk.inference.manifest import load_manifest, sha256_file


def run_eval(capsys, *args: str) -> dict:
    assert main(["eval", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def manifest(pack_dir):
    return load_manifest(pack_dir)


def test_face_fer2013_scores_100_percent_on_its_own_predictions_and_chance_on_shuffled(
        tmp_path, capsys, assets, manifest) -> None:
    import cv2

    from mmdesk.perception.face import FaceExpression

    data = np.load(assets / "face" / "fer2013_48px_trainval.npz")
    images = data["val_images"][np.random.default_rng(0).choice(len(data["val_images"]), 70, replace=False)]
    model = FaceExpression(manifest, "cpu")
    pred = model.predict(np.stack([cv2.resize(im, (64, 64)) for im in images])).argmax(1)
    fer = np.array([FER2013_LABELS.index(LABELS[p]) for p in pred])
    npz = tmp_path / "fer.npz"
    np.savez(npz, test_images=images, test_labels=fer, val_images=images, val_labels=np.roll(fer, 1))
    r = run_eval(capsys, "face-fer2013", "--data", str(npz))
    assert r["dataset"].endswith("[test]") and r["n"] == 70
    assert r["metrics"]["accuracy"] == 1.0 and r["metrics"]["weighted_f1"] == 1.0
    assert r["sha256"] == sha256_file(npz) and r["models"]["face_expression"] == manifest.entry("face_expression").sha256
    shuffled = run_eval(capsys, "face-fer2013", "--data", str(npz), "--split", "val")
    assert shuffled["metrics"]["accuracy"] < 0.6


def test_voice_emodb_folder_searched_recursively(tmp_path, capsys, assets, manifest) -> None:
    from mmdesk.perception.voice import VoiceEmotion
    from mmdesk.perception.voice_features import load_audio

    model = VoiceEmotion(manifest, "cpu")
    letter = {LABELS.index(c): k for k, c in EMODB_TO_COMMON.items()}
    (tmp_path / "a" / "b").mkdir(parents=True)
    written: set[str] = set()  # two sources can map to one name (they differ only in the emotion letter)
    for src in sorted((assets / "voice" / "emodb" / "wav").glob("*.wav"))[:12]:
        pred = int(model.predict_features(model.features(load_audio(src))).argmax())
        if pred in letter:  # name the copy with the model's own answer
            stem = src.stem[:5] + letter[pred] + src.stem[6]
            shutil.copy(src, tmp_path / "a" / "b" / f"{stem}.wav")
            written.add(stem)
    shutil.copy(sorted((assets / "voice" / "emodb" / "wav").glob("*L*.wav"))[0], tmp_path / "03a01Lb.wav")
    r = run_eval(capsys, "voice-emodb", "--data", str(tmp_path))
    assert r["n"] == len(written) >= 6 and r["metrics"]["accuracy"] == 1.0 and r["metrics"]["uar"] == 1.0
    assert any("1 file(s) skipped" in n for n in r["notes"])


def test_text_meld_weighted_f1(tmp_path, capsys, assets, manifest) -> None:
    from mmdesk.perception.text import TextEmotion
    from mmdesk.training.datasets import meld_items

    model = TextEmotion(manifest, "cpu")
    back = {LABELS.index(c): m for m, c in MELD_TO_COMMON.items()}
    rows = list(csv.DictReader((assets / "text" / "meld" / "dev_sent_emo.csv").open(encoding="utf-8")))[:25]
    out = tmp_path / "dev_sent_emo.csv"

    def write() -> None:
        with out.open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    write()
    # label each utterance with the model's own answer, judged after the previous line as eval does
    answers = {(it.dialogue, it.utterance): back[int(np.argmax(model.predict(it.text, it.previous)[0]))]
               for it in meld_items(out)}
    for r in rows:
        r["Emotion"] = answers[(int(r["Dialogue_ID"]), int(r["Utterance_ID"]))]
    write()
    r = run_eval(capsys, "text-meld", "--data", str(out))
    assert r["n"] == 25 and r["metrics"]["weighted_f1"] == 1.0 and r["sha256"] == sha256_file(out)
    assert r["models"]["text_emotion"] == manifest.entry("text_emotion").sha256


def _mustard_fixture(path, items, labels, rename: bool) -> None:
    """MUStARD layout; renamed ids are not the stored cross-validated items, so the shipped model is scored."""
    body = {(f"fixture_{i}" if rename else it.id): {
        "utterance": it.utterance, "speaker": it.speaker, "context": list(it.context),
        "context_speakers": list(it.context_speakers), "show": it.show, "sarcasm": bool(y)}
        for i, (it, y) in enumerate(zip(items, labels))}
    path.write_text(json.dumps(body), encoding="utf-8")


def test_sarcasm_mustard_known_answers(tmp_path, capsys, assets, manifest) -> None:
    from mmdesk.perception.sarcasm import Sarcasm
    from mmdesk.training.sarcasm_data import context_text, mustard_items

    items = mustard_items(assets / "text" / "mustard" / "sarcasm_data.json")[::23]  # 30 items
    model = Sarcasm(manifest, "cpu")
    p = model.predict_batch([it.utterance for it in items], [context_text(it, "last") for it in items])
    own = (p >= 0.5).astype(int)
    assert 0 < own.sum() < len(own)
    data = tmp_path / "own.json"
    _mustard_fixture(data, items, own, rename=True)
    r = run_eval(capsys, "sarcasm-mustard", "--data", str(data))
    assert r["n"] == 30 and r["metrics"]["f1"] == 1.0 and r["metrics"]["accuracy"] == 1.0
    assert r["sha256"] == sha256_file(data) and r["models"]["sarcasm"] == manifest.entry("sarcasm").sha256
    assert set(r["rows"]) == {"shipped model"}
    flipped = tmp_path / "flipped.json"
    _mustard_fixture(flipped, items, 1 - own, rename=True)
    assert run_eval(capsys, "sarcasm-mustard", "--data", str(flipped))["metrics"]["accuracy"] == 0.0
    shuffled = tmp_path / "shuffled.json"
    _mustard_fixture(shuffled, items, np.random.default_rng(0).permutation(own), rename=True)
    assert 0.2 < run_eval(capsys, "sarcasm-mustard", "--data", str(shuffled))["metrics"]["accuracy"] < 0.8


def test_sarcasm_mustard_uses_stored_cross_validation_on_mustard_items(tmp_path, capsys, assets, manifest) -> None:
    """On MUStARD's own items the headline is the 5-fold figure, scored against the labels in --data:
    the stored predictions on their true labels give the recorded figure; flipped labels give its complement."""
    from mmdesk.training.sarcasm_data import mustard_items

    src = assets / "text" / "mustard" / "sarcasm_data.json"
    r = run_eval(capsys, "sarcasm-mustard", "--data", str(src))
    recorded = manifest.entry("sarcasm").source["metrics"]["cv5"]
    assert r["n"] == 690 and set(r["rows"]) == {"shipped model", "5-fold cross-validated"}
    assert abs(r["metrics"]["f1"] - recorded["f1"]) < 1e-3 and abs(r["metrics"]["accuracy"] - recorded["accuracy"]) < 1e-3
    assert r["rows"]["shipped model"]["accuracy"] > r["metrics"]["accuracy"]  # fit on its own training data
    items = mustard_items(src)
    flipped = tmp_path / "flipped.json"
    _mustard_fixture(flipped, items, [1 - it.label for it in items], rename=False)
    r2 = run_eval(capsys, "sarcasm-mustard", "--data", str(flipped))
    assert abs(r2["metrics"]["accuracy"] - (1 - recorded["accuracy"])) < 1e-3


def test_av_ravdess_rows(tmp_path, capsys, assets, pack_dir) -> None:
    src = sorted((assets / "av" / "ravdess_actor05").glob("01-*.mp4"))[:2]
    for p in src:
        shutil.copy(p, tmp_path / p.name)
    r = run_eval(capsys, "av-ravdess", "--data", str(tmp_path))
    assert r["n"] == 2 and set(r["rows"]) == {"face-only", "voice-only", "fused", "head face-only",
                                              "head voice-only"}
    assert all(0.0 <= row["accuracy"] <= 1.0 and row["accuracy"] * 2 == int(row["accuracy"] * 2)
               for row in r["rows"].values())
    # per window: a 3.x s clip gives about 6 windows at the default 2 s / 0.5 s hop; every one has a face
    rows = r["rows"]
    assert 8 <= rows["fused"]["windows"] <= 16 and rows["head face-only"]["windows"] == rows["face-only"]["windows"]
    hits = [row["window_accuracy"] * row["windows"] for row in rows.values()]  # whole windows, to 4 decimals
    assert all(0 <= h <= n["windows"] and abs(h - round(h)) < 0.01 for h, n in zip(hits, rows.values()))
    assert r["metrics"] == {"accuracy": rows["face-only"]["accuracy"]}
    assert any(n.startswith("fused: the fusion head") for n in r["notes"])


@pytest.mark.parametrize("args,needle", [
    (["sarcasm-mustard", "--data", "README.md"], "is not readable JSON"),
    (["face-fer2013", "--data", "/nonexistent.npz"], "does not exist"),
    (["text-meld", "--data", "README.md"], "lacks the columns"),
    (["voice-emodb", "--data", "docs"], "no EmoDB-named wav files"),
])
def test_eval_errors_are_one_line(capsys, pack_dir, args, needle) -> None:
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
