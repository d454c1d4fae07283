#!/usr/bin/env bash
# One-time set-up, safe to re-run: system packages, .venv, Python dependencies, the model pack.
# Sourced by scripts/run.sh and scripts/test.sh, so each of those is one command on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV="${MMDESK_VENV:-$ROOT/.venv}"
# The CPU wheel of torch is used only to export and train models; the runtime never imports it.
TORCH_SPEC="${MMDESK_TORCH:-torch==2.13.0}"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

apt_packages=(ffmpeg espeak-ng libportaudio2 libpulse0 alsa-utils libasound2-plugins
              libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 xvfb binutils)
if command -v apt-get >/dev/null 2>&1 && [ "${MMDESK_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    log "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
elif ! command -v ffmpeg >/dev/null 2>&1; then
  log "warning: not a Debian/Ubuntu system; install ffmpeg, espeak-ng and PortAudio with your package manager"
fi

"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { log "Python 3.11+ is required ($PY is $("$PY" -V))"; exit 2; }
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
stamp="$VENV/.mmdesk-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)-$TORCH_SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing Python dependencies into $VENV (log: $VENV/pip.log)"
  {
    "${PIP[@]}" install -U pip wheel &&
    { "$VENV/bin/python" -c 'import torch' 2>/dev/null || "${PIP[@]}" install "$TORCH_SPEC"; } &&
    "${PIP[@]}" install -e ".[train,dev,faster-whisper]" &&
    "${PIP[@]}" install --no-deps "faster-whisper==1.2.1"
  } > "$VENV/pip.log" 2>&1 || { tail -n 30 "$VENV/pip.log" >&2; log "pip failed: see $VENV/pip.log"; exit 1; }
  echo "$want" > "$stamp"
fi
log "building / verifying the model pack"
"$VENV/bin/mmdesk" models build
