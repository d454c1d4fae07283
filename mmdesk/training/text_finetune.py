"""Text emotion: MiniLM fine-tuned with LoRA on MELD train (optionally with the previous utterance).

``mmdesk train text`` runs ``train_text_finetune``: MELD train for training, MELD dev after every epoch
to keep the best epoch (dev is also what ``--search`` compares recipes on, so dev figures are
optimistic; MELD test is not available here). Writes ``text_emotion_adapters.npz`` (LoRA adapters +
head, built into ``text_emotion.onnx`` by the model pack) and ``text_emotion.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mmdesk.core.labels import LABELS, N_LABELS
from mmdesk.perception.text_pairs import (
    MAX_TOKENS,
    MAX_UTTERANCE,
    pair_ids,
    plain_tokenizer,
)
from mmdesk.training import minilm_lora as ml
from mmdesk.training.datasets import TextItem, label_counts, meld_items
from mmdesk.training.export_common import (
    atomic_write_json,
    confusion,
    f1_scores,
    sha256_bytes,
    uar,
)

ROLE = "text_emotion"
ADAPTERS = "text_emotion_adapters.npz"
SIDECAR = "text_emotion.json"
Log = Callable[[str], None]

# The recipe `mmdesk train text` uses (chosen on MELD dev by `--search`, see models/cards/text_emotion.md).
DEFAULT_RECIPE: dict[str, Any] = {"context": "previous", "weight_power": 0.5}
MELD_CFG = ml.FinetuneConfig(lr=5e-4, epochs=6, batch_size=32)


def encode(items: list[TextItem], tok, context: str) -> list[list[int]]:
    return [pair_ids(tok, it.text, it.previous if context == "previous" else "") for it in items]


def dev_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    pred = probs.argmax(1)
    f = f1_scores(y, pred, N_LABELS)
    return {"weighted_f1": round(f["weighted"], 4), "macro_f1": round(f["macro"], 4),
            "accuracy": round(f["accuracy"], 4), "uar": round(uar(y, pred, N_LABELS), 4),
            "per_class_f1": {LABELS[i]: round(float(v), 4) for i, v in enumerate(f["per_class"])},
            "confusion": confusion(y, pred, N_LABELS).tolist()}


def run_recipe(recipe: dict[str, Any], train: list[TextItem], dev: list[TextItem], tok, encoder_dir: Path,
               cfg: ml.FinetuneConfig, device, log: Log) -> dict[str, Any]:
    """Train on MELD train; the adapters of the epoch with the best dev weighted-F1."""
    cfg = replace(cfg, weight_power=recipe["weight_power"])
    x_train, x_dev = encode(train, tok, recipe["context"]), encode(dev, tok, recipe["context"])
    y_train, y_dev = np.array([it.label for it in train]), np.array([it.label for it in dev])
    model = ml.build_classifier(encoder_dir, N_LABELS, cfg)
    best: dict[str, Any] = {"weighted_f1": -1.0}
    curve: list[float] = []

    def on_epoch(epoch: int, m: ml.MiniLMClassifier) -> None:
        met = dev_metrics(y_dev, ml.predict_probs(m, x_dev, device))
        curve.append(met["weighted_f1"])
        log(f"    dev weighted-F1 {met['weighted_f1']:.4f} (epoch {epoch + 1})")
        if met["weighted_f1"] > best["weighted_f1"]:
            best.update(met, epoch=epoch + 1, state=ml.snapshot(m))

    times = ml.train_classifier(model, x_train, y_train, cfg, device, on_epoch=on_epoch, log=log)
    return {"best": best, "curve": curve, "times": times, "cfg": cfg, "model": model}


def train_text_finetune(meld_dir: Path, out: Path, *, encoder: str | None = None, seed: int = 0,
                        epochs: int | None = None, lr: float | None = None,
                        device: str = "auto", search: bool = False, command: str = "",
                        log: Log = print) -> dict[str, Any]:
    from mmdesk.training.minilm_source import (
        ENCODER_REQUIREMENT,
        ENCODER_WHEEL_SHA256,
    )

    t_start = time.perf_counter()
    dev_ = ml.resolve_device(device)
    encoder_dir = ml.encoder_dir(encoder, log)
    tok = plain_tokenizer(encoder_dir / "tokenizer.json")
    train, dev = meld_items(Path(meld_dir) / "train_sent_emo.csv"), meld_items(Path(meld_dir) / "dev_sent_emo.csv")
    cfg = replace(MELD_CFG, seed=seed, epochs=epochs or MELD_CFG.epochs, lr=lr or MELD_CFG.lr)
    log(f"MELD: {len(train)} train / {len(dev)} dev utterances; device {dev_}")
    candidates = ([{"context": "none", "weight_power": 0.0}, {"context": "previous", "weight_power": 0.0},
                   {"context": "previous", "weight_power": 0.5}] if search else [dict(DEFAULT_RECIPE)])
    table, runs = [], []
    for recipe in candidates:
        log(f"  recipe {recipe}")
        r = run_recipe(recipe, train, dev, tok, encoder_dir, cfg, dev_, log)
        runs.append((recipe, r))
        table.append({**recipe, "best_epoch": r["best"]["epoch"], "weighted_f1": r["best"]["weighted_f1"],
                      "macro_f1": r["best"]["macro_f1"], "curve": r["curve"]})
    recipe, chosen = max(runs, key=lambda rr: rr[1]["best"]["weighted_f1"])
    model = chosen["model"].cpu()
    model.load_adapter_state(chosen["best"]["state"])
    model.eval()
    log(f"chosen {recipe}: epoch {chosen['best']['epoch']}, dev weighted-F1 {chosen['best']['weighted_f1']:.4f}")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ml.save_adapters(out / ADAPTERS, model, {"labels": list(LABELS), "finetune": ml.config_dict(chosen["cfg"]),
                                             "encoder": ENCODER_REQUIREMENT,
                                             "encoder_wheel_sha256": ENCODER_WHEEL_SHA256})
    ins, outs = ml.io_dicts(N_LABELS)
    best = {k: v for k, v in chosen["best"].items() if k not in ("state", "epoch")}
    meta = {
        "role": ROLE,
        "file": ADAPTERS,
        "sha256": sha256_bytes((out / ADAPTERS).read_bytes()),
        "inputs": ins,
        "outputs": outs,
        "labels": list(LABELS),
        "preprocessing": {
            "encoder_requirement": ENCODER_REQUIREMENT, "tokenizer_role": "text_tokenizer",
            "pairing": "[CLS] context-tail [SEP] utterance [SEP] (mmdesk.perception.text_pairs.pair_ids)",
            "max_tokens": MAX_TOKENS, "max_utterance": MAX_UTTERANCE,
            "context": "previous utterance" if recipe["context"] == "previous" else None,
            "text_cleaning": "mmdesk.training.datasets.clean_text",
        },
        "metrics": {"split": "MELD dev (also used to pick the epoch and the recipe)", "dev": best,
                    "search": table},
        "training": {
            "recipe": recipe, "best_epoch": chosen["best"]["epoch"], "finetune": ml.config_dict(chosen["cfg"]),
            "seconds_per_epoch": round(float(np.median(chosen["times"])), 2),
            "seconds_total": round(time.perf_counter() - t_start, 1),
            "environment": ml.environment(dev_),
            "data": {"train": label_counts(it.label for it in train), "dev": label_counts(it.label for it in dev)},
        },
        "command": command,
    }
    atomic_write_json(out / SIDECAR, meta)
    log(f"wrote {out / ADAPTERS} and {out / SIDECAR}")
    return meta
