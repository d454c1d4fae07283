#!/usr/bin/env bash
# Quick start: set everything up (idempotent) and analyse a clip (default: a RAVDESS sample).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
CLIP="${1:-$ROOT/../shared/assets/av/ravdess_actor05/01-01-03-01-01-02-05.mp4}"
if [ ! -f "$CLIP" ]; then
  CLIP="$ROOT/out/sample.mp4"
  mkdir -p "$ROOT/out"
  log "no clip given: making a spoken sample with espeak-ng ($CLIP)"
  "$VENV/bin/python" -m mmdesk.tools.make_sample "$CLIP"
fi
mkdir -p "$ROOT/out"
OUT="$ROOT/out/$(basename "${CLIP%.*}").jsonl"
"$VENV/bin/mmdesk" analyze "$CLIP" --out "$OUT"
"$VENV/bin/python" -m mmdesk.tools.summarize "$OUT"
