"""The fusion head's ONNX export equals torch at several lengths and for every modality subset."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmdesk.training.fusion_export import export_fusion
from mmdesk.training.fusion_model import (
    INPUT_NAMES,
    MODALITIES,
    FusionConfig,
    FusionHead,
)
from mmdesk.training.onnx_export import ort_session


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    head = FusionHead(FusionConfig(face_dim=16, voice_dim=12, text_dim=24, width=32, heads=4)).eval()
    path = tmp_path_factory.mktemp("fusion") / "fusion.onnx"
    export_fusion(head, path)
    return head, ort_session(path)


def _batch(head, lengths, present, batch=3, seed=1):
    g = np.random.default_rng(seed)
    feeds = {}
    for m, t in zip(MODALITIES, lengths):
        feeds[m] = g.standard_normal((batch, t, head.config.dims()[m])).astype(np.float32)
        mask = np.ones((batch, t), np.float32) if m in present else np.zeros((batch, t), np.float32)
        if m in present and t > 1:
            mask[0, t // 2:] = 0  # ragged: the first row has padding
        feeds[f"{m}_mask"] = mask
    return feeds


@pytest.mark.parametrize("lengths", [(1, 1, 1), (7, 3, 12), (30, 62, 40)])
@pytest.mark.parametrize("present", [set(c) for r in range(4) for c in itertools.combinations(MODALITIES, r)],
                         ids=lambda s: "+".join(sorted(s)) or "none")
def test_onnx_matches_torch(exported, lengths, present) -> None:
    head, sess = exported
    feeds = _batch(head, lengths, present)
    with torch.no_grad():
        ref = head(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
    got = sess.run(None, feeds)
    for r, o in zip(ref, got):
        assert np.abs(r.numpy() - o).max() < 2e-5
    emotion, sarcasm, attention = got
    assert np.allclose(emotion.sum(-1), 1.0, atol=1e-5) and ((sarcasm > 0) & (sarcasm < 1)).all()
    for i, m in enumerate(MODALITIES):  # no attention on a modality that is not shown
        for j, src in enumerate(MODALITIES):
            if src not in present or i == j:
                assert np.abs(attention[:, i, j]).max() < 1e-6


def test_masked_content_does_not_change_the_output(exported) -> None:
    """What a masked modality's tensor holds must not matter: attribution relies on it."""
    head, sess = exported
    feeds = _batch(head, (5, 6, 7), {"face", "text"})
    a = sess.run(None, feeds)
    feeds["voice"] = feeds["voice"] * 100 + 3
    b = sess.run(None, feeds)
    for x, y in zip(a, b):
        assert np.abs(x - y).max() < 1e-6


def test_checkpoint_round_trip_keeps_config_and_weights(exported, tmp_path) -> None:
    from mmdesk.training.fusion import load_checkpoint, save_checkpoint

    head, _ = exported
    save_checkpoint(head, tmp_path / "fusion.pt")
    again = load_checkpoint(tmp_path / "fusion.pt")
    assert again.config == head.config
    feeds = _batch(head, (3, 4, 5), {"face", "text"})
    with torch.no_grad():
        a = head(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
        b = again(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        FusionConfig(128, 128, 384)  # type: ignore[misc]
