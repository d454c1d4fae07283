"""Face detection (YuNet) and expression (FER mini-Xception), both on onnxruntime; image work in numpy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdesk.core.labels import FER2013_LABELS, LABELS, reorder
from mmdesk.errors import ModelError
from mmdesk.inference.manifest import Manifest
from mmdesk.inference.runtime import OnnxModel, open_model, session_options
from mmdesk.perception.imageops import (
    bgr_to_grey,
    nms,
    rotation_matrix,
    source_window,
    warp_affine,
)

# 5 YuNet landmarks: right eye, left eye, nose tip, right and left mouth corner (image x, y).
_RIGHT_EYE, _LEFT_EYE = 0, 1


@dataclass(frozen=True)
class FaceDetection:
    box: tuple[int, int, int, int]  # x, y, w, h in image pixels
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None


STRIDES = (8, 16, 32)  # YuNet's three detection heads; the input is padded to a multiple of 32
# Resize + pad + transpose into YuNet's blob in one onnxruntime call (built by mmdesk.training.image_graphs)
INPUT_GRAPH = Path(__file__).resolve().parent / "graphs" / "yunet_input.onnx"


def decode_yunet(outputs: dict[str, np.ndarray], pad_h: int, pad_w: int, score_threshold: float,
                 nms_threshold: float, top_k: int = 50) -> np.ndarray:
    """YuNet head outputs → rows of (x, y, w, h, 5 landmark x/y pairs, score), as OpenCV decodes them.

    Per stride s and grid cell (r, c): score = sqrt(clip(cls) * clip(obj)); centre
    ((c + dx)·s, (r + dy)·s); size (exp(dw)·s, exp(dh)·s); landmarks ((c + kx)·s, (r + ky)·s).
    """
    rows = []
    for s in STRIDES:
        cols, nrows = pad_w // s, pad_h // s
        cls = np.clip(outputs[f"cls_{s}"][0, :, 0], 0, 1)
        obj = np.clip(outputs[f"obj_{s}"][0, :, 0], 0, 1)
        score = np.sqrt(cls * obj)
        keep = np.nonzero(score >= score_threshold)[0]
        if keep.size == 0:
            continue
        r, c = np.divmod(keep, cols)
        assert cols * nrows == cls.shape[0]
        box = outputs[f"bbox_{s}"][0, keep]
        kps = outputs[f"kps_{s}"][0, keep]
        cx, cy = (c + box[:, 0]) * s, (r + box[:, 1]) * s
        w, h = np.exp(box[:, 2]) * s, np.exp(box[:, 3]) * s
        marks = np.empty((keep.size, 10), np.float32)
        marks[:, 0::2] = (kps[:, 0::2] + c[:, None]) * s
        marks[:, 1::2] = (kps[:, 1::2] + r[:, None]) * s
        rows.append(np.column_stack([cx - w / 2, cy - h / 2, w, h, marks, score[keep]]))
    if not rows:
        return np.zeros((0, 15), np.float32)
    faces = np.concatenate(rows).astype(np.float32)
    return faces[nms(faces[:, :4], faces[:, 14], score_threshold, nms_threshold, top_k=top_k)]


class FaceDetector:
    """YuNet on onnxruntime (CUDA when present).

    A missing or corrupt YuNet file is a ModelError naming the file and the fix: YuNet ships in the pack
    and is checked there (the Haar cascade fallback went with OpenCV, to keep the installer small).
    """

    name = "yunet"

    def __init__(self, manifest: Manifest, *, device: str = "auto") -> None:
        pre = manifest.entry("face_detector").preprocessing
        self.max_side = int(pre.get("max_side", 640))
        self.score_threshold = float(pre.get("score_threshold", 0.6))
        self.nms_threshold = float(pre.get("nms_threshold", 0.3))
        self._yunet: OnnxModel = open_model(manifest, "face_detector", device)
        self._output_names = [o.name for o in self._yunet.session.get_outputs()]
        self._prepare = _open_input_graph()

    @property
    def provider(self) -> str:
        return self._yunet.active_provider

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces in a BGR image, best first; boxes in the image's own pixel coordinates.

        One pass at ``max_side``: a faster half-size pass was tried and lost the head tilt in
        YuNet's landmarks, on which the expression crop is aligned.
        """
        return _best_first(self._detect_at(image, self.max_side))

    def _detect_at(self, image: np.ndarray, max_side: int) -> list[FaceDetection]:
        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        sh, sw = (round(h * scale), round(w * scale)) if scale < 1.0 else (h, w)
        pad_h, pad_w = -(-sh // 32) * 32, -(-sw // 32) * 32
        (blob,) = self._prepare.run(None, {  # BGR, raw 0..255, zero padding
            "image": np.ascontiguousarray(image),
            "size": np.array([sh, sw], np.int64),
            "pads": np.array([0, 0, 0, 0, 0, 0, pad_h - sh, pad_w - sw], np.int64),
        })
        outs = dict(zip(self._output_names, self._yunet.run({"input": blob})))
        rows = decode_yunet(outs, pad_h, pad_w, self.score_threshold, self.nms_threshold)
        return [
            FaceDetection(
                _clip_box(tuple(int(round(v / scale)) for v in r[:4]), w, h),
                float(r[14]),
                tuple((float(r[4 + 2 * i] / scale), float(r[5 + 2 * i] / scale)) for i in range(5)),
            )
            for r in rows
        ]


def _open_input_graph():
    """The blob-preparation graph, on the CPU (it is memory-bound; YuNet itself may run on CUDA)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(INPUT_GRAPH), sess_options=session_options(1),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for missing/unreadable graphs
        raise ModelError(f"the face detector's input graph {INPUT_GRAPH} cannot be loaded: {exc}".splitlines()[0],
                         "reinstall mmdesk (the file ships with the package)") from None


def _best_first(found: list[FaceDetection]) -> list[FaceDetection]:
    # largest-and-surest first: the subject is usually the biggest confident face
    return sorted(found, key=lambda d: d.score * np.sqrt(d.box[2] * d.box[3]), reverse=True)


# Crop side / YuNet box side. The expression models learnt FER2013's framing, which is tighter than YuNet's
# box: over FER2013 val faces YuNet's box is 1 / 0.91 of the image (median; 497 of 600 faces found; IQR
# 0.82-1.03; centred within 1 %), measured by `python -m mmdesk.training.face_framing`. The 1.1 used before
# framed faces 21 % looser than FER2013's: on RAVDESS actor 05 the mini-Xception read 13 % of frames right
# (mostly "neutral"); with 0.91 52 %, 9 of 14 clips (models/cards/face_expression.md).
CROP_SCALE = 0.91


def _clip_box(box: tuple[int, ...], w: int, h: int) -> tuple[int, int, int, int]:
    x, y, bw, bh = box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + bw), min(h, y + bh)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def face_crop(image: np.ndarray, det: FaceDetection, size: int) -> np.ndarray:
    """Greyscale ``size``×``size`` crop, rotated so the eyes are level when landmarks are known."""
    x, y, w, h = det.box
    cx, cy = x + w / 2, y + h / 2
    side = max(w, h) * CROP_SCALE
    angle = 0.0
    if det.landmarks is not None:
        (rx, ry), (lx, ly) = det.landmarks[_RIGHT_EYE], det.landmarks[_LEFT_EYE]
        angle = float(np.degrees(np.arctan2(ly - ry, lx - rx)))
    m = rotation_matrix((cx, cy), angle, size / side)
    m[0, 2] += size / 2 - cx
    m[1, 2] += size / 2 - cy
    x0, y0, x1, y1 = source_window(m, (size, size), image.shape)
    region = image[y0:y1, x0:x1]
    grey = bgr_to_grey(region) if region.ndim == 3 else region
    return warp_affine(grey, m, (size, size), origin=(x0, y0))


class FaceExpression:
    """FER expression probabilities over ``LABELS`` (and the per-crop embedding) for a batch of face crops."""

    def __init__(self, manifest: Manifest, device: str = "auto", threads: int | None = None) -> None:
        self.model: OnnxModel = open_model(manifest, "face_expression", device, threads)
        entry = manifest.entry("face_expression")
        pre = entry.preprocessing
        self.size = int(pre.get("size", 64))
        self.scale = float(pre.get("scale", 1 / 255))
        self.mean = float(pre.get("mean", 0.5))
        self.std = float(pre.get("std", 0.5))
        self.source_labels = tuple(entry.labels) or FER2013_LABELS
        self._input = self.model.input_names[0]
        outputs = {o.name: o for o in entry.outputs}
        self._probs = "probs" if "probs" in outputs or not outputs else entry.outputs[0].name
        emb = outputs.get("embedding")
        # the fusion head reads this; None for packs built before the model had the output
        self.embedding_dim: int | None = int(emb.shape[-1]) if emb is not None else None

    def _input_tensor(self, crops: np.ndarray) -> np.ndarray:
        return ((crops.astype(np.float32) * self.scale - self.mean) / self.std)[:, None, :, :]

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """crops: uint8 (N, size, size) greyscale → float64 (N, 7) probabilities in LABELS order."""
        if len(crops) == 0:
            return np.zeros((0, len(LABELS)))
        (probs,) = self.model.run({self._input: self._input_tensor(crops)}, [self._probs])
        return reorder(probs, self.source_labels)

    def predict_with_embedding(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """crops: uint8 (N, size, size) → (float64 (N, 7) probabilities in LABELS order,
        float32 (N, embedding_dim) embedding), from one run of the model."""
        if self.embedding_dim is None:
            raise ModelError(f"face expression model {self.model.path} has no `embedding` output",
                             "rebuild the pack with `mmdesk models build`")
        if len(crops) == 0:
            return np.zeros((0, len(LABELS))), np.zeros((0, self.embedding_dim), np.float32)
        probs, emb = self.model.run({self._input: self._input_tensor(crops)}, [self._probs, "embedding"])
        return reorder(probs, self.source_labels), emb

