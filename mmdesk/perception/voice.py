"""Voice emotion: log-mel features (librosa) → the project's trained CNN (ONNX)."""

from __future__ import annotations

import numpy as np

from mmdesk.core.labels import LABELS, reorder
from mmdesk.inference.manifest import Manifest
from mmdesk.inference.runtime import OnnxModel, open_model
from mmdesk.perception import voice_features


class VoiceEmotion:
    def __init__(self, manifest: Manifest, device: str = "auto", threads: int | None = None) -> None:
        self.model: OnnxModel = open_model(manifest, "voice_emotion", device, threads)
        entry = manifest.entry("voice_emotion")
        pre = entry.preprocessing
        self.mean = np.asarray(pre["mean"], np.float32)
        self.std = np.asarray(pre["std"], np.float32)
        self.labels = tuple(entry.labels) or LABELS
        self._input = self.model.input_names[0]

    def features(self, samples: np.ndarray) -> np.ndarray:
        """(n_mels, frames) normalised log-mel of 16 kHz mono samples."""
        return voice_features.normalise(voice_features.logmel(samples), self.mean, self.std)

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        (probs,) = self.model.run({self._input: feats[None].astype(np.float32)})[:1]
        return reorder(probs[0], self.labels)
