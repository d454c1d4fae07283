"""The committed text emotion head: files, IO contract, torch/ONNX parity, data reading, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmdesk.core.labels import LABELS
from mmdesk.inference.manifest import ModelEntry, TensorSpec, check_io, sha256_file
from mmdesk.training.datasets import clean_text, meld_items, read_text_robust

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
ONNX = MODELS / "text_emotion.onnx"
META = MODELS / "text_emotion.json"

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads(META.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def session():
    from mmdesk.training.onnx_export import ort_session

    return ort_session(ONNX)


def _feeds(meta: dict, emb: np.ndarray, ctx: np.ndarray) -> dict[str, np.ndarray]:
    feeds = {"embedding": emb}
    if any(i["name"] == "context" for i in meta["inputs"]):
        feeds["context"] = ctx
    return feeds


def test_committed_files_and_sha256(meta):
    assert ONNX.is_file() and META.is_file()
    assert meta["role"] == "text_emotion"
    assert meta["sha256"] == sha256_file(ONNX)
    assert meta["labels"] == list(LABELS)
    assert ONNX.stat().st_size < 2_000_000
    assert meta["command"].startswith("mmdesk train text")
    card = MODELS / "cards" / "text_emotion.md"
    assert card.is_file() and "model selection" in card.read_text(encoding="utf-8")


def test_onnx_is_self_contained_opset_17_plus():
    import onnx

    proto = onnx.load(str(ONNX), load_external_data=False)
    assert all(i.data_location != onnx.TensorProto.EXTERNAL for i in proto.graph.initializer)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    onnx.checker.check_model(proto)


def test_io_matches_json_and_manifest_check(meta, session):
    assert meta["inputs"][0] == {"name": "embedding", "shape": ["batch", 384], "dtype": "float32"}
    assert [i["name"] for i in meta["inputs"]] in (["embedding"], ["embedding", "context"])
    assert meta["outputs"] == [{"name": "probs", "shape": ["batch", 7], "dtype": "float32"}]
    entry = ModelEntry.from_dict({**meta, "file": ONNX.name})
    actual_in = [TensorSpec(i.name, tuple(i.shape), "float32") for i in session.get_inputs()]
    actual_out = [TensorSpec(o.name, tuple(o.shape), "float32") for o in session.get_outputs()]
    check_io(entry, ONNX, actual_in, actual_out)
    pre = meta["preprocessing"]
    assert pre["max_tokens"] == 256 and pre["normalize"] == "l2" and pre["embedding_dim"] == 384


def test_metrics_recorded(meta):
    dev = meta["metrics"]["dev"]
    assert set(dev["per_class_f1"]) == set(LABELS)
    assert 0 < dev["weighted_f1"] <= 1 and 0 < dev["macro_f1"] <= 1
    assert meta["training"]["selected"]["epochs"] >= 1


@pytest.mark.parametrize("batch", [1, 4, 33])
def test_torch_onnx_parity(meta, session, batch):
    from mmdesk.training.text_head import load_torch_text_head

    model = load_torch_text_head(ONNX)
    rng = np.random.default_rng(batch)
    emb = rng.standard_normal((batch, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)  # like the encoder's output
    ctx = np.roll(emb, 1, axis=0)
    got = session.run(["probs"], _feeds(meta, emb, ctx))[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(emb), torch.from_numpy(ctx) if model.use_context else None).numpy()
    assert got.shape == (batch, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(got - ref).max() < 1e-5


def test_clean_text_fixes_mojibake():
    assert clean_text("You must\u2019ve had  your hands full\u2026") == "You must've had your hands full..."
    assert clean_text("don\x92t") == "don't"
    assert clean_text("itâ€™s fine") == "it's fine"
    assert clean_text("Â Hello\u00a0there ") == "Hello there"
    assert clean_text("Café") == "Café"


def test_read_text_robust_falls_back_to_cp1252(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes("Utterance\nIt\x92s ok\n".encode("latin-1"))
    assert clean_text(read_text_robust(p).splitlines()[1]) == "It's ok"


def test_meld_reader_real_files(assets):
    items = meld_items(assets / "text" / "meld" / "dev_sent_emo.csv")
    assert len(items) == 1109
    assert {it.label for it in items} == set(range(len(LABELS)))
    assert items[0].previous == "" and items[1].previous == items[0].text
    assert not any("\u2019" in it.text or "\x92" in it.text for it in items)


def test_tiny_training_run(tmp_path, assets):
    """A few hundred utterances with a stand-in encoder folder check the whole path quickly."""
    from mmdesk.training import text_head as th

    encoder = _encoder_or_skip()
    meta = th.train_text(assets / "text" / "meld", tmp_path, encoder=encoder, epochs=2, log=lambda m: None,
                         cache_dir=tmp_path / "cache", limit=200,
                         grid=({"use_context": False, "hidden": 32, "weight_power": 0.5, "dropout": 0.1},))
    onnx_path = tmp_path / "text_emotion.onnx"
    assert meta["sha256"] == sha256_file(onnx_path)
    assert meta["training"]["onnx_max_abs_diff_vs_torch"] < 1e-5
    assert json.loads((tmp_path / "text_emotion.json").read_text())["sha256"] == meta["sha256"]


def _encoder_or_skip() -> Path:
    """all-MiniLM-L6-v2 from the model pack's download cache (filled by `mmdesk models build`)."""
    from mmdesk.errors import MmdeskError
    from mmdesk.training.text_head import find_encoder

    try:
        return find_encoder(log=lambda m: None)
    except MmdeskError as exc:
        pytest.skip(f"all-MiniLM-L6-v2 not available: {exc}")
