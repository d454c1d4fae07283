"""Sarcasm from text + context: the pack's fine-tuned MiniLM (ONNX) gives P(sarcastic) for an utterance
given the line said just before it (from subtitles or ASR; no speaker names), temperature-scaled as its
json says (fitted on out-of-fold predictions: the raw model is far too sure of itself)."""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np

from mmdesk.core.calibration import checked_temperature, temperature_scale
from mmdesk.inference.manifest import Manifest, verify_file
from mmdesk.inference.runtime import OnnxModel, open_model
from mmdesk.perception.text_pairs import (
    MAX_TOKENS,
    MAX_UTTERANCE,
    pad_batch,
    pair_ids,
    plain_tokenizer,
)

ROLE = "sarcasm"
MAX_CHARS = 5_000  # longer text is cut before tokenising: the model sees 128 tokens anyway


class Sarcasm:
    def __init__(self, manifest: Manifest, device: str = "auto", threads: int | None = None,
                 cache_size: int = 256) -> None:
        self.model: OnnxModel = open_model(manifest, ROLE, device, threads)
        entry = manifest.entry(ROLE)
        pre = entry.preprocessing
        self.max_tokens = int(pre.get("max_tokens", MAX_TOKENS))
        self.max_utterance = int(pre.get("max_utterance", MAX_UTTERANCE))
        self.context_mode = str(pre.get("context", "last"))  # what it was trained with: none, last or all
        self.uses_context = self.context_mode != "none"
        self.threshold = float(pre.get("threshold", 0.5))
        # fitted on out-of-fold predictions (models/cards/sarcasm.md); 1.0 for packs from before it
        self.temperature = checked_temperature(pre.get("temperature"), f"sarcasm model {self.model.path}",
                                               "rebuild the pack with `mmdesk models build`")
        self.positive = list(entry.labels).index(pre.get("positive_label", "sarcastic"))
        self.tokenizer = plain_tokenizer(str(verify_file(manifest, pre.get("tokenizer_role", "text_tokenizer"))))
        self._cache: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
        self._cache_size = cache_size

    def ids(self, utterance: str, context: str = "") -> list[int]:
        return pair_ids(self.tokenizer, utterance[:MAX_CHARS], context[-MAX_CHARS:] if self.uses_context else "",
                        self.max_tokens, self.max_utterance)

    def predict_batch(self, utterances: Sequence[str], contexts: Sequence[str] | None = None) -> np.ndarray:
        """P(sarcastic) per (utterance, context) pair, float32 (N,). Empty utterances give 0."""
        contexts = contexts if contexts is not None else [""] * len(utterances)
        if len(contexts) != len(utterances):
            raise ValueError(f"{len(utterances)} utterances but {len(contexts)} contexts")
        out = np.zeros(len(utterances), np.float32)
        todo = [i for i, u in enumerate(utterances) if u.strip()]
        if todo:
            ids, mask = pad_batch([self.ids(utterances[i], contexts[i]) for i in todo])
            (probs,) = self.model.run({"input_ids": ids, "attention_mask": mask})[:1]
            out[todo] = temperature_scale(probs[:, self.positive], self.temperature)
        return out

    def predict(self, utterance: str, context: str = "") -> float:
        """P(sarcastic) of one utterance given the previous line; cached by (utterance, context)."""
        key = (utterance, context)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        p = float(self.predict_batch([utterance], [context])[0])
        self._cache[key] = p
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return p

    def is_sarcastic(self, p: float) -> bool:
        return p >= self.threshold
