"""Turn synchronised windows into per-modality judgements.

Each video frame is analysed once (face detection + expression) and cached, so overlapping
windows cost no repeated work; the VAD runs once over the continuous audio; text results are
cached by text. Every stage records its time so ``mmdesk bench`` can report it.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import numpy as np

from mmdesk.core.labels import LABELS
from mmdesk.core.types import (
    AudioChunk,
    FaceResult,
    TextEvent,
    TextResult,
    VoiceResult,
    Window,
    WindowResult,
)
from mmdesk.errors import MmdeskError
from mmdesk.fusion.head import FusionHead
from mmdesk.inference.manifest import Manifest
from mmdesk.perception.face import (
    FaceDetection,
    FaceDetector,
    FaceExpression,
    face_crop,
)
from mmdesk.perception.imageops import downscale_area
from mmdesk.perception.sarcasm import Sarcasm
from mmdesk.perception.text import TextEmotion
from mmdesk.perception.vad import SileroVad
from mmdesk.perception.voice import VoiceEmotion

FACE_TOKENS = 4  # evenly spaced face frames per window for fusion: it was trained on 1-4 per example
CONTEXT_S = 10.0  # text that ended this long before a window's text can be its context
MAX_CONTEXT_CHARS = 300
MAX_FRAME_SIDE = 1280  # larger frames (1080p, 4K) are block-averaged by a whole factor to fit; faces stay > 64 px


@dataclass(frozen=True)
class AnalyzerSettings:
    device: str = "auto"
    threads: int | None = None
    min_speech_fraction: float = 0.1  # ≥ ~200 ms of speech in a 2 s window counts as voice present
    keep_tokens: bool = False  # make the fusion tokens even without a fusion head (to train one)


@dataclass
class _FrameFace:
    det: FaceDetection | None
    probs: np.ndarray | None
    embedding: np.ndarray | None = None  # the fusion head's per-frame face token


class StageTimes:
    """Milliseconds per stage: totals since the last window, and per-call samples for face stages."""

    def __init__(self) -> None:
        self.pending: dict[str, float] = collections.defaultdict(float)
        self.per_frame: dict[str, list[float]] = collections.defaultdict(list)

    def add(self, stage: str, ms: float, *, per_frame: bool = False) -> None:
        self.pending[stage] += ms
        if per_frame:
            self.per_frame[stage].append(ms)

    def take(self) -> dict[str, float]:
        """The stage totals accumulated since the previous call (they belong to one window)."""
        out = dict(self.pending)
        self.pending.clear()
        return out


class Analyzer:
    def __init__(self, manifest: Manifest, settings: AnalyzerSettings = AnalyzerSettings()) -> None:
        self.settings = settings
        self.detector = FaceDetector(manifest)
        self.expression = FaceExpression(manifest, settings.device, settings.threads)
        self.vad = SileroVad(manifest)
        self.voice = VoiceEmotion(manifest, settings.device, settings.threads)
        self.text = TextEmotion(manifest, settings.device, settings.threads)
        # the dedicated text+context sarcasm model; packs built before it have none
        self.sarcasm = Sarcasm(manifest, settings.device, settings.threads) if "sarcasm" in manifest.entries else None
        self._lines: collections.OrderedDict[tuple[float, str], TextEvent] = collections.OrderedDict()
        # fusion is optional: a pack without a (matching) head still gives per-modality results
        self.fusion: FusionHead | None = None
        self.fusion_problem = ""
        if "fusion" not in manifest.entries:
            self.fusion_problem = "this model pack has no fusion head: run `mmdesk models build`"
        else:
            try:
                self.fusion = FusionHead(manifest, settings.device)
            except MmdeskError as exc:
                self.fusion_problem = exc.one_line()
        self._faces: dict[int, _FrameFace] = {}
        self._text_tokens: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self.tokens_wanted = self.fusion is not None or settings.keep_tokens
        #: the fusion tokens of the last analysed window (modality -> (T, D) or None)
        self.last_tokens: dict[str, np.ndarray | None] = {}
        self.times = StageTimes()

    # -- what is really running, for meta records and the status bar --------------------------
    def providers(self) -> dict[str, str]:
        return {
            "face_detector": self.detector.provider,
            "face_expression": self.expression.model.active_provider,
            "vad": self.vad.model.active_provider,
            "voice_emotion": self.voice.model.active_provider,
            "text_encoder": self.text.encoder.active_provider,
            "text_emotion": self.text.head.active_provider,
            **({"sarcasm": self.sarcasm.model.active_provider} if self.sarcasm is not None else {}),
        }

    def models(self) -> dict[str, dict[str, str]]:
        out = {}
        models = [self.expression.model, self.vad.model, self.voice.model, self.text.encoder, self.text.head]
        if self.sarcasm is not None:
            models.append(self.sarcasm.model)
        if self.fusion is not None:
            models.append(self.fusion.model)
        for m in models:
            out[m.role] = {"file": m.path.name, "sha256": m.sha256}
        return out

    def fusion_info(self) -> dict[str, object]:
        """For the meta record: what the fusion head was trained on, or why there is none."""
        if self.fusion is None:
            return {"available": False, "problem": self.fusion_problem}
        return {"available": True, "trained_on": self.fusion.trained_on,
                "note": "the fusion head learnt from examples paired by label across corpora, not from "
                        "recordings in which face, voice and text were truly aligned"}

    # -- streaming inputs ----------------------------------------------------------------------
    def reset(self, t0: float = 0.0) -> None:
        self._faces.clear()
        self.vad.reset(t0)

    def feed_audio(self, chunk: AudioChunk) -> None:
        """Run the VAD over audio as it arrives (once, in order)."""
        t = time.perf_counter()
        self.vad.feed(chunk.t, chunk.samples)
        self.times.add("vad", (time.perf_counter() - t) * 1e3)

    # -- per window ----------------------------------------------------------------------------
    def analyse(self, window: Window) -> WindowResult:
        tokens: dict[str, np.ndarray | None] = {}
        face = self._face(window, tokens)
        voice = self._voice(window, tokens)
        text = self._text(window, tokens)
        fusion = None
        if self.fusion is not None:
            t = time.perf_counter()
            fusion = self.fusion.fuse(tokens, {"face": face.probs, "voice": voice.probs, "text": text.probs})
            self.times.add("fusion", (time.perf_counter() - t) * 1e3)
        self.last_tokens = tokens
        if window.frames:  # frames before this window's first are never needed again
            first = window.frames[0].index
            self._faces = {k: v for k, v in self._faces.items() if k >= first}
        self.vad.forget_before(window.start)
        return WindowResult(window.index, window.start, window.end, face, voice, text, window.partial,
                            self.times.take(), fusion)

    def _face(self, window: Window, tokens: dict[str, np.ndarray | None]) -> FaceResult:
        if not window.has_video:
            return FaceResult(False, reason="no video track")
        if not window.frames:
            return FaceResult(False, reason="no video frames in this window")
        new = [f for f in window.frames if f.index not in self._faces]
        crops, owners = [], []
        for frame in new:
            image = frame.image
            factor = -(-max(image.shape[:2]) // MAX_FRAME_SIDE)  # block averaging: no aliasing, cheap
            image = downscale_area(image, factor)
            t = time.perf_counter()
            dets = self.detector.detect(image)
            self.times.add("face_detection", (time.perf_counter() - t) * 1e3, per_frame=True)
            det = dets[0] if dets else None
            if det is not None and image is not frame.image:  # report boxes in source pixels
                det = FaceDetection(tuple(v * factor for v in det.box), det.score,
                                    tuple((x * factor, y * factor) for x, y in det.landmarks)
                                    if det.landmarks else None)
                image = frame.image
            self._faces[frame.index] = _FrameFace(det, None)
            if det is not None and det.box[2] >= 8 and det.box[3] >= 8:
                crops.append(face_crop(image, det, self.expression.size))
                owners.append(frame.index)
        if crops:
            t = time.perf_counter()
            if self.tokens_wanted:
                probs, embeddings = self.expression.predict_with_embedding(np.stack(crops))
            else:
                probs, embeddings = self.expression.predict(np.stack(crops)), [None] * len(crops)
            ms = (time.perf_counter() - t) * 1e3
            self.times.add("face_model", ms)
            self.times.per_frame["face_model"].extend([ms / len(crops)] * len(crops))
            for idx, p, e in zip(owners, probs, embeddings):
                self._faces[idx].probs = p
                self._faces[idx].embedding = e
        seen = [self._faces[f.index] for f in window.frames]
        with_face = [s for s in seen if s.det is not None and s.probs is not None]
        if not with_face:
            return FaceResult(False, frames_analysed=len(seen), detector=self.detector.name,
                              reason="no face found")
        best = max(with_face, key=lambda s: s.det.score)
        probs = np.mean([s.probs for s in with_face], axis=0)
        if self.tokens_wanted:
            pick = np.linspace(0, len(with_face) - 1, min(FACE_TOKENS, len(with_face))).round().astype(int)
            tokens["face"] = np.stack([with_face[i].embedding for i in pick])
        return FaceResult(
            True, _probs(probs), box=best.det.box, score=round(best.det.score, 4),
            frames_with_face=len(with_face), frames_analysed=len(seen), detector=self.detector.name,
        )

    def _voice(self, window: Window, tokens: dict[str, np.ndarray | None]) -> VoiceResult:
        if not window.has_audio:
            return VoiceResult(False, reason="no audio track")
        if window.audio_coverage == 0.0:
            return VoiceResult(False, reason="no audio in this window")
        vad_max, fraction, _ = self.vad.window_stats(window.start, window.end)
        if fraction < self.settings.min_speech_fraction:
            return VoiceResult(False, vad_prob=round(vad_max, 4), speech_fraction=round(fraction, 4),
                               reason="no speech detected")
        t = time.perf_counter()
        feats = self.voice.features(window.audio)
        t1 = time.perf_counter()
        if self.tokens_wanted:
            probs, tokens["voice"] = self.voice.predict_features_with_frames(feats)
        else:
            probs = self.voice.predict_features(feats)
        t2 = time.perf_counter()
        self.times.add("audio_features", (t1 - t) * 1e3)
        self.times.add("voice_model", (t2 - t1) * 1e3)
        return VoiceResult(True, _probs(probs), vad_prob=round(vad_max, 4), speech_fraction=round(fraction, 4))

    def _text(self, window: Window, tokens: dict[str, np.ndarray | None]) -> TextResult:
        text = window.text
        if not text:
            return TextResult(False, reason="no text in this window")
        t = time.perf_counter()
        context = self._context_before(window)
        probs, truncated = self.text.predict(text, context)
        sarcasm = self.sarcasm.predict(text, context) if self.sarcasm is not None else None
        if self.tokens_wanted:
            tokens["text"] = self.text_tokens(text)
        self.times.add("text_encoder", (time.perf_counter() - t) * 1e3)
        origins = tuple(sorted({e.origin for e in window.texts}))
        return TextResult(True, _probs(probs), text=text, origins=origins, truncated=truncated,
                          sarcasm=sarcasm, context=context)

    def _context_before(self, window: Window) -> str:
        """The line said just before this window's text (MUStARD's context): the text events that
        ended in the CONTEXT_S seconds before it began, a subtitle line or the preceding words."""
        events = [e for e in window.texts if e.text.strip()]
        for e in events:
            self._lines[(e.start, e.text)] = e
        while len(self._lines) > 256:
            self._lines.popitem(last=False)
        first = min(e.start for e in events)
        before = sorted((e for e in self._lines.values() if first - CONTEXT_S <= e.end <= first + 1e-6),
                        key=lambda e: e.start)
        return " ".join(e.text.strip() for e in before)[-MAX_CONTEXT_CHARS:]


    def text_tokens(self, text: str) -> np.ndarray:
        """The frozen encoder's token embeddings of ``text`` (the fusion head's text tokens), cached."""
        if text not in self._text_tokens:
            _, tokens, _ = self.text.embed([text])
            self._text_tokens[text] = tokens[0]
            if len(self._text_tokens) > 64:
                self._text_tokens.popitem(last=False)
        self._text_tokens.move_to_end(text)
        return self._text_tokens[text]


def _probs(p: np.ndarray) -> tuple[float, ...]:
    p = np.clip(np.asarray(p, np.float64), 0.0, None)
    total = p.sum()
    p = p / total if total > 0 else np.full(len(LABELS), 1 / len(LABELS))
    return tuple(float(x) for x in p)
