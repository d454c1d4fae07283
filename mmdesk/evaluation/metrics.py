"""Classification metrics, in numpy (used by training and by ``mmdesk eval``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np



def confusion(y_true: Sequence[int], y_pred: Sequence[int], n: int) -> np.ndarray:
    m = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        m[int(t), int(p)] += 1
    return m


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float((t == p).mean()) if t.size else float("nan")


def uar(y_true: Sequence[int], y_pred: Sequence[int], n: int) -> float:
    """Unweighted average recall over the classes present in ``y_true``."""
    m = confusion(y_true, y_pred, n)
    support = m.sum(axis=1)
    present = support > 0
    return float((np.diag(m)[present] / support[present]).mean()) if present.any() else float("nan")


def f1_scores(y_true: Sequence[int], y_pred: Sequence[int], n: int) -> dict[str, Any]:
    """Per-class F1, macro F1 (classes with support), support-weighted F1, accuracy."""
    m = confusion(y_true, y_pred, n).astype(np.float64)
    tp = np.diag(m)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    return {
        "per_class": f1,
        "support": support.astype(int),
        "macro": float(f1[present].mean()),
        "weighted": float((f1 * support).sum() / support.sum()),
        "accuracy": float(tp.sum() / m.sum()),
    }
