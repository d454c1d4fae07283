"""Text emotion: the pack's fine-tuned MiniLM classifier (``text_emotion``: input_ids, attention_mask ->
probs) on the utterance after the previous line (:func:`mmdesk.perception.text_pairs.pair_ids`).

The frozen ``text_encoder`` is loaded too: :meth:`TextEmotion.embed` gives its token embeddings, which
feed the fusion head.
"""

from __future__ import annotations

import collections

import numpy as np

from mmdesk.core.labels import LABELS, reorder
from mmdesk.inference.manifest import Manifest, verify_file
from mmdesk.inference.runtime import OnnxModel, open_model
from mmdesk.perception.text_pairs import (
    MAX_TOKENS,
    MAX_UTTERANCE,
    pad_batch,
    pair_ids,
    plain_tokenizer,
)

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
        head = manifest.entry("text_emotion")
        self.head_labels = tuple(head.labels) or LABELS
        self.uses_context = bool(head.preprocessing.get("context"))
        self.pair_tokenizer = plain_tokenizer(str(verify_file(manifest, "text_tokenizer")))
        self.pair_max_tokens = int(head.preprocessing.get("max_tokens", MAX_TOKENS))
        self.pair_max_utterance = int(head.preprocessing.get("max_utterance", MAX_UTTERANCE))
        self._cache: collections.OrderedDict[tuple[str, str], tuple[np.ndarray, bool]] = collections.OrderedDict()
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

    def predict(self, text: str, context: str = "") -> tuple[np.ndarray, bool]:
        """Probabilities over LABELS for one text (after ``context``, the previous line, when the model
        takes one), and whether it was truncated. Cached by (text, context)."""
        context = context if self.uses_context else ""
        key = (text, context)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        ids = pair_ids(self.pair_tokenizer, text[:MAX_CHARS], context[-MAX_CHARS:], self.pair_max_tokens,
                       self.pair_max_utterance)
        n_text = len(self.pair_tokenizer.encode(text[:MAX_CHARS], add_special_tokens=False).ids)
        truncated = len(text) > MAX_CHARS or n_text > self.pair_max_utterance
        input_ids, mask = pad_batch([ids])
        (probs,) = self.head.run({"input_ids": input_ids, "attention_mask": mask})[:1]
        result = (reorder(probs[0], self.head_labels), truncated)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result
