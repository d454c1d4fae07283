"""Shared helpers for the voice and text trainers: ONNX export, IO specs, atomic writes, metrics.

Training / export only (imports torch lazily inside the functions that need it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from mmdesk.inference.manifest import TensorSpec
from mmdesk.training.onnx_export import DEFAULT_OPSET as ONNX_OPSET  # one opset for every export

_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 2: "uint8", 3: "int8", 9: "bool"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, body: Any) -> None:
    atomic_write_text(path, json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def export_onnx_bytes(
    model,
    example_inputs: tuple,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: dict[str, dict[int, Any]],
    opset: int = ONNX_OPSET,
    dim_names: dict[str, Sequence[str | int]] | None = None,
) -> bytes:
    """Export an eval-mode torch module with the dynamo exporter; a single self-contained ONNX file.

    ``dynamic_shapes`` maps each input name to {axis: torch.export.Dim}; ``dim_names`` optionally names
    the symbolic axes of inputs/outputs (see ``onnx_export.rename_dims``). Delegates to the project's one
    exporter (``onnx_export.export_single_file``: no external data, build paths stripped so the bytes
    do not depend on where the checkout lives, checked with onnx.checker) and returns the bytes.
    """
    from mmdesk.training.onnx_export import export_single_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_single_file(model, example_inputs, path, input_names=input_names, output_names=output_names,
                           dynamic_shapes=dynamic_shapes, dim_names=dim_names, opset=opset)
        return path.read_bytes()


def onnx_io_specs(onnx_bytes_or_path: bytes | Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output TensorSpecs read from the ONNX graph (symbolic dims as their names)."""
    import onnx

    if isinstance(onnx_bytes_or_path, (bytes, bytearray)):
        proto = onnx.load_from_string(bytes(onnx_bytes_or_path))
    else:
        proto = onnx.load(str(onnx_bytes_or_path), load_external_data=False)
    init_names = {i.name for i in proto.graph.initializer}

    def spec(v) -> TensorSpec:
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)
        return TensorSpec(name=v.name, shape=shape, dtype=_ONNX_DTYPES.get(t.elem_type, str(t.elem_type)))

    inputs = [spec(v) for v in proto.graph.input if v.name not in init_names]
    outputs = [spec(v) for v in proto.graph.output]
    return inputs, outputs


def onnx_opset(onnx_bytes: bytes) -> int:
    import onnx

    proto = onnx.load_from_string(onnx_bytes)
    return max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def ort_session(onnx_bytes_or_path: bytes | Path, threads: int = 1):
    from mmdesk.training.onnx_export import ort_session as session

    return session(onnx_bytes_or_path, threads)


# --- metrics (shared with `mmdesk eval`, which must not need torch) ----------------------------

from mmdesk.evaluation.metrics import accuracy, confusion, f1_scores, uar  # noqa: E402,F401
