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
    out.append(f"{'window':>13}  {'face':22} {'voice':22} text")
    for r in lines:
        if r.get("type") != "window":
            continue

        def cell(m: dict) -> str:
            if not m.get("present"):
                return "—"
            p = m["probs"][m["label"]]
            return f"{m['label']} {p:.2f}"

        out.append(f"{r['start']:5.1f}–{r['end']:5.1f} s  {cell(r['face']):22} {cell(r['voice']):22} "
                   f"{cell(r['text'])}" + (f"  “{r['text']['text'][:40]}”" if r['text'].get('present') else ""))
    if end:
        out.append(f"{end.get('windows')} windows, complete: {end.get('complete')}, "
                   f"{end.get('seconds')} s for {end.get('media_seconds')} s of media")
    return "\n".join(out)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
