"""SubRip (.srt) and WebVTT (.vtt) cues as ``TextEvent(origin="subtitle")``, plus a finite source.

* ``parse_srt(text)`` / ``parse_vtt(text)``: pure parsers returning a list of TextEvents (a
  ``Cues`` list, which also tells how many malformed cues were ``skipped``). Markup is stripped:
  ``<i>``, ``<b>``, ``<c.yellow>``, ``<v Speaker>``, inline ``<00:01.000>`` timestamps, ASS
  overrides such as ``{\\an8}``; HTML entities are unescaped; a cue's lines are joined with a space.
* ``read_subtitles(path)``: bytes to text (UTF-8 with or without BOM, UTF-16/32 with BOM, UTF-16
  without BOM, else detected with charset-normalizer, e.g. cp1252), then the parser chosen by
  content/extension. A file that is not UTF-8 is read with a note, never a crash.
* ``SubtitleSource(path)``: registered as ``"subtitles"``; delivers the cues in start order.
"""

from __future__ import annotations

import codecs
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mmdesk.capture.base import Source, register_source
from mmdesk.core.types import TextEvent
from mmdesk.errors import MediaError

#: subtitle files larger than this are refused (a 2-hour film's .srt is ~100 kB)
MAX_SUBTITLE_BYTES = 20 * 1024 * 1024
#: a single cue's text is cut to this many characters
MAX_CUE_CHARS = 2_000

SIDECAR_EXTENSIONS = (".srt", ".vtt")


class Cues(list[TextEvent]):
    """A list of cues that also says how many malformed cues were skipped."""

    skipped: int = 0

    def __init__(self, events: list[TextEvent] | None = None, skipped: int = 0) -> None:
        super().__init__(events or [])
        self.skipped = skipped


# HH:MM:SS,mmm or MM:SS.mmm (hours optional, "," or "." before the fraction, 1-3 digit fraction)
_TS = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(r"^\s*" + _TS + r"\s*-->\s*" + _TS + r"(?:\s+.*)?$")
_TAG = re.compile(r"<[^<>]*>")
_ASS = re.compile(r"\{\\[^{}]*\}")
_SPACES = re.compile(r"[ \t\u00a0]+")


def _seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    ms = int((frac or "0").ljust(3, "0")[:3])
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + ms / 1000


def _parse_timing(line: str) -> tuple[float, float] | None:
    m = _TIMING.match(line)
    if m is None:
        return None
    g = m.groups()
    if int(g[2]) >= 60 or int(g[6]) >= 60:
        return None
    return _seconds(*g[0:4]), _seconds(*g[4:8])


def clean_cue_text(text: str) -> str:
    """Strip markup (HTML-like tags, ASS overrides), unescape entities, join lines."""
    text = _ASS.sub("", text)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    text = text.replace("\\N", " ").replace("\\n", " ")
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.splitlines()]
    out = " ".join(ln for ln in lines if ln)
    return out[:MAX_CUE_CHARS]


def _blocks(text: str) -> list[list[str]]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    blocks: list[list[str]] = []
    cur: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    return blocks


def _parse_blocks(blocks: list[list[str]]) -> Cues:
    events: list[TextEvent] = []
    skipped = 0
    for block in blocks:
        # the timing line is the first or (after a cue number / identifier) the second line;
        # a block holding several timing lines (missing blank line) is split at each of them
        starts = [i for i, ln in enumerate(block) if "-->" in ln]
        if not starts or starts[0] > 1:
            skipped += 1
            continue
        for k, i in enumerate(starts):
            end_i = starts[k + 1] if k + 1 < len(starts) else len(block)
            body = block[i + 1 : end_i]
            # a following cue's number sits right before its timing line
            if k + 1 < len(starts) and body and body[-1].strip().isdigit():
                body = body[:-1]
            timing = _parse_timing(block[i])
            if timing is None or timing[1] < timing[0]:
                skipped += 1
                continue
            start, end = timing
            if end == start:
                end = start + 0.001
            cue = clean_cue_text("\n".join(body))
            if not cue:
                continue  # an empty cue is legal (a blank screen); nothing to deliver
            events.append(TextEvent(start=start, end=end, text=cue, origin="subtitle"))
    events.sort(key=lambda e: (e.start, e.end))
    return Cues(events, skipped)


def parse_srt(text: str) -> Cues:
    """Cues of a SubRip file's text (malformed cues are skipped and counted in ``.skipped``)."""
    return _parse_blocks(_blocks(text))


def parse_vtt(text: str) -> Cues:
    """Cues of a WebVTT file's text; the header, NOTE, STYLE and REGION blocks are ignored."""
    blocks = _blocks(text)
    if blocks and blocks[0][0].lstrip("\ufeff").startswith("WEBVTT"):
        header = blocks.pop(0)
        # a header immediately followed by a cue (no blank line) is tolerated
        rest = [i for i, ln in enumerate(header) if "-->" in ln]
        if rest:
            first = rest[0] - 1 if rest[0] > 1 else rest[0]
            blocks.insert(0, header[first:])
    blocks = [b for b in blocks if not re.match(r"^(NOTE|STYLE|REGION)\b", b[0].strip())]
    return _parse_blocks(blocks)


@dataclass(frozen=True)
class SubtitleFile:
    """A subtitle file read from disk."""

    path: str
    events: tuple[TextEvent, ...]
    encoding: str
    skipped: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def _looks_utf16(data: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' for BOM-less UTF-16 of mostly-ASCII text, else None."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) / 2
    if odd > 0.3 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.3 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def decode_text(data: bytes) -> tuple[str, str, list[str]]:
    """(text, encoding, notes) for subtitle bytes; never raises on odd encodings."""
    notes: list[str] = []
    for bom, enc in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(enc, errors="replace"), enc, notes
    try:
        return data.decode("utf-8"), "utf-8", notes
    except UnicodeDecodeError:
        pass
    enc16 = _looks_utf16(data)
    if enc16:
        notes.append(f"read as {enc16} (no byte-order mark)")
        return data.decode(enc16, errors="replace"), enc16, notes
    enc = _detect(data)
    notes.append(f"not UTF-8: read as {enc}")
    return data.decode(enc, errors="replace"), enc, notes


def _cp1252_ok(data: bytes) -> bool:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def _detect(data: bytes) -> str:
    """The encoding of non-UTF-8 text: charset-normalizer, nudged towards cp1252.

    On short Western text charset-normalizer often ranks cp1250 or even a CJK code page first
    with the same score as cp1252; Windows-1252 is by far the most common non-UTF-8 subtitle
    encoding, so it wins ties, and wins against a multi-byte guess for text that is mostly ASCII.
    """
    try:
        from charset_normalizer import from_bytes

        results = list(from_bytes(data))
    except Exception:  # detection is best effort
        results = []
    if not results:
        return "cp1252" if _cp1252_ok(data) else "latin-1"
    best = results[0]
    tied: set[str] = set()
    for r in results:
        if r.chaos <= best.chaos + 0.01:
            tied.add(r.encoding)
            tied.update(r.could_be_from_charset)
    if "cp1252" in tied:
        return "cp1252"
    high = sum(b >= 0x80 for b in data) / max(1, len(data))
    if _is_multibyte(best.encoding) and high < 0.3 and _cp1252_ok(data):
        return "cp1252"
    return best.encoding


def _is_multibyte(enc: str) -> bool:
    name = codecs.lookup(enc).name
    return any(
        k in name for k in ("big5", "gb", "932", "949", "950", "shift", "euc", "johab", "hz")
    )


def read_subtitles(path: str | os.PathLike[str]) -> SubtitleFile:
    """Read and parse an .srt or .vtt file; ``MediaError`` if it is missing or not subtitles."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise MediaError(
                f"cannot read subtitles {p}: it is a directory", "pass a .srt or .vtt file"
            )
        if size > MAX_SUBTITLE_BYTES:
            raise MediaError(
                f"cannot read subtitles {p}: {size / 1e6:.0f} MB is too large for a subtitle file",
                "pass a .srt or .vtt file",
            )
        data = p.read_bytes()
    except FileNotFoundError:
        raise MediaError(f"cannot read subtitles {p}: no such file", "check the path") from None
    except OSError as e:
        raise MediaError(
            f"cannot read subtitles {p}: {e.strerror or e}", "check the file"
        ) from None
    text, encoding, notes = decode_text(data)
    head = text.lstrip("\ufeff \t\r\n")[:6]
    is_vtt = head.startswith("WEBVTT") or p.suffix.lower() == ".vtt"
    cues = parse_vtt(text) if is_vtt else parse_srt(text)
    if cues.skipped:
        notes.append(f"{cues.skipped} malformed cue(s) skipped")
    if not cues and text.strip() and cues.skipped == 0:
        notes.append("no cues found")
    return SubtitleFile(
        path=str(p), events=tuple(cues), encoding=encoding, skipped=cues.skipped, notes=tuple(notes)
    )


def find_sidecar(clip_path: str | os.PathLike[str]) -> Path | None:
    """``<stem>.srt`` or ``<stem>.vtt`` next to a clip (any letter case), if there is one."""
    p = Path(clip_path)
    for ext in SIDECAR_EXTENSIONS:
        for cand in (p.with_suffix(ext), p.with_suffix(ext.upper())):
            if cand.is_file():
                return cand
    return None


@register_source("subtitles")
class SubtitleSource(Source):
    """A finite source of the cues of one .srt/.vtt file, in start order."""

    modalities: ClassVar[frozenset[str]] = frozenset({"text"})

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.file: SubtitleFile | None = None
        self._events: list[TextEvent] = []
        self._pos = 0
        self._opened = False
        self._closed = False

    @property
    def notes(self) -> tuple[str, ...]:
        return self.file.notes if self.file else ()

    def open(self) -> None:
        if self._opened:
            return
        self.file = read_subtitles(self.path)
        self._events = list(self.file.events)
        self._pos = 0
        self._opened = True

    def read(self, timeout: float | None = None) -> TextEvent | None:
        if not self._opened or self._closed or self._pos >= len(self._events):
            return None
        ev = self._events[self._pos]
        self._pos += 1
        return ev

    @property
    def exhausted(self) -> bool:
        return self._closed or (self._opened and self._pos >= len(self._events))

    def close(self) -> None:
        self._closed = True
