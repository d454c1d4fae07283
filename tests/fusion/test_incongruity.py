"""Incongruity: "Wow, great food" read as happy text, said with a flat or unhappy face and voice."""

from __future__ import annotations

import pytest

from mmdesk.core.labels import LABELS
from mmdesk.fusion.incongruity import incongruity, valence


def one_hot(label: str, p: float = 1.0) -> tuple[float, ...]:
    rest = (1 - p) / (len(LABELS) - 1)
    return tuple(p if x == label else rest for x in LABELS)


def test_valence_of_labels() -> None:
    assert valence(one_hot("happy")) == 1.0 and valence(one_hot("angry")) == -1.0
    assert valence(one_hot("neutral")) == 0.0 and valence(one_hot("surprised")) == 0.0
    assert valence([1 / 7] * 7) == pytest.approx(-3 / 7)


def test_positive_words_said_flatly_or_unhappily_are_incongruent() -> None:
    happy_text = one_hot("happy")
    flat, _ = incongruity(happy_text, one_hot("neutral"), one_hot("neutral"))
    sour, vals = incongruity(happy_text, one_hot("disgusted"), one_hot("sad"))
    meant, _ = incongruity(happy_text, one_hot("happy"), one_hot("happy"))
    assert meant == 0.0 < flat == 0.5 < sour == 1.0
    assert vals == {"text": 1.0, "face": -1.0, "voice": -1.0}


def test_one_nonverbal_modality_is_enough_and_none_gives_no_score() -> None:
    score, vals = incongruity(one_hot("happy"), None, one_hot("neutral"))
    assert score == 0.5 and set(vals) == {"text", "voice"}
    assert incongruity(None, one_hot("sad"), one_hot("sad"))[0] is None
    assert incongruity(one_hot("happy"), None, None)[0] is None
