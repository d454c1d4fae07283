"""A reader for CTranslate2's ``model.bin``: how the pack gets Whisper's weights out of the pinned
CTranslate2 folder to export them to ONNX (:mod:`mmdesk.training.whisper_onnx_export`).

The layout is the one ``ctranslate2.specs.model_spec.ModelSpec._serialize`` writes (binary version 6):
CTranslate2 itself can write but not read it back into a spec (OpenNMT/CTranslate2#1761), and the
runtime has no CTranslate2 at all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: type ids in model.bin, in the order of ctranslate2's DataType enum (bfloat16 has no numpy type)
_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16")
BINARY_VERSION = 6


@dataclass(frozen=True)
class ModelBin:
    name: str  # the spec's name, e.g. "WhisperSpec"
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]  # variable -> the variable it shares its value with


def read_model_bin(path: Path) -> ModelBin:
    """The variables of a CTranslate2 ``model.bin`` (read-only views of the file's bytes)."""
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str) -> int:
        nonlocal offset
        try:
            (value,) = struct.unpack_from("<" + fmt, data, offset)
        except struct.error:
            raise ValueError(f"{path}: truncated at byte {offset}") from None
        offset += struct.calcsize("<" + fmt)
        return value

    def string() -> str:
        nonlocal offset
        n = take("H")  # length including the terminating NUL
        text = data[offset:offset + n - 1].decode("utf-8")
        offset += n
        return text

    version = take("I")
    if version != BINARY_VERSION:
        raise ValueError(f"{path}: model.bin binary version {version}, this reader knows {BINARY_VERSION}")
    name, revision = string(), take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        key = string()
        shape = [take("I") for _ in range(take("B"))]
        type_id = take("B")
        if type_id >= len(_DTYPES):
            raise ValueError(f"{path}: {key} has type id {type_id}, which this reader does not handle")
        dtype = np.dtype(_DTYPES[type_id])
        size = take("I")
        if size != dtype.itemsize * int(np.prod(shape, dtype=np.int64)) or offset + size > len(data):
            raise ValueError(f"{path}: {key} holds {size} bytes for shape {shape} of {dtype}, or is truncated")
        variables[key] = np.frombuffer(data, dtype, size // dtype.itemsize, offset).reshape(shape)
        offset += size
    aliases = {}
    for _ in range(take("I")):
        alias = string()
        aliases[alias] = string()
    if offset != len(data):
        raise ValueError(f"{path}: {len(data) - offset} bytes after the last alias")
    return ModelBin(name, revision, variables, aliases)
