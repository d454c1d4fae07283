"""The seven emotion labels every modality reports, and mappings from dataset label sets."""

from __future__ import annotations

from typing import Final

LABELS: Final[tuple[str, ...]] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
)
N_LABELS: Final[int] = len(LABELS)

# FER2013 / fer package order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
FER2013_LABELS: Final[tuple[str, ...]] = (
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "sad",
    "surprised",
    "neutral",
)
# MELD emotions -> common labels.
MELD_TO_COMMON: Final[dict[str, str]] = {
    "neutral": "neutral",
    "joy": "happy",
    "sadness": "sad",
    "anger": "angry",
    "fear": "fearful",
    "disgust": "disgusted",
    "surprise": "surprised",
}
# EmoDB emotion letters -> common labels; boredom (L) has no counterpart and is left out.
EMODB_TO_COMMON: Final[dict[str, str]] = {
    "N": "neutral",
    "F": "happy",
    "T": "sad",
    "W": "angry",
    "A": "fearful",
    "E": "disgusted",
}
# RAVDESS emotion codes -> common labels; calm (02) is folded into neutral, as is usual.
RAVDESS_TO_COMMON: Final[dict[str, str]] = {
    "01": "neutral",
    "02": "neutral",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgusted",
    "08": "surprised",
}


def reorder(probs_in_source_order, source_labels: tuple[str, ...]):
    """Return probabilities reordered from ``source_labels`` order to ``LABELS`` order."""
    import numpy as np

    p = np.asarray(probs_in_source_order, dtype=np.float64)
    index = [source_labels.index(label) for label in LABELS]
    return p[..., index]
