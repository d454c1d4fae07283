"""Sarcasm from text + context: MiniLM fine-tuned with LoRA on MUStARD (optionally after TweetEval irony).

``mmdesk train sarcasm`` runs ``train_sarcasm``: stratified 5-fold cross-validation on MUStARD with the
chosen recipe (seed fixed; every fold trains a fresh model on four folds and predicts the fifth), then the
final model on all 690 items. With ``--search`` it first compares the recipes (context: none / the last
line / every line; with or without a first pass over TweetEval irony), by the same 5-fold F1, and reports
the speaker-name and show-independent variants. Writes ``sarcasm_adapters.npz`` (LoRA adapters + head,
built into ``sarcasm.onnx`` by the model pack) and ``sarcasm.json`` (metrics, out-of-fold predictions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmdesk.perception.text_pairs import (
    MAX_TOKENS,
    MAX_UTTERANCE,
    pair_ids,
    plain_tokenizer,
)
from mmdesk.training import minilm_lora as ml
from mmdesk.training.export_common import atomic_write_json, sha256_bytes
from mmdesk.training.sarcasm_data import (
    SARCASM_LABELS,
    SarcasmItem,
    binary_metrics,
    context_text,
    irony_items,
    mustard_items,
    stratified_folds,
    utterance_text,
)

ROLE = "sarcasm"
ADAPTERS = "sarcasm_adapters.npz"
SIDECAR = "sarcasm.json"
FOLDS = 5
Log = Callable[[str], None]

# The recipe `mmdesk train sarcasm` uses (chosen by `--search`, see models/cards/sarcasm.md).
DEFAULT_RECIPE: dict[str, Any] = {"context": "last", "irony": True, "speakers": False}
MUSTARD_CFG = ml.FinetuneConfig(lr=5e-4, epochs=8, batch_size=16, weight_power=0.0)
IRONY_CFG = ml.FinetuneConfig(lr=5e-4, epochs=3, batch_size=32, weight_power=0.0)


def encode(items: list[SarcasmItem], tok, context: str, speakers: bool = False) -> list[list[int]]:
    return [pair_ids(tok, utterance_text(it, speakers), context_text(it, context, speakers)) for it in items]


def pretrain_irony(encoder_dir: Path, tok, irony: list[SarcasmItem], cfg: ml.FinetuneConfig, device: torch.device,
                   log: Log) -> tuple[dict[str, np.ndarray], list[float]]:
    """Adapters + head after a pass over the irony tweets: the starting point of every MUStARD model."""
    model = ml.build_classifier(encoder_dir, 2, cfg)
    y = np.array([it.label for it in irony])
    times = ml.train_classifier(model, encode(irony, tok, "none"), y, cfg, device, log=log)
    return ml.snapshot(model), times


def _fresh(encoder_dir: Path, cfg: ml.FinetuneConfig, init: dict[str, np.ndarray] | None) -> ml.MiniLMClassifier:
    model = ml.build_classifier(encoder_dir, 2, cfg)
    if init is not None:
        model.load_adapter_state(init)
    return model


def cross_validate(items: list[SarcasmItem], seqs: list[list[int]], cfg: ml.FinetuneConfig, encoder_dir: Path,
                   device: torch.device, init: dict[str, np.ndarray] | None, folds: np.ndarray,
                   test_folds: tuple[int, ...] | None = None, log: Log | None = None) -> dict[str, Any]:
    """Out-of-fold P(sarcastic) for every item (of the ``test_folds``, default all), per-fold and pooled
    metrics, seconds per epoch."""
    y = np.array([it.label for it in items])
    oof = np.full(len(items), np.nan)
    per_fold, times = [], []
    for f in test_folds if test_folds is not None else np.unique(folds):
        test = folds == f
        train = ~test
        model = _fresh(encoder_dir, cfg, init)
        times += ml.train_classifier(model, [seqs[i] for i in np.flatnonzero(train)], y[train], cfg, device)
        p = ml.predict_probs(model, [seqs[i] for i in np.flatnonzero(test)], device)[:, 1]
        oof[test] = p
        per_fold.append(binary_metrics(y[test], (p >= 0.5).astype(int)))
        if log:
            log(f"    fold {f + 1}/{len(np.unique(folds))}: F1 {per_fold[-1]['f1']:.3f} "
                f"accuracy {per_fold[-1]['accuracy']:.3f}")
        del model
    keys = ("f1", "weighted_f1", "macro_f1", "accuracy")
    return {
        "mean": {k: round(float(np.mean([m[k] for m in per_fold])), 4) for k in keys},
        "std": {k: round(float(np.std([m[k] for m in per_fold])), 4) for k in keys},
        "pooled": binary_metrics(y[~np.isnan(oof)], (oof[~np.isnan(oof)] >= 0.5).astype(int)),
        "per_fold": per_fold,
        "oof": oof,
        "seconds_per_epoch": round(float(np.median(times)), 2),
    }


def _show_independent(items, seqs, cfg, encoder_dir, device, init, log) -> dict[str, Any]:
    """Train on every show but Friends, test on Friends (MUStARD's speaker-independent split)."""
    friends = np.array([it.show == "FRIENDS" for it in items])
    res = cross_validate(items, seqs, cfg, encoder_dir, device, init, folds=friends.astype(np.int64),
                         test_folds=(1,))
    y = np.array([it.label for it in items])
    m = binary_metrics(y[friends], (res["oof"][friends] >= 0.5).astype(int))
    if log:
        log(f"    show-independent (test: Friends, {int(friends.sum())} items): F1 {m['f1']:.3f}")
    return {"test": "FRIENDS", "n_test": int(friends.sum()), **m}


def train_sarcasm(mustard: Path, irony_dir: Path | None, out: Path, *, encoder: str | None = None, seed: int = 0,
                  epochs: int | None = None, lr: float | None = None,
                  device: str = "auto", search: bool = False, command: str = "",
                  log: Log = print) -> dict[str, Any]:
    from mmdesk.training.minilm_source import (
        ENCODER_REQUIREMENT,
        ENCODER_WHEEL_SHA256,
    )

    t_start = time.perf_counter()
    dev = ml.resolve_device(device)
    encoder_dir = ml.encoder_dir(encoder, log)
    tok = plain_tokenizer(encoder_dir / "tokenizer.json")
    items = mustard_items(mustard)
    y = np.array([it.label for it in items])
    folds = stratified_folds(y, FOLDS, seed)
    cfg = replace(MUSTARD_CFG, seed=seed, epochs=epochs or MUSTARD_CFG.epochs, lr=lr or MUSTARD_CFG.lr)
    irony_cfg = replace(IRONY_CFG, seed=seed)
    log(f"MUStARD: {len(items)} items ({int(y.sum())} sarcastic); device {dev}")

    irony_state, irony_times, irony = None, [], []
    if irony_dir is not None:
        irony = irony_items(irony_dir)
        log(f"irony pass: TweetEval irony train+val, {len(irony)} tweets, {irony_cfg.epochs} epochs")
        irony_state, irony_times = pretrain_irony(encoder_dir, tok, irony, irony_cfg, dev, log)

    def run(recipe: dict[str, Any]) -> dict[str, Any]:
        if recipe["irony"] and irony_state is None:
            raise ValueError("irony recipe without irony data")
        seqs = encode(items, tok, recipe["context"], recipe["speakers"])
        log(f"  5-fold CV, context={recipe['context']} irony={recipe['irony']} speakers={recipe['speakers']}")
        res = cross_validate(items, seqs, cfg, encoder_dir, dev, irony_state if recipe["irony"] else None, folds, log=log)
        log(f"  -> mean F1 {res['mean']['f1']:.3f} (+/- {res['std']['f1']:.3f}), accuracy {res['mean']['accuracy']:.3f}")
        return res

    recipe = dict(DEFAULT_RECIPE)
    if irony_state is None:
        recipe["irony"] = False
    table: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if search:
        candidates = [{"context": c, "irony": irony_state is not None, "speakers": False}
                      for c in ("none", "last", "all")]
        if irony_state is not None:
            candidates.append({"context": "last", "irony": False, "speakers": False})
        results = {}
        for r in candidates:
            res = run(r)
            results[tuple(r.values())] = res
            table.append({**r, **{k: v for k, v in res["mean"].items()}, "f1_std": res["std"]["f1"]})
        recipe = max(candidates, key=lambda r: results[tuple(r.values())]["mean"]["f1"])
        chosen = results[tuple(recipe.values())]
        log(f"chosen: {recipe}")
        with_speakers = run({**recipe, "speakers": True})
        extra["with_speaker_names"] = {**with_speakers["mean"], "f1_std": with_speakers["std"]["f1"]}
        seqs = encode(items, tok, recipe["context"], False)
        extra["show_independent"] = _show_independent(items, seqs, cfg, encoder_dir, dev,
                                                       irony_state if recipe["irony"] else None, log)
    else:
        chosen = run(recipe)

    log("final model: all MUStARD items")
    seqs = encode(items, tok, recipe["context"], False)
    model = _fresh(encoder_dir, cfg, irony_state if recipe["irony"] else None)
    final_times = ml.train_classifier(model, seqs, y, cfg, dev, log=log)
    model.cpu().eval()

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_npz = {"labels": list(SARCASM_LABELS), "finetune": ml.config_dict(cfg), "encoder": ENCODER_REQUIREMENT,
                "encoder_wheel_sha256": ENCODER_WHEEL_SHA256}
    ml.save_adapters(out / ADAPTERS, model, meta_npz)
    ins, outs = ml.io_dicts(2)
    meta = {
        "role": ROLE,
        "file": ADAPTERS,
        "sha256": sha256_bytes((out / ADAPTERS).read_bytes()),
        "inputs": ins,
        "outputs": outs,
        "labels": list(SARCASM_LABELS),
        "preprocessing": {
            "encoder_requirement": ENCODER_REQUIREMENT, "tokenizer_role": "text_tokenizer",
            "pairing": "[CLS] context-tail [SEP] utterance [SEP] (mmdesk.perception.text_pairs.pair_ids)",
            "max_tokens": MAX_TOKENS, "max_utterance": MAX_UTTERANCE, "context": recipe["context"],
            "speaker_names": False, "positive_label": "sarcastic", "threshold": 0.5,
        },
        "metrics": {
            "protocol": f"stratified {FOLDS}-fold cross-validation on MUStARD (seed {seed}; random folds, so a "
                        "speaker can be in train and test: MUStARD's speaker-dependent setting)",
            "cv5": chosen["mean"], "cv5_std": chosen["std"], "cv5_pooled": chosen["pooled"],
            "per_fold": chosen["per_fold"], "search": table, **extra,
            # [fold, out-of-fold P(sarcastic)] per item: `mmdesk eval sarcasm-mustard` scores them
            "cv_predictions": {"folds": FOLDS, "seed": seed, "threshold": 0.5,
                               "p_sarcastic": {it.key(): [int(f), round(float(p), 5)]
                                               for it, f, p in zip(items, folds, chosen["oof"])}},
        },
        "training": {
            "recipe": recipe, "finetune": ml.config_dict(cfg),
            "irony": {"data": "TweetEval irony train+val", "n": len(irony), "finetune": ml.config_dict(irony_cfg),
                      "seconds_per_epoch": round(float(np.median(irony_times)), 2) if irony_times else None}
            if recipe["irony"] else None,
            "mustard_seconds_per_epoch_cv": chosen["seconds_per_epoch"],
            "final_seconds_per_epoch": round(float(np.median(final_times)), 2),
            "seconds_total": round(time.perf_counter() - t_start, 1),
            "environment": ml.environment(dev),
            "data": {"mustard": len(items), "sarcastic": int(y.sum())},
        },
        "command": command,
    }
    add_calibration(meta, y, chosen["oof"])
    log(f"calibration: temperature {meta['preprocessing']['temperature']:.2f} (out-of-fold NLL "
        f"{meta['metrics']['calibration']['nll_before']:.3f} -> {meta['metrics']['calibration']['nll_after']:.3f})")
    atomic_write_json(out / SIDECAR, meta)
    log(f"wrote {out / ADAPTERS} and {out / SIDECAR}")
    return meta


def add_calibration(meta: dict[str, Any], y: np.ndarray, oof: np.ndarray) -> None:
    """Temperature scaling fitted on the cross-validated out-of-fold P(sarcastic) (``mmdesk.core.calibration``):
    the runtime divides the model's logit by ``preprocessing.temperature``; decisions at 0.5 do not change."""
    from mmdesk.core.calibration import calibration_record

    ok = ~np.isnan(oof)
    record = calibration_record(np.asarray(oof)[ok], np.asarray(y)[ok], "the 5-fold out-of-fold predictions")
    meta["preprocessing"]["temperature"] = record["temperature"]
    meta["metrics"]["calibration"] = record
