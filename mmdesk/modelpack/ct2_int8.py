"""The pack's Whisper stored with int8 weights: the same int8 weights CTranslate2 makes when it loads it.

mmdesk runs Whisper with ``compute_type="int8"`` on the CPU, so CTranslate2 quantized the pinned model's
float16 weights on every load anyway. Stored quantized, the folder shrinks from 75.5 to 39.5 MB and the
encoder outputs, tokens and scores stay bit-identical (models/cards/speech_to_text.md).

CTranslate2's converters read Hugging Face / OpenAI checkpoints, not a converted ``model.bin``, and a loaded
model cannot be saved (OpenNMT/CTranslate2#1761). So this module only *reads* ``model.bin`` (the layout
``ctranslate2.specs.model_spec.ModelSpec._serialize`` writes, binary version 6); the variables go into
ctranslate2's own ``WhisperSpec`` and the library quantizes and writes them (``optimize``, ``save``), so
the int8 arithmetic and the file format stay the library's.
"""

from __future__ import annotations

import re
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ctranslate2.specs.whisper_spec import WhisperSpec

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


def _load_time_int8_spec(num_encoder_layers: int, num_encoder_heads: int, num_decoder_layers: int,
                         num_decoder_heads: int) -> WhisperSpec:
    from ctranslate2.specs.whisper_spec import WhisperSpec

    class LoadTimeInt8WhisperSpec(WhisperSpec):
        """Quantizes what CTranslate2 4.8 quantizes when it loads a float model with compute_type int8: every
        linear and embedding weight, not the encoder's two convolutions (quantized too, the encoder's output
        moved by up to 4.9; left float, it is bit-identical). A filter on ``_quantize`` is how ctranslate2's
        own Drama3Spec restricts quantization."""

        def _quantize(self, quantization: str | None, variable_filter: Callable[[str], bool] | None = None) -> None:
            super()._quantize(quantization, lambda name: "/conv" not in name)

    return LoadTimeInt8WhisperSpec(num_encoder_layers, num_encoder_heads, num_decoder_layers, num_decoder_heads)


def _layers(variables: dict[str, np.ndarray], part: str) -> int:
    found = {int(m.group(1)) for k in variables if (m := re.match(rf"{part}/layer_(\d+)/", k))}
    if found != set(range(len(found))):
        raise ValueError(f"{part} layers {sorted(found)} are not numbered 0..n-1")
    return len(found)


def whisper_int8(source: Path, out: Path) -> None:
    """Write ``out``: the CTranslate2 Whisper folder ``source`` with its weights int8 (per output row, as
    CTranslate2 quantizes them), every other file copied as is."""
    from ctranslate2.specs import model_spec

    source, out = Path(source), Path(out)
    model = read_model_bin(source / "model.bin")
    if model.name != "WhisperSpec":
        raise ValueError(f"{source / 'model.bin'} holds a {model.name}, not a WhisperSpec")
    v = model.variables
    spec = _load_time_int8_spec(_layers(v, "encoder"), int(v["encoder/num_heads"]), _layers(v, "decoder"),
                                int(v["decoder/num_heads"]))
    if spec.revision != model.revision:
        raise ValueError(f"{source / 'model.bin'}: WhisperSpec revision {model.revision}, this ctranslate2 "
                         f"writes {spec.revision}")
    # An alias gets its target's value: optimize() finds the equal pair again and writes the same alias.
    values = {**v, **{alias: v[target] for alias, target in model.aliases.items()}}
    for key, value in values.items():
        scope, attr = model_spec._parent_scope(key)
        layer = model_spec.index_spec(spec, scope)
        if not hasattr(layer, attr):
            raise ValueError(f"{source / 'model.bin'}: {key} is not a variable of ctranslate2's WhisperSpec")
        setattr(layer, attr, np.array(value))  # a writable copy: quantization works in place
    vocabulary = (source / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    spec.register_vocabulary(vocabulary)
    spec.validate()
    spec.optimize(quantization="int8")
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        spec.save(tmp)  # also writes a config.json and vocabulary.json of its own: the source's are kept
        shutil.move(Path(tmp) / "model.bin", out / "model.bin")
    written = read_model_bin(out / "model.bin")
    if written.aliases != model.aliases:
        raise ValueError(f"aliases changed: {model.aliases} -> {written.aliases}")
    for f in sorted(source.iterdir()):
        if f.name != "model.bin":
            shutil.copyfile(f, out / f.name)


def derive(source: Path, out: Path) -> None:
    """Pack build step ``derive:ct2_int8`` (mmdesk.modelpack.recipes)."""
    whisper_int8(source, out)
