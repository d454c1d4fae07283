"""Incongruity: how far what was said (text) and how it was shown (face, voice) disagree in valence.

"Wow, great food" reads positive as text; said with a flat voice and a bored face the non-verbal
valence is neutral-to-negative. The gap between the two is reported beside the sarcasm
probability so that the user can see the cue even when the sarcasm model (trained on text)
does not pick it up.

Valence per label follows the circumplex placement of the basic emotions (positive: happy;
negative: sad, angry, fearful, disgusted; neutral and surprised: 0, surprise being either).
"""

from __future__ import annotations

from collections.abc import Sequence

from mmdesk.core.labels import LABELS

VALENCE: dict[str, float] = {
    "neutral": 0.0,
    "happy": 1.0,
    "sad": -1.0,
    "angry": -1.0,
    "fearful": -1.0,
    "disgusted": -1.0,
    "surprised": 0.0,
}


def valence(probs: Sequence[float]) -> float:
    """Expected valence in [-1, 1] of a distribution over LABELS."""
    return float(sum(p * VALENCE[label] for label, p in zip(LABELS, probs)))


def incongruity(text: Sequence[float] | None, face: Sequence[float] | None,
                voice: Sequence[float] | None) -> tuple[float | None, dict[str, float]]:
    """(|text valence - mean non-verbal valence| / 2 in [0, 1], the valences used).

    None when there is no text or neither face nor voice: there is nothing to compare.
    """
    vals = {m: valence(p) for m, p in (("text", text), ("face", face), ("voice", voice)) if p is not None}
    nonverbal = [vals[m] for m in ("face", "voice") if m in vals]
    if "text" not in vals or not nonverbal:
        return None, vals
    return abs(vals["text"] - sum(nonverbal) / len(nonverbal)) / 2.0, vals
