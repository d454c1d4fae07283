"""The CTranslate2 model.bin reader (mmdesk.modelpack.ct2_model_bin) against files ctranslate2's own writer makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ctranslate2.specs import common_spec, model_spec

from mmdesk.modelpack.ct2_model_bin import read_model_bin


class TinySpec(model_spec.ModelSpec):
    def __init__(self) -> None:
        super().__init__()
        self.dense = common_spec.LinearSpec()
        self.tied = common_spec.LinearSpec()
        self.norm = common_spec.LayerNormSpec()
        self.heads = np.dtype("int16").type(6)

    @property
    def name(self) -> str:
        return "TinySpec"


def saved(tmp_path: Path, quantization: str | None) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    spec = TinySpec()
    weight = rng.standard_normal((4, 3)).astype(np.float16)
    spec.dense.weight, spec.dense.bias = weight, rng.standard_normal(4).astype(np.float32)
    spec.tied.weight = weight.copy()  # equal to dense.weight: written once, plus an alias
    spec.norm.gamma, spec.norm.beta = np.ones(3, np.float16), np.zeros(3, np.float16)
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(tmp_path))
    return tmp_path / "model.bin", weight


def test_reads_what_ctranslate2_writes(tmp_path: Path) -> None:
    path, weight = saved(tmp_path, None)
    model = read_model_bin(path)
    assert (model.name, model.revision) == ("TinySpec", 1)
    assert model.aliases == {"tied/weight": "dense/weight"}
    v = model.variables
    assert v["dense/weight"].dtype == np.float16 and np.array_equal(v["dense/weight"], weight)
    assert v["dense/bias"].dtype == np.float32 and v["dense/bias"].shape == (4,)
    assert np.array_equal(v["norm/gamma"], np.ones(3, np.float16)) and v["heads"].shape == () and int(v["heads"]) == 6


def test_reads_int8_weights_and_their_scales(tmp_path: Path) -> None:
    path, weight = saved(tmp_path, "int8")
    v = read_model_bin(path).variables
    assert v["dense/weight"].dtype == np.int8 and v["dense/weight_scale"].dtype == np.float32
    dequantized = v["dense/weight"] / v["dense/weight_scale"][:, None]
    np.testing.assert_allclose(dequantized, weight.astype(np.float32), atol=np.abs(weight).max() / 127)


@pytest.mark.parametrize("damage", ["truncated", "trailing", "version"])
def test_a_damaged_file_is_refused(tmp_path: Path, damage: str) -> None:
    path, _ = saved(tmp_path, None)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:-7], "trailing": data + b"\0", "version": b"\x05" + data[1:]}[damage])
    with pytest.raises(ValueError, match="truncated|bytes after|binary version"):
        read_model_bin(path)
