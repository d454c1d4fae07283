"""Exact Shapley values and interaction types on fusion functions built to have a known answer."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from mmdesk.fusion.attribution import (
    MODALITIES,
    attribute,
    shapley_values,
    subset_key,
    subsets,
)
from mmdesk.fusion.interaction import TYPES, classify


def table(f: Callable[[dict[str, float]], float], present: dict[str, float]) -> dict:
    """v(S): f evaluated with the modalities outside S replaced by 0 (= masked)."""
    return {s: f({m: (present[m] if m in s else 0.0) for m in MODALITIES}) for s in subsets(present)}


def test_subsets_are_ordered_smallest_first_and_complete() -> None:
    s = subsets(["text", "face", "voice"])
    assert len(s) == 8 and s[0] == frozenset() and s[-1] == frozenset(MODALITIES)
    assert [subset_key(x) for x in s[1:4]] == ["face", "voice", "text"]
    assert subsets(["voice"]) == [frozenset(), frozenset({"voice"})]


def test_shapley_of_an_additive_game_is_each_players_own_term() -> None:
    v = table(lambda x: 0.1 + 0.3 * x["face"] + 0.2 * x["voice"] - 0.05 * x["text"],
              {"face": 1, "voice": 1, "text": 1})
    phi = shapley_values(v, list(MODALITIES))
    assert phi == pytest.approx({"face": 0.3, "voice": 0.2, "text": -0.05})


def test_shapley_splits_a_pure_interaction_equally_and_gives_dummies_zero() -> None:
    v = table(lambda x: 0.2 + 0.6 * x["face"] * x["voice"], {"face": 1, "voice": 1, "text": 1})
    phi = shapley_values(v, list(MODALITIES))
    assert phi == pytest.approx({"face": 0.3, "voice": 0.3, "text": 0.0})


@pytest.mark.parametrize("players", [list(c) for r in (1, 2, 3) for c in itertools.combinations(MODALITIES, r)])
def test_efficiency_holds_for_every_subset_of_present_modalities(players: list[str]) -> None:
    import random

    rng = random.Random(len(players))
    v = {s: rng.random() for s in subsets(players)}
    a = attribute("happy", v, players)
    assert abs(a.efficiency_gap) < 1e-12
    assert set(a.absent) == set(MODALITIES) - set(players)
    assert all(a.values[m] == 0.0 for m in a.absent)
    rec = a.as_record()
    assert rec["full"] == round(v[frozenset(players)], 6) and rec["baseline"] == round(v[frozenset()], 6)


ALL = {"face": 1.0, "voice": 1.0, "text": 1.0}
BUILT = {
    # copy one modality: the output is the face's, whatever voice and text say
    "dominance": (lambda x: 0.2 + 0.6 * x["face"], ALL, "one_alone_matches_full:face"),
    # agreeing modalities: either face or voice alone is enough (logical OR)
    "redundancy": (lambda x: 0.2 + 0.6 * max(x["face"], x["voice"]), ALL, "alone_match_full:face,voice"),
    # additive, different evidence from each
    "independence": (lambda x: 0.1 + 0.3 * x["face"] + 0.25 * x["voice"] + 0.2 * x["text"], ALL,
                     "additive:face,voice,text"),
    # the face scales the voice's effect but does nothing alone
    "modulation": (lambda x: 0.1 + 0.3 * x["voice"] * (1 + 1.5 * x["face"]), ALL, "modulates:face,text>voice"),
    # XOR-like: signed inputs, only their product matters
    "emergence": (lambda x: 0.5 + 0.4 * x["face"] * x["voice"], {"face": -1.0, "voice": -1.0, "text": 1.0},
                  "only_together"),
}


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_each_interaction_type_on_a_function_built_to_have_it(kind: str) -> None:
    f, present, reason = BUILT[kind]
    got = classify(table(f, present), list(present), "happy")
    assert got.type == kind, got
    assert got.reason == reason
    assert got.text and got.text.endswith(".")
    assert set(got.numbers) >= {"values", "main_effects", "pairwise", "interaction", "scale", "triple"}


def test_all_five_types_are_covered() -> None:
    assert set(BUILT) == set(TYPES)


def test_super_additive_evidence_is_modulation_and_single_modality_is_dominance() -> None:
    f = lambda x: 0.05 + 0.3 * x["face"] + 0.3 * x["voice"] + 0.3 * x["face"] * x["voice"]
    got = classify(table(f, {"face": 1, "voice": 1}), ["face", "voice"])
    assert (got.type, got.reason) == ("modulation", "super_additive:face,voice")
    one = classify({frozenset(): 0.2, frozenset({"text"}): 0.9}, ["text"], "sad")
    assert (one.type, one.reason) == ("dominance", "single_modality:text")


def test_nothing_moving_is_independence_and_no_modality_is_an_error() -> None:
    f = lambda x: 0.30 + 0.01 * x["face"] + 0.01 * x["text"]
    assert classify(table(f, ALL), list(ALL)).reason == "negligible_effects"
    with pytest.raises(ValueError, match="no modality"):
        classify({frozenset(): 0.5}, [])
