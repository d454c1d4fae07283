"""How FER2013 frames a face, in units of the face detector's box: the crop scale the runtime uses.

The expression models were trained on FER2013's 48x48 faces; at run time mmdesk cuts faces out of camera
frames around YuNet's box. For the models to see what they learnt, the crop must frame a face as FER2013
does. This runs YuNet on FER2013 faces (upscaled 4x and set on a grey canvas, so that the detector sees a
whole face with room around it) and reports the image side over the box side, and where the box sits:
``mmdesk.perception.face.CROP_SCALE`` is the median.

    python -m mmdesk.training.face_framing [--data NPZ] [--split val] [--n 600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

UPSCALE = 4  # 48 -> 192 px: YuNet's smallest faces are ~10 px, but landmarks and boxes settle above ~100
CANVAS = 2  # the canvas is twice the face image, filled with mid-grey


def measure(images: np.ndarray, manifest) -> dict[str, float]:
    """Median (and quartiles) of image side / YuNet box side, and the box centre's offset in image sides."""
    from mmdesk.perception.face import FaceDetector

    det = FaceDetector(manifest, device="cpu")
    side = images.shape[1] * UPSCALE
    ratios, dx, dy = [], [], []
    for im in images:
        big = np.repeat(np.repeat(im, UPSCALE, 0), UPSCALE, 1)
        canvas = np.full((side * CANVAS, side * CANVAS), 128, np.uint8)
        o = (side * CANVAS - side) // 2
        canvas[o:o + side, o:o + side] = big
        found = det.detect(np.stack([canvas] * 3, axis=-1))
        if not found:
            continue
        x, y, w, h = found[0].box
        ratios.append(side / max(w, h))
        dx.append((x + w / 2 - o - side / 2) / side)
        dy.append((y + h / 2 - o - side / 2) / side)
    q1, med, q3 = np.percentile(ratios, [25, 50, 75]) if ratios else (np.nan,) * 3
    return {"faces": len(images), "found": len(ratios), "median": float(med), "q1": float(q1), "q3": float(q3),
            "centre_dx": float(np.median(dx)) if dx else np.nan, "centre_dy": float(np.median(dy)) if dy else np.nan}


def main(argv: list[str] | None = None) -> int:
    from mmdesk.inference.manifest import load_manifest
    from mmdesk.inference.pack import resolve_pack_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "assets" / "face"
                                         / "fer2013_48px_trainval.npz"))
    p.add_argument("--split", default="val")
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--models", default=None)
    args = p.parse_args(argv)
    with np.load(args.data) as z:
        images = z[f"{args.split}_images"][: args.n]
    r = measure(images, load_manifest(resolve_pack_dir(args.models)))
    print(f"{r['found']} of {r['faces']} faces found; image side / box side: median {r['median']:.3f} "
          f"(IQR {r['q1']:.3f}-{r['q3']:.3f}); box centre offset x {r['centre_dx']:+.3f}, y {r['centre_dy']:+.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
