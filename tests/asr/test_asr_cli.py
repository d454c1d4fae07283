"""`mmdesk analyze` with speech-to-text, `mmdesk transcribe`, and bad input through the command line."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from asr_support import BECKETT, words_of

from mmdesk.asr.writers import TranscriptWriter
from mmdesk.capture.subtitles import read_subtitles
from mmdesk.cli import main

RAVDESS = "av/ravdess_actor05/01-01-04-01-01-01-05.mp4"  # "Kids are talking by the door", sad
EMODB_GERMAN = "voice/emodb/wav/03a01Fa.wav"  # "Der Lappen liegt auf dem Eisschrank"


def records(path: Path) -> tuple[dict, list[dict], dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return rows[0], [r for r in rows if r["type"] == "window"], rows[-1]


def write_wav(path: Path, x: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_analyze_transcribes_the_clip_into_its_windows(tmp_path, assets, pack_dir) -> None:
    out = tmp_path / "r.jsonl"
    assert main(["analyze", str(assets / RAVDESS), "--out", str(out), "--fps", "2", "--quiet"]) == 0
    meta, windows, end = records(out)
    assert meta["text_source"] == "asr" and meta["models"]["speech_to_text"]["file"] == "tiny.en (pack)"
    said = words_of(" ".join(w["text"].get("text", "") for w in windows))
    assert {"kids", "talking", "door"} <= set(said)
    assert end["asr"]["utterances"] == 1 and end["asr"]["held_back"] == []
    (utt,) = end["asr"]["transcript"]  # the sentence once, over its own span, not cut by the windows
    assert words_of(utt["text"]) == ["kids", "are", "talking", "by", "the", "door"]
    assert 0.3 < utt["start"] < utt["end"] < 3.3
    assert windows[-1]["text"]["present"] is False  # the last window starts after the sentence ended


def test_sidecar_subtitles_win_over_speech_and_no_asr_turns_it_off(tmp_path, assets, pack_dir) -> None:
    clip = tmp_path / "talk.mp4"
    shutil.copyfile(assets / RAVDESS, clip)
    (tmp_path / "talk.srt").write_text("1\n00:00:00,500 --> 00:00:02,500\nOh sure, what a lovely door.\n")
    out = tmp_path / "s.jsonl"
    assert main(["analyze", str(clip), "--out", str(out), "--fps", "2", "--quiet"]) == 0
    meta, windows, end = records(out)
    assert meta["text_source"] == "subtitle" and "speech_to_text" not in meta["models"] and "asr" not in end
    texts = {w["text"].get("text", "") for w in windows}
    assert "Oh sure, what a lovely door." in texts and not any("kids" in t.lower() for t in texts)

    out2 = tmp_path / "n.jsonl"
    assert main(["analyze", str(clip), "--out", str(out2), "--fps", "2", "--no-subtitles", "--no-asr", "-q"]) == 0
    meta, windows, _ = records(out2)
    assert meta["text_source"] == "none" and not any(w["text"]["present"] for w in windows)


def test_transcribe_writes_jsonl_with_words(tmp_path, beckett, pack_dir) -> None:
    out = tmp_path / "b.jsonl"
    assert main(["transcribe", str(beckett), "--out", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["type"] == "meta" and rows[-1]["type"] == "end" and rows[-1]["complete"]
    assert not (tmp_path / "b.jsonl.partial").exists()
    words = [w for r in rows[1:-1] for w in r["words"]]
    assert len(words) == 12 and all(0 <= w["start"] <= w["end"] <= 10.0 for w in words)
    assert words_of(" ".join(w["text"] for w in words)) == words_of(BECKETT)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitle_transcripts_read_back(fmt, tmp_path, beckett_utterances) -> None:
    out = tmp_path / f"b.{fmt}"
    writer = TranscriptWriter(out, fmt)
    for u in beckett_utterances:
        writer.utterance(u)
    writer.close()
    cues = read_subtitles(out).events  # mmdesk's own subtitle reader reads them back
    assert [c.text for c in cues] == [u.text for u in beckett_utterances]
    times = [t for c in cues for t in (c.start, c.end)]
    assert times == pytest.approx([t for u in beckett_utterances for t in (u.start, u.end)], abs=1e-3)


def test_silence_noise_and_music_give_no_text(tmp_path, capsys, pack_dir) -> None:
    t = np.arange(2 * 16000) / 16000
    chord = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (262, 330, 392)) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) / 2
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * 16000)
    wav = write_wav(tmp_path / "no_speech.wav", np.concatenate([np.zeros(16000 * 2), noise, chord]))
    out = tmp_path / "x.jsonl"
    assert main(["transcribe", str(wav), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["type"] for r in rows] == ["meta", "end"] and rows[-1]["utterances"] == 0
    assert "no speech was transcribed" in capsys.readouterr().err


def test_german_speech_is_held_back_from_the_english_text_model(tmp_path, capsys, assets, pack_dir) -> None:
    out = tmp_path / "de.jsonl"
    assert main(["analyze", str(assets / EMODB_GERMAN), "--out", str(out)]) == 0
    _, windows, end = records(out)
    held = end["asr"]["held_back"]
    assert len(held) == 1 and held[0]["confidence"] < 0.6 and held[0]["text"]  # kept in the record, not lost
    assert end["asr"]["transcript"] == []  # not what the judgements saw
    assert not any(w["text"]["present"] for w in windows)
    assert any("English-only" in n for n in end["notes"])
    assert main(["transcribe", str(assets / EMODB_GERMAN), "--language", "de"]) == 2
    assert "English-only" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--language", "xx"], "unknown language code 'xx'"),
        (["--asr-model", "./no/such/model"], "does not exist"),
    ],
)
def test_bad_asr_options_are_one_line_errors(args, message, capsys, beckett, pack_dir) -> None:
    assert main(["transcribe", str(beckett), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_model_folder_of_the_users_own(tmp_path, beckett, manifest) -> None:
    """--asr-model DIR: any CTranslate2 Whisper folder (here a link to the pack's, under another name)."""
    folder = tmp_path / "my-whisper"
    folder.symlink_to(manifest.path("speech_to_text"), target_is_directory=True)
    out = tmp_path / "b.jsonl"
    assert main(["transcribe", str(beckett), "--asr-model", str(folder), "--out", str(out), "-q"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["model"] == "my-whisper" and rows[0]["model_sha256"] == ""
    assert words_of(" ".join(r["text"] for r in rows[1:-1])) == words_of(BECKETT)
