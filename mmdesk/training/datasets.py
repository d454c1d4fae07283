"""Readers for the training corpora: EmoDB and RAVDESS speech (voice), MELD (text).

Every reader maps the corpus' own labels to ``mmdesk.core.labels.LABELS`` and raises
``MmdeskError`` with a one-line message when a folder or file is missing or empty.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mmdesk.core.labels import EMODB_TO_COMMON, LABELS, MELD_TO_COMMON, RAVDESS_TO_COMMON
from mmdesk.errors import MmdeskError

EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14")


@dataclass(frozen=True)
class VoiceItem:
    path: Path
    label: int  # index into LABELS
    speaker: str  # "emodb-03" ... / "ravdess-05"
    corpus: str  # "emodb" or "ravdess"


def _wavs(directory: Path, pattern: str, what: str, flag: str) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise MmdeskError(f"{what} folder {directory} does not exist", f"pass the folder with {flag} DIR")
    files = sorted(directory.glob(pattern))
    if not files:
        raise MmdeskError(f"no {what} wav files ({pattern}) in {directory}", f"pass the right folder with {flag} DIR")
    return files


def emodb_label(path: Path) -> int | None:
    """The LABELS index of an EmoDB ``SSTTTEV.wav`` file; None for boredom (L) or another name."""
    stem = Path(path).stem
    if len(stem) != 7 or not stem[:2].isdigit():
        return None
    common = EMODB_TO_COMMON.get(stem[5])  # L = boredom: no counterpart in LABELS
    return LABELS.index(common) if common else None


def emodb_items(directory: Path) -> tuple[list[VoiceItem], int]:
    """EmoDB ``SSTTTEV.wav`` files with a common label; also the number skipped (boredom, odd names)."""
    items: list[VoiceItem] = []
    skipped = 0
    for p in _wavs(directory, "*.wav", "EmoDB", "--emodb"):
        label = emodb_label(p)
        if label is None:
            skipped += 1
            continue
        items.append(VoiceItem(p, label, f"emodb-{p.stem[:2]}", "emodb"))
    if not items:
        raise MmdeskError(
            f"no usable EmoDB files (SSTTTEV.wav) in {directory}", "pass the EmoDB wav folder with --emodb"
        )
    return items, skipped


def ravdess_items(directory: Path) -> tuple[list[VoiceItem], int]:
    """RAVDESS speech ``03-01-EE-II-SS-RR-AA.wav`` files (calm folded into neutral)."""
    items: list[VoiceItem] = []
    skipped = 0
    for p in _wavs(directory, "03-*.wav", "RAVDESS speech", "--ravdess"):
        parts = p.stem.split("-")
        common = RAVDESS_TO_COMMON.get(parts[2]) if len(parts) == 7 else None
        if common is None:
            skipped += 1
            continue
        items.append(VoiceItem(p, LABELS.index(common), f"ravdess-{parts[6]}", "ravdess"))
    if not items:
        raise MmdeskError(f"no usable RAVDESS speech files in {directory}", "pass the RAVDESS folder with --ravdess")
    return items, skipped


def label_counts(labels: Iterable[int]) -> dict[str, int]:
    c = Counter(int(x) for x in labels)
    return {name: c.get(i, 0) for i, name in enumerate(LABELS)}


# --- MELD -------------------------------------------------------------------------------------

# Common mojibake of UTF-8 punctuation decoded as cp1252 / latin-1, and the stray bytes seen in
# MELD copies (cp1252 0x91-0x97 quotes and dashes read as latin-1 control characters, "Â" junk).
_MOJIBAKE = {
    "â€™": "'", "â€˜": "'", "â€œ": '"', "â€\x9d": '"', "â€": '"',
    "â€¦": "...", "â€”": "-", "â€“": "-",
    "\x91": "'", "\x92": "'", "\x93": '"', "\x94": '"', "\x85": "...", "\x96": "-", "\x97": "-",
    "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2014": "-", "\u2013": "-",
    "\u00a0": " ",
}
_MOJIBAKE_RE = re.compile("|".join(re.escape(k) for k in sorted(_MOJIBAKE, key=len, reverse=True)))
_STRAY_A_RE = re.compile("\u00c2(?=[\\s\u00a0-\u00bf]|$)")  # "Â" left before a space / latin-1 symbol
_SPACES_RE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Minimal clean-up of MELD utterances: mojibake and typographic punctuation -> ASCII, spaces.

    Typographic apostrophes become "'" because that is what people type (and what the runtime
    sees from a keyboard or ASR); the tokenizer treats both the same way apart from that.
    """
    t = _STRAY_A_RE.sub("", text)
    t = _MOJIBAKE_RE.sub(lambda m: _MOJIBAKE[m.group(0)], t)
    return _SPACES_RE.sub(" ", t).strip()


def read_text_robust(path: Path) -> str:
    """Text of a file: UTF-8 (BOM allowed) if it decodes, else cp1252, else latin-1."""
    raw = Path(path).read_bytes()
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


@dataclass(frozen=True)
class TextItem:
    text: str
    label: int
    dialogue: int
    utterance: int
    previous: str  # the previous utterance of the same dialogue, "" for the first


def meld_items(path: Path) -> list[TextItem]:
    """MELD ``*_sent_emo.csv`` rows (Utterance, Emotion, Dialogue_ID, Utterance_ID) with common labels."""
    path = Path(path)
    if not path.is_file():
        raise MmdeskError(f"MELD file {path} does not exist", "pass the MELD folder with --meld DIR")
    reader = csv.DictReader(io.StringIO(read_text_robust(path), newline=""))
    need = {"Utterance", "Emotion", "Dialogue_ID", "Utterance_ID"}
    if not reader.fieldnames or not need <= set(reader.fieldnames):
        raise MmdeskError(f"MELD file {path} lacks the columns {sorted(need)}", "pass an original MELD csv")
    rows = []
    for r in reader:
        common = MELD_TO_COMMON.get(r["Emotion"].strip().lower())
        if common is None:
            continue
        rows.append((int(r["Dialogue_ID"]), int(r["Utterance_ID"]), clean_text(r["Utterance"]), LABELS.index(common)))
    if not rows:
        raise MmdeskError(f"MELD file {path} has no labelled utterances", "pass an original MELD csv")
    rows.sort(key=lambda x: (x[0], x[1]))
    items: list[TextItem] = []
    prev_dialogue, prev_text = None, ""
    for dialogue, utt, text, label in rows:
        previous = prev_text if dialogue == prev_dialogue else ""
        items.append(TextItem(text, label, dialogue, utt, previous))
        prev_dialogue, prev_text = dialogue, text
    return items


def sha256_texts(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
