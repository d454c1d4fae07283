"""Output records of ``mmdesk analyze``: one meta record, one per window, one end record."""

from __future__ import annotations

from typing import Any

from mmdesk.core.labels import LABELS
from mmdesk.core.types import FaceResult, TextResult, VoiceResult, WindowResult

PROB_DIGITS = 6


def probs_dict(probs: tuple[float, ...] | None) -> dict[str, float]:
    return {label: round(float(p), PROB_DIGITS) for label, p in zip(LABELS, probs or ())}


def _face(f: FaceResult) -> dict[str, Any]:
    if not f.present:
        d: dict[str, Any] = {"present": False, "reason": f.reason}
        if f.frames_analysed:
            d["frames_analysed"] = f.frames_analysed
        return d
    return {
        "present": True,
        "probs": probs_dict(f.probs),
        "label": LABELS[max(range(len(LABELS)), key=lambda i: f.probs[i])],
        "box": list(f.box) if f.box else None,
        "score": f.score,
        "frames_with_face": f.frames_with_face,
        "frames_analysed": f.frames_analysed,
        "detector": f.detector,
    }


def _voice(v: VoiceResult) -> dict[str, Any]:
    d: dict[str, Any] = {"present": v.present, "vad_prob": v.vad_prob, "speech_fraction": v.speech_fraction}
    if v.present:
        d["probs"] = probs_dict(v.probs)
        d["label"] = LABELS[max(range(len(LABELS)), key=lambda i: v.probs[i])]
    else:
        d["reason"] = v.reason
    return d


def _text(t: TextResult) -> dict[str, Any]:
    if not t.present:
        return {"present": False, "reason": t.reason}
    return {
        "present": True,
        "probs": probs_dict(t.probs),
        "label": LABELS[max(range(len(LABELS)), key=lambda i: t.probs[i])],
        "text": t.text,
        "origins": list(t.origins),
        "truncated": t.truncated,
        "sarcasm": None if t.sarcasm is None else round(t.sarcasm, PROB_DIGITS),
        "context": t.context,
    }


def window_record(r: WindowResult) -> dict[str, Any]:
    """A window's record; with a fusion head it also holds ``fused``, ``alone``, ``attribution``,
    ``interaction`` and ``attention`` (docs/fusion.md), absent when no modality is present."""
    rec: dict[str, Any] = {
        "type": "window",
        "index": r.index,
        "start": round(r.start, 6),
        "end": round(r.end, 6),
        "partial": r.partial,
        "face": _face(r.face),
        "voice": _voice(r.voice),
        "text": _text(r.text),
    }
    if r.fusion is not None:
        rec.update(r.fusion.as_record())
    return rec




CSV_COLUMNS: tuple[str, ...] = (
    ("index", "start", "end", "partial", "face_present")
    + tuple(f"face_{label}" for label in LABELS)
    + ("face_x", "face_y", "face_w", "face_h", "face_score", "voice_present")
    + tuple(f"voice_{label}" for label in LABELS)
    + ("vad_prob", "speech_fraction", "text_present")
    + tuple(f"text_{label}" for label in LABELS)
    + ("text",)
    + tuple(f"fused_{label}" for label in LABELS)
    + ("fused_label", "sarcasm", "incongruity", "attribution_target")
    + tuple(f"attribution_{m}" for m in ("face", "voice", "text"))
    + tuple(f"sarcasm_attribution_{m}" for m in ("face", "voice", "text"))
    + ("interaction", "interaction_reason")
)


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """Flatten a window record into the CSV columns (absent modalities leave their cells empty)."""
    row: dict[str, Any] = {k: record[k] for k in ("index", "start", "end", "partial")}
    for m in ("face", "voice", "text"):
        d = record[m]
        row[f"{m}_present"] = int(d["present"])
        for label, p in d.get("probs", {}).items():
            row[f"{m}_{label}"] = p
    face = record["face"]
    if face.get("box"):
        row.update(zip(("face_x", "face_y", "face_w", "face_h"), face["box"]))
        row["face_score"] = face["score"]
    row["vad_prob"] = record["voice"]["vad_prob"]
    row["speech_fraction"] = record["voice"]["speech_fraction"]
    row["text"] = record["text"].get("text", "")
    fused = record.get("fused")
    if fused:
        row.update({f"fused_{label}": p for label, p in fused["probs"].items()})
        row.update(fused_label=fused["label"], sarcasm=fused["sarcasm"], incongruity=fused["incongruity"])
        att = record["attribution"]
        row["attribution_target"] = att["target"]
        row.update({f"attribution_{m}": v for m, v in att["values"].items()})
        row.update({f"sarcasm_attribution_{m}": v for m, v in att["sarcasm"]["values"].items()})
        row.update(interaction=record["interaction"]["type"], interaction_reason=record["interaction"]["reason"])
    return row
