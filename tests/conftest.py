"""Shared fixtures: the real assets in ../shared/assets and the built model pack."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _assets_dir() -> Path:
    return Path(os.environ.get("MMDESK_ASSETS", ROOT.parent / "shared" / "assets"))


@pytest.fixture(scope="session")
def assets() -> Path:
    """../shared/assets (or $MMDESK_ASSETS); tests that need it skip with a reason when absent."""
    d = _assets_dir()
    if not d.is_dir():
        pytest.skip(f"shared assets not found at {d} (set MMDESK_ASSETS)")
    return d


@pytest.fixture(scope="session")
def pack_dir() -> Path:
    """The built default model pack. In CI its absence is an error, elsewhere a skip."""
    from mmdesk.inference.pack import resolve_pack_dir

    d = resolve_pack_dir()
    if not (d / "manifest.json").is_file():
        msg = f"model pack not built at {d}: run `mmdesk models build`"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if not exe:
        pytest.skip("ffmpeg not installed (make setup installs it)")
    return exe
