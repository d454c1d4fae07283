"""Print a readable per-window table of an ``mmdesk analyze`` JSON Lines file."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summarize(path: Path) -> str:
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    meta = next((r for r in lines if r.get("type") == "meta"), {})
    end = next((r for r in lines if r.get("type") == "end"), {})
    src = meta.get("source", {})
    out = [f"{Path(src.get('path', path)).name}: {src.get('duration', 0):.2f} s, "
           f"providers: {', '.join(sorted(set(meta.get('providers', {}).values())))}"]
    out.append(f"{'window':>13}  {'face':15} {'voice':15} {'text':15} {'fused':15} {'sarcasm':8} "
               f"{'top contributor':16} interaction / words")

    def cell(m: dict | None) -> str:
        if not m or ("present" in m and not m["present"]):
            return "—"
        return f"{m['label']} {m['probs'][m['label']]:.2f}"

    for r in lines:
        if r.get("type") != "window":
            continue
        fused = r.get("fused")
        sarcasm = f"{fused['sarcasm']:.2f}" if fused else "—"
        top, inter = "—", ""
        if fused:
            values = r["attribution"]["values"]
            m = max(values, key=lambda k: abs(values[k]))
            top, inter = f"{m} {values[m]:+.2f}", r["interaction"]["type"]
        words = f"  “{r['text']['text'][:32]}”" if r["text"].get("present") else ""
        out.append(f"{r['start']:5.1f}–{r['end']:5.1f} s  {cell(r['face']):15} {cell(r['voice']):15} "
                   f"{cell(r['text']):15} {cell(fused):15} {sarcasm:8} {top:16} {inter}{words}")
    fusion = meta.get("fusion") or {}
    if fusion.get("available"):
        out.append(f"fused: {fusion.get('note', '')}")
    elif fusion:
        out.append(f"fused: not available ({fusion.get('problem', '')})")
    if end:
        out.append(f"{end.get('windows')} windows, complete: {end.get('complete')}, "
                   f"{end.get('seconds')} s for {end.get('media_seconds')} s of media")
    return "\n".join(out)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
