"""The committed voice emotion model: files, IO contract, torch/ONNX parity, a smoke check, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmdesk.core.labels import LABELS
from mmdesk.inference.manifest import ModelEntry, TensorSpec, check_io, sha256_file
from mmdesk.perception import voice_features as vf

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
ONNX = MODELS / "voice_emotion.onnx"
META = MODELS / "voice_emotion.json"
PT = MODELS / "voice_emotion.pt"

torch = pytest.importorskip("torch")  # the eager model is training-side only


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads(META.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def session():
    from mmdesk.training.onnx_export import ort_session

    return ort_session(ONNX)


@pytest.fixture(scope="module")
def torch_model():
    from mmdesk.training.voice import load_torch_voice_model

    return load_torch_voice_model(PT)


@pytest.fixture(scope="module")
def emodb_files(assets) -> list[Path]:
    files = sorted((assets / "voice" / "emodb" / "wav").glob("*.wav"))
    if not files:
        pytest.skip("no EmoDB wav files in the shared assets")
    return files


def test_committed_files_and_sha256(meta):
    assert ONNX.is_file() and META.is_file() and PT.is_file()
    assert meta["role"] == "voice_emotion"
    assert meta["sha256"] == sha256_file(ONNX)
    assert meta["labels"] == list(LABELS)
    assert ONNX.stat().st_size < 2_000_000  # small, and no external data file beside it
    assert not list(MODELS.glob("voice_emotion.onnx.data")) and not list(MODELS.glob("voice_emotion.onnx_data"))
    assert meta["command"].startswith("mmdesk train voice")
    assert torch.load(PT, map_location="cpu", weights_only=True)["onnx_sha256"] == meta["sha256"]
    card = MODELS / "cards" / "voice_emotion.md"
    assert card.is_file() and "leave-one-speaker-out" in card.read_text(encoding="utf-8")


def test_onnx_is_self_contained_opset_17_plus(meta):
    import onnx

    proto = onnx.load(str(ONNX), load_external_data=False)
    assert all(i.data_location != onnx.TensorProto.EXTERNAL for i in proto.graph.initializer)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    onnx.checker.check_model(proto)


def test_io_matches_json_and_manifest_check(meta, session):
    assert meta["inputs"] == [{"name": "logmel", "shape": ["batch", 64, "frames"], "dtype": "float32"}]
    dim = meta["embedding"]["dim"]
    assert meta["outputs"] == [{"name": "probs", "shape": ["batch", 7], "dtype": "float32"},
                               {"name": "frames", "shape": ["batch", "steps", dim], "dtype": "float32"}]
    assert meta["preprocessing"]["time_stride_frames"] == meta["embedding"]["time_stride_frames"]
    entry = ModelEntry.from_dict({**meta, "file": ONNX.name})
    actual_in = [TensorSpec(i.name, tuple(i.shape), "float32") for i in session.get_inputs()]
    actual_out = [TensorSpec(o.name, tuple(o.shape), "float32") for o in session.get_outputs()]
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    check_io(entry, ONNX, actual_in, actual_out)  # raises ModelError on mismatch


def test_preprocessing_matches_feature_code(meta):
    pre = meta["preprocessing"]
    vf.check_preprocessing(pre)
    assert pre["level"]["target_dbfs"] == vf.LEVEL_TARGET_DBFS and pre["log_floor"] == vf.LOG_FLOOR
    assert all(s > 0 for s in pre["std"])


def test_metrics_recorded(meta):
    lo = meta["metrics"]["loso"]
    assert len(lo["folds"]) == 9
    assert 0 <= lo["mean_accuracy"] <= 1 and 0 <= lo["mean_uar"] <= 1
    counts = meta["training"]["counts"]
    assert counts["emodb"]["surprised"] == 0 and counts["ravdess"]["surprised"] > 0


@pytest.mark.parametrize("seconds", [0.5, 2.0, 3.3])
@pytest.mark.parametrize("batch", [1, 4])
def test_torch_onnx_parity_on_real_features(meta, session, torch_model, emodb_files, seconds, batch):
    n = int(seconds * vf.SAMPLE_RATE)
    xs = []
    for path in emodb_files[:: max(1, len(emodb_files) // batch)][:batch]:
        y = vf.load_audio(path)
        y = np.pad(y, (0, max(0, n - len(y))))[:n]  # EmoDB files here are 2.0 s: pad / cut to the length
        xs.append(vf.features_for_model(y, meta["preprocessing"])[0])
    x = np.stack(xs)
    assert x.shape == (batch, 64, vf.frames_for(n))
    got, frames = session.run(["probs", "frames"], {"logmel": x})
    with torch.no_grad():
        ref, ref_frames = (t.numpy() for t in torch_model(torch.from_numpy(x)))
    assert got.shape == (batch, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(got - ref).max() < 1e-5
    steps = x.shape[2] // meta["embedding"]["time_stride_frames"]
    assert frames.shape == (batch, steps, meta["embedding"]["dim"]) and frames.dtype == np.float32
    assert np.abs(frames - ref_frames).max() < 1e-4


def test_smoke_accuracy_on_seen_emodb_files(meta, session, emodb_files):
    """Smoke check, not a metric: these files were in the final model's training data."""
    from mmdesk.core.labels import EMODB_TO_COMMON

    chosen = [p for p in emodb_files if p.stem[5] in EMODB_TO_COMMON][::8][:30]
    correct = 0
    for p in chosen:
        x = vf.features_for_model(vf.load_audio(p), meta["preprocessing"])
        pred = int(session.run(["probs"], {"logmel": x})[0].argmax())
        correct += LABELS[pred] == EMODB_TO_COMMON[p.stem[5]]
    assert correct / len(chosen) > 0.6, f"{correct}/{len(chosen)}"  # chance is about 1/6


def test_tiny_training_run_writes_consistent_files(assets, tmp_path):
    """One epoch on a handful of files per speaker, no LOSO: the whole write path in seconds."""
    from mmdesk.training.voice import load_torch_voice_model, train_voice

    meta = train_voice(assets / "voice" / "emodb" / "wav", assets / "voice" / "ravdess_actor05", tmp_path,
                       epochs=1, run_loso=False, log=lambda m: None, cache_dir=tmp_path / "cache",
                       limit_per_speaker=3)
    onnx_path = tmp_path / "voice_emotion.onnx"
    assert meta["sha256"] == sha256_file(onnx_path)
    written = json.loads((tmp_path / "voice_emotion.json").read_text(encoding="utf-8"))
    assert written["sha256"] == meta["sha256"] and written["training"]["data"]["utterances"] == 27
    assert meta["training"]["onnx_max_abs_diff_vs_torch"] < 1e-5
    assert load_torch_voice_model(tmp_path / "voice_emotion.pt").config == written["training"]["model"]
    assert not list(tmp_path.glob("*.tmp"))
