"""Train the fusion head on label-paired token banks (and aligned clips when given), then export it.

Each emotion example draws a label uniformly, then one face, one voice and one text *of that label*
from different corpora, each shown with its own probability (modality dropout), so the head learns
every subset of modalities, and the empty set is taught to predict the uniform distribution (the
attribution baseline: "no evidence"). Sarcasm examples carry text from the sarcasm corpora with a
face and a voice of any label shown at random, so their presence alone does not decide sarcasm:
with no aligned sarcastic video here, the head learns sarcasm from text, and the app reports the
face/voice-vs-text valence gap (incongruity) beside it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mmdesk.core.labels import LABELS
from mmdesk.training.fusion_data import Bank
from mmdesk.training.fusion_model import MODALITIES, FusionConfig, FusionHead

if TYPE_CHECKING:
    import torch

N = len(LABELS)


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    steps: int = 1500
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2
    p_present: dict[str, float] = field(default_factory=lambda: {"face": 0.7, "voice": 0.6, "text": 0.7})
    sarcasm_share: float = 0.3  # share of each batch that is a sarcasm example
    aligned_share: float = 0.3  # share of the rest drawn from aligned clips, when there are any
    max_face_tokens: int = 4
    max_text_tokens: int = 64  # longer texts are cut in training (the runtime keeps up to 256)
    # weight of the distillation term: the head's reading of the face alone should be the face model's own
    # (KL to its probabilities on the same frames); without it the head learnt FER2013-specific directions of
    # the embedding that video faces do not share (fusion card)
    face_distill: float = 1.0
    # the same for text: the head's reading of a sarcasm-corpus text alone should be the text-emotion model's
    # (those texts have no emotion labels, and the text-emotion model never trained on them)
    text_distill: float = 1.0
    seed: int = 0
    device: str = "cpu"


@dataclass
class Banks:
    face: Bank
    voice: Bank
    text: Bank
    sarcasm: Bank  # text tokens, labels 0/1
    aligned: list = field(default_factory=list)  # AlignedExample: face, voice, text recorded together
    face_teacher: np.ndarray | None = None  # (sum T, 7): the face model's probabilities, row-aligned with face
    sarcasm_teacher: np.ndarray | None = None  # (N, 7): the text-emotion model's probabilities per sarcasm text

    def by_label(self) -> dict[str, list[np.ndarray]]:
        return {m: [np.flatnonzero(getattr(self, m).labels == k) for k in range(N)] for m in MODALITIES}


def _pad(seqs: list[np.ndarray | None], dim: int) -> tuple[np.ndarray, np.ndarray]:
    t = max([len(s) for s in seqs if s is not None] + [1])
    x = np.zeros((len(seqs), t, dim), np.float32)
    mask = np.zeros((len(seqs), t), np.float32)
    for i, s in enumerate(seqs):
        if s is not None and len(s):
            x[i, : len(s)] = s
            mask[i, : len(s)] = 1
    return x, mask


class Sampler:
    """Builds label-paired batches from banks (numpy; the torch side only converts)."""

    def __init__(self, banks: Banks, settings: TrainSettings, rng: np.random.Generator) -> None:
        self.banks, self.s, self.rng = banks, settings, rng
        self.idx = banks.by_label()
        self.dims = {m: getattr(banks, m).tokens.shape[1] for m in MODALITIES}

    def _face(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Up to ``max_face_tokens`` of face ``i``'s frames, and the face model's mean probabilities on them."""
        bank = self.banks.face
        seq = bank.item(i)
        k = self.rng.integers(1, min(len(seq), self.s.max_face_tokens) + 1)
        sel = self.rng.permutation(len(seq))[:k]
        teacher = self.banks.face_teacher
        return seq[sel], None if teacher is None else teacher[bank.offsets[i] + sel].mean(0)

    def _pick(self, m: str, label: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """A sequence of modality ``m`` with ``label`` (None when there is none), and for a face its teacher."""
        pool = self.idx[m][label]
        if len(pool) == 0:
            return None, None
        i = int(self.rng.choice(pool))
        if m == "face":
            return self._face(i)
        seq = getattr(self.banks, m).item(i)
        return (seq[: self.s.max_text_tokens] if m == "text" else seq), None

    def _maybe_pick(self, m: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Half the time a sequence of modality ``m`` with a random label (a sarcasm example's company)."""
        return self._pick(m, int(self.rng.integers(N))) if self.rng.random() < 0.5 else (None, None)

    def batch(self) -> dict[str, np.ndarray]:
        b = self.s.batch
        n_sarc = round(b * self.s.sarcasm_share)
        seqs: dict[str, list[np.ndarray | None]] = {m: [] for m in MODALITIES}
        emo_target = np.zeros((b, N), np.float32)
        emo_weight = np.zeros(b, np.float32)
        sarc_target = np.zeros(b, np.float32)
        sarc_weight = np.zeros(b, np.float32)
        teachers = {m: np.zeros((b, N), np.float32) for m in ("face", "text")}
        teacher_weights = {m: np.zeros(b, np.float32) for m in ("face", "text")}
        for r in range(b):
            face_teacher, text_teacher = None, None
            if r < b - n_sarc and self.banks.aligned and self.rng.random() < self.s.aligned_share:
                ex = self.banks.aligned[int(self.rng.integers(len(self.banks.aligned)))]
                row = {m: getattr(ex, m) if self.rng.random() < self.s.p_present[m] else None for m in MODALITIES}
                if ex.emotion is not None:
                    if all(v is None for v in row.values()):
                        emo_target[r] = 1.0 / N
                    else:
                        emo_target[r, ex.emotion] = 1.0
                    emo_weight[r] = 1.0
                if ex.sarcasm is not None:
                    sarc_target[r], sarc_weight[r] = float(ex.sarcasm), 1.0
            elif r < b - n_sarc:
                y = int(self.rng.integers(N))
                shown = {m: self.rng.random() < self.s.p_present[m] for m in MODALITIES}
                picks = {m: self._pick(m, y) if shown[m] else (None, None) for m in MODALITIES}
                row = {m: p[0] for m, p in picks.items()}
                face_teacher = picks["face"][1]
                if all(v is None for v in row.values()):
                    emo_target[r] = 1.0 / N  # nothing shown: the prior, i.e. the attribution baseline
                else:
                    emo_target[r, y] = 1.0
                emo_weight[r] = 1.0
            else:
                sb = self.banks.sarcasm
                i = int(self.rng.integers(len(sb)))
                row = {"text": sb.item(i)[: self.s.max_text_tokens]}
                if self.banks.sarcasm_teacher is not None:
                    text_teacher = self.banks.sarcasm_teacher[i]
                row["face"], face_teacher = self._maybe_pick("face")
                row["voice"], _ = self._maybe_pick("voice")
                sarc_target[r] = float(sb.labels[i])
                sarc_weight[r] = 1.0
            for m in MODALITIES:
                seqs[m].append(row[m])
            if face_teacher is not None and row["face"] is not None:
                teachers["face"][r], teacher_weights["face"][r] = face_teacher, 1.0
            if text_teacher is not None:
                teachers["text"][r], teacher_weights["text"][r] = text_teacher, 1.0
        out: dict[str, np.ndarray] = {}
        for m in MODALITIES:
            out[m], out[f"{m}_mask"] = _pad(seqs[m], self.dims[m])
        out.update(emo_target=emo_target, emo_weight=emo_weight, sarc_target=sarc_target, sarc_weight=sarc_weight,
                   **{f"{m}_teacher": t for m, t in teachers.items()},
                   **{f"{m}_teacher_weight": w for m, w in teacher_weights.items()})
        return out


def train(banks: Banks, config: FusionConfig, settings: TrainSettings,
          log: Callable[[str], None] = print) -> tuple[FusionHead, dict[str, float]]:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    sampler = Sampler(banks, settings, rng)
    head = FusionHead(config).to(settings.device)
    opt = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    warm = max(1, settings.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / settings.steps))))
    t0 = time.perf_counter()
    head.train()
    running = []
    for step in range(settings.steps):
        b = {k: torch.from_numpy(v).to(settings.device) for k, v in sampler.batch().items()}
        emo, sarc, _ = head.logits({m: b[m] for m in MODALITIES}, {m: b[f"{m}_mask"] for m in MODALITIES})
        emo_loss = -(b["emo_target"] * F.log_softmax(emo, -1)).sum(-1)
        emo_loss = (emo_loss * b["emo_weight"]).sum() / b["emo_weight"].sum().clamp(min=1)
        sarc_loss = F.binary_cross_entropy_with_logits(sarc, b["sarc_target"], reduction="none")
        sarc_loss = (sarc_loss * b["sarc_weight"]).sum() / b["sarc_weight"].sum().clamp(min=1)
        loss = emo_loss + sarc_loss
        for m, weight in (("face", settings.face_distill), ("text", settings.text_distill)):
            if weight > 0:
                loss = loss + weight * _distillation(head, b, m)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % 500 == 0:
            log(f"  step {step + 1}/{settings.steps}: loss {np.mean(running[-500:]):.3f}")
    head.eval()
    return head.cpu(), {"train_seconds": round(time.perf_counter() - t0, 1), "final_loss": float(np.mean(running[-200:]))}


def _distillation(head: FusionHead, b: dict[str, torch.Tensor], modality: str) -> torch.Tensor:
    """KL(unimodal model ‖ head on ``modality`` alone), over the batch's rows that have a teacher for it."""
    import torch
    import torch.nn.functional as F

    rows = b[f"{modality}_teacher_weight"] > 0
    if not bool(rows.any()):
        return torch.zeros((), device=rows.device)
    inputs = {m: b[m][rows][:, :1] * 0 for m in MODALITIES}  # one zero token each, masked out
    masks = {m: torch.zeros_like(b[f"{m}_mask"][rows][:, :1]) for m in MODALITIES}
    inputs[modality], masks[modality] = b[modality][rows], b[f"{modality}_mask"][rows]
    logits, _, _ = head.logits(inputs, masks)
    t = b[f"{modality}_teacher"][rows].clamp(min=1e-8)
    return (t * (t.log() - F.log_softmax(logits, -1))).sum(-1).mean()


SUBSETS_REPORTED = ("face", "voice", "text", "face+voice", "face+text", "voice+text", "face+voice+text")


def evaluate(head: FusionHead, banks: Banks, seed: int = 1, per_label: int = 150) -> dict[str, object]:
    """Accuracy/UAR of label-paired held-out examples for every subset; sarcasm F1 on held-out text."""
    import torch

    from mmdesk.evaluation.metrics import accuracy, uar

    rng = np.random.default_rng(seed)
    idx = banks.by_label()
    dims = {m: getattr(banks, m).tokens.shape[1] for m in MODALITIES}
    rows: list[tuple[int, dict[str, np.ndarray]]] = []
    teachers: list[np.ndarray | None] = []  # the face model's mean probabilities on each row's face
    for y in range(N):
        for _ in range(per_label):
            pick = {}
            for m in MODALITIES:
                pool = idx[m][y]
                i = int(rng.choice(pool)) if len(pool) else -1
                pick[m] = getattr(banks, m).item(i) if i >= 0 else None
                if m == "face":
                    t = banks.face_teacher
                    teachers.append(None if t is None or i < 0 else
                                    t[banks.face.offsets[i]:banks.face.offsets[i + 1]].mean(0))
            rows.append((y, pick))
    out: dict[str, object] = {}
    with torch.no_grad():
        for key in SUBSETS_REPORTED:
            shown = key.split("+")
            usable = [(y, p) for y, p in rows if all(p[m] is not None for m in shown)]
            feeds = {}
            for m in MODALITIES:
                feeds[m], feeds[f"{m}_mask"] = _pad([p[m] if m in shown else None for _, p in usable], dims[m])
            probs, _, _ = head(*(torch.from_numpy(feeds[n]) for n in
                                 ("face", "face_mask", "voice", "voice_mask", "text", "text_mask")))
            y_true = np.array([y for y, _ in usable])
            y_pred = probs.numpy().argmax(-1)
            out[key] = {"accuracy": round(accuracy(y_true, y_pred), 4),
                        "uar": round(uar(y_true, y_pred, N), 4), "n": len(usable)}
            if key == "face" and all(t is not None for t in teachers):
                own = np.array([t.argmax() for t, (_, p) in zip(teachers, rows) if p["face"] is not None])
                out[key]["agrees_with_face_model"] = round(float((own == y_pred).mean()), 4)
    emotion, sarc = _sarcasm_texts_alone(head, banks)
    true = np.asarray(banks.sarcasm.labels)
    pred = (sarc >= 0.5).astype(int)
    tp = int(((pred == 1) & (true == 1)).sum())
    f1 = 2 * tp / max(1, int(pred.sum()) + int(true.sum()))
    out["sarcasm_text"] = {"f1": round(f1, 4), "accuracy": round(float((pred == true).mean()), 4), "n": len(true)}
    if banks.sarcasm_teacher is not None:  # the emotion the head reads in those texts vs the text-emotion model's
        agree = emotion.argmax(-1) == banks.sarcasm_teacher.argmax(-1)
        out["sarcasm_text"]["emotion_agrees_with_text_model"] = round(float(agree.mean()), 4)
    return out


def _sarcasm_texts_alone(head: FusionHead, banks: Banks) -> tuple[np.ndarray, np.ndarray]:
    """The head's emotion probabilities and P(sarcastic) for every sarcasm text of ``banks`` shown alone."""
    import torch

    dims = {m: getattr(banks, m).tokens.shape[1] for m in MODALITIES}
    sb = banks.sarcasm
    x, mask = _pad([sb.item(i) for i in range(len(sb))], dims["text"])
    empty = {m: _pad([None] * len(sb), dims[m]) for m in ("face", "voice")}
    with torch.no_grad():
        emotion, sarc, _ = head(torch.from_numpy(empty["face"][0]), torch.from_numpy(empty["face"][1]),
                                torch.from_numpy(empty["voice"][0]), torch.from_numpy(empty["voice"][1]),
                                torch.from_numpy(x), torch.from_numpy(mask))
    return emotion.numpy(), sarc.numpy().astype(np.float64)


def held_out_sarcasm(head: FusionHead, banks: Banks) -> tuple[np.ndarray, np.ndarray]:
    """The head's P(sarcastic) for every held-out sarcasm text shown alone, and the labels."""
    return _sarcasm_texts_alone(head, banks)[1], np.asarray(banks.sarcasm.labels)


def evaluate_aligned(head: FusionHead, examples: list) -> dict[str, object]:
    """Fused accuracy (emotion) and F1 (sarcasm) on held-out aligned windows, all their modalities shown."""
    import torch

    from mmdesk.evaluation.metrics import accuracy, uar

    dims = {m: head.config.dims()[m] for m in MODALITIES}
    feeds = {}
    for m in MODALITIES:
        feeds[m], feeds[f"{m}_mask"] = _pad([getattr(ex, m) for ex in examples], dims[m])
    with torch.no_grad():
        probs, sarc, _ = head(*(torch.from_numpy(feeds[n]) for n in
                                ("face", "face_mask", "voice", "voice_mask", "text", "text_mask")))
    out: dict[str, object] = {"n": len(examples)}
    emo = [i for i, ex in enumerate(examples) if ex.emotion is not None]
    if emo:
        y_true = np.array([examples[i].emotion for i in emo])
        y_pred = probs.numpy()[emo].argmax(-1)
        out["emotion"] = {"accuracy": round(accuracy(y_true, y_pred), 4), "uar": round(uar(y_true, y_pred, N), 4),
                          "n": len(emo)}
    sar = [i for i, ex in enumerate(examples) if ex.sarcasm is not None]
    if sar:
        true = np.array([examples[i].sarcasm for i in sar])
        pred = (sarc.numpy()[sar] >= 0.5).astype(int)
        tp = int(((pred == 1) & (true == 1)).sum())
        out["sarcasm"] = {"f1": round(2 * tp / max(1, int(pred.sum()) + int(true.sum())), 4), "n": len(sar)}
    return out
