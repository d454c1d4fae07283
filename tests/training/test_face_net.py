"""The project's FER2013 ResNet (``mmdesk train face``): committed files, IO contract, torch/ONNX parity on
real FER2013 val faces, accuracy on unseen faces, augmentation, and a tiny run of the whole write path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmdesk.inference.manifest import ModelEntry, TensorSpec, check_io, sha256_file

torch = pytest.importorskip("torch")
from mmdesk.training import face_net as fn

MODELS = Path(__file__).resolve().parents[2] / "models"
ONNX = MODELS / f"{fn.FILE_STEM}.onnx"
META = MODELS / f"{fn.FILE_STEM}.json"
PT = MODELS / f"{fn.FILE_STEM}.pt"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads(META.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def session():
    from mmdesk.training.onnx_export import ort_session

    return ort_session(ONNX)


@pytest.fixture(scope="module")
def torch_model():
    return fn.load_torch_face_model(PT)


@pytest.fixture(scope="module")
def fer(assets: Path) -> fn.FerData:
    path = assets / "face" / "fer2013_48px_trainval.npz"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return fn.load_fer(path)


def _sample(n: int, total: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))  # val is sorted by label


def test_committed_files_and_io(meta, session):
    assert meta["sha256"] == sha256_file(ONNX)
    assert torch.load(PT, map_location="cpu", weights_only=True)["onnx_sha256"] == meta["sha256"]
    assert meta["role"] == "face_expression" and meta["command"].startswith("mmdesk train face")
    assert meta["labels"] == ["angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral"]
    dim = meta["embedding"]["dim"]
    assert meta["inputs"] == [{"name": "image", "shape": ["batch", 1, 48, 48], "dtype": "float32"}]
    assert meta["outputs"] == [{"name": "probs", "shape": ["batch", 7], "dtype": "float32"},
                               {"name": "embedding", "shape": ["batch", dim], "dtype": "float32"}]
    entry = ModelEntry.from_dict({**meta, "file": ONNX.name})
    check_io(entry, ONNX, [TensorSpec(i.name, tuple(i.shape), "float32") for i in session.get_inputs()],
             [TensorSpec(o.name, tuple(o.shape), "float32") for o in session.get_outputs()])
    assert not list(MODELS.glob(f"{fn.FILE_STEM}.onnx*data"))  # one self-contained file
    assert (MODELS / "cards" / "face_expression.md").read_text(encoding="utf-8").count(fn.FILE_STEM) >= 1


@pytest.mark.parametrize("batch", [1, 16])
def test_torch_onnx_parity_on_real_faces(batch, fer, session, torch_model):
    x = fn.preprocess(fer.val_images[_sample(batch, len(fer.val_images), seed=batch)])
    probs, emb = session.run(["probs", "embedding"], {"image": x})
    with torch.no_grad():
        t_probs, t_emb = (t.numpy() for t in torch_model(torch.from_numpy(x)))
    assert probs.shape == (batch, 7) and emb.shape == (batch, torch_model.net.embedding_dim)
    assert np.abs(probs - t_probs).max() < 1e-4 and np.abs(emb - t_emb).max() < 1e-4
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    single = session.run(["probs", "embedding"], {"image": x[:1]})
    assert np.abs(single[0] - probs[:1]).max() < 1e-5 and np.abs(single[1] - emb[:1]).max() < 1e-4


def test_mirror_averaging_is_symmetric(fer, session):
    """The graph averages a face and its mirror: a mirrored input gives the same outputs."""
    x = fn.preprocess(fer.val_images[_sample(4, len(fer.val_images), seed=3)])
    a = session.run(None, {"image": x})
    b = session.run(None, {"image": np.ascontiguousarray(x[..., ::-1])})
    assert np.abs(a[0] - b[0]).max() < 1e-5 and np.abs(a[1] - b[1]).max() < 1e-4


def test_accuracy_on_unseen_val_faces(fer, session, meta):
    """600 val faces (never trained on; chance ~0.25): well above chance and near the recorded figure."""
    idx = _sample(600, len(fer.val_images), seed=123)
    probs = session.run(["probs"], {"image": fn.preprocess(fer.val_images[idx])})[0]
    acc = float((probs.argmax(1) == fer.val_labels[idx]).mean())
    assert acc > 0.6 and abs(acc - meta["metrics"]["val"]["accuracy"]) < 0.06


def test_augment_keeps_shape_range_and_varies():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 48, 48)
    y = fn.augment(x, fn.FaceConfig(), gen)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert float((y - x).abs().mean()) > 0.01
    y2 = fn.augment(x, fn.FaceConfig(), torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)  # seeded: reproducible


def test_mix_batch_weights_match_the_mixed_pixels():
    """Mixup blends whole images, cutmix pastes one box; the returned label weight is the own image's share."""
    x = torch.stack([torch.full((1, 48, 48), float(i)) for i in range(16)])
    cfg = fn.FaceConfig(mix_prob=1.0)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(20):
        y, perm, lam = fn.mix_batch(x, cfg, gen, rng)
        assert perm is not None and 0 <= lam <= 1 and y.shape == x.shape
        own = (y == x).float().mean(dim=(1, 2, 3))
        moved = perm != torch.arange(16)
        if torch.allclose(y, lam * x + (1 - lam) * x[perm]):
            kinds.add("mixup")
        else:  # cutmix: each moved image keeps exactly lam of its pixels
            kinds.add("cutmix")
            np.testing.assert_allclose(own[moved].numpy(), lam, atol=1e-6)
    assert kinds == {"mixup", "cutmix"}
    plain = fn.mix_batch(x, fn.FaceConfig(mix_prob=0.0), gen, rng)
    assert plain[0] is x and plain[1] is None and plain[2] == 1.0


def test_dev_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(7), [100, 10, 100, 200, 100, 80, 120])
    tr, dev = fn.dev_split(labels, 0.1, seed=0)
    assert len(np.intersect1d(tr, dev)) == 0 and len(tr) + len(dev) == len(labels)
    assert np.bincount(labels[dev], minlength=7).tolist() == [10, 1, 10, 20, 10, 8, 12]


def test_tiny_training_run_writes_consistent_files(fer, tmp_path):
    """One SGD step on 256 faces, then the whole export/measure/write path."""
    rng = np.random.default_rng(0)
    tr = rng.choice(len(fer.train_images), 256, replace=False)
    va = rng.choice(len(fer.val_images), 32, replace=False)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, train_images=fer.train_images[tr], train_labels=fer.train_labels[tr],
             val_images=fer.val_images[va], val_labels=fer.val_labels[va])
    meta = fn.train_face(npz, tmp_path, epochs=1, device="cpu", max_steps=1, log=lambda m: None)
    assert meta["sha256"] == sha256_file(tmp_path / f"{fn.FILE_STEM}.onnx")
    assert meta["training"]["history"]["steps"] == 1 and meta["metrics"]["val"]["n"] == 32
    assert meta["training"]["onnx_max_abs_diff_vs_torch"] < 1e-4
    again = fn.train_face(npz, tmp_path / "again", weights=tmp_path / f"{fn.FILE_STEM}.pt", log=lambda m: None)
    assert again["sha256"] == meta["sha256"]  # finishing from the checkpoint reproduces the file


def test_runtime_face_expression_reads_the_candidate(meta, fer):
    """FaceExpression runs the candidate from its sidecar alone (size 48, FER label order, 256-d embedding):
    the switch in the card needs no runtime change."""
    from mmdesk.core.labels import LABELS
    from mmdesk.inference.manifest import Manifest
    from mmdesk.perception.face import FaceExpression

    entry = ModelEntry.from_dict({**meta, "file": ONNX.name})
    model = FaceExpression(Manifest(MODELS, {"face_expression": entry}), device="cpu", threads=1)
    assert model.size == 48 and model.embedding_dim == meta["embedding"]["dim"]
    crops = fer.val_images[_sample(8, len(fer.val_images), seed=5)]
    probs, emb = model.predict_with_embedding(crops)
    assert probs.shape == (8, len(LABELS)) and emb.shape == (8, model.embedding_dim)
    np.testing.assert_allclose(probs, model.predict(crops), atol=1e-6)
