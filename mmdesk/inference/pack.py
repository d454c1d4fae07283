"""Where the model pack lives: --models DIR, else $MMDESK_MODELS, else the user data directory.

The installed application (a PyInstaller bundle, ``sys.frozen``) defaults to the pack it ships in
``models/`` next to its executable instead, so it never needs to build or download one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mmdesk.inference.manifest import Manifest, load_manifest

ENV_VAR = "MMDESK_MODELS"


def default_pack_dir() -> Path:
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent / "models"
    from platformdirs import user_data_dir

    return Path(user_data_dir("mmdesk", appauthor=False)) / "models"


def resolve_pack_dir(cli_value: str | os.PathLike[str] | None = None) -> Path:
    if cli_value:
        return Path(cli_value).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return default_pack_dir()


def open_pack(cli_value: str | os.PathLike[str] | None = None) -> Manifest:
    return load_manifest(resolve_pack_dir(cli_value))
