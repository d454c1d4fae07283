"""Exact Shapley values of modalities, from a value for every subset of the present modalities.

With three modalities there are 2^3 = 8 subsets, so the Shapley value is computed exactly, not
sampled. A *value function* maps each subset (a frozenset of modality names) to a number, for
example the fused probability of the predicted emotion when only that subset is shown to the
fusion head. Modalities that are absent in a window are not players: their value is always 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MODALITIES: tuple[str, ...] = ("face", "voice", "text")

Subset = frozenset[str]
ValueTable = Mapping[Subset, float]


def subsets(players: Iterable[str]) -> list[Subset]:
    """Every subset of ``players``, smallest first, in a stable order (the fusion batch order)."""
    ps = [m for m in MODALITIES if m in set(players)]
    return [frozenset(c) for r in range(len(ps) + 1) for c in itertools.combinations(ps, r)]


def subset_key(s: Subset) -> str:
    """A readable key for a subset: 'face+text', '' for the empty set (modality order fixed)."""
    return "+".join(m for m in MODALITIES if m in s)


def shapley_values(v: ValueTable, players: Sequence[str]) -> dict[str, float]:
    """phi_i = sum over S not containing i of |S|!(n-|S|-1)!/n! * (v(S+i) - v(S))."""
    n = len(players)
    out: dict[str, float] = {}
    for i in players:
        others = [p for p in players if p != i]
        phi = 0.0
        for r in range(len(others) + 1):
            weight = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for c in itertools.combinations(others, r):
                s = frozenset(c)
                phi += weight * (v[s | {i}] - v[s])
        out[i] = phi
    return out


@dataclass(frozen=True)
class Attribution:
    """Shapley decomposition of one score: values sum to ``full - baseline`` (efficiency)."""

    target: str  # the emotion label (or "sarcasm") whose score is explained
    full: float  # score with every present modality
    baseline: float  # score with none (the fusion head's prior)
    values: dict[str, float]  # per modality; 0.0 for absent modalities
    absent: tuple[str, ...]

    @property
    def efficiency_gap(self) -> float:
        return (self.full - self.baseline) - sum(self.values.values())

    def as_record(self, digits: int = 6) -> dict[str, object]:
        return {
            "target": self.target,
            "full": round(self.full, digits),
            "baseline": round(self.baseline, digits),
            "values": {m: round(self.values.get(m, 0.0), digits) for m in MODALITIES},
            "absent": list(self.absent),
        }


def attribute(target: str, v: ValueTable, players: Sequence[str]) -> Attribution:
    phi = shapley_values(v, players)
    full = v[frozenset(players)]
    return Attribution(
        target=target,
        full=full,
        baseline=v[frozenset()],
        values={m: phi.get(m, 0.0) for m in MODALITIES},
        absent=tuple(m for m in MODALITIES if m not in players),
    )
