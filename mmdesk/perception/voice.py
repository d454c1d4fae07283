"""Voice emotion: Whisper's log-mel (numpy) → Whisper tiny.en's first encoder layers + the project's head (ONNX)."""

from __future__ import annotations

import numpy as np

from mmdesk.core.labels import LABELS, reorder
from mmdesk.errors import ModelError
from mmdesk.inference.manifest import Manifest
from mmdesk.inference.runtime import OnnxModel, open_model
from mmdesk.perception import voice_features


def check_features(preprocessing: dict, where: object) -> None:
    """ModelError when the pack's voice model needs features this code does not compute (a pack from an
    older mmdesk); ``doctor`` runs the same check."""
    try:
        voice_features.check_preprocessing(preprocessing)
    except ValueError as exc:
        raise ModelError(f"voice model {where} has unusable preprocessing constants: {exc}",
                         "rebuild the pack with `mmdesk models build`") from None


class VoiceEmotion:
    def __init__(self, manifest: Manifest, device: str = "auto", threads: int | None = None) -> None:
        self.model: OnnxModel = open_model(manifest, "voice_emotion", device, threads)
        entry = manifest.entry("voice_emotion")
        self.preprocessing = dict(entry.preprocessing)
        check_features(self.preprocessing, self.model.path)
        self.labels = tuple(entry.labels) or LABELS
        self._input = self.model.input_names[0]
        frames = next((o for o in entry.outputs if o.name == "frames"), None)
        # the fusion head reads these; None for packs built before the model had the output
        self.frames_dim: int | None = int(frames.shape[-1]) if frames is not None else None
        # input log-mel frames (10 ms) per `frames` step
        self.time_stride: int | None = int(self.preprocessing.get("time_stride_frames", 0)) or None

    def features(self, samples: np.ndarray) -> np.ndarray:
        """(1, 80, frames) Whisper log-mel of 16 kHz mono samples (at most 30 s), prepared exactly as in
        training."""
        return voice_features.features_for_model(samples, self.preprocessing)

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        """(1, n_mels, frames) features → float64 (7,) probabilities in LABELS order."""
        (probs,) = self.model.run({self._input: feats.astype(np.float32, copy=False)}, ["probs"])
        return reorder(probs[0], self.labels)

    def predict_features_with_frames(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, n_mels, frames) features → (float64 (7,) probabilities in LABELS order,
        float32 (steps, frames_dim) per-step embeddings before temporal pooling), from one run."""
        if self.frames_dim is None:
            raise ModelError(f"voice model {self.model.path} has no `frames` output",
                             "rebuild the pack with `mmdesk models build`")
        probs, frames = self.model.run({self._input: feats.astype(np.float32, copy=False)}, ["probs", "frames"])
        return reorder(probs[0], self.labels), frames[0]
