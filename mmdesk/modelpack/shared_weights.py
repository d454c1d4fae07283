"""One copy of the weights that several ONNX files of the pack have in common.

``text_encoder``, ``text_emotion`` and ``sarcasm`` are the same MiniLM: the two classifiers add their LoRA
adapters beside its frozen weights (``mmdesk.training.minilm_lora``), so ~55 MB of their tensors are
byte-identical. The pack stores them once, as ONNX external data that onnxruntime reads itself:

* :func:`externalize` moves every tensor of the owner's graph (``text_encoder``) of at least
  ``MIN_BYTES`` into ``<stem>-<sha12>.weights`` next to it. The name carries the content's hash, so a
  rebuilt owner with other weights writes a new file and files that still read the old one stay valid
  until the builder removes the last reader.
* :func:`link` points every tensor of another graph that is identical (dtype, shape, bytes) to one in that
  file at it; the rest stays inline (the adapters and the heads, ~2.7 MB per classifier).

Both are deterministic: the same graphs give the same bytes on every machine (the fusion head is bound to
the text encoder's sha256). Build-time only: needs the ``onnx`` package, which the runtime does not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

MIN_BYTES = 1024  # smaller tensors stay inline: a reference costs about as much as it saves
ALIGN = 64  # every tensor starts at a multiple of this in the weights file
SUFFIX = ".weights"


def _raw(tensor: Any) -> bytes:
    from onnx import numpy_helper

    if tensor.HasField("raw_data"):
        return tensor.raw_data
    return numpy_helper.from_array(numpy_helper.to_array(tensor)).raw_data


def _key(tensor: Any, raw: bytes) -> str:
    h = hashlib.sha256(f"{tensor.data_type}:{list(tensor.dims)}:".encode())
    h.update(raw)
    return h.hexdigest()


def _point(tensor: Any, location: str, offset: int, length: int) -> None:
    from onnx import TensorProto

    tensor.ClearField("raw_data")
    del tensor.external_data[:]
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = k, v
    tensor.data_location = TensorProto.EXTERNAL


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=False)


def _save(proto: Any, path: Path) -> None:
    # serialised directly: onnx.save_model would look for external tensors to write
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(proto.SerializeToString())
    tmp.replace(path)


def externalize(model: Path, stem: str) -> Path:
    """Move the large tensors of ``model`` (self-contained) into a weights file next to it; returns its path."""
    model = Path(model)
    proto = _load(model)
    blob = bytearray()
    placed: dict[str, tuple[int, int]] = {}
    moves: list[tuple[Any, str]] = []
    for t in proto.graph.initializer:
        raw = _raw(t)
        if len(raw) < MIN_BYTES:
            continue
        key = _key(t, raw)
        if key not in placed:
            blob += bytes(-len(blob) % ALIGN)
            placed[key] = (len(blob), len(raw))
            blob += raw
        moves.append((t, key))
    if not moves:
        raise ValueError(f"{model.name} has no tensor of {MIN_BYTES} bytes or more to share")
    name = f"{stem}-{hashlib.sha256(blob).hexdigest()[:12]}{SUFFIX}"
    for t, key in moves:
        _point(t, name, *placed[key])
    weights = model.with_name(name)
    tmp = weights.with_name(name + ".tmp")
    tmp.write_bytes(bytes(blob))
    tmp.replace(weights)
    _save(proto, model)
    return weights


def index(owner: Path) -> tuple[str, dict[str, tuple[int, int]]]:
    """The weights file ``owner`` (a graph written by :func:`externalize`) reads, and its tensors by key."""
    proto = _load(Path(owner))
    names = set()
    found: dict[str, tuple[int, int]] = {}
    refs = []
    for t in proto.graph.initializer:
        info = {e.key: e.value for e in t.external_data}
        if info:
            names.add(info["location"])
            refs.append((t, int(info["offset"]), int(info["length"])))
    if len(names) != 1:
        raise ValueError(f"{Path(owner).name} reads {len(names)} weight files, expected one")
    (name,) = names
    with open(Path(owner).with_name(name), "rb") as f:
        for t, offset, length in refs:
            f.seek(offset)
            raw = f.read(length)
            if len(raw) != length:
                raise ValueError(f"{name} is shorter than {Path(owner).name} says (truncated?)")
            found[_key(t, raw)] = (offset, length)
    return name, found


def link(model: Path, owner: Path) -> tuple[str, int]:
    """Point the tensors of ``model`` that the owner's weights file holds at it (in place); returns the file's
    name and the bytes no longer stored in ``model``. Both graphs must be in the same folder."""
    model = Path(model)
    name, found = index(owner)
    proto = _load(model)
    saved = 0
    for t in proto.graph.initializer:
        if t.data_location != 0:  # already external
            continue
        raw = _raw(t)
        hit = found.get(_key(t, raw)) if len(raw) >= MIN_BYTES else None
        if hit:
            _point(t, name, *hit)
            saved += len(raw)
    if not saved:
        raise ValueError(f"{model.name} has no tensor in common with {name}")
    _save(proto, model)
    return name, saved
