"""The few image operations the runtime needs, in numpy, with OpenCV's conventions.

The runtime used to import OpenCV (151 MB in the installer) for these alone. Each function follows
the OpenCV call it replaces closely enough that results differ by at most one grey level (the tests
compare them with cv2 on real photos), so models trained on OpenCV-prepared inputs see the same pixels.
"""

from __future__ import annotations

import functools

import numpy as np

# cv2.COLOR_BGR2GRAY's fixed-point weights (0.114 B + 0.587 G + 0.299 R, scaled by 2**14)
_GREY_B, _GREY_G, _GREY_R, _GREY_SHIFT = 1868, 9617, 4899, 14
# cv2.warpAffine: source coordinates are rounded to 1/32 pixel (INTER_BITS) from 1/1024 fixed point (AB_BITS)
_AB_BITS, _INTER_BITS = 10, 5


def bgr_to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) → uint8 grey (H, W), rounded exactly as cv2.cvtColor(COLOR_BGR2GRAY)."""
    px = image.astype(np.uint32)
    grey = px[..., 0] * _GREY_B + px[..., 1] * _GREY_G + px[..., 2] * _GREY_R
    return ((grey + (1 << (_GREY_SHIFT - 1))) >> _GREY_SHIFT).astype(np.uint8)


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output pixel: the two source indices and the weight of the second (cv2 INTER_LINEAR).

    Pixel centres are aligned ((d + 0.5)·scale − 0.5); beyond the first/last centre the edge
    pixel is repeated, as OpenCV does.
    """
    f = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(f).astype(np.intp)
    w = (f - i0).astype(np.float32)
    w[(i0 < 0) | (i0 >= n_in - 1)] = 0.0
    i0 = np.clip(i0, 0, n_in - 1)
    return i0, np.minimum(i0 + 1, n_in - 1), w


@functools.lru_cache(maxsize=16)
def _resize_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cached: a video's frames all share one shape, and building the taps costs as much as using them."""
    return _linear_taps(n_in, n_out)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) → (height, width[, C]) for ``size`` = (width, height), like
    cv2.resize(..., INTER_LINEAR).

    Separable: rows first (only the output's source rows), then columns, blended in float32, with
    ``take`` (numpy's fancy indexing on a middle axis is 6× slower): ~5 ms for 1280×720 → 480×270
    on one core, against 0.4 ms in OpenCV (docs/benchmarks.md).
    """
    width, height = size
    if image.shape[:2] == (height, width):
        return image.copy()
    y0, y1, wy = _resize_taps(image.shape[0], height)
    x0, x1, wx = _resize_taps(image.shape[1], width)
    pixels = image.reshape(image.shape[0], image.shape[1], -1)
    wy, wx = wy[:, None, None], wx[None, :, None]
    rows = pixels.take(y0, axis=0).astype(np.float32)
    rows *= 1 - wy
    rows += pixels.take(y1, axis=0) * wy
    out = rows.take(x0, axis=1)
    out *= 1 - wx
    out += rows.take(x1, axis=1) * wx
    out += 0.5  # values stay within 0..255 (convex weights): truncation is rounding half up
    return out.astype(np.uint8).reshape((height, width, *image.shape[2:]))


def downscale_area(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor``×``factor`` block (cv2 INTER_AREA for an integer factor); the last
    ``< factor`` rows/columns that do not fill a block are dropped. Summed as ``factor``² strided
    views (far faster in numpy than reducing a reshaped 5-D array)."""
    if factor <= 1:
        return image
    bh, bw = image.shape[0] // factor, image.shape[1] // factor
    total = np.zeros((bh, bw, *image.shape[2:]), np.uint16)
    for dy in range(factor):
        for dx in range(factor):
            total += image[dy : bh * factor : factor, dx : bw * factor : factor]
    n = factor * factor
    total += n // 2
    total //= n
    return total.astype(np.uint8)


def rotation_matrix(centre: tuple[float, float], angle_deg: float, scale: float) -> np.ndarray:
    """2×3 affine matrix rotating by ``angle_deg`` (counter-clockwise) and scaling about ``centre``,
    as cv2.getRotationMatrix2D builds it."""
    a = np.radians(angle_deg)
    alpha, beta = scale * np.cos(a), scale * np.sin(a)
    cx, cy = centre
    return np.array([[alpha, beta, (1 - alpha) * cx - beta * cy],
                     [-beta, alpha, beta * cx + (1 - alpha) * cy]])


def _invert_affine(m: np.ndarray) -> np.ndarray:
    (a, b, c), (d, e, f) = m
    det = a * e - b * d
    inv = 1.0 / det if det != 0 else 0.0
    a11, a12, a21, a22 = e * inv, -b * inv, -d * inv, a * inv
    return np.array([[a11, a12, -a11 * c - a12 * f], [a21, a22, -a21 * c - a22 * f]])


def source_window(m: np.ndarray, size: tuple[int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of an image of ``shape`` that ``warp_affine(image, m, size)`` reads,
    so that only it needs preparing (e.g. converting to grey: a whole 720p frame costs ~10 ms in numpy)."""
    width, height = size
    inv = _invert_affine(np.asarray(m, np.float64))
    corners = inv @ np.array([[0, width, 0, width], [0, 0, height, height], [1, 1, 1, 1]], np.float64)
    x0, y0 = np.floor(corners.min(axis=1)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=1)).astype(int) + 2
    h, w = shape[:2]
    x0, x1 = min(max(x0, 0), w - 1), min(max(x1, 1), w)
    y0, y1 = min(max(y0, 0), h - 1), min(max(y1, 1), h)
    return int(x0), int(y0), max(int(x1), int(x0) + 1), max(int(y1), int(y0) + 1)


def warp_affine(image: np.ndarray, m: np.ndarray, size: tuple[int, int],
                origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """uint8 (H, W) image warped by the 2×3 matrix ``m`` (source → destination) into ``size`` =
    (width, height): bilinear, edge pixels repeated outside the image, like cv2.warpAffine with
    INTER_LINEAR and BORDER_REPLICATE. Source positions are rounded to 1/32 pixel as OpenCV does.

    ``image`` may be the ``source_window`` of a larger image whose top-left pixel is ``origin``:
    ``m`` keeps the larger image's coordinates, and the result is the same."""
    width, height = size
    inv = _invert_affine(np.asarray(m, np.float64))
    scale = 1 << _AB_BITS
    xs, ys = np.arange(width), np.arange(height)
    # OpenCV's fixed-point walk: per-row offset + per-column delta, each rounded to 1/1024 pixel
    x_fix = (np.rint(inv[0, 0] * xs * scale).astype(np.int64)[None, :]
             + np.rint((inv[0, 1] * ys + inv[0, 2]) * scale).astype(np.int64)[:, None])
    y_fix = (np.rint(inv[1, 0] * xs * scale).astype(np.int64)[None, :]
             + np.rint((inv[1, 1] * ys + inv[1, 2]) * scale).astype(np.int64)[:, None])
    half = scale // (1 << _INTER_BITS) // 2
    x_q = (x_fix + half) >> (_AB_BITS - _INTER_BITS)
    y_q = (y_fix + half) >> (_AB_BITS - _INTER_BITS)
    tab = 1 << _INTER_BITS
    x0, y0 = (x_q >> _INTER_BITS) - origin[0], (y_q >> _INTER_BITS) - origin[1]
    fx = ((x_q & (tab - 1)) / tab).astype(np.float32)
    fy = ((y_q & (tab - 1)) / tab).astype(np.float32)
    h, w = image.shape[:2]
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    src = image.astype(np.float32)
    top = src[ya, xa] + (src[ya, xb] - src[ya, xa]) * fx
    bottom = src[yb, xa] + (src[yb, xb] - src[yb, xa]) * fx
    out = top + (bottom - top) * fy
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x, y, w, h) box with each row of ``others``."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    y1 = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)


def nms(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, iou_threshold: float,
        top_k: int = 0) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best first, as cv2.dnn.NMSBoxes:
    scores must exceed ``score_threshold``; only the ``top_k`` best (all when 0) are considered;
    a box is dropped when its IoU with a kept box is above ``iou_threshold``; ties keep input order."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.nonzero(scores > np.float32(score_threshold))[0]
    order = order[np.argsort(-scores[order], kind="stable")]
    if top_k > 0:
        order = order[:top_k]
    kept: list[int] = []
    for i in order:
        if not kept or np.all(_iou(boxes[i], boxes[kept]).astype(np.float32) <= np.float32(iou_threshold)):
            kept.append(int(i))
    return np.asarray(kept, np.intp)
