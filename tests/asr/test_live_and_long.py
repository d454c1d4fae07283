"""Live partial/final text from a file-fed microphone; a long signal held in bounded memory."""

from __future__ import annotations

import itertools
import threading
import time

import jiwer
from asr_support import read_chunks, words_of

from mmdesk.asr.live import SpeechTextSource
from mmdesk.asr.segmenter import SpeechSegmenter
from mmdesk.core.clock import SessionClock
from mmdesk.core.types import AudioChunk
from mmdesk.perception.vad import SileroVad

TWO_CITIES_13S = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
                  "of foolishness, it was the epoch of belief, it was the epoch of incredulity")


def test_live_partials_then_finals_from_a_file_fed_microphone(transcriber, assets) -> None:
    """two_cities.wav's first two sentences (13 s) in real time, 0.13 s chunks on the session clock,
    as the microphone source delivers them."""
    chunks = [c for c in read_chunks(assets / "media" / "two_cities.wav") if c.t < 13.3]
    clock = SessionClock()
    live = SpeechTextSource(transcriber, clock=clock, partial_every=1.0)
    live.open()

    def microphone() -> None:
        for chunk in chunks:
            time.sleep(max(0.0, chunk.end - clock.now()))
            live.feed(AudioChunk(chunk.t, chunk.samples))
        live.close()

    mic = threading.Thread(target=microphone)
    mic.start()
    events = []
    while not live.exhausted:
        if (e := live.read(0.2)) is not None:
            events.append(e)
    mic.join()
    finals = [e for e in events if e.final]
    assert all(e.origin == "asr" for e in events)
    assert live.partials >= 2 and len(finals) == live.finals == 2
    said = " ".join(words_of(" ".join(e.text for e in finals)))
    assert jiwer.wer(" ".join(words_of(TWO_CITIES_13S)), said) <= 0.1
    # a partial comes before the final of its utterance and overlaps it in time
    first_partial = next(i for i, e in enumerate(events) if not e.final)
    final_after = next(e for e in events[first_partial:] if e.final)
    assert events[first_partial].start < final_after.end and events[first_partial].end > final_after.start
    assert len(live.latencies) == 2 and all(x > 0 for x in live.latencies)


def test_close_transcribes_speech_still_in_progress(transcriber, beckett_chunks) -> None:
    live = SpeechTextSource(transcriber, partial_every=100.0)
    live.open()
    for chunk in beckett_chunks:
        if 6.2 <= chunk.t < 8.7:  # "Fail again." and the start of "Fail better.", cut mid-word
            live.feed(chunk)
    live.close()
    texts = []
    while (e := live.read(0.1)) is not None:
        texts.append(e.text)
    assert len(texts) == 2 and words_of(texts[0]) == ["fail", "again"]
    assert words_of(texts[1])[:1] == ["fail"]  # nothing heard is lost


def test_long_speech_is_cut_and_memory_stays_bounded(manifest, assets) -> None:
    chunks = read_chunks(assets / "media" / "two_cities.wav")
    seg = SpeechSegmenter(SileroVad(manifest), max_seconds=5.0)
    segments, peak = [], 0
    for rep in range(3):  # ~2 min of speech, timestamps running on
        offset = rep * 45.0
        for c in chunks:
            segments += seg.feed(AudioChunk(c.t + offset, c.samples))
            peak = max(peak, len(seg._buf))
    segments += seg.flush()
    assert seg.forced_cuts >= 3 and max(s.duration for s in segments) <= 5.0 + 0.2 + 0.1
    assert peak / 16000 <= 5.0 + 0.2 + 0.2  # never more than one cut utterance of audio
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(segments))
    assert sum(s.duration for s in segments) > 0.7 * 3 * 44  # the speech is in the segments
