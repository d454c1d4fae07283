"""`mmdesk train fusion` end to end on a miniature of every corpus it reads, plus one aligned clip."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from mmdesk.core.labels import LABELS  # noqa: E402
from mmdesk.training.datasets import emodb_label  # noqa: E402


@pytest.fixture(scope="module")
def mini(tmp_path_factory, assets: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mini")
    z = np.load(assets / "face" / "fer2013_48px_trainval.npz")
    out = {}
    for split in ("train", "val"):
        idx = np.concatenate([np.flatnonzero(z[f"{split}_labels"] == k)[:3] for k in range(7)])
        out[f"{split}_images"], out[f"{split}_labels"] = z[f"{split}_images"][idx], z[f"{split}_labels"][idx]
    np.savez(d / "fer.npz", **out)
    emodb = d / "emodb"
    emodb.mkdir()
    wavs = sorted((assets / "voice" / "emodb" / "wav").glob("*.wav"))
    for speaker in ("03", "08"):  # 03 is held out by the trainer
        seen: set[int] = set()
        for w in wavs:
            y = emodb_label(w)
            if w.name.startswith(speaker) and y is not None and y not in seen:
                seen.add(y)
                shutil.copy(w, emodb / w.name)
    meld = d / "meld"
    meld.mkdir()
    for split in ("train", "dev"):
        with open(assets / "text" / "meld" / f"{split}_sent_emo.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        keep, counts = [], {}
        for r in rows:
            if counts.get(r["Emotion"], 0) < 2:
                counts[r["Emotion"]] = counts.get(r["Emotion"], 0) + 1
                keep.append(r)
        with open(meld / f"{split}_sent_emo.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(keep)
    data = json.loads((assets / "text" / "mustard" / "sarcasm_data.json").read_text(encoding="utf-8"))
    (d / "mustard.json").write_text(json.dumps(dict(list(data.items())[:24])), encoding="utf-8")
    rav = d / "ravdess_av"
    rav.mkdir()
    shutil.copy(assets / "av" / "ravdess_actor05" / "01-01-04-01-02-01-05.mp4", rav)
    return {"fer": d / "fer.npz", "emodb": emodb, "meld": meld, "mustard": d / "mustard.json", "ravdess_av": rav}


@pytest.mark.slow
def test_train_fusion_writes_a_checked_model_with_its_provenance(mini, pack_dir: Path, tmp_path: Path) -> None:
    from mmdesk.fusion.head import encoder_identity
    from mmdesk.inference.manifest import load_manifest
    from mmdesk.training.fusion import ENCODERS, FusionData, _banks, load_checkpoint, train_fusion
    from mmdesk.training.fusion_train import TrainSettings
    from mmdesk.training.onnx_export import ort_session

    manifest = load_manifest(pack_dir)
    data = FusionData(fer=mini["fer"], emodb=mini["emodb"], ravdess=None, meld=mini["meld"],
                      mustard=mini["mustard"], irony=(), aligned=(("ravdess", mini["ravdess_av"]),),
                      faces_per_class=3)
    logs: list[str] = []
    body = train_fusion(manifest, data, tmp_path / "out", tmp_path / "cache",
                        settings=TrainSettings(steps=20, batch=16), log=logs.append)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"fusion.onnx", "fusion.json", "fusion.pt"}
    side = json.loads((out / "fusion.json").read_text())
    assert side == body and side["role"] == "fusion" and side["labels"] == list(LABELS)
    assert side["preprocessing"]["dims"] == {"face": 128, "voice": 384, "text": 384}
    assert side["preprocessing"]["trained_with"] == {r: encoder_identity(manifest.entry(r)) for r in ENCODERS}
    assert "label-paired" in side["preprocessing"]["trained_on"]
    cal = side["metrics"]["sarcasm_calibration"]  # fitted on the held-out sarcasm texts, applied at run time
    assert side["preprocessing"]["sarcasm_temperature"] == cal["temperature"] > 0 and cal["nll_after"] <= cal["nll_before"]
    assert side["training"]["onnx_max_abs_diff_vs_torch"] < 1e-4
    assert side["training"]["banks"]["face"] == 21  # 3 per label
    (key, aligned), = side["training"]["aligned"].items()
    assert key.startswith("ravdess:") and aligned["clips"] == 1 and aligned["windows"] >= 2
    metrics = side["metrics"]["held_out_label_paired"]
    assert set(metrics) >= {"face", "voice", "text", "face+voice+text", "sarcasm_text"}
    assert all(0.0 <= v.get("accuracy", v.get("f1", 0)) <= 1.0 for v in metrics.values())
    sess = ort_session(out / "fusion.onnx")
    assert [i.name for i in sess.get_inputs()] == ["face", "face_mask", "voice", "voice_mask", "text", "text_mask"]
    head = load_checkpoint(out / "fusion.pt")
    assert head.config.face_dim == 128
    # a second run reuses the token banks
    logs.clear()
    tr, _, counts = _banks(manifest, data, tmp_path / "cache", 0, logs.append)
    assert any(line.startswith("token banks from cache") for line in logs) and counts == side["training"]["banks"]
