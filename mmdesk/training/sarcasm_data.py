"""Readers for the sarcasm corpora: MUStARD (dialogue) and TweetEval irony (tweets). No torch here:
``mmdesk eval sarcasm-mustard`` uses them too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdesk.errors import MmdeskError
from mmdesk.training.datasets import clean_text

SARCASM_LABELS = ("not_sarcastic", "sarcastic")
CONTEXT_MODES = ("none", "last", "all")


@dataclass(frozen=True)
class SarcasmItem:
    id: str
    utterance: str
    context: tuple[str, ...]  # earlier lines of the dialogue, oldest first
    label: int  # 1 = sarcastic
    speaker: str = ""
    context_speakers: tuple[str, ...] = ()
    show: str = ""

    def key(self) -> str:
        """Identifies the item's text: stored cross-validated predictions are matched by it."""
        body = json.dumps([self.id, self.utterance, list(self.context)], ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def mustard_items(path: Path) -> list[SarcasmItem]:
    """MUStARD ``sarcasm_data.json``: {id: {utterance, speaker, context, context_speakers, show, sarcasm}}."""
    path = Path(path)
    if not path.is_file():
        raise MmdeskError(f"MUStARD file {path} does not exist", "pass MUStARD's sarcasm_data.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MmdeskError(f"{path} is not readable JSON ({exc})", "pass MUStARD's sarcasm_data.json") from None
    items: list[SarcasmItem] = []
    for key, r in raw.items() if isinstance(raw, dict) else ():
        if not isinstance(r, dict) or "utterance" not in r or "sarcasm" not in r:
            continue
        ctx = r.get("context") or []
        items.append(SarcasmItem(
            id=str(key), utterance=clean_text(str(r["utterance"])),
            context=tuple(clean_text(str(c)) for c in ctx), label=int(bool(r["sarcasm"])),
            speaker=str(r.get("speaker", "")), context_speakers=tuple(str(s) for s in r.get("context_speakers") or ()),
            show=str(r.get("show", ""))))
    if not items:
        raise MmdeskError(f"{path} holds no MUStARD items (id -> utterance, context, sarcasm)",
                          "pass MUStARD's sarcasm_data.json")
    return items


def context_text(item: SarcasmItem, mode: str, speakers: bool = False) -> str:
    """The context fed to the model: none, the last line (what the runtime has), or every line."""
    lines = {"none": (), "last": item.context[-1:], "all": item.context}[mode]
    if speakers:
        names = item.context_speakers[-len(lines):] if lines else ()
        lines = tuple(f"{s}: {t}" for s, t in zip(names, lines)) if len(names) == len(lines) else lines
    return " ".join(lines)


def utterance_text(item: SarcasmItem, speakers: bool = False) -> str:
    return f"{item.speaker}: {item.utterance}" if speakers and item.speaker else item.utterance


def irony_items(folder: Path, splits: tuple[str, ...] = ("train", "val")) -> list[SarcasmItem]:
    """TweetEval irony (``<split>_text.txt`` + ``<split>_labels.txt``; 1 = irony). These are the SemEval-2018
    task 3 tweets with the #irony/#sarcasm hashtags removed, so SemEval's copy adds nothing."""
    items: list[SarcasmItem] = []
    for split in splits:
        t, y = Path(folder) / f"{split}_text.txt", Path(folder) / f"{split}_labels.txt"
        if not (t.is_file() and y.is_file()):
            raise MmdeskError(f"{folder} lacks {t.name} / {y.name}", "pass TweetEval's irony folder with --irony DIR")
        texts = t.read_text(encoding="utf-8").splitlines()
        labels = y.read_text(encoding="utf-8").split()
        if len(texts) != len(labels):
            raise MmdeskError(f"{t.name} has {len(texts)} lines but {y.name} {len(labels)}", "pass TweetEval's irony folder")
        items += [SarcasmItem(f"tweeteval-{split}-{i}", clean_text(s), (), int(v))
                  for i, (s, v) in enumerate(zip(texts, labels))]
    return items


def stratified_folds(labels: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number (0..k-1) of each item: every class dealt round-robin over the folds after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(labels), np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        folds[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return folds


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """F1 of the sarcastic class, weighted and macro F1 over both classes (MUStARD's papers report the
    weighted figures), accuracy."""
    from mmdesk.evaluation.metrics import f1_scores

    f = f1_scores(np.asarray(y_true), np.asarray(y_pred), 2)
    return {"f1": round(float(f["per_class"][1]), 4), "weighted_f1": round(f["weighted"], 4),
            "macro_f1": round(f["macro"], 4), "accuracy": round(f["accuracy"], 4)}
