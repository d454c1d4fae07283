"""The Whisper model behind mmdesk's speech-to-text.

``--asr-model`` chooses it:

* not given (or ``pack``): the pack's ``speech_to_text`` folder (Whisper tiny.en exported to ONNX,
  sha256-checked), decoded by mmdesk on onnxruntime (:mod:`mmdesk.asr.onnx_whisper`, faster-whisper's
  decoding without CTranslate2);
* a local folder: an ONNX Whisper folder as the pack builds it, or a CTranslate2 Whisper model
  (``config.json`` + ``model.bin`` + tokenizer), run by faster-whisper;
* a faster-whisper size name (``small``, ``base.en``, ``large-v3``…) or a Hugging Face hub id
  (``Systran/faster-whisper-small``): loaded by faster-whisper from the hub cache, or downloaded when online.

faster-whisper and CTranslate2 are optional (``pip install 'mmdesk[faster-whisper]'``); the desktop bundle
leaves them out and runs the pack's model only. :func:`open_engine` picks the engine for a choice.

Decoding is greedy (beam 1): on the read speech measured in docs/benchmarks.md it costs half of
beam 5 for the same word error rate. Whisper's own VAD is off: mmdesk's Silero VAD has already cut
the audio to speech (see ``segmenter``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mmdesk.asr.types import Word
from mmdesk.errors import MmdeskError, ModelError
from mmdesk.inference.manifest import Manifest, verify_file

PACK_MODEL = "pack"
#: a decoding that looks wrong (repetitive, or improbable) is retried hotter; Whisper's default has six
#: steps, which made speech the model does not know cost six decodings: three are enough to escape a loop
FALLBACK_TEMPERATURES = (0.0, 0.4, 0.8)
_HINT_MODEL = (
    "pass --asr-model with a CTranslate2 Whisper folder, or a model name such as 'small' when online; "
    "`mmdesk models build` restores the pack's model"
)


@dataclass(frozen=True)
class ModelChoice:
    location: str  # a folder, or a name / hub id for faster-whisper to resolve
    name: str  # shown in records: "tiny.en (pack)", a folder name or the hub id
    sha256: str = ""  # the pack's pin, when it is the pack's model


@dataclass(frozen=True)
class Decoded:
    """One decoding call: words with times relative to the audio given, and the language used."""

    words: tuple[Word, ...]
    language: str
    language_probability: float


def choose_model(spec: str | None, manifest: Manifest | None) -> ModelChoice:
    """Where the model comes from; ``ModelError`` with a fix when it cannot be found."""
    if not spec or spec == PACK_MODEL:
        if manifest is None:
            raise ModelError("no model pack to take the speech-to-text model from", _HINT_MODEL)
        path = verify_file(manifest, "speech_to_text")
        entry = manifest.entry("speech_to_text")
        return ModelChoice(str(path), f"{entry.preprocessing.get('name', 'whisper')} (pack)", entry.sha256)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not _is_onnx_folder(path) and not ((path / "model.bin").is_file() and (path / "config.json").is_file()):
            raise ModelError(f"{path} is neither an ONNX Whisper folder (whisper_onnx.json) nor a CTranslate2 one "
                             "(model.bin + config.json)",
                             "convert the model with ct2-transformers-converter, or pick another folder")
        return ModelChoice(str(path.resolve()), path.name)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:  # a path, not a name or "owner/name"
        raise ModelError(f"the speech-to-text model folder {spec} does not exist", _HINT_MODEL)
    return ModelChoice(spec, spec)


def _is_onnx_folder(path: Path) -> bool:
    return (path / "whisper_onnx.json").is_file()


def open_engine(choice: ModelChoice, *, device: str = "auto", threads: int | None = None) -> SpeechEngine:
    """The engine for a model choice: mmdesk's ONNX decoding for an ONNX folder (the pack's), faster-whisper
    for everything else."""
    if Path(choice.location).is_dir() and _is_onnx_folder(Path(choice.location)):
        from mmdesk.asr.onnx_whisper import OnnxWhisperEngine

        return OnnxWhisperEngine(choice.location, device=device, threads=threads, name=choice.name, choice=choice)
    return WhisperEngine(choice, device=device, threads=threads)


class SpeechEngine(Protocol):
    """What the transcriber needs of an engine (:class:`WhisperEngine`, ``OnnxWhisperEngine``)."""

    @property
    def name(self) -> str: ...

    multilingual: bool
    choice: ModelChoice
    device: str  # "cpu" or "cuda"

    def check_language(self, language: str | None) -> str | None: ...

    def decode(self, audio: np.ndarray, language: str | None) -> Decoded: ...


class WhisperEngine:
    """A Whisper model run by faster-whisper on CTranslate2. Not thread-safe: one decoding call at a time."""

    def __init__(self, choice: ModelChoice, *, device: str = "auto", threads: int | None = None,
                 compute_type: str | None = None) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            if getattr(sys, "frozen", False):
                raise MmdeskError(
                    f"the desktop bundle runs only the pack's Whisper model, not {choice.name!r} (that needs "
                    "faster-whisper, which the bundle leaves out)",
                    "leave --asr-model out, or install mmdesk with pip and `pip install 'mmdesk[faster-whisper]'`",
                ) from None
            raise MmdeskError(
                f"faster-whisper is not installed ({exc}): it runs Whisper models other than the pack's",
                "pip install 'mmdesk[faster-whisper]' and pip install --no-deps faster-whisper==1.2.1",
            ) from None
        self.choice = choice
        self.device = _ct2_device(device)
        compute = compute_type or ("int8" if self.device == "cpu" else "float16")
        try:
            self._model: Any = WhisperModel(
                choice.location, device=self.device, compute_type=compute, cpu_threads=threads or 0,
                local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1",
            )
        except Exception as exc:  # noqa: BLE001 - faster-whisper, huggingface_hub and ctranslate2 raise many types
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            where = "" if Path(choice.location).is_dir() else " from the Hugging Face cache or hub (offline?)"
            raise ModelError(f"cannot load the Whisper model {choice.name!r}{where}: {first}", _HINT_MODEL) from None
        self.multilingual = bool(self._model.model.is_multilingual)

    @property
    def name(self) -> str:
        return self.choice.name

    def check_language(self, language: str | None) -> str | None:
        """The language to force (None: detect); ``MmdeskError`` for one the model cannot do."""
        if not language or language == "auto":
            return None if self.multilingual else "en"
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        code = language.lower()
        if code not in _LANGUAGE_CODES:
            raise MmdeskError(f"unknown language code {language!r} for speech-to-text",
                              "use a Whisper language code such as en, de, fr, es, or auto")
        if not self.multilingual and code != "en":
            raise MmdeskError(
                f"the speech-to-text model {self.name} is English-only and cannot transcribe {code!r}",
                "pass --asr-model with a multilingual Whisper model (e.g. 'small', or a local folder)",
            )
        return code

    def decode(self, audio: np.ndarray, language: str | None) -> Decoded:
        """Transcribe 16 kHz mono float32 audio (up to 30 s) with word timestamps."""
        segments, info = self._model.transcribe(
            audio, language=language, beam_size=1, word_timestamps=True, vad_filter=False,
            condition_on_previous_text=False, temperature=FALLBACK_TEMPERATURES,
        )
        words = tuple(
            Word(float(w.start), max(float(w.end), float(w.start)), w.word.strip(), float(w.probability))
            for seg in segments for w in (seg.words or ()) if w.word.strip()
        )
        return Decoded(words, info.language or "", float(info.language_probability or 0.0))


def _ct2_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    import ctranslate2

    has_cuda = ctranslate2.get_cuda_device_count() > 0
    if device == "cuda" and not has_cuda:
        raise MmdeskError("--device cuda: CTranslate2 sees no CUDA device", "use --device auto or cpu")
    return "cuda" if has_cuda else "cpu"
