"""(context, utterance) -> WordPiece ids for the fine-tuned MiniLM classifiers.

Shared by training and the runtime so both see exactly the same tokens:
``[CLS] context-tail [SEP] utterance [SEP]`` (``[CLS] utterance [SEP]`` without context). The utterance is
kept whole up to ``max_utterance`` tokens; the context fills what is left of ``max_tokens`` from its
end, because the words just before the utterance matter most. No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_TOKENS = 128
MAX_UTTERANCE = 96


def special_ids(tokenizer) -> tuple[int, int]:
    """The [CLS] and [SEP] ids of a BERT WordPiece tokenizer (``tokenizers.Tokenizer``)."""
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls is None or sep is None:
        raise ValueError("the tokenizer has no [CLS]/[SEP] tokens: not a BERT WordPiece tokenizer")
    return cls, sep


def pair_ids(tokenizer, utterance: str, context: str = "", max_tokens: int = MAX_TOKENS,
             max_utterance: int = MAX_UTTERANCE) -> list[int]:
    """Token ids of one (context, utterance) pair; ``tokenizer`` must not add special tokens or pad."""
    cls, sep = special_ids(tokenizer)
    utt = tokenizer.encode(utterance, add_special_tokens=False).ids[:max_utterance]
    budget = max_tokens - len(utt) - 3
    ctx = tokenizer.encode(context, add_special_tokens=False).ids if context and budget > 0 else []
    ctx = ctx[len(ctx) - budget:] if len(ctx) > budget else ctx
    return [cls] + (ctx + [sep] if ctx else []) + utt + [sep]


def pad_batch(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """int64 (input_ids, attention_mask) of shape (batch, longest), padded with id 0."""
    width = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), width), np.int64)
    mask = np.zeros((len(seqs), width), np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return ids, mask


def plain_tokenizer(path: str):
    """tokenizers.Tokenizer from a tokenizer.json with its built-in padding and truncation switched off."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok
