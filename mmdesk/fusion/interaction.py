"""Which kind of interaction between modalities produced a window's judgement.

The five types follow Liang et al.'s taxonomy of multimodal interaction responses. They are decided
from the same subset values the Shapley attribution uses (v(S) = fused score of the explained
label when only the modalities in S are shown), through the Möbius decomposition:

* effect of S:            e(S) = v(S) - v(∅)
* main effect of i:       m_i = e({i})
* total interaction:      I = e(P) - Σ m_i   (everything that is not additive)
* scale:                  s = max over S of |e(S)|   (the largest effect anywhere)

Rules, applied in order (thresholds are fractions of s; see docs/fusion.md):

1. one modality present                       → dominance   (``single_modality``)
2. s < NEGLIGIBLE                             → independence (``negligible_effects``)
3. ≥ 2 modalities each alone give the full judgement (|v({i}) - v(P)| ≤ NEAR·s)
                                              → redundancy  (``alone_match_full``)
4. exactly one does                           → dominance   (``one_alone_matches_full``)
5. no modality has a main effect ≥ STRONG·s   → emergence   (``only_together``)
6. |I| ≤ ADDITIVE·s                           → independence (``additive``)
7. otherwise (a modality changes another's effect, or they amplify each other)
                                              → modulation  (``modulates`` / ``super_additive`` /
                                                ``sub_additive``)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mmdesk.fusion.attribution import MODALITIES, ValueTable, subset_key, subsets

TYPES: tuple[str, ...] = ("redundancy", "dominance", "independence", "modulation", "emergence")

NEGLIGIBLE = 0.05  # probability points: below this nothing moved the judgement
NEAR = 0.15  # "alone gives the full judgement": within 15 % of the largest effect
STRONG = 0.3  # a main effect counts as substantial from 30 % of the largest effect
ADDITIVE = 0.25  # non-additive part below 25 % of the largest effect counts as additive


@dataclass(frozen=True)
class Interaction:
    type: str
    reason: str  # machine-readable code, e.g. "alone_match_full:face,voice"
    text: str  # one plain-language sentence for the app
    numbers: dict[str, object] = field(default_factory=dict)

    def as_record(self) -> dict[str, object]:
        return {"type": self.type, "reason": self.reason, "text": self.text, "numbers": self.numbers}


def _names(ms: Sequence[str]) -> str:
    ms = list(ms)
    return ms[0] if len(ms) == 1 else ", ".join(ms[:-1]) + " and " + ms[-1]


def classify(v: ValueTable, players: Sequence[str], target: str = "") -> Interaction:
    """Interaction type from subset values ``v`` over the present modalities ``players``."""
    players = [m for m in MODALITIES if m in players]
    if not players:
        raise ValueError("no modality present: there is nothing to fuse")
    empty, full = v[frozenset()], v[frozenset(players)]
    effects = {s: v[s] - empty for s in subsets(players)}
    main = {m: effects[frozenset({m})] for m in players}
    total_interaction = (full - empty) - sum(main.values())
    scale = max(abs(e) for e in effects.values())
    pairwise = {}
    for a_i, a in enumerate(players):
        for b in players[a_i + 1:]:
            pairwise[f"{a}+{b}"] = v[frozenset({a, b})] - v[frozenset({a})] - v[frozenset({b})] + empty
    numbers: dict[str, object] = {
        "values": {subset_key(s) or "none": round(v[s], 6) for s in subsets(players)},
        "main_effects": {m: round(x, 6) for m, x in main.items()},
        "pairwise": {k: round(x, 6) for k, x in pairwise.items()},
        "interaction": round(total_interaction, 6),
        "scale": round(scale, 6),
    }
    if len(players) == 3:
        numbers["triple"] = round(total_interaction - sum(pairwise.values()), 6)
    label = f"'{target}'" if target else "the judgement"

    def result(kind: str, reason: str, text: str) -> Interaction:
        return Interaction(kind, reason, text, numbers)

    if len(players) == 1:
        return result("dominance", f"single_modality:{players[0]}",
                      f"Only {players[0]} is present, so it alone decides {label}.")
    if scale < NEGLIGIBLE:
        return result("independence", "negligible_effects",
                      f"No modality moves {label} by more than {NEGLIGIBLE:.0%}; they act independently.")
    near = [m for m in players if abs(v[frozenset({m})] - full) <= NEAR * scale and abs(main[m]) >= STRONG * scale]
    if len(near) >= 2:
        return result("redundancy", "alone_match_full:" + ",".join(near),
                      f"{_names(near).capitalize()} each lead to {label} on their own; together they add nothing new.")
    if len(near) == 1:
        return result("dominance", f"one_alone_matches_full:{near[0]}",
                      f"{near[0].capitalize()} alone gives {label}; the other modalities barely change it.")
    strong = [m for m in players if abs(main[m]) >= STRONG * scale]
    if not strong:
        return result("emergence", "only_together",
                      f"No modality alone points to {label}; it appears only when they are combined.")
    if abs(total_interaction) <= ADDITIVE * scale:
        contributing = [m for m in players if abs(main[m]) >= NEGLIGIBLE]
        # signed: an additive effect can also be evidence against (face -0.09 while the voice gives +0.88)
        effects = ", ".join(f"{m} {main[m]:+.2f}" for m in sorted(contributing, key=lambda m: -abs(main[m])))
        return result("independence", "additive:" + ",".join(contributing),
                      f"{_names(contributing).capitalize()} act on {label} separately: what each does alone "
                      f"adds up ({effects}).")
    weak = [m for m in players if m not in strong]
    if weak:
        return result("modulation", f"modulates:{','.join(weak)}>{','.join(strong)}",
                      f"{_names(weak).capitalize()} has little effect alone but changes how strongly "
                      f"{_names(strong)} points to {label}.")
    kind = "super_additive" if total_interaction > 0 else "sub_additive"
    verb = "strengthen" if total_interaction > 0 else "weaken"
    return result("modulation", f"{kind}:{','.join(strong)}",
                  f"{_names(strong).capitalize()} {verb} each other's evidence for {label}.")
