"""Transcripts as SubRip (.srt), WebVTT (.vtt), JSON Lines (.jsonl) or plain text, written as they come.

Like ``mmdesk analyze``, a file goes to ``FILE.partial`` first, one finished cue per write, and is
renamed onto ``FILE`` when the run ends (also after Ctrl-C), so an interrupted run keeps every cue.
JSON Lines carries the words with their times and probabilities and marks the utterances held back
as low confidence; the subtitle formats carry one cue per utterance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mmdesk.analysis.writers import PartialFile
from mmdesk.asr.types import Utterance
from mmdesk.errors import MmdeskError

FORMATS: tuple[str, ...] = ("srt", "vtt", "jsonl", "txt")


def timestamp(t: float, sep: str) -> str:
    """HH:MM:SS<sep>mmm (SRT uses ",", WebVTT ".")."""
    ms = max(0, round(t * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_for(path: str | None, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".") if path else ""
    return suffix if suffix in FORMATS else "txt"


class TranscriptWriter:
    def __init__(self, out: str | os.PathLike[str] | None, fmt: str) -> None:
        if fmt not in FORMATS:
            raise MmdeskError(f"unknown transcript format {fmt!r}", f"use one of {', '.join(FORMATS)}")
        self.fmt = fmt
        self._file = PartialFile(out, "talk.srt", newline="\n")
        self.path, self.partial_path = self._file.path, self._file.partial_path
        self.cues = 0
        if fmt == "vtt":
            self._put("WEBVTT\n\n")

    def meta(self, record: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self._put(json.dumps({"type": "meta", **record}, ensure_ascii=False) + "\n")

    def utterance(self, u: Utterance, *, low_confidence: bool = False) -> None:
        self.cues += 1
        if self.fmt == "jsonl":
            rec = {"type": "utterance", "start": u.start, "end": u.end, "text": u.text,
                   "confidence": round(u.confidence, 3), "low_confidence": low_confidence,
                   "language": u.language,
                   "words": [{"start": w.start, "end": w.end, "text": w.text, "probability": round(w.probability, 3)}
                             for w in u.words]}  # fmt: skip
            self._put(json.dumps(rec, ensure_ascii=False) + "\n")
        elif self.fmt == "srt":
            self._put(f"{self.cues}\n{timestamp(u.start, ',')} --> {timestamp(u.end, ',')}\n{u.text}\n\n")
        elif self.fmt == "vtt":
            self._put(f"{timestamp(u.start, '.')} --> {timestamp(u.end, '.')}\n{u.text}\n\n")
        else:
            flag = "  (low confidence)" if low_confidence else ""
            self._put(f"[{timestamp(u.start, '.')} --> {timestamp(u.end, '.')}] {u.text}{flag}\n")

    def end(self, record: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self._put(json.dumps({"type": "end", **record}, ensure_ascii=False) + "\n")

    def close(self) -> None:
        self._file.close()

    def _put(self, text: str) -> None:
        self._file.write(text)
