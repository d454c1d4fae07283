"""The sarcasm model: MUStARD reading, folds, pair tokenisation, committed adapters, ONNX/torch parity,
the runtime class, and a tiny training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmdesk.inference.manifest import load_manifest, sha256_file
from mmdesk.perception.text_pairs import pad_batch, pair_ids, plain_tokenizer
from mmdesk.training.sarcasm_data import (
    binary_metrics,
    context_text,
    irony_items,
    mustard_items,
    stratified_folds,
)

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
ADAPTERS = MODELS / "sarcasm_adapters.npz"
META = MODELS / "sarcasm.json"


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads(META.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def manifest(pack_dir):
    return load_manifest(pack_dir)


@pytest.fixture(scope="module")
def tokenizer(manifest):
    from mmdesk.inference.manifest import verify_file

    return plain_tokenizer(str(verify_file(manifest, "text_tokenizer")))


@pytest.fixture(scope="module")
def mustard(assets):
    return mustard_items(assets / "text" / "mustard" / "sarcasm_data.json")


def test_mustard_reader_real_file(mustard):
    assert len(mustard) == 690 and sum(it.label for it in mustard) == 345
    it = mustard[0]
    assert it.id == "1_60" and it.context and it.speaker == "SHELDON" and it.show == "BBT"
    assert context_text(it, "none") == "" and context_text(it, "last") == it.context[-1]
    assert context_text(it, "all") == " ".join(it.context)
    assert len({m.key() for m in mustard}) == 690


def test_irony_reader_real_files(assets):
    items = irony_items(assets / "text" / "tweeteval" / "irony")
    assert len(items) == 2862 + 955 and {it.label for it in items} == {0, 1}


def test_stratified_folds_are_balanced_and_seeded():
    y = np.array([0] * 345 + [1] * 345)
    folds = stratified_folds(y, 5, seed=0)
    assert np.array_equal(folds, stratified_folds(y, 5, seed=0))
    assert not np.array_equal(folds, stratified_folds(y, 5, seed=1))
    for f in range(5):
        assert (folds == f).sum() == 138 and y[folds == f].sum() == 69


def test_binary_metrics_known_answer():
    m = binary_metrics(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert m["accuracy"] == 0.75 and m["f1"] == round(2 / 3, 4)


def test_pair_ids_layout_and_truncation(tokenizer):
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    utt = tokenizer.encode("oh great, another meeting", add_special_tokens=False).ids
    ctx = tokenizer.encode("we have a meeting at six", add_special_tokens=False).ids
    assert pair_ids(tokenizer, "oh great, another meeting") == [cls, *utt, sep]
    assert pair_ids(tokenizer, "oh great, another meeting", "we have a meeting at six") == [cls, *ctx, sep, *utt, sep]
    long_ctx = " ".join(f"word{i}" for i in range(300))
    ids = pair_ids(tokenizer, "oh great, another meeting", long_ctx, max_tokens=32)
    assert len(ids) == 32 and ids[-len(utt) - 1:-1] == utt  # the utterance is kept whole, the context's tail fills up
    full_ctx = tokenizer.encode(long_ctx, add_special_tokens=False).ids
    assert ids[1:32 - len(utt) - 2] == full_ctx[-(32 - len(utt) - 3):]
    ids, mask = pad_batch([[1, 2, 3], [4]])
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_committed_adapters_and_sidecar(meta):
    assert meta["role"] == "sarcasm" and meta["file"] == ADAPTERS.name
    assert meta["sha256"] == sha256_file(ADAPTERS) and ADAPTERS.stat().st_size < 4_000_000
    assert meta["labels"] == ["not_sarcastic", "sarcastic"]
    assert [i["name"] for i in meta["inputs"]] == ["input_ids", "attention_mask"]
    assert meta["outputs"] == [{"name": "probs", "shape": ["batch", 2], "dtype": "float32"}]
    assert meta["command"].startswith("mmdesk train sarcasm") and meta["preprocessing"]["speaker_names"] is False
    assert (MODELS / "cards" / "sarcasm.md").is_file()


def test_recorded_cv_figure_matches_the_stored_out_of_fold_predictions(meta, mustard):
    cv = meta["metrics"]["cv_predictions"]
    y = np.array([it.label for it in mustard])
    rows = np.array([cv["p_sarcastic"][it.key()] for it in mustard])  # KeyError if an item is missing
    folds, p = rows[:, 0].astype(int), rows[:, 1]
    assert np.bincount(folds).tolist() == [138] * 5
    f1 = np.mean([binary_metrics(y[folds == f], (p[folds == f] >= 0.5).astype(int))["f1"] for f in range(5)])
    assert abs(f1 - meta["metrics"]["cv5"]["f1"]) < 1e-3


def test_recorded_calibration_is_refitted_from_the_stored_predictions(meta, mustard):
    """The temperature in the json is the one the stored out-of-fold predictions give, and it makes them
    calibrated: every bin's mean probability within 0.06 of its sarcastic rate, NLL below a coin's."""
    from mmdesk.core.calibration import (
        fit_temperature,
        nll,
        reliability,
        temperature_scale,
    )

    cv = meta["metrics"]["cv_predictions"]["p_sarcastic"]
    y = np.array([it.label for it in mustard])
    p = np.array([cv[it.key()][1] for it in mustard])
    t = fit_temperature(p, y)
    assert t == pytest.approx(meta["preprocessing"]["temperature"], rel=1e-3) and t > 2  # far too sure raw
    q = temperature_scale(p, t)
    assert nll(q, y) < np.log(2) < nll(p, y)
    assert ((q >= 0.5) == (p >= 0.5)).all()  # no decision changes
    for row in reliability(q, y):
        if row["n"] >= 30:
            assert abs(row["mean_p"] - row["positive_rate"]) < 0.06, row
    assert meta["metrics"]["calibration"]["reliability_after"] == reliability(q, y)


def test_temperature_fit_recovers_a_known_overconfidence():
    from mmdesk.core.calibration import fit_temperature, temperature_scale

    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)  # calibrated at T = 1 on logit z
    for t_true in (0.5, 1.0, 4.0):
        over = temperature_scale(1 / (1 + np.exp(-z)), 1 / t_true)  # logits multiplied by t_true
        assert fit_temperature(over, y) == pytest.approx(t_true, rel=0.08)
    assert temperature_scale(0.5, 7.0) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def torch_model(pack_dir):
    pytest.importorskip("torch")
    from mmdesk.training.minilm_lora import load_finetuned

    model, _ = load_finetuned(ADAPTERS)
    return model


def test_pack_onnx_matches_torch(manifest, tokenizer, torch_model, mustard):
    """The pack's graph (adapters beside the frozen MiniLM read from the text encoder's weights file, int8
    word-embedding table): 64 MUStARD pairs one by one against the float32 torch model with merged adapters.
    On all 690: mean |dp| 0.00005, max 0.006, every decision the same (the dynamic-int8 graph shipped
    before: 0.0009, 0.085)."""
    import torch

    from mmdesk.inference.runtime import open_model

    onnx_model = open_model(manifest, "sarcasm", "cpu")  # checks sha256 and the IO against the manifest
    seqs = [pair_ids(tokenizer, it.utterance, context_text(it, "last")) for it in mustard[:64]]
    got = np.concatenate([onnx_model.run(dict(zip(("input_ids", "attention_mask"), pad_batch([s]))))[0] for s in seqs])
    with torch.no_grad():
        ref = np.concatenate([torch_model(*map(torch.from_numpy, pad_batch([s]))).numpy() for s in seqs])
    assert got.shape == (64, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    diff = np.abs(got - ref)
    assert diff.mean() < 0.001 and diff.max() < 0.03
    assert ((got[:, 1] >= 0.5) == (ref[:, 1] >= 0.5)).mean() >= 0.98


def test_runtime_class(manifest, mustard):
    from mmdesk.perception.sarcasm import Sarcasm

    model = Sarcasm(manifest, "cpu")
    assert model.context_mode == "last" and model.uses_context
    assert model.temperature == manifest.entry("sarcasm").preprocessing["temperature"] > 1
    utts = [it.utterance for it in mustard[:6]]
    ctxs = [it.context[-1] for it in mustard[:6]]
    batch = model.predict_batch(utts, ctxs)
    single = np.array([model.predict(u, c) for u, c in zip(utts, ctxs)])
    assert batch.shape == (6,) and np.all((0 <= batch) & (batch <= 1))
    np.testing.assert_allclose(batch, single, atol=1e-4)  # padding does not change an answer
    assert model.predict_batch(["", "   "]).tolist() == [0.0, 0.0]
    assert 0 <= model.predict("x" * 100_000, "y" * 100_000) <= 1  # long text is cut, not an error
    with pytest.raises(ValueError):
        model.predict_batch(["a", "b"], ["c"])
    # the answer is the graph's P(sarcastic) with its logit divided by the temperature: same side of 0.5
    from mmdesk.core.calibration import temperature_scale

    raw = np.concatenate([model.model.run(dict(zip(("input_ids", "attention_mask"), pad_batch([model.ids(u, c)]))))[0]
                          for u, c in zip(utts, ctxs)])[:, 1]
    np.testing.assert_allclose(batch, temperature_scale(raw, model.temperature), atol=1e-4)
    assert ((batch >= 0.5) == (raw >= 0.5)).all() and np.all(np.abs(batch - 0.5) <= np.abs(raw - 0.5) + 1e-6)


@pytest.mark.slow
def test_tiny_training_run(tmp_path, assets):
    pytest.importorskip("torch")
    from mmdesk.training.sarcasm import train_sarcasm

    data = json.loads((assets / "text" / "mustard" / "sarcasm_data.json").read_text(encoding="utf-8"))
    keys = sorted(data)[:5] + sorted(data)[-5:]
    small = tmp_path / "mustard.json"
    small.write_text(json.dumps({k: data[k] for k in keys}), encoding="utf-8")
    meta = train_sarcasm(small, None, tmp_path / "out", epochs=1, device="cpu", log=lambda _m: None)
    assert (tmp_path / "out" / "sarcasm_adapters.npz").is_file()
    assert meta["sha256"] == sha256_file(tmp_path / "out" / "sarcasm_adapters.npz")
    assert len(meta["metrics"]["cv_predictions"]["p_sarcastic"]) == 10
    assert meta["training"]["recipe"]["irony"] is False and 0 <= meta["metrics"]["cv5"]["accuracy"] <= 1
