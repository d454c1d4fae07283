"""Runtime embedding APIs the fusion head reads: FaceExpression.predict_with_embedding and
VoiceEmotion.predict_features_with_frames, on the built pack with real faces and real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmdesk.core.labels import LABELS
from mmdesk.inference.manifest import Manifest, load_manifest


@pytest.fixture(scope="module")
def manifest(pack_dir: Path) -> Manifest:
    return load_manifest(pack_dir)


@pytest.fixture(scope="module")
def fer_faces(assets: Path) -> np.ndarray:
    path = assets / "face" / "fer2013_48px_trainval.npz"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    with np.load(path) as d:
        images = d["val_images"]
    return images[np.random.default_rng(0).choice(len(images), 6, replace=False)]


def test_face_probs_and_embedding_from_one_run(manifest: Manifest, fer_faces: np.ndarray) -> None:
    import cv2

    from mmdesk.perception.face import FaceExpression

    model = FaceExpression(manifest, device="cpu", threads=1)
    assert model.embedding_dim is not None and model.embedding_dim > 0
    crops = np.stack([cv2.resize(f, (model.size, model.size), interpolation=cv2.INTER_LINEAR) for f in fer_faces])
    probs, emb = model.predict_with_embedding(crops)
    assert probs.shape == (len(crops), len(LABELS)) and emb.shape == (len(crops), model.embedding_dim)
    np.testing.assert_allclose(probs, model.predict(crops), atol=1e-6)  # same numbers as predict
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(emb).all() and np.abs(emb[0] - emb[1]).max() > 1e-3
    # one crop alone gives the same embedding as inside a batch
    _, one = model.predict_with_embedding(crops[:1])
    assert np.abs(one - emb[:1]).max() < 1e-4
    p0, e0 = model.predict_with_embedding(crops[:0])
    assert p0.shape == (0, len(LABELS)) and e0.shape == (0, model.embedding_dim)


def test_voice_probs_and_frames_from_one_run(manifest: Manifest, assets: Path) -> None:
    from mmdesk.perception import voice_features as vf
    from mmdesk.perception.voice import VoiceEmotion

    files = sorted((assets / "voice" / "emodb" / "wav").glob("*.wav"))
    if not files:
        pytest.skip("no EmoDB wav files in the shared assets")
    model = VoiceEmotion(manifest, device="cpu", threads=1)
    assert model.frames_dim is not None and model.time_stride is not None
    feats = model.features(vf.load_audio(files[0]))
    probs, frames = model.predict_features_with_frames(feats)
    assert probs.shape == (len(LABELS),)
    np.testing.assert_allclose(probs, model.predict_features(feats), atol=1e-6)
    # Whisper's stride-2 convolution, then FRAME_POOL = time_stride / 2 steps per output step
    assert frames.shape == ((feats.shape[2] + 1) // 2 // (model.time_stride // 2), model.frames_dim)
    assert frames.dtype == np.float32 and np.isfinite(frames).all() and frames.std() > 0
