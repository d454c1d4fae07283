"""The text emotion model: MELD reading and cleaning, committed adapters, ONNX/torch parity through the
pack, the runtime class, and a tiny fine-tuning run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mmdesk.core.labels import LABELS
from mmdesk.inference.manifest import load_manifest, sha256_file
from mmdesk.training.datasets import clean_text, meld_items, read_text_robust

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
ADAPTERS = MODELS / "text_emotion_adapters.npz"
META = MODELS / "text_emotion.json"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads(META.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def manifest(pack_dir):
    return load_manifest(pack_dir)


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


def test_committed_adapters_and_sidecar(meta):
    assert meta["role"] == "text_emotion" and meta["file"] == ADAPTERS.name
    assert meta["sha256"] == sha256_file(ADAPTERS) and ADAPTERS.stat().st_size < 4_000_000
    assert meta["labels"] == list(LABELS)
    assert [i["name"] for i in meta["inputs"]] == ["input_ids", "attention_mask"]
    assert meta["outputs"] == [{"name": "probs", "shape": ["batch", 7], "dtype": "float32"}]
    assert meta["command"].startswith("mmdesk train text")
    dev = meta["metrics"]["dev"]
    assert set(dev["per_class_f1"]) == set(LABELS) and dev["weighted_f1"] > 0.5525  # beats the frozen head
    assert (MODELS / "cards" / "text_emotion.md").is_file()


@pytest.fixture(scope="module")
def torch_model():
    pytest.importorskip("torch")
    from mmdesk.training.minilm_lora import load_finetuned

    model, _ = load_finetuned(ADAPTERS)
    return model


def test_pack_onnx_matches_torch(manifest, torch_model, assets):
    """The pack's graph: the adapters beside the frozen MiniLM (which it reads from the text encoder's weights
    file) and an int8 word-embedding table; 64 MELD dev pairs one by one (as at run time) against the float32
    torch model with merged adapters. On all 1,109 dev pairs: mean |dp| 0.0005, max 0.012, argmax agreement
    0.998 (the dynamic-int8 graph shipped before: 0.008, 0.14, 0.964)."""
    import torch

    from mmdesk.inference.manifest import verify_file
    from mmdesk.inference.runtime import open_model
    from mmdesk.perception.text_pairs import pad_batch, pair_ids, plain_tokenizer

    onnx_model = open_model(manifest, "text_emotion", "cpu")  # checks sha256 and the IO against the manifest
    tok = plain_tokenizer(str(verify_file(manifest, "text_tokenizer")))
    seqs = [pair_ids(tok, it.text, it.previous) for it in meld_items(assets / "text" / "meld" / "dev_sent_emo.csv")[:64]]
    got = np.concatenate([onnx_model.run(dict(zip(("input_ids", "attention_mask"), pad_batch([s]))))[0] for s in seqs])
    with torch.no_grad():
        ref = np.concatenate([torch_model(*map(torch.from_numpy, pad_batch([s]))).numpy() for s in seqs])
    assert got.shape == (64, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    diff = np.abs(got - ref)
    assert diff.mean() < 0.002 and diff.max() < 0.05
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.98
    ids, mask = pad_batch(seqs[:4])  # a padded batch gives the same answers
    assert np.abs(onnx_model.run({"input_ids": ids, "attention_mask": mask})[0] - got[:4]).max() < 1e-4


def test_runtime_uses_the_previous_line(manifest):
    from mmdesk.perception.text import TextEmotion

    model = TextEmotion(manifest, "cpu")
    assert model.uses_context
    alone, truncated = model.predict("Oh my God!")
    after, _ = model.predict("Oh my God!", "Someone just stole my car.")
    assert alone.shape == (7,) and abs(alone.sum() - 1) < 1e-5 and not truncated
    assert np.abs(alone - after).max() > 1e-3  # the context changes the answer
    assert model.predict("Oh my God!", "Someone just stole my car.")[0] is after  # cached
    _, truncated = model.predict("word " * 400)
    assert truncated


@pytest.mark.slow
def test_tiny_finetuning_run(tmp_path, assets):
    pytest.importorskip("torch")
    from mmdesk.training.text_finetune import train_text_finetune

    src = assets / "text" / "meld"
    for name, n in (("train_sent_emo.csv", 32), ("dev_sent_emo.csv", 16)):
        rows = list(csv.DictReader(read_text_robust(src / name).splitlines()))[:n]
        with (tmp_path / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    meta = train_text_finetune(tmp_path, tmp_path / "out", epochs=1, device="cpu", log=lambda _m: None)
    assert meta["sha256"] == sha256_file(tmp_path / "out" / "text_emotion_adapters.npz")
    assert meta["training"]["best_epoch"] == 1 and 0 <= meta["metrics"]["dev"]["weighted_f1"] <= 1
