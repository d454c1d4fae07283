"""Session-scoped Whisper, VAD and transcriptions of the real read speech in ../shared/assets/media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmdesk.core.types import AudioChunk

BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def read_chunks(path: Path) -> list[AudioChunk]:
    """A file's audio as the 16 kHz chunks every source delivers."""
    from mmdesk.capture.clip import ClipSource

    with ClipSource(path, video=False, subtitles=False) as src:
        src.open()
        chunks = []
        while (item := src.read()) is not None:
            if isinstance(item, AudioChunk):
                chunks.append(item)
    return chunks


def words_of(text: str) -> list[str]:
    import re

    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


@pytest.fixture(scope="session")
def manifest(pack_dir: Path):
    from mmdesk.inference.manifest import load_manifest

    m = load_manifest(pack_dir)
    if "speech_to_text" not in m.entries:
        pytest.fail("the model pack has no speech_to_text model: run `mmdesk models build`")
    return m


@pytest.fixture(scope="session")
def engine(manifest):
    from mmdesk.asr.engine import WhisperEngine, choose_model

    return WhisperEngine(choose_model(None, manifest), device="cpu")


@pytest.fixture
def transcriber(engine, manifest):
    from mmdesk.asr.segmenter import SpeechSegmenter
    from mmdesk.asr.transcriber import SpeechTranscriber
    from mmdesk.perception.vad import SileroVad

    return SpeechTranscriber(engine, SpeechSegmenter(SileroVad(manifest)))


@pytest.fixture(scope="session")
def beckett(assets: Path) -> Path:
    return assets / "media" / "beckett.wav"


@pytest.fixture(scope="session")
def beckett_chunks(beckett: Path) -> list[AudioChunk]:
    return read_chunks(beckett)


@pytest.fixture(scope="session")
def beckett_utterances(engine, manifest, beckett_chunks):
    """beckett.wav transcribed once per session."""
    from mmdesk.asr.segmenter import SpeechSegmenter
    from mmdesk.asr.transcriber import SpeechTranscriber
    from mmdesk.perception.vad import SileroVad

    return list(SpeechTranscriber(engine, SpeechSegmenter(SileroVad(manifest))).stream(beckett_chunks))


def phrase_intervals(chunks: list[AudioChunk], min_gap: float = 0.3) -> list[tuple[float, float]]:
    """Where the signal is loud, from its RMS envelope alone (independent of the VAD and Whisper)."""
    x = np.concatenate([c.samples for c in chunks])
    hop = 160  # 10 ms
    rms = np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(400) / 400, "same")[::hop])
    loud = rms > 0.1 * rms.max()
    spans: list[list[float]] = []
    for i in np.flatnonzero(loud):
        t = chunks[0].t + i * hop / 16000
        if spans and t - spans[-1][1] < min_gap:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    return [(a, b) for a, b in spans if b - a > 0.15]
