"""The data of one analysis session: the records ``mmdesk analyze`` writes (meta, windows, end).

The GUI's panels read everything from here, so a saved session, a reopened ``mmdesk analyze``
output and a live session look the same. Fusion fields (``fused``, ``alone``, ``attribution``,
``interaction``) are read when the records carry them; otherwise ``fusion_available`` is False and
the panels say so instead of showing numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmdesk.core.labels import LABELS

MODALITIES: tuple[str, ...] = ("face", "voice", "text")
INTERACTION_TYPES: tuple[str, ...] = ("redundancy", "dominance", "independence", "modulation", "emergence")
FUSION_MISSING = "fusion model not available in this model pack"


@dataclass(frozen=True)
class Series:
    """Per-window values for plotting: x = window centre (s); NaN where a value is not available."""

    t: np.ndarray  # (n,)
    probs: np.ndarray  # (n, 7) over LABELS
    sarcasm: np.ndarray  # (n,)


def window_centre(record: dict[str, Any]) -> float:
    return (float(record["start"]) + float(record["end"])) / 2


def view_of(record: dict[str, Any], source: str) -> dict[str, Any] | None:
    """The judgement of one source ("fused", "face", "voice", "text") in a window, or None.

    For a modality this is the unimodal result when present; its sarcasm comes from the fusion
    model's "alone" pass (the unimodal models do not judge sarcasm).
    """
    if source == "fused":
        return record.get("fused")
    d = record.get(source) or {}
    if not d.get("present"):
        return None
    alone = (record.get("alone") or {}).get(source) or {}
    return {"probs": d["probs"], "label": d["label"], "sarcasm": alone.get("sarcasm")}


def _series_row(record: dict[str, Any], source: str) -> list[float]:
    """The 7 probabilities and the sarcasm of one source in a window (NaN where not available)."""
    v = view_of(record, source)
    if v is None:
        return [math.nan] * (len(LABELS) + 1)
    sarcasm = v.get("sarcasm")
    return [v["probs"].get(label, math.nan) for label in LABELS] + [math.nan if sarcasm is None else float(sarcasm)]


def _contribution_row(record: dict[str, Any], target: str) -> list[float]:
    a = record.get("attribution")
    if a and target == "sarcasm":
        a = a.get("sarcasm")
    if a and a.get("values") is not None:
        return [float(a["values"].get(m, 0.0)) for m in MODALITIES]
    return [math.nan] * len(MODALITIES)


def _interaction_code(record: dict[str, Any]) -> float:
    inter = record.get("interaction")
    return float(INTERACTION_TYPES.index(inter["type"])) if inter and inter["type"] in INTERACTION_TYPES else math.nan


class SessionData:
    """Records of one session, in arrival order; windows are kept sorted by index.

    What the panels ask for (series, contributions, counts) is computed once per window and kept:
    a live session asks several times a second, and walking every window in Python each time
    grew with the session's length. Read-only arrays are handed out.
    """

    def __init__(self, meta: dict[str, Any] | None = None) -> None:
        self.meta: dict[str, Any] = meta or {}
        self.windows: list[dict[str, Any]] = []
        self.end: dict[str, Any] | None = None
        #: changes with every record added: a view drawn for another version is stale
        self.version = 0
        self._by_index: dict[int, int] = {}
        self._rows: dict[str, np.ndarray] = {}  # per-window values, for the first len(rows) windows

    # -- building ------------------------------------------------------------------------------
    def add(self, record: dict[str, Any]) -> None:
        self.version += 1
        kind = record.get("type")
        if kind == "meta":
            self.meta = record
        elif kind == "window":
            i = int(record["index"])
            if i in self._by_index:  # a re-delivered window replaces the old one
                self.windows[self._by_index[i]] = record
                self._forget_from(self._by_index[i])
                return
            if self.windows and i < int(self.windows[-1]["index"]):
                self.windows.append(record)
                self.windows.sort(key=lambda r: int(r["index"]))
                self._by_index = {int(r["index"]): k for k, r in enumerate(self.windows)}
                self._forget_from(self._by_index[i])
            else:
                self._by_index[i] = len(self.windows)
                self.windows.append(record)
        elif kind == "end":
            self.end = record

    def _forget_from(self, pos: int) -> None:
        """The windows from ``pos`` on changed: their kept values are recomputed when next asked."""
        self._rows = {key: rows[:pos] for key, rows in self._rows.items()}

    def _per_window(self, key: str, row: Callable[[dict[str, Any]], Sequence[float] | float], width: int) -> np.ndarray:
        """(n, width) values of ``row(window)`` for every window; only windows new since the last
        call are computed (windows are appended as they arrive)."""
        kept = self._rows.get(key)
        done = 0 if kept is None else len(kept)
        if kept is None or done < len(self.windows):
            new = np.array([row(w) for w in self.windows[done:]], dtype=float).reshape(-1, width)
            kept = new if kept is None else np.concatenate([kept, new])
            kept.flags.writeable = False
            self._rows[key] = kept
        return kept

    def records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [self.meta] if self.meta else []
        out.extend(self.windows)
        if self.end is not None:
            out.append(self.end)
        return out

    # -- questions the panels ask --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.windows)

    @property
    def fusion_available(self) -> bool:
        return bool((self.meta.get("fusion") or {}).get("available")) or bool(
            self._per_window("fused", lambda w: float("fused" in w), 1).any())

    @property
    def fusion_note(self) -> str:
        """Why there are no fused values: the analysis' own reason when it gave one."""
        problem = (self.meta.get("fusion") or {}).get("problem")
        return f"{FUSION_MISSING} ({problem})" if problem else FUSION_MISSING

    @property
    def fusion_caveat(self) -> tuple[str, str]:
        """(one line on what the fusion head learnt from, the full statement) for the app to show."""
        f = self.meta.get("fusion") or {}
        if not f.get("available"):
            return "", ""
        return str(f.get("note") or ""), str(f.get("trained_on") or "")

    @property
    def source_path(self) -> str:
        return str((self.meta.get("source") or {}).get("path") or "")

    @property
    def duration(self) -> float:
        d = (self.meta.get("source") or {}).get("duration")
        if d:
            return float(d)
        return float(self.windows[-1]["end"]) if self.windows else 0.0

    def centres(self) -> np.ndarray:
        """(n,) window centres in seconds."""
        return self._per_window("centre", window_centre, 1)[:, 0]

    def series(self, source: str) -> Series:
        rows = self._per_window(f"series:{source}", lambda w: _series_row(w, source), len(LABELS) + 1)
        return Series(self.centres(), rows[:, : len(LABELS)], rows[:, len(LABELS)])

    def contributions(self, target: str = "emotion") -> tuple[np.ndarray, np.ndarray]:
        """(t, values (n, 3) over MODALITIES) of the attribution; NaN rows where none is known.

        ``target`` "emotion" reads the attribution of the fused label, "sarcasm" its sarcasm part.
        """
        return self.centres(), self._per_window(f"contributions:{target}",
                                                lambda w: _contribution_row(w, target), len(MODALITIES))

    def interaction_counts(self) -> Counter[str]:
        codes = self._per_window("interaction", _interaction_code, 1)[:, 0]
        codes = codes[np.isfinite(codes)].astype(int)
        return Counter({INTERACTION_TYPES[c]: int(n) for c, n in enumerate(np.bincount(codes)) if n})

    def nearest(self, t: float) -> int | None:
        """Position (in ``windows``) of the window whose centre is nearest to time ``t``."""
        if not self.windows:
            return None
        return int(np.argmin(np.abs(self.centres() - t)))

    def texts(self) -> list[tuple[float, float, str, str]]:
        """Distinct texts seen by the analysis: (start, end, text, origins) in time order.

        A transcribed clip's end record has each utterance once (``asr.transcript``); the windows
        only have the words inside them, so the same sentence would come back in overlapping pieces.
        """
        said = ((self.end or {}).get("asr") or {}).get("transcript")
        if said is not None:
            return [(float(u["start"]), float(u["end"]), u["text"], "asr") for u in said]
        out: list[tuple[float, float, str, str]] = []
        for w in self.windows:
            tx = w.get("text") or {}
            if not tx.get("present"):
                continue
            text, origins = tx.get("text", ""), ", ".join(tx.get("origins") or ())
            if out and out[-1][2] == text:
                out[-1] = (out[-1][0], float(w["end"]), text, origins)
            else:
                out.append((float(w["start"]), float(w["end"]), text, origins))
        return out
