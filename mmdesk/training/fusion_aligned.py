"""Aligned training data: clips in which face, voice and words were recorded together.

None exists on this machine (MUStARD and MELD ship text only here; RAVDESS actor 05 is one
speaker), but users may have them. Each adapter reads one published layout into ``AlignedItem``s;
``aligned_examples`` runs the runtime pipeline over each clip (2 s windows, 1 s hop) and returns the
face/voice tokens of every window with the clip's text tokens and labels.

Layouts:
* ``clips-csv``: a folder of clips and a CSV with ``file`` and ``emotion`` (any of LABELS, or the
  MELD/FER/RAVDESS names), optional ``sarcasm`` (0/1/true/false), ``text`` and ``context``.
* ``meld``: MELD.Raw: ``<split>_sent_emo.csv`` beside a folder of ``dia<D>_utt<U>.mp4``.
* ``mustard``: ``sarcasm_data.json`` beside ``utterances_final/<id>.mp4``.
* ``ravdess``: RAVDESS audio-visual ``01-01-EE-II-SS-RR-AA.mp4`` (the statement is known from SS).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdesk.core.labels import FER2013_LABELS, LABELS, MELD_TO_COMMON, RAVDESS_TO_COMMON
from mmdesk.errors import MmdeskError
from mmdesk.training.datasets import clean_text, read_text_robust

LAYOUTS = ("clips-csv", "meld", "mustard", "ravdess")
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")


@dataclass(frozen=True)
class AlignedItem:
    path: Path
    emotion: int | None  # index into LABELS
    sarcasm: int | None  # 0/1
    text: str
    context: str
    group: str  # speaker / dialogue / clip id, for held-out splits


def _label(name: str) -> int | None:
    n = name.strip().lower()
    if n in LABELS:
        return LABELS.index(n)
    aliases = {**MELD_TO_COMMON, **{x: x for x in FER2013_LABELS}, "anger": "angry", "fear": "fearful",
               "disgust": "disgusted", "surprise": "surprised", "joy": "happy", "sadness": "sad", "calm": "neutral"}
    common = aliases.get(n)
    return LABELS.index(common) if common else None


def _bool(value: str) -> int | None:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "sarcastic"):
        return 1
    if v in ("0", "false", "no", "not_sarcastic"):
        return 0
    return None


def clips_csv_items(csv_path: Path, folder: Path | None = None) -> tuple[list[AlignedItem], list[str]]:
    folder = folder or csv_path.parent
    reader = csv.DictReader(read_text_robust(csv_path).splitlines())
    if not reader.fieldnames or "file" not in reader.fieldnames:
        raise MmdeskError(f"{csv_path} has no `file` column", "give a CSV with file,emotion[,sarcasm,text,context]")
    items, problems = [], []
    for row in reader:
        path = folder / row["file"]
        emotion = _label(row.get("emotion") or "") if row.get("emotion") else None
        sarcasm = _bool(row.get("sarcasm") or "") if row.get("sarcasm") else None
        if emotion is None and sarcasm is None:
            problems.append(f"{row['file']}: no usable emotion or sarcasm label")
            continue
        if not path.is_file():
            problems.append(f"{row['file']}: file not found")
            continue
        items.append(AlignedItem(path, emotion, sarcasm, clean_text(row.get("text") or ""),
                                 clean_text(row.get("context") or ""), row.get("group") or path.stem))
    return items, problems


def meld_items(csv_path: Path, clips: Path) -> tuple[list[AlignedItem], list[str]]:
    reader = csv.DictReader(read_text_robust(csv_path).splitlines())
    need = {"Utterance", "Emotion", "Dialogue_ID", "Utterance_ID"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise MmdeskError(f"{csv_path} lacks the MELD columns {sorted(need)}", "pass an original MELD csv")
    rows = sorted(reader, key=lambda r: (int(r["Dialogue_ID"]), int(r["Utterance_ID"])))
    items, problems = [], []
    previous: dict[str, str] = {}
    for r in rows:
        d, u = r["Dialogue_ID"], r["Utterance_ID"]
        text = clean_text(r["Utterance"])
        context = previous.get(d, "")
        previous[d] = text
        path = clips / f"dia{d}_utt{u}.mp4"
        label = _label(r["Emotion"])
        if not path.is_file():
            problems.append(f"{path.name}: file not found")
            continue
        items.append(AlignedItem(path, label, None, text, context, f"meld-{d}"))
    return items, problems


def mustard_items(json_path: Path, clips: Path) -> tuple[list[AlignedItem], list[str]]:
    try:
        data = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MmdeskError(f"cannot read MUStARD json {json_path} ({exc})", "pass sarcasm_data.json") from None
    items, problems = [], []
    for key, d in data.items():
        path = clips / f"{key}.mp4"
        if not path.is_file():
            problems.append(f"{path.name}: file not found")
            continue
        context = d.get("context") or []
        items.append(AlignedItem(path, None, int(bool(d["sarcasm"])), clean_text(d["utterance"]),
                                 clean_text(context[-1]) if context else "", f"mustard-{d.get('speaker', key)}"))
    return items, problems


def ravdess_items(folder: Path) -> tuple[list[AlignedItem], list[str]]:
    items, problems = [], []
    for path in sorted(folder.glob("*-*-*-*-*-*-*.mp4")):
        parts = path.stem.split("-")
        common = RAVDESS_TO_COMMON.get(parts[2])
        if parts[0] not in ("01", "02") or common is None:
            problems.append(f"{path.name}: not an audio-visual RAVDESS clip")
            continue
        items.append(AlignedItem(path, LABELS.index(common), None, RAVDESS_STATEMENTS.get(parts[4], ""), "",
                                 f"ravdess-{parts[6]}"))
    return items, problems


def read_layout(layout: str, path: Path) -> tuple[list[AlignedItem], list[str]]:
    """``path``: the CSV (clips-csv), the MELD csv (clips in ``<csv stem>/`` or ``MELD.Raw`` folders
    beside it), the MUStARD json (clips in ``utterances_final/`` beside it) or the RAVDESS folder."""
    path = Path(path)
    if not path.exists():
        raise MmdeskError(f"{layout} data {path} does not exist", "check the path")
    if layout == "clips-csv":
        return clips_csv_items(path)
    if layout == "meld":
        for clips in (path.parent / path.stem, path.parent / f"{path.stem.split('_')[0]}_splits", path.parent):
            if clips.is_dir() and any(clips.glob("dia*_utt*.mp4")):
                return meld_items(path, clips)
        raise MmdeskError(f"no dia*_utt*.mp4 clips beside {path}", "put the MELD.Raw clips next to the csv")
    if layout == "mustard":
        return mustard_items(path, path.parent / "utterances_final")
    if layout == "ravdess":
        return ravdess_items(path)
    raise MmdeskError(f"unknown aligned layout {layout!r}", f"use one of {', '.join(LAYOUTS)}")


@dataclass
class AlignedExample:
    face: np.ndarray | None
    voice: np.ndarray | None
    text: np.ndarray | None
    emotion: int | None
    sarcasm: int | None
    group: str


def aligned_examples(items: list[AlignedItem], analyzer, log: Callable[[str], None] = print,
                     context: bool = True) -> tuple[list[AlignedExample], list[str]]:
    """Tokens of every 2 s window (1 s hop) of each clip, with the clip's text and labels.

    ``analyzer`` must have a fusion head (its token sizes decide the tokens). A clip that cannot be
    decoded is reported and skipped; the others are kept.
    """
    from mmdesk.analysis.clip import analyse_clip
    from mmdesk.sync.windower import WindowSpec

    out, problems = [], []
    for n, item in enumerate(items):
        text = f"{item.context} {item.text}".strip() if context and item.context else item.text
        text_tokens = analyzer.text_tokens(text) if text else None
        try:
            for _ in analyse_clip(item.path, analyzer, WindowSpec(2.0, 1.0), subtitles=False):
                tok = analyzer.last_tokens
                if tok.get("face") is None and tok.get("voice") is None:
                    continue
                out.append(AlignedExample(tok.get("face"), tok.get("voice"), text_tokens, item.emotion,
                                          item.sarcasm, item.group))
        except MmdeskError as exc:
            problems.append(f"{item.path.name}: {exc.one_line()}")
        if n % 20 == 0:
            log(f"aligned clips: {n + 1}/{len(items)}")
    return out, problems
