"""Cross-modal attention fusion head (MulT style) with presence masks, in torch for training/export.

Shapes (B batch, T_m tokens of modality m, D_m its embedding size, d the model width):

    face  (B, T_f, D_f)  face_mask  (B, T_f)   per-frame face embeddings
    voice (B, T_v, D_v)  voice_mask (B, T_v)   per-step voice embeddings
    text  (B, T_t, D_t)  text_mask  (B, T_t)   MiniLM token embeddings
    → emotion (B, 7) probabilities, sarcasm (B,) probability, attention (B, 3, 3)

Every modality gets a learned *null token* that is always valid, so a modality whose mask is all
zero (absent, or masked out for attribution) still has one key to attend to and the head's output
depends only on the modalities that are shown. Each modality's tokens attend to the tokens of the
other two (cross-modal attention, as in MulT, with one shared softmax over both sources), then a
feed-forward block; pooled modality summaries are concatenated into the output MLP.
``attention[b, i, j]`` is the attention mass modality i's tokens put on modality j's real (non-null)
tokens: "who attended to whom".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

MODALITIES = ("face", "voice", "text")
NEG = -1e4  # additive mask value (not -inf: keeps fp16/TF32 softmax finite)


@dataclass(frozen=True, kw_only=True)
class FusionConfig:
    face_dim: int
    voice_dim: int
    text_dim: int
    width: int = 64
    heads: int = 4
    layers: int = 1
    dropout: float = 0.1
    n_labels: int = 7

    def dims(self) -> dict[str, int]:
        return {"face": self.face_dim, "voice": self.voice_dim, "text": self.text_dim}

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class CrossBlock(nn.Module):
    """Queries of one modality attend over the concatenated tokens of the other two."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        assert width % heads == 0, "width must be divisible by heads"
        self.heads, self.head_dim = heads, width // heads
        self.norm_q, self.norm_kv = nn.LayerNorm(width), nn.LayerNorm(width)
        self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
        self.out = nn.Linear(width, width)
        self.ff = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(),
                                nn.Dropout(dropout), nn.Linear(2 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, kv: Tensor, kv_valid: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, Tq, d), kv (B, Tk, d), kv_valid (B, Tk) float 0/1 → (B, Tq, d), probs (B, H, Tq, Tk)."""
        b, tq, _ = x.shape
        tk = kv.shape[1]
        h, hd = self.heads, self.head_dim
        q = self.q(self.norm_q(x)).reshape(b, tq, h, hd).transpose(1, 2)  # (B, H, Tq, hd)
        kvn = self.norm_kv(kv)
        k = self.k(kvn).reshape(b, tk, h, hd).transpose(1, 2)  # (B, H, Tk, hd)
        v = self.v(kvn).reshape(b, tk, h, hd).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)  # (B, H, Tq, Tk)
        scores = scores + (1.0 - kv_valid)[:, None, None, :] * NEG
        probs = scores.softmax(-1)
        y = (self.drop(probs) @ v).transpose(1, 2).reshape(b, tq, h * hd)
        x = x + self.drop(self.out(y))
        x = x + self.drop(self.ff(x))
        return x, probs


class FusionHead(nn.Module):
    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        d = config.width
        self.proj = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, d))
                                   for m, dim in config.dims().items()})
        self.kind = nn.Parameter(torch.randn(3, d) * 0.02)  # which modality a token belongs to
        self.null = nn.Parameter(torch.randn(3, d) * 0.02)  # the always-valid token per modality
        self.blocks = nn.ModuleList(
            nn.ModuleList(CrossBlock(d, config.heads, config.dropout) for _ in MODALITIES)
            for _ in range(config.layers))
        self.norm = nn.LayerNorm(3 * d)
        self.out = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Dropout(config.dropout),
                                 nn.Linear(d, config.n_labels + 1))

    def encode(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Pooled (B, 3d) summary and attention mass (B, 3, 3)."""
        tokens, valid = [], []
        for i, m in enumerate(MODALITIES):
            x = self.proj[m](inputs[m]) + self.kind[i]  # (B, T_m, d)
            b = x.shape[0]
            null = (self.null[i] + self.kind[i]).expand(b, 1, -1)
            tokens.append(torch.cat([null, x], 1))
            valid.append(torch.cat([torch.ones_like(masks[m][:, :1]), masks[m]], 1))  # (B, 1+T_m)
        attention = []
        for layer in self.blocks:
            new, mass_rows = [], []
            for i, block in enumerate(layer):
                others = [j for j in range(3) if j != i]
                kv = torch.cat([tokens[j] for j in others], 1)
                kv_valid = torch.cat([valid[j] for j in others], 1)
                y, probs = block(tokens[i], kv, kv_valid)
                new.append(y)
                # mass on each source's real tokens, averaged over heads and this modality's valid queries
                per_key = probs.mean(1)  # (B, Tq, Tk)
                q_valid = valid[i][..., None]
                q_w = q_valid / q_valid.sum(1, keepdim=True)
                row = []
                start = 0
                for j in range(3):
                    if j == i:
                        row.append(torch.zeros_like(per_key[:, 0, 0]))
                        continue
                    n = tokens[j].shape[1]
                    real = per_key[:, :, start + 1:start + n].sum(-1, keepdim=True)  # skip the null token
                    row.append((real * q_w).sum((1, 2)))
                    start += n
                mass_rows.append(torch.stack(row, -1))  # (B, 3)
            tokens = new
            attention.append(torch.stack(mass_rows, 1))  # (B, 3, 3)
        pooled = []
        for i in range(3):
            w = valid[i] / valid[i].sum(1, keepdim=True)
            pooled.append((tokens[i] * w[..., None]).sum(1))
        return self.norm(torch.cat(pooled, -1)), torch.stack(attention).mean(0)

    def logits(self, inputs: dict[str, Tensor], masks: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        pooled, attention = self.encode(inputs, masks)
        out = self.out(pooled)
        return out[:, : self.config.n_labels], out[:, self.config.n_labels], attention

    def forward(self, face: Tensor, face_mask: Tensor, voice: Tensor, voice_mask: Tensor,
                text: Tensor, text_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        emotion, sarcasm, attention = self.logits({"face": face, "voice": voice, "text": text},
                                                  {"face": face_mask, "voice": voice_mask, "text": text_mask})
        return emotion.softmax(-1), torch.sigmoid(sarcasm), attention


INPUT_NAMES = ("face", "face_mask", "voice", "voice_mask", "text", "text_mask")
OUTPUT_NAMES = ("emotion", "sarcasm", "attention")
