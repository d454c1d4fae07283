"""``mmdesk train fusion``: token banks from the pack's encoders → train → evaluate → export.

Writes ``fusion.onnx`` and its sidecar ``fusion.json`` (config, token sizes, the encoders it was
trained on, data, metrics, timings) into the output folder; the model pack picks them up.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmdesk.core.labels import LABELS
from mmdesk.errors import MmdeskError
from mmdesk.fusion.head import encoder_identity
from mmdesk.inference.manifest import Manifest
from mmdesk.training.fusion_data import (
    Bank,
    cache_key,
    face_bank,
    meld_texts,
    sarcasm_texts,
    text_bank,
    voice_bank,
)
from mmdesk.training.fusion_train import (
    Banks,
    TrainSettings,
    evaluate,
    evaluate_aligned,
    held_out_sarcasm,
    train,
)

ENCODERS = ("face_expression", "voice_emotion", "text_encoder")
TRAINED_ON = ("label-paired, not aligned: each example joins a FER2013 face, an EmoDB/RAVDESS voice and a MELD "
              "utterance that carry the same emotion label but come from different people and recordings; "
              "sarcasm is learnt from text only (MUStARD, SemEval-2018 and TweetEval irony)")
VAL_SPEAKERS = ("emodb-03", "emodb-10")  # a man and a woman held out of the voice bank


@dataclass(frozen=True, kw_only=True)
class FusionData:
    fer: Path
    emodb: Path | None
    ravdess: Path | None
    meld: Path
    mustard: Path | None
    irony: tuple[Path, ...]
    aligned: tuple[tuple[str, Path], ...] = ()  # (layout, path) of clips recorded with all modalities
    faces_per_class: int = 1000  # FER2013 train images per label (disgust has fewer)


def _banks(manifest: Manifest, data: FusionData, cache: Path, seed: int,
           log: Callable[[str], None]) -> tuple[Banks, Banks, dict[str, object]]:
    from mmdesk.perception.face import FaceExpression
    from mmdesk.perception.text import TextEmotion
    from mmdesk.perception.voice import VoiceEmotion

    inputs = [data.fer, data.emodb, data.ravdess, data.meld, data.mustard, *data.irony]
    key = cache_key(manifest, ENCODERS, inputs, {"seed": seed, "v": 3, "faces": data.faces_per_class})
    path = cache / f"fusion-banks-{key}.npz"
    names = ("face", "voice", "text", "sarcasm", "vface", "vvoice", "vtext", "vsarcasm")
    if path.is_file():
        log(f"token banks from cache {path}")
        with np.load(path) as z:
            loaded = {n: Bank.load(dict(z), n) for n in names}
            teachers = {n: z[f"{n}_teacher"] for n in ("face", "vface", "sarcasm", "vsarcasm")}
    else:
        t0 = time.perf_counter()
        expr = FaceExpression(manifest, "cpu")
        voice = VoiceEmotion(manifest, "cpu")
        text = TextEmotion(manifest, "cpu")
        if expr.embedding_dim is None or voice.frames_dim is None:
            raise MmdeskError("the pack's face or voice model has no embedding output", "run `mmdesk models build`")
        loaded, teachers = {}, {}
        loaded["face"], teachers["face"] = face_bank(expr, data.fer, "train", data.faces_per_class, 4, seed, log)
        loaded["vface"], teachers["vface"] = face_bank(expr, data.fer, "val", max(1, data.faces_per_class // 5), 4,
                                                       seed + 1, log)
        voices = voice_bank(voice, data.emodb, data.ravdess, log)
        held = np.isin(voices.groups, VAL_SPEAKERS)
        loaded["voice"], loaded["vvoice"] = voices.subset(np.flatnonzero(~held)), voices.subset(np.flatnonzero(held))
        loaded["text"] = text_bank(text, *meld_texts(data.meld / "train_sent_emo.csv"), log, "MELD train")
        loaded["vtext"] = text_bank(text, *meld_texts(data.meld / "dev_sent_emo.csv"), log, "MELD dev")
        s_texts, s_labels, s_groups = sarcasm_texts(data.mustard, data.irony)
        sarc = text_bank(text, s_texts, s_labels, s_groups, log, "sarcasm texts")
        # the text-emotion model's reading of each (unlabelled for emotion) sarcasm text: the text teacher
        sarc_teacher = np.array([text.predict(t)[0] for t in s_texts], np.float32).reshape(-1, len(LABELS))
        log(f"text-emotion readings of {len(s_texts)} sarcasm texts")
        # one MUStARD utterance in five (by id) is held out with its context variant
        held = np.array([g.startswith("mustard-") and _fold(g) == 0 for g in sarc.groups])
        loaded["sarcasm"], loaded["vsarcasm"] = sarc.subset(np.flatnonzero(~held)), sarc.subset(np.flatnonzero(held))
        teachers["sarcasm"], teachers["vsarcasm"] = sarc_teacher[~held], sarc_teacher[held]
        cache.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for n in names:
            loaded[n].save(path, n, arrays)
        arrays.update({f"{n}_teacher": t for n, t in teachers.items()})
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        log(f"token banks built in {time.perf_counter() - t0:.0f} s → {path}")
    counts = {n: len(b) for n, b in loaded.items()}
    return (Banks(loaded["face"], loaded["voice"], loaded["text"], loaded["sarcasm"], face_teacher=teachers["face"],
                  sarcasm_teacher=teachers["sarcasm"]),
            Banks(loaded["vface"], loaded["vvoice"], loaded["vtext"], loaded["vsarcasm"],
                  face_teacher=teachers["vface"], sarcasm_teacher=teachers["vsarcasm"]), counts)


def _fold(group: str, k: int = 5) -> int:
    """A stable fold number in 0..k-1 from a group id (sha256, so it does not depend on Python's hash seed)."""
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % k


def train_fusion(manifest: Manifest, data: FusionData, out_dir: Path, cache: Path, *, settings: TrainSettings,
                 width: int = 64, command: str = "mmdesk train fusion", log: Callable[[str], None] = print) -> dict:
    import torch

    from mmdesk.core.calibration import calibration_record
    from mmdesk.training.export_common import atomic_write_json, onnx_io_specs
    from mmdesk.training.fusion_export import export_fusion
    from mmdesk.training.fusion_model import INPUT_NAMES, FusionConfig
    from mmdesk.training.onnx_export import max_abs_diff, ort_session, sha256_file

    t0 = time.perf_counter()
    tr, va, counts = _banks(manifest, data, cache, settings.seed, log)
    aligned_info = _add_aligned(manifest, data, tr, va, log) if data.aligned else {}
    dims = {m: getattr(tr, m).tokens.shape[1] for m in ("face", "voice", "text")}
    config = FusionConfig(face_dim=dims["face"], voice_dim=dims["voice"], text_dim=dims["text"], width=width)
    log(f"training the fusion head {config.to_dict()} for {settings.steps} steps on {settings.device}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    head, train_info = train(tr, config, settings, log)
    metrics = evaluate(head, va)
    # the runtime divides the sarcasm logit by this (decisions at 0.5 stay): the head is overconfident
    sarcasm_calibration = calibration_record(*held_out_sarcasm(head, va), "the held-out sarcasm texts")
    log(f"  sarcasm calibration: temperature {sarcasm_calibration['temperature']:.2f}")
    if va.aligned:
        metrics["aligned_held_out"] = evaluate_aligned(head, va.aligned)
    for k, v in metrics.items():
        log(f"  held-out {k}: {v}")
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "fusion.onnx"
    save_checkpoint(head, out_dir / "fusion.pt")
    export_s = export_fusion(head, onnx_path)
    sess = ort_session(onnx_path)
    from mmdesk.training.fusion_export import example_inputs

    args = example_inputs(head, batch=3, lengths=(4, 9, 6))
    with torch.no_grad():
        ref = head(*args)
    got = sess.run(None, {n: a.numpy() for n, a in zip(INPUT_NAMES, args)})
    parity = max(max_abs_diff(r.numpy(), g) for r, g in zip(ref, got))
    inputs, outputs = onnx_io_specs(onnx_path)
    body = {
        "role": "fusion",
        "file": "fusion.onnx",
        "format": "onnx",
        "sha256": sha256_file(onnx_path),
        "file_bytes": onnx_path.stat().st_size,
        "inputs": [t.to_dict() for t in inputs],
        "outputs": [t.to_dict() for t in outputs],
        "labels": list(LABELS),
        "preprocessing": {
            "dims": dims,
            "trained_with": {r: encoder_identity(manifest.entry(r)) for r in ENCODERS},
            "trained_on": TRAINED_ON,
            "sarcasm_temperature": sarcasm_calibration["temperature"],
        },
        "config": config.to_dict(),
        "metrics": {"held_out_label_paired": metrics, "sarcasm_calibration": sarcasm_calibration},
        "training": {
            "settings": {k: v for k, v in asdict(settings).items()},
            "banks": counts,
            "aligned": aligned_info,
            "data": {k: (str(v) if not isinstance(v, tuple) else [str(x) for x in v]) for k, v in asdict(data).items()},
            "held_out": {"faces": "FER2013 val split", "voices": list(VAL_SPEAKERS), "text": "MELD dev",
                         "sarcasm": "MUStARD ids whose sha256 fold (mod 5) is 0, with their context variant"},
            **train_info,
            "seconds_export": round(export_s, 1),
            "onnx_max_abs_diff_vs_torch": parity,
            "seconds_total": round(time.perf_counter() - t0, 1),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        },
        "command": command,
        "card": "cards/fusion.md",
        "license": "research use only (trained on FER2013, EmoDB, RAVDESS CC BY-NC-SA 4.0, MELD GPL-3.0, MUStARD MIT, "
                   "SemEval-2018 / TweetEval task terms)",
    }
    atomic_write_json(out_dir / "fusion.json", body)
    log(f"wrote {onnx_path} ({body['file_bytes'] / 1e3:.0f} kB, parity {parity:.1e}) in {body['training']['seconds_total']} s")
    return body


def _add_aligned(manifest: Manifest, data: FusionData, tr: Banks, va: Banks,
                 log: Callable[[str], None]) -> dict[str, object]:
    """Tokens of the user's aligned clips; one group in five (by sha256) is held out."""
    from mmdesk.analysis.analyzer import Analyzer, AnalyzerSettings
    from mmdesk.training.fusion_aligned import aligned_examples, read_layout

    analyzer = Analyzer(manifest, AnalyzerSettings(device="cpu", keep_tokens=True))
    info: dict[str, object] = {}
    for layout, path in data.aligned:
        items, problems = read_layout(layout, path)
        examples, failed = aligned_examples(items, analyzer, log)
        for ex in examples:
            (va if _fold(ex.group) == 0 else tr).aligned.append(ex)
        info[f"{layout}:{path}"] = {"clips": len(items), "windows": len(examples),
                                    "skipped": problems + failed}
        log(f"aligned {layout} {path}: {len(items)} clips → {len(examples)} windows"
            + (f"; {len(problems) + len(failed)} skipped" if problems or failed else ""))
    return info


def save_checkpoint(head, path: Path) -> None:
    """The torch weights with their keyword-only config, so the head can be rebuilt exactly."""
    import torch

    tmp = path.with_suffix(".pt.tmp")
    torch.save({"config": head.config.to_dict(), "state_dict": head.state_dict()}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path):
    import torch

    from mmdesk.training.fusion_model import FusionConfig, FusionHead

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    head = FusionHead(FusionConfig(**ckpt["config"]))
    head.load_state_dict(ckpt["state_dict"])
    return head.eval()


def default_irony(assets: Path) -> Sequence[Path]:
    out = []
    sem = assets / "text" / "semeval2018_irony" / "train" / "SemEval2018-T3-train-taskA.txt"
    tw = assets / "text" / "tweeteval" / "irony" / "train_text.txt"
    for p in (sem, tw):
        if p.is_file():
            out.append(p)
    return out


def read_sidecar(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
