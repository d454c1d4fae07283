"""Text emotion: MiniLM sentence embedding (ONNX) → the project's trained head (ONNX)."""

from __future__ import annotations

import collections

import numpy as np

from mmdesk.core.labels import LABELS, reorder
from mmdesk.inference.manifest import Manifest, verify_file
from mmdesk.inference.runtime import OnnxModel, open_model

MAX_CHARS = 5_000  # longer text is cut before tokenising: the encoder sees 256 tokens anyway


class TextEmotion:
    def __init__(self, manifest: Manifest, device: str = "auto", threads: int | None = None,
                 cache_size: int = 256) -> None:
        from tokenizers import Tokenizer

        self.encoder: OnnxModel = open_model(manifest, "text_encoder", device, threads)
        self.head: OnnxModel = open_model(manifest, "text_emotion", device, threads)
        enc = manifest.entry("text_encoder")
        self.max_tokens = int(enc.preprocessing.get("max_tokens", 256))
        self.tokenizer = Tokenizer.from_file(str(verify_file(manifest, "text_tokenizer")))
        # the shipped tokenizer.json pads every text to 128 tokens and truncates at 128: we pad per
        # batch ourselves (attention mask) and allow the encoder's full 256
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        self.head_labels = tuple(manifest.entry("text_emotion").labels) or LABELS
        self._cache: collections.OrderedDict[str, tuple[np.ndarray, bool]] = collections.OrderedDict()
        self._cache_size = cache_size

    def embed(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """(sentence embeddings (N, 384), token embeddings (N, T, 384), truncated flags)."""
        clipped = [t[:MAX_CHARS] for t in texts]
        encodings = self.tokenizer.encode_batch(clipped)
        truncated = [len(t) > MAX_CHARS or bool(e.overflowing) for t, e in zip(texts, encodings)]
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), np.int64)
        mask = np.zeros((len(encodings), width), np.int64)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        tokens, sentence = self.encoder.run({"input_ids": ids, "attention_mask": mask},
                                            ["token_embeddings", "sentence_embedding"])
        return sentence, tokens, truncated

    def predict(self, text: str) -> tuple[np.ndarray, bool]:
        """Probabilities over LABELS for one text, and whether it was truncated. Cached by text."""
        if text in self._cache:
            self._cache.move_to_end(text)
            return self._cache[text]
        sentence, _, truncated = self.embed([text])
        (probs,) = self.head.run({self.head.input_names[0]: sentence.astype(np.float32)})[:1]
        result = (reorder(probs[0], self.head_labels), truncated[0])
        self._cache[text] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result
