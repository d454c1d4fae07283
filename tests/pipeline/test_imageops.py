"""The numpy image operations match the OpenCV calls they replaced, on real photos and a RAVDESS frame.

OpenCV is the reference only (it stays in the dev/train extras); the runtime never imports it.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from mmdesk.inference.manifest import load_manifest
from mmdesk.perception.face import CROP_SCALE, FaceDetector, FaceExpression, face_crop
from mmdesk.perception.imageops import (
    bgr_to_grey,
    downscale_area,
    nms,
    resize_bilinear,
    rotation_matrix,
    source_window,
    warp_affine,
)

PHOTOS = ["test_image.jpg", "12_angry_men.jpg", "emotion_classification.jpg"]
RAVDESS_CLIP = "av/ravdess_actor05/01-01-03-01-01-02-05.mp4"  # 1280×720, one face


@pytest.fixture(scope="module")
def photos(assets) -> dict[str, np.ndarray]:
    return {name: cv2.imread(str(assets / "media" / name)) for name in PHOTOS}


@pytest.fixture(scope="module")
def ravdess_frame(assets) -> np.ndarray:
    with av.open(str(assets / RAVDESS_CLIP)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == 40:
                return frame.to_ndarray(format="bgr24")
    raise AssertionError("the RAVDESS clip has fewer than 41 frames")


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    return int(np.abs(a.astype(np.int16) - b).max())


def test_grey_matches_opencv(photos) -> None:
    for img in photos.values():
        assert _max_diff(bgr_to_grey(img), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)) <= 1


@pytest.mark.parametrize("name", PHOTOS)
def test_bilinear_resize_matches_opencv(photos, name) -> None:
    img = photos[name]
    h, w = img.shape[:2]
    s = 480 / max(h, w)
    # the detector's downscale, a non-uniform one, an upscale, and a grey FER-style 48 → 64
    for size in [(round(w * s), round(h * s)), (w * 2 // 3 + 1, h // 3), (w + 37, h + 101)]:
        assert _max_diff(resize_bilinear(img, size), cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)) <= 1
    grey48 = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    assert _max_diff(resize_bilinear(grey48, (64, 64)), cv2.resize(grey48, (64, 64))) <= 1


def test_area_downscale_matches_opencv(photos) -> None:
    img = photos["test_image.jpg"][:1530, :2046]  # both sides divisible by 2 and 3
    for k in (2, 3):
        h, w = img.shape[0] // k, img.shape[1] // k
        assert _max_diff(downscale_area(img, k), cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)) <= 1


@pytest.mark.parametrize("angle", [0.0, 13.7, -20.0, 45.0])
def test_rotation_and_warp_match_opencv(photos, angle) -> None:
    grey = cv2.cvtColor(photos["12_angry_men.jpg"], cv2.COLOR_BGR2GRAY)
    centre = (grey.shape[1] * 0.41, grey.shape[0] * 0.47)
    for size in (48, 64):
        m = rotation_matrix(centre, angle, size / 150)
        np.testing.assert_allclose(m, cv2.getRotationMatrix2D(centre, angle, size / 150), atol=1e-12)
        m[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
        ref = cv2.warpAffine(grey, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        assert _max_diff(warp_affine(grey, m, (size, size)), ref) <= 1
    # a crop hanging over the image corner: edge pixels repeated like BORDER_REPLICATE
    m = rotation_matrix((5.0, 5.0), 30.0, 0.5)
    ref = cv2.warpAffine(grey, m, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert _max_diff(warp_affine(grey, m, (64, 64)), ref) <= 1
    # warping only the window the crop reads gives the same pixels, inside and over the border
    for m in (rotation_matrix((5.0, 5.0), 30.0, 0.5), rotation_matrix(centre, angle, 0.4)):
        x0, y0, x1, y1 = source_window(m, (64, 64), grey.shape)
        window = warp_affine(grey[y0:y1, x0:x1], m, (64, 64), origin=(x0, y0))
        assert (window == warp_affine(grey, m, (64, 64))).all()


def test_nms_keeps_what_opencv_keeps() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(0, 80))
        boxes = np.concatenate([rng.uniform(0, 200, (n, 2)), rng.uniform(5, 60, (n, 2))], 1).astype(np.float32)
        # half the trials with many tied scores, including ones exactly at the threshold
        scores = (rng.choice([0.5, 0.6, 0.7, 0.9], n) if trial % 2 else rng.uniform(0, 1, n)).astype(np.float32)
        for top_k in (0, 5, 50):
            ref = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.6, 0.3, top_k=top_k)
            assert nms(boxes, scores, 0.6, 0.3, top_k).tolist() == np.asarray(ref).reshape(-1).tolist()


def _cv2_crop(image: np.ndarray, det, size: int) -> np.ndarray:
    """face_crop as it was written with OpenCV."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    x, y, w, h = det.box
    cx, cy = x + w / 2, y + h / 2
    (rx, ry), (lx, ly) = det.landmarks[0], det.landmarks[1]
    m = cv2.getRotationMatrix2D((cx, cy), float(np.degrees(np.arctan2(ly - ry, lx - rx))), size / (max(w, h) * CROP_SCALE))
    m[0, 2] += size / 2 - cx
    m[1, 2] += size / 2 - cy
    return cv2.warpAffine(grey, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("source", ["test_image.jpg", "12_angry_men.jpg", "ravdess"])
def test_faces_and_expressions_unchanged_against_the_opencv_path(pack_dir, photos, ravdess_frame, source) -> None:
    """The whole detector (numpy resize + NMS) against OpenCV's FaceDetectorYN on a cv2-resized image,
    and the expression of each face from our crop against the OpenCV-built crop."""
    manifest = load_manifest(pack_dir)
    det, expr = FaceDetector(manifest, device="cpu"), FaceExpression(manifest, "cpu")
    img = ravdess_frame if source == "ravdess" else photos[source]
    h, w = img.shape[:2]
    s = det.max_side / max(h, w)
    small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)
    ref = cv2.FaceDetectorYN.create(str(manifest.path("face_detector")), "", (small.shape[1], small.shape[0]),
                                    det.score_threshold, det.nms_threshold, 50)
    _, rows = ref.detect(small)
    ours = sorted(det.detect(img), key=lambda d: d.box)
    theirs = sorted((r[:4] / s for r in rows), key=lambda b: tuple(np.round(b).astype(int)))
    assert len(ours) == len(theirs) >= 1
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.box, t, atol=1 / s + 1)  # one pixel at detector scale
    crops = np.stack([face_crop(img, d, expr.size) for d in ours])
    ref_crops = np.stack([_cv2_crop(img, d, expr.size) for d in ours])
    assert _max_diff(crops, ref_crops) <= 1
    probs, ref_probs = expr.predict(crops), expr.predict(ref_crops)
    assert (probs.argmax(1) == ref_probs.argmax(1)).all()
    np.testing.assert_allclose(probs, ref_probs, atol=0.02)


def test_committed_detector_input_graph_is_what_the_builder_makes() -> None:
    from mmdesk.perception.face import INPUT_GRAPH
    from mmdesk.training.image_graphs import yunet_input_graph

    assert INPUT_GRAPH.read_bytes() == yunet_input_graph(), "run python -m mmdesk.training.image_graphs"


@pytest.mark.parametrize("source", [*PHOTOS, "ravdess"])
def test_detector_input_graph_resizes_like_opencv_and_pads_with_zeros(pack_dir, photos, ravdess_frame, source) -> None:
    """The onnxruntime graph that makes YuNet's blob: cv2 INTER_LINEAR within one grey level, BGR
    planes, zero padding to multiples of 32; an image already small enough passes unchanged."""
    det = FaceDetector(load_manifest(pack_dir), device="cpu")
    img = ravdess_frame if source == "ravdess" else photos[source]
    for target in (det.max_side, max(img.shape[:2])):  # downscaled, then at its own size
        h, w = img.shape[:2]
        s = min(1.0, target / max(h, w))
        sh, sw = round(h * s), round(w * s)
        ph, pw = -(-sh // 32) * 32, -(-sw // 32) * 32
        (blob,) = det._prepare.run(None, {"image": img, "size": np.array([sh, sw], np.int64),
                                          "pads": np.array([0, 0, 0, 0, 0, 0, ph - sh, pw - sw], np.int64)})
        assert blob.shape == (1, 3, ph, pw) and blob.dtype == np.float32
        assert not blob[0, :, sh:, :].any() and not blob[0, :, :, sw:].any()
        planes = blob[0, :, :sh, :sw].transpose(1, 2, 0)
        assert (planes == np.round(planes)).all()  # whole grey levels, as a uint8 resize gives
        ref = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_LINEAR) if s < 1 else img
        assert _max_diff(planes.astype(np.uint8), ref) <= (1 if s < 1 else 0)
