"""Whisper on real read speech: the right words, at the right times, in the right windows."""

from __future__ import annotations

import itertools

import jiwer
from asr_support import BECKETT, phrase_intervals, words_of

from mmdesk.asr.events import ClipSpeechText, TextTrack, word_events
from mmdesk.sync.windower import Windower, WindowSpec

HOP = 0.5
# beckett.wav's loud stretches (RMS envelope, pauses < 0.3 s bridged) and the words read in each
PHRASES = [["ever", "tried", "ever", "failed"], ["no", "matter", "try", "again"], ["fail", "again"], ["fail", "better"]]


def test_beckett_word_for_word(beckett_utterances) -> None:
    text = " ".join(u.text for u in beckett_utterances)
    assert jiwer.wer(" ".join(words_of(BECKETT)), " ".join(words_of(text))) <= 1 / 12
    assert all(u.language == "en" and u.confidence > 0.7 for u in beckett_utterances)
    words = [w for u in beckett_utterances for w in u.words]
    assert all(a.start <= a.end <= b.start + 1e-6 for a, b in itertools.pairwise(words))  # in time order


def test_word_times_fall_on_the_spoken_phrases(beckett_utterances, beckett_chunks) -> None:
    spans = phrase_intervals(beckett_chunks)
    assert len(spans) == len(PHRASES)
    words = [w for u in beckett_utterances for w in u.words]
    assert [words_of(w.text)[0] for w in words] == [x for p in PHRASES for x in p]
    i = 0
    for (lo, hi), phrase in zip(spans, PHRASES):
        for w in words[i : i + len(phrase)]:
            assert lo - HOP <= w.start and w.end <= hi + HOP, (w, lo, hi)
        i += len(phrase)


def test_words_land_in_the_windows_that_span_them(beckett_utterances, beckett_chunks) -> None:
    spans = phrase_intervals(beckett_chunks)
    windower = Windower(WindowSpec(2.0, HOP), has_video=False)
    for chunk in beckett_chunks:
        windower.push(chunk)
    events = [e for u in beckett_utterances for e in word_events(u)]
    for e in events:
        windower.push(e)
    windows = windower.flush(beckett_chunks[-1].end)
    assert len(windows) >= 15
    i = 0
    for (lo, hi), phrase in zip(spans, PHRASES):
        mine = {(e.start, e.text) for e in events[i : i + len(phrase)]}
        for win in windows:
            got = {(e.start, e.text) for e in win.texts}
            if lo >= win.start and hi <= win.end:  # the whole phrase is spoken inside: all its words are there
                assert mine <= got, (win.start, win.end, win.text)
            if win.end <= lo - HOP or win.start >= hi + HOP:  # more than a hop away from it: none of them
                assert not mine & got, (win.start, win.end, win.text)
        i += len(phrase)
    for win in windows:
        assert all(e.start < win.end and e.end > win.start and e.origin == "asr" for e in win.texts)


def test_streaming_stage_holds_windows_until_their_words_are_known(engine, manifest, beckett_chunks) -> None:
    """Through ClipSpeechText, as `mmdesk analyze` runs it: identical text to the offline result."""
    from mmdesk.asr.segmenter import SpeechSegmenter
    from mmdesk.asr.transcriber import SpeechTranscriber
    from mmdesk.perception.vad import SileroVad

    stage = ClipSpeechText(SpeechTranscriber(engine, SpeechSegmenter(SileroVad(manifest)), batch_seconds=4.0),
                           TextTrack("words"))
    windower = Windower(WindowSpec(2.0, HOP), has_video=False)
    early = []
    for chunk in beckett_chunks:
        for e in stage.feed(chunk):
            assert not early or e.start >= early[-1].end - 1e-6  # never overlaps a window already out
            windower.push(e)
        windower.push(chunk)
        early += windower.ready(min(windower.watermark, stage.settled))
    for e in stage.flush():
        windower.push(e)
    windows = early + windower.flush(beckett_chunks[-1].end)
    assert early, "small batches let windows out before the end of the clip"
    text = " ".join(w.text for w in windows)
    assert all(x in words_of(text) for x in ("matter", "better", "failed"))
    assert stage.transcriber.stats.batches >= 2


def test_utterance_context_is_the_current_and_previous_utterance(beckett_utterances) -> None:
    track = TextTrack("utterance")
    events = [e for u in beckett_utterances for e in track.add(u)] + track.finish()
    assert [e.text for e in events] == [u.text for u in beckett_utterances]
    us = beckett_utterances
    for k in range(len(us) - 1):  # held until the next utterance ends
        assert events[k].start == us[k].start and events[k].end == us[k + 1].end
    windower = Windower(WindowSpec(2.0, HOP), has_video=False)
    for e in events:
        windower.push(e)
    windows = windower.flush(us[-1].end)
    for win in windows:
        spoken = [u for u in us if u.start < win.end and u.end > win.start]
        if spoken:  # the utterances spoken in it and the one before the first of them
            first = us.index(spoken[0])
            expected = us[max(0, first - 1): us.index(spoken[-1]) + 1]
            assert win.text == " ".join(u.text for u in expected)
