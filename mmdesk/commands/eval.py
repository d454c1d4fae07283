"""``mmdesk eval TASK --data PATH``: reproducible metrics of the pack's models on a dataset."""

from __future__ import annotations

import argparse
import json
import sys

TASK_HELP = {
    "face-fer2013": "npz with <split>_images (N×48×48 uint8) and <split>_labels in FER2013 order",
    "voice-emodb": "folder (searched recursively) of EmoDB-named wavs; accuracy and UAR",
    "text-meld": "a MELD *_sent_emo.csv (with the previous utterance as context); weighted F1",
    "av-ravdess": "folder of RAVDESS audio-visual clips; face-only vs voice-only accuracy",
    "sarcasm-mustard": "MUStARD sarcasm_data.json; 5-fold cross-validated F1 and accuracy (+ the shipped model)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=tuple(TASK_HELP), help="; ".join(f"{k}: {v}" for k, v in TASK_HELP.items()))
    p.add_argument("--data", required=True, help="the dataset (file or folder, see TASK)")
    p.add_argument("--split", help="face-fer2013: which split (default: test when present, else val)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--models", help="model pack directory")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmdesk.errors import MmdeskError
    from mmdesk.evaluation.tasks import TASKS
    from mmdesk.inference.pack import open_pack

    data = Path(args.data).expanduser()
    if not data.exists():
        raise MmdeskError(f"--data {data} does not exist", f"pass the dataset for {args.task}: {TASK_HELP[args.task]}")
    manifest = open_pack(args.models)
    kwargs = {"device": args.device}
    if args.split:
        if args.task != "face-fer2013":
            raise MmdeskError("--split applies to face-fer2013 only", "leave it out for this task")
        kwargs["split"] = args.split
    if args.task == "av-ravdess" and not args.json:
        kwargs["progress"] = lambda name: print(f"  {name}", file=sys.stderr)
    result = TASKS[args.task](manifest, data, **kwargs)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"{result.task} on {result.dataset}")
    print(f"dataset sha256: {result.sha256}")
    print(f"items: {result.n}")
    if result.rows:
        for name, row in result.rows.items():
            print(f"  {name:16s} " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in row.items()))
    else:
        print("  " + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))
    for role, sha in result.models.items():
        print(f"model {role}: sha256 {sha[:12]}…")
    for note in result.notes:
        print(f"note: {note}")
    return 0
