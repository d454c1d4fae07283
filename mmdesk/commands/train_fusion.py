"""``mmdesk train fusion``: the fusion head on label-paired real examples (or aligned clips)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mmdesk.errors import MmdeskError

_ROOT = Path(__file__).resolve().parents[2]
_ASSETS = _ROOT.parent / "shared" / "assets"


def _opt(path: Path) -> str | None:
    return str(path) if path.exists() else None


def add_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser(
        "fusion", help="cross-attention fusion head (face+voice+text → emotion, sarcasm) with modality dropout",
        description="Train the fusion head on token banks made by the model pack's own encoders: FER2013 faces, "
        "EmoDB/RAVDESS voices and MELD utterances paired by emotion label (no aligned corpus exists here), sarcasm "
        "from MUStARD and irony tweets. Held-out accuracy per modality subset is printed and stored in fusion.json.")
    f.add_argument("--fer", metavar="NPZ", default=_opt(_ASSETS / "face" / "fer2013_48px_trainval.npz"),
                   help="FER2013 npz with train_/val_images and _labels (default: ../shared/assets/face/…)")
    f.add_argument("--emodb", metavar="DIR", default=_opt(_ASSETS / "voice" / "emodb" / "wav"))
    f.add_argument("--ravdess", metavar="DIR", default=_opt(_ASSETS / "voice" / "ravdess_actor05"))
    f.add_argument("--meld", metavar="DIR", default=_opt(_ASSETS / "text" / "meld"),
                   help="folder with MELD train_sent_emo.csv and dev_sent_emo.csv")
    f.add_argument("--mustard", metavar="FILE", default=_opt(_ASSETS / "text" / "mustard" / "sarcasm_data.json"))
    f.add_argument("--irony", metavar="FILE", action="append", default=None,
                   help="irony corpus file (SemEval-2018 task A txt or TweetEval train_text.txt); repeatable "
                   "(default: both from ../shared/assets)")
    f.add_argument("--aligned", metavar="LAYOUT:PATH", action="append", default=[],
                   help="aligned clips to train on as well, repeatable; LAYOUT is clips-csv (a CSV with "
                   "file,emotion[,sarcasm,text,context]), meld (a MELD csv beside its dia*_utt*.mp4 clips), "
                   "mustard (sarcasm_data.json beside utterances_final/) or ravdess (a folder of AV clips)")
    f.add_argument("--steps", type=int, default=1500, help="optimiser steps (default 1500)")
    f.add_argument("--width", type=int, default=64, help="model width (default 64)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (default: CUDA when torch sees one)")
    f.add_argument("--cache", metavar="DIR", default=None, help="token bank cache (default: user cache folder)")
    f.add_argument("--out", metavar="DIR", default=str(_ROOT / "models"), help="output folder (default: models/)")
    f.add_argument("--models", metavar="DIR", default=None, help="model pack whose encoders make the tokens")


def run(args: argparse.Namespace, log=print) -> int:
    from platformdirs import user_cache_dir

    from mmdesk.inference.manifest import load_manifest
    from mmdesk.inference.pack import resolve_pack_dir
    from mmdesk.training.fusion import FusionData, default_irony, train_fusion
    from mmdesk.training.fusion_aligned import LAYOUTS
    from mmdesk.training.fusion_train import TrainSettings

    def need(value: str | None, flag: str, what: str) -> Path:
        if not value or not Path(value).expanduser().exists():
            raise MmdeskError(f"{what} not found ({value or 'none given'})", f"pass it with {flag}")
        return Path(value).expanduser()

    if args.steps < 1:
        raise MmdeskError(f"--steps must be at least 1, got {args.steps}")
    data = FusionData(
        fer=need(args.fer, "--fer NPZ", "FER2013 npz"),
        emodb=Path(args.emodb) if args.emodb else None,
        ravdess=Path(args.ravdess) if args.ravdess else None,
        meld=need(args.meld, "--meld DIR", "MELD folder"),
        mustard=Path(args.mustard) if args.mustard else None,
        irony=tuple(Path(p) for p in (args.irony or default_irony(_ASSETS))),
    )
    aligned = []
    for spec in args.aligned:
        layout, sep, path = spec.partition(":")
        if not sep or layout not in LAYOUTS:
            raise MmdeskError(f"--aligned {spec!r} is not LAYOUT:PATH", f"LAYOUT is one of {', '.join(LAYOUTS)}")
        aligned.append((layout, Path(path).expanduser()))
    data = dataclasses.replace(data, aligned=tuple(aligned))
    if data.emodb is None and data.ravdess is None:
        raise MmdeskError("no voice corpus found", "pass --emodb DIR and/or --ravdess DIR")
    if data.mustard is None and not data.irony:
        raise MmdeskError("no sarcasm corpus found", "pass --mustard FILE and/or --irony FILE")
    device = args.device
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            device = "cuda"
        elif device == "cuda":
            raise MmdeskError("--device cuda but torch sees no CUDA device", "use --device cpu")
        else:
            device = "cpu"
    manifest = load_manifest(resolve_pack_dir(args.models))
    cache = Path(args.cache) if args.cache else Path(user_cache_dir("mmdesk")) / "fusion"
    command = " ".join(["mmdesk", "train", "fusion", "--steps", str(args.steps), "--seed", str(args.seed)]
                       + (["--width", str(args.width)] if args.width != 64 else []))
    body = train_fusion(manifest, data, Path(args.out).expanduser(), cache,
                        settings=TrainSettings(steps=args.steps, seed=args.seed, device=device),
                        width=args.width, command=command, log=log)
    full = body["metrics"]["held_out_label_paired"]
    log("held-out accuracy (label-paired): " + ", ".join(f"{k} {v['accuracy']:.3f}" for k, v in full.items()
                                                          if "accuracy" in v))
    return 0
