"""The fusion head's face-only reading is distilled towards the face model's own probabilities."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmdesk.training.fusion_data import Bank  # noqa: E402
from mmdesk.training.fusion_model import FusionConfig, FusionHead  # noqa: E402
from mmdesk.training.fusion_train import (  # noqa: E402
    Banks,
    Sampler,
    TrainSettings,
    _distillation,
    train,
)

N = 7


def _bank(rng: np.random.Generator, dim: int, per_label: int, tokens: int, labels: int = N) -> Bank:
    centres = rng.standard_normal((labels, dim)) * 2
    seqs, ys = [], []
    for y in range(labels):
        for _ in range(per_label):
            seqs.append((centres[y] + rng.standard_normal((tokens, dim)) * 0.3).astype(np.float32))
            ys.append(y)
    return Bank.build(seqs, ys, [f"g{i}" for i in range(len(ys))], dim)


def _banks() -> Banks:
    rng = np.random.default_rng(0)
    face = _bank(rng, 16, 6, 4)
    # a teacher that disagrees with the labels: it reads every face as the next label
    teacher = np.full((len(face.tokens), N), 0.02, np.float32)
    token_labels = np.repeat(face.labels, np.diff(face.offsets))
    teacher[np.arange(len(teacher)), (token_labels + 1) % N] = 1 - 0.02 * (N - 1)
    sarcasm = _bank(rng, 8, 10, 3, labels=2)
    text_teacher = rng.dirichlet(np.ones(N), len(sarcasm)).astype(np.float32)
    return Banks(face, _bank(rng, 8, 6, 5), _bank(rng, 8, 6, 3), sarcasm, face_teacher=teacher,
                 sarcasm_teacher=text_teacher)


def _face_only(head, banks: Banks) -> np.ndarray:
    face = banks.face
    seqs = [face.item(i) for i in range(len(face))]
    x = torch.from_numpy(np.stack(seqs))
    b = len(seqs)
    inputs = {"face": x, "voice": torch.zeros(b, 1, 8), "text": torch.zeros(b, 1, 8)}
    masks = {"face": torch.ones(b, x.shape[1]), "voice": torch.zeros(b, 1), "text": torch.zeros(b, 1)}
    with torch.no_grad():
        logits, _, _ = head.logits(inputs, masks)
    return logits.softmax(-1).numpy()


def test_sampler_gives_the_teacher_of_the_faces_it_shows() -> None:
    banks = _banks()
    b = Sampler(banks, TrainSettings(batch=64), np.random.default_rng(1)).batch()
    shown = b["face_mask"].sum(1) > 0
    assert shown.any() and not shown.all()
    assert np.array_equal(b["face_teacher_weight"] > 0, shown)
    assert np.allclose(b["face_teacher"][shown].sum(1), 1.0, atol=1e-5) and not b["face_teacher"][~shown].any()
    # every face of label y shown on an emotion row has the teacher's label y + 1
    emo = shown & (b["emo_weight"] > 0) & (b["emo_target"].max(1) == 1.0)
    assert np.array_equal(b["face_teacher"][emo].argmax(1), (b["emo_target"][emo].argmax(1) + 1) % N)
    # the text teacher: the text-emotion model's reading of each sarcasm text, on exactly the sarcasm rows
    sarcasm_rows = b["sarc_weight"] > 0
    assert sarcasm_rows.any() and np.array_equal(b["text_teacher_weight"] > 0, sarcasm_rows)
    assert np.allclose(b["text_teacher"][sarcasm_rows].sum(1), 1.0, atol=1e-5)
    assert all(any(np.allclose(t, row) for row in banks.sarcasm_teacher) for t in b["text_teacher"][sarcasm_rows])
    tensors = {k: torch.from_numpy(v) for k, v in b.items()}
    no_teacher = dict(tensors, face_teacher_weight=torch.zeros_like(tensors["face_teacher_weight"]))
    head = FusionHead(FusionConfig(face_dim=16, voice_dim=8, text_dim=8, width=16))
    with torch.no_grad():
        assert float(_distillation(head, no_teacher, "face")) == 0.0 and float(_distillation(head, tensors, "face")) > 0.0


@pytest.mark.parametrize("weight", [0.0, 3.0])
def test_distillation_moves_the_face_only_reading_to_the_face_model(weight: float) -> None:
    banks = _banks()
    config = FusionConfig(face_dim=16, voice_dim=8, text_dim=8, width=16)
    head, _ = train(banks, config, TrainSettings(steps=300, batch=32, face_distill=weight, text_distill=0.0),
                    log=lambda m: None)
    pred = _face_only(head, banks).argmax(1)
    follows_teacher = float(np.mean(pred == (banks.face.labels + 1) % N))
    follows_labels = float(np.mean(pred == banks.face.labels))
    if weight == 0:
        assert follows_labels > 0.8 and follows_teacher < 0.2
    else:
        assert follows_teacher > 0.8 and follows_labels < 0.2
