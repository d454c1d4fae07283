"""Transcribed words and utterances (frozen: they cross from the ASR thread to the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    start: float  # seconds on the session clock / clip timeline
    end: float
    text: str  # as Whisper spells it, with its punctuation, without the leading space
    probability: float


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech between pauses (as the VAD cut it), with its words."""

    start: float
    end: float
    words: tuple[Word, ...]
    language: str = ""
    language_probability: float = 0.0
    final: bool = True  # False: a partial result of speech still going on (live only)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def confidence(self) -> float:
        """Mean word probability: ~0.9 for clear English, ~0.5 for speech the model does not know."""
        return sum(w.probability for w in self.words) / len(self.words) if self.words else 0.0
