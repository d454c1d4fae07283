"""``mmdesk eval`` tasks: one model, one dataset in its published layout, metrics + dataset sha256.

Every task reads the data exactly as the runtime sees it (the same preprocessing and onnxruntime
sessions as ``mmdesk analyze``), so its numbers describe what the app does, not a training script.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdesk.core.labels import FER2013_LABELS, LABELS, N_LABELS, RAVDESS_TO_COMMON
from mmdesk.errors import MmdeskError
from mmdesk.evaluation.metrics import accuracy, f1_scores, uar
from mmdesk.inference.manifest import Manifest, sha256_file

BATCH = 256


@dataclass
class EvalResult:
    task: str
    dataset: str
    sha256: str
    n: int
    metrics: dict[str, float]
    models: dict[str, str]  # role -> sha256 of the model file evaluated
    rows: dict[str, dict[str, float]] = field(default_factory=dict)  # av-ravdess: one row per input
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "dataset": self.dataset, "sha256": self.sha256, "n": self.n,
                "metrics": self.metrics, "rows": self.rows, "models": self.models, "notes": self.notes}


def _classification(y_true: list[int], y_pred: list[int]) -> dict[str, float]:
    f = f1_scores(y_true, y_pred, N_LABELS)
    return {"accuracy": round(accuracy(y_true, y_pred), 4), "uar": round(uar(y_true, y_pred, N_LABELS), 4),
            "macro_f1": round(f["macro"], 4), "weighted_f1": round(f["weighted"], 4)}


def sha256_tree(files: Iterable[Path], root: Path) -> str:
    """One hash for a set of files: sha256 over sorted (relative path, file sha256) lines."""
    h = hashlib.sha256()
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(f"{p.relative_to(root).as_posix()}\t{sha256_file(p)}\n".encode())
    return h.hexdigest()


# --- face-fer2013 -----------------------------------------------------------------------------------


def face_fer2013(manifest: Manifest, data: Path, *, split: str | None = None, device: str = "cpu") -> EvalResult:
    from mmdesk.perception.face import FaceExpression
    from mmdesk.perception.imageops import resize_bilinear

    if not data.is_file():
        raise MmdeskError(f"{data} is not a file", "pass the FER2013 npz with --data FILE")
    try:
        npz = np.load(data)
        names = set(npz.files)
    except (OSError, ValueError) as exc:
        raise MmdeskError(f"{data} is not a readable npz file ({exc})", "pass the FER2013 npz with --data") from None
    split = split or ("test" if "test_images" in names else "val")
    if f"{split}_images" not in names or f"{split}_labels" not in names:
        splits = sorted(n[: -len("_images")] for n in names if n.endswith("_images"))
        raise MmdeskError(f"{data.name} has no {split!r} split", f"use --split with one of {', '.join(splits)}")
    images, labels = npz[f"{split}_images"], npz[f"{split}_labels"].astype(int)
    model = FaceExpression(manifest, device)
    y_true = [LABELS.index(FER2013_LABELS[int(k)]) for k in labels]
    y_pred: list[int] = []
    for i in range(0, len(images), BATCH):
        crops = np.stack([resize_bilinear(im, (model.size, model.size)) for im in images[i : i + BATCH]])
        y_pred.extend(model.predict(crops).argmax(1).tolist())
    notes = ["the default pack's FER model was trained on the official FER2013 train set; the shared "
             "assets' train/val images overlap it, so their scores are optimistic"]
    return EvalResult("face-fer2013", f"{data} [{split}]", sha256_file(data), len(y_true),
                      _classification(y_true, y_pred), {"face_expression": model.model.sha256}, notes=notes)


# --- voice-emodb ------------------------------------------------------------------------------------


def voice_emodb(manifest: Manifest, data: Path, *, device: str = "cpu") -> EvalResult:
    from mmdesk.perception.voice import VoiceEmotion
    from mmdesk.perception.voice_features import load_audio
    from mmdesk.training.datasets import emodb_label

    if not data.is_dir():
        raise MmdeskError(f"{data} is not a folder", "pass a folder of EmoDB wav files with --data DIR")
    wavs = sorted(data.rglob("*.wav"))
    items = [(p, emodb_label(p)) for p in wavs]
    items = [(p, y) for p, y in items if y is not None]
    if not items:
        raise MmdeskError(f"no EmoDB-named wav files (SSTTTEV.wav) under {data}", "pass the EmoDB wav folder")
    model = VoiceEmotion(manifest, device)
    y_pred = [int(model.predict_features(model.features(load_audio(p))).argmax()) for p, _ in items]
    y_true = [y for _, y in items]
    notes = [f"{len(wavs) - len(items)} file(s) skipped (boredom has no counterpart, or not EmoDB-named)",
             "the default pack's voice model was trained on every EmoDB speaker in the shared assets: on them "
             "this measures fit, not generalisation (its card gives leave-one-speaker-out figures)"]
    return EvalResult("voice-emodb", str(data), sha256_tree([p for p, _ in items], data), len(items),
                      _classification(y_true, y_pred), {"voice_emotion": model.model.sha256}, notes=notes)


# --- text-meld ----------------------------------------------------------------------------------------


def text_meld(manifest: Manifest, data: Path, *, device: str = "cpu") -> EvalResult:
    from mmdesk.perception.text import TextEmotion
    from mmdesk.training.datasets import meld_items

    items = meld_items(data)
    model = TextEmotion(manifest, device)
    y_pred = [int(np.argmax(model.predict(it.text, it.previous)[0])) for it in items]
    y_true = [it.label for it in items]
    notes = [("the default pack's text emotion model was trained on MELD train; its epoch and recipe were chosen "
              "on MELD dev, so dev figures are optimistic")]
    if model.uses_context:
        notes.append("each utterance is judged after the previous utterance of its dialogue, as at run time")
    return EvalResult("text-meld", str(data), sha256_file(data), len(items), _classification(y_true, y_pred),
                      {"text_encoder": model.encoder.sha256, "text_emotion": model.head.sha256}, notes=notes)


# --- av-ravdess -------------------------------------------------------------------------------------------


def ravdess_av_label(path: Path) -> int | None:
    """RAVDESS audio-visual clip ``01-01-EE-II-SS-RR-AA.mp4`` (or 02- video-only) → label index."""
    parts = path.stem.split("-")
    if len(parts) != 7 or parts[0] not in ("01", "02"):
        return None
    common = RAVDESS_TO_COMMON.get(parts[2])
    return LABELS.index(common) if common else None


def av_ravdess(manifest: Manifest, data: Path, *, device: str = "cpu",
               progress: Callable[[str], None] | None = None) -> EvalResult:
    from mmdesk.analysis.analyzer import Analyzer, AnalyzerSettings
    from mmdesk.analysis.clip import analyse_clip

    if not data.is_dir():
        raise MmdeskError(f"{data} is not a folder", "pass a folder of RAVDESS audio-visual clips with --data DIR")
    clips = [(p, ravdess_av_label(p)) for p in sorted(data.rglob("*.mp4"))]
    clips = [(p, y) for p, y in clips if y is not None]
    if not clips:
        raise MmdeskError(f"no RAVDESS-named clips (01-01-EE-II-SS-RR-AA.mp4) under {data}",
                          "pass the RAVDESS audio-visual folder")
    analyzer = Analyzer(manifest, AnalyzerSettings(device=device))
    # reading -> per clip: summed window probabilities; per window: (hits, windows where the reading exists)
    readings = ("face-only", "voice-only", "fused", "head face-only", "head voice-only")
    y_true: list[int] = []
    clip_pred: dict[str, list[int]] = {k: [] for k in readings}
    window_hits = {k: [0, 0] for k in readings}
    for path, label in clips:
        if progress:
            progress(path.name)
        sums = {k: np.zeros(N_LABELS) for k in readings}
        for r in analyse_clip(path, analyzer, subtitles=False):
            probs = {"face-only": r.face.probs if r.face.present else None,
                     "voice-only": r.voice.probs if r.voice.present else None}
            if r.fusion is not None:
                probs["fused"] = r.fusion.probs
                for m in ("face", "voice"):
                    alone = r.fusion.alone.get(m)
                    probs[f"head {m}-only"] = alone[0] if alone is not None else None
            for k, p in probs.items():
                if p is not None:
                    sums[k] += p
                    window_hits[k][0] += int(np.argmax(p) == label)
                    window_hits[k][1] += 1
        y_true.append(label)
        # a clip where a reading was never present counts as a miss for it
        for k in readings:
            clip_pred[k].append(int(sums[k].argmax()) if sums[k].any() else -1)
    rows = {k: {"accuracy": round(accuracy(y_true, clip_pred[k]), 4),
                "window_accuracy": round(window_hits[k][0] / max(1, window_hits[k][1]), 4),
                "windows": window_hits[k][1]}
            for k in readings if k in ("face-only", "voice-only") or analyzer.fusion is not None}
    notes = []
    if analyzer.fusion is not None:
        notes.append("fused: the fusion head over face and voice tokens of the same windows (no text); "
                     "head face-only / voice-only: the same head shown one modality")
    else:
        notes.append(f"fused: not available: {analyzer.fusion_problem}")
    notes += ["accuracy: per clip, the argmax of the summed window probabilities of each reading; "
              "window_accuracy: per window where the reading exists (windows)",
             "the default pack's voice model was trained on RAVDESS actor 05's speech recordings: on that "
             "actor, voice-only measures fit, not generalisation"]
    return EvalResult("av-ravdess", str(data), sha256_tree([p for p, _ in clips], data), len(clips),
                      {"accuracy": rows["face-only"]["accuracy"]},
                      {role: m["sha256"] for role, m in analyzer.models().items()},
                      rows=rows, notes=notes)


# --- sarcasm-mustard ----------------------------------------------------------------------------------


def _fold_metrics(y: np.ndarray, p: np.ndarray, folds: np.ndarray, threshold: float) -> dict[str, float]:
    """Mean over folds of each fold's metrics: what a k-fold F1 means in MUStARD's papers."""
    from mmdesk.training.sarcasm_data import binary_metrics

    per = [binary_metrics(y[folds == f], (p[folds == f] >= threshold).astype(int)) for f in np.unique(folds)]
    return {k: round(float(np.mean([m[k] for m in per])), 4) for k in per[0]}


def sarcasm_mustard(manifest: Manifest, data: Path, *, device: str = "cpu") -> EvalResult:
    """Two figures, kept apart because the shipped model was trained on all of MUStARD:

    * ``5-fold cross-validated``: the out-of-fold P(sarcastic) that ``mmdesk train sarcasm`` stored in the
      model's manifest entry (each item predicted by a model trained with the same recipe on the other
      four folds), scored here against the labels in ``--data``; used for the headline metrics when every
      item of the data is one of those MUStARD items (matched by id and text);
    * ``shipped model``: the pack's ONNX model run on the data now: fit, not generalisation, on MUStARD;
      the headline for any other data (which that model never saw).
    """
    from mmdesk.perception.sarcasm import ROLE, Sarcasm
    from mmdesk.training.sarcasm_data import binary_metrics, context_text, mustard_items

    items = mustard_items(data)
    model = Sarcasm(manifest, device)
    y = np.array([it.label for it in items])
    contexts = [context_text(it, model.context_mode) for it in items]
    p = np.concatenate([model.predict_batch([it.utterance for it in items[k:k + 64]], contexts[k:k + 64])
                        for k in range(0, len(items), 64)])
    shipped = binary_metrics(y, (p >= model.threshold).astype(int))
    rows = {"shipped model": shipped}
    stored = manifest.entry(ROLE).source.get("metrics", {}).get("cv_predictions") or {}
    table = stored.get("p_sarcastic", {})
    covered = [i for i, it in enumerate(items) if it.key() in table]
    notes = []
    if covered:
        idx = np.array(covered)
        folds = np.array([table[items[i].key()][0] for i in covered])
        oof = np.array([table[items[i].key()][1] for i in covered])
        rows["5-fold cross-validated"] = _fold_metrics(y[idx], oof, folds, float(stored.get("threshold", 0.5)))
        notes.append(f"5-fold cross-validated: out-of-fold predictions stored by `mmdesk train sarcasm` "
                     f"(stratified {stored.get('folds')} folds, seed {stored.get('seed')}), mean over folds, for "
                     f"{len(covered)} of {len(items)} items; the shipped model was trained on all of them, so its "
                     "row measures fit")
    if len(covered) == len(items):
        metrics = dict(rows["5-fold cross-validated"])
    else:
        metrics = dict(shipped)
        notes.append(f"headline = the shipped model on these items ({len(items) - len(covered)} of them are "
                     "not MUStARD training items)")
    notes.append(f"context fed to the model: {model.context_mode} (at run time: the previous line); no speaker names")
    return EvalResult("sarcasm-mustard", str(data), sha256_file(data), len(items), metrics, {ROLE: model.model.sha256},
                      rows=rows, notes=notes)


TASKS: dict[str, Callable[..., EvalResult]] = {
    "face-fer2013": face_fer2013,
    "voice-emodb": voice_emodb,
    "text-meld": text_meld,
    "av-ravdess": av_ravdess,
    "sarcasm-mustard": sarcasm_mustard,
}
