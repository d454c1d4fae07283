"""Session-scoped Whisper, VAD and transcriptions of the real read speech in ../shared/assets/media."""

from __future__ import annotations

from pathlib import Path

import pytest
from asr_support import read_chunks

from mmdesk.core.types import AudioChunk


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
