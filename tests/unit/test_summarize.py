"""The quick-start summary prints each window's fused judgement, sarcasm, top contributor and interaction."""

from __future__ import annotations

import json
from pathlib import Path

from mmdesk.core.labels import LABELS
from mmdesk.tools.summarize import summarize


def probs(label: str) -> dict[str, float]:
    return {x: (0.7 if x == label else 0.05) for x in LABELS}


def test_summary_lines(tmp_path: Path) -> None:
    fused_window = {
        "type": "window", "start": 0.0, "end": 2.0,
        "face": {"present": True, "probs": probs("happy"), "label": "happy"},
        "voice": {"present": False, "reason": "no speech detected"},
        "text": {"present": True, "probs": probs("neutral"), "label": "neutral", "text": "Wow, great food."},
        "fused": {"probs": probs("happy"), "label": "happy", "sarcasm": 0.61, "incongruity": 0.5},
        "attribution": {"values": {"face": 0.2, "voice": 0.0, "text": -0.31}},
        "interaction": {"type": "modulation"},
    }
    empty_window = {"type": "window", "start": 0.5, "end": 2.5, "face": {"present": False},
                    "voice": {"present": False}, "text": {"present": False}}
    records = [{"type": "meta", "source": {"path": "clip.mp4", "duration": 3.0}, "providers": {"a": "CPUExecutionProvider"},
                "fusion": {"available": True, "note": "label-paired"}},
               fused_window, empty_window, {"type": "end", "windows": 2, "complete": True}]
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    lines = summarize(f).splitlines()
    assert "happy 0.70" in lines[2] and "0.61" in lines[2] and "text -0.31" in lines[2]
    assert "modulation" in lines[2] and "“Wow, great food.”" in lines[2]
    assert lines[3].split()[3:] == ["—"] * 6
    assert lines[4] == "fused: label-paired" and lines[5].startswith("2 windows, complete: True")
