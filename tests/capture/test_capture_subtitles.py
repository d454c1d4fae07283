"""Subtitle parsing, encodings and the subtitles source."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from mmdesk.capture.subtitles import (
    SubtitleSource,
    clean_cue_text,
    decode_text,
    find_sidecar,
    parse_srt,
    parse_vtt,
    read_subtitles,
)
from mmdesk.core.types import TextEvent
from mmdesk.errors import MediaError

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> there,
{\\an8}General Kenobi!

2
00:00:03,000 --> 00:00:04,000
<font color="#ff0000">Red</font> &amp; <b>bold</b>

3
00:00:05.5 --> 00:00:06,25
Loose timestamps
"""


def test_parse_srt() -> None:
    cues = parse_srt(SRT)
    assert cues == [
        TextEvent(1.0, 2.5, "Hello there, General Kenobi!", "subtitle"),
        TextEvent(3.0, 4.0, "Red & bold", "subtitle"),
        TextEvent(5.5, 6.25, "Loose timestamps", "subtitle"),
    ]
    assert cues.skipped == 0


def test_parse_srt_skips_and_counts_malformed_cues() -> None:
    text = (
        "garbage without timing\n\n"
        "1\n00:00:01,000 --> 00:00:02,000\nA\n"
        "2\n00:00:03,000 --> 00:00:04,000\nB\n\n"  # no blank line before cue 2: still split
        "3\n00:00:99,000 --> 00:01:00,000\nbad seconds\n\n"
        "4\n00:00:05,000 --> 00:00:04,000\nends before it starts\n\n"
        "5\n00:00:06,000 --> 00:00:07,000\n\n"  # empty cue: legal, nothing to deliver
        "6\r\n00:00:08,000 --> 00:00:09,000\r\nCRLF\r\n"
    )
    cues = parse_srt(text)
    assert [(c.start, c.text) for c in cues] == [(1.0, "A"), (3.0, "B"), (8.0, "CRLF")]
    assert cues.skipped == 3


def test_parse_vtt() -> None:
    text = (
        "WEBVTT - a title\n\n"
        "NOTE a comment\nspanning lines\n\n"
        "STYLE\n::cue { color: yellow }\n\n"
        "intro\n00:01.000 --> 00:02.500 align:start position:10%\n"
        "<v Roger>Hello <c.yellow>there</c> <00:01.500>friend\n\n"
        "01:00:00.000 --> 01:00:01.000\nan hour in\n\n"
        "00:03.000 --> 00:02.000\nbackwards\n"
    )
    cues = parse_vtt(text)
    assert [(c.start, c.end, c.text) for c in cues] == [
        (1.0, 2.5, "Hello there friend"),
        (3600.0, 3601.0, "an hour in"),
    ]
    assert cues.skipped == 1
    assert all(c.origin == "subtitle" for c in cues)


def test_clean_cue_text() -> None:
    assert clean_cue_text("{\\an8}<i>a</i>\n  b  \n\n<c.red.bg_blue>c</c>&nbsp;d") == "a b c d"
    assert len(clean_cue_text("x" * 10_000)) == 2_000


ACCENTED = "1\n00:00:00,500 --> 00:00:01,500\nCafé naïve — déjà vu\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (ACCENTED.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + ACCENTED.encode("utf-8"), "utf-8-sig"),
        (ACCENTED.encode("utf-16"), "utf-16"),  # with BOM
        (codecs.BOM_UTF16_BE + ACCENTED.encode("utf-16-be"), "utf-16"),
        (ACCENTED.encode("utf-16-le"), "utf-16-le"),  # no BOM
        (ACCENTED.encode("cp1252"), "cp1252"),
    ],
)
def test_encodings(tmp_path: Path, data: bytes, encoding: str) -> None:
    p = tmp_path / "subs.srt"
    p.write_bytes(data)
    sub = read_subtitles(p)
    assert sub.encoding == encoding
    assert [e.text for e in sub.events] == ["Café naïve — déjà vu"]
    if encoding not in ("utf-8", "utf-8-sig", "utf-16"):
        assert sub.notes, "a non-UTF-8 file is read with a note"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Ça va? Oui, très bien. Élève", "latin-1"),
        ("Schöne Grüße aus München, übrigens.", "cp1252"),
        ("¿Qué tal, señor? Mañana.", "cp1252"),
        ("Zażółć gęślą jaźń. Łódź jest ładna, prawda?", "cp1250"),
        ("Привет, как дела? Всё хорошо, спасибо.", "cp1251"),
    ],
)
def test_detected_single_byte_encodings(text: str, encoding: str) -> None:
    decoded, _, notes = decode_text(text.encode(encoding))
    assert decoded == text and notes


def test_undecodable_bytes_never_crash(tmp_path: Path) -> None:
    p = tmp_path / "junk.srt"
    p.write_bytes(b"1\n00:00:01,000 --> 00:00:02,000\n" + bytes(range(128, 256)) * 4 + b"\n")
    sub = read_subtitles(p)
    assert len(sub.events) == 1 and sub.notes


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        read_subtitles(tmp_path / "nope.srt")
    with pytest.raises(MediaError, match="directory"):
        read_subtitles(tmp_path)


def test_vtt_chosen_by_content_or_extension(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nhi\n", encoding="utf-8")
    assert [e.text for e in read_subtitles(p).events] == ["hi"]


def test_find_sidecar(tmp_path: Path) -> None:
    clip = tmp_path / "talk.mp4"
    assert find_sidecar(clip) is None
    (tmp_path / "talk.vtt").write_text("WEBVTT\n", encoding="utf-8")
    assert find_sidecar(clip) == tmp_path / "talk.vtt"
    (tmp_path / "talk.srt").write_text("", encoding="utf-8")
    assert find_sidecar(clip) == tmp_path / "talk.srt"  # .srt first


def test_subtitle_source(tmp_path: Path) -> None:
    p = tmp_path / "s.srt"
    p.write_text(SRT, encoding="utf-8")
    src = SubtitleSource(p)
    assert not src.exhausted
    with src:
        got = [src.read(), src.read(), src.read()]
        assert src.exhausted and src.read() is None
    assert [e.start for e in got if e] == [1.0, 3.0, 5.5]
    src.close()
    empty = tmp_path / "e.srt"
    empty.write_text("", encoding="utf-8")
    with SubtitleSource(empty) as s:
        assert s.exhausted and s.read() is None
