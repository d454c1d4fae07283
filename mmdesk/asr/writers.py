"""Transcripts as SubRip (.srt), WebVTT (.vtt), JSON Lines (.jsonl) or plain text, written as they come.

Like ``mmdesk analyze``, a file goes to ``FILE.partial`` first, one finished cue per write, and is
renamed onto ``FILE`` when the run ends (also after Ctrl-C), so an interrupted run keeps every cue.
JSON Lines carries the words with their times and probabilities and marks the utterances held back
as low confidence; the subtitle formats carry one cue per utterance.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

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
        self.path = Path(out) if out else None
        self.partial_path = self.path.with_name(self.path.name + ".partial") if self.path else None
        self.cues = 0
        self._stream: IO[str]
        if self.path is not None:
            if self.path.is_dir():
                raise MmdeskError(f"--out {self.path} is a directory", "give a file name such as talk.srt")
            if not self.path.parent.exists():
                raise MmdeskError(f"the folder of --out {self.path} does not exist", "create it or choose another path")
            self._stream = open(self.partial_path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed by close()
        else:
            self._stream = sys.stdout
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
        if self.path is None:
            self._stream.flush()
            return
        if not self._stream.closed:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            os.replace(self.partial_path, self.path)

    def _put(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
