"""Weights kept once for several ONNX files of the pack (mmdesk.modelpack.shared_weights and the builder).

Small real graphs stand in for the MiniLM trio: an "owner" whose weights go into a shared file and a
"reader" that has the owner's weight matrix plus one of its own. onnxruntime runs every file before and
after, so a wrong offset, a missing file or a tensor pointed at the wrong bytes changes the numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from mmdesk.commands import models as models_cmd  # noqa: E402
from mmdesk.errors import ModelError  # noqa: E402
from mmdesk.inference.manifest import TensorSpec, load_manifest, verify_file  # noqa: E402
from mmdesk.inference.runtime import open_model  # noqa: E402
from mmdesk.modelpack import shared_weights  # noqa: E402
from mmdesk.modelpack.build import build_pack  # noqa: E402
from mmdesk.modelpack.recipes import Recipe, recipe_for  # noqa: E402
from mmdesk.modelpack.sources import FetchContext  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.standard_normal((64, 64)).astype(np.float32)  # 16 KB: shared
B = RNG.standard_normal(64).astype(np.float32)  # 256 B: below MIN_BYTES, stays inline
V = RNG.standard_normal((64, 8)).astype(np.float32)  # 2 KB: the reader's own
X = RNG.standard_normal((3, 64)).astype(np.float32)


def _graph(path: Path, w: np.ndarray, reader: bool) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(B, "b")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y" if not reader else "z"])]
    width = 64
    if reader:
        inits.append(numpy_helper.from_array(V, "v"))
        nodes.append(helper.make_node("MatMul", ["z", "v"], ["y"]))
        width = 8
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.save_model(model, str(path))
    return path


def _run(path: Path) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X})[0]


def test_externalize_and_link_keep_the_numbers(tmp_path):
    owner = _graph(tmp_path / "owner.onnx", W, reader=False)
    reader = _graph(tmp_path / "reader.onnx", W, reader=True)
    want_owner, want_reader = _run(owner), _run(reader)
    np.testing.assert_allclose(want_reader, (X @ W + B) @ V, rtol=1e-4, atol=1e-4)

    weights = shared_weights.externalize(owner, "owner")
    assert weights.name == f"owner-{hashlib.sha256(weights.read_bytes()).hexdigest()[:12]}.weights"
    assert weights.stat().st_size == W.nbytes  # only W reaches MIN_BYTES; b stays inline
    name, saved = shared_weights.link(reader, owner)
    assert (name, saved) == (weights.name, W.nbytes)
    assert reader.stat().st_size < V.nbytes + 1024  # V and b inline, W by reference
    np.testing.assert_array_equal(_run(owner), want_owner)
    np.testing.assert_array_equal(_run(reader), want_reader)

    # the same graph gives the same bytes (the fusion head is bound to the text encoder's sha256)
    (tmp_path / "again").mkdir()
    again = _graph(tmp_path / "again" / "owner.onnx", W, reader=False)
    shared_weights.externalize(again, "owner")
    assert again.read_bytes() == owner.read_bytes()
    assert (again.parent / weights.name).read_bytes() == weights.read_bytes()


def test_link_refuses_a_graph_with_nothing_in_common(tmp_path):
    owner = _graph(tmp_path / "owner.onnx", W, reader=False)
    other = _graph(tmp_path / "other.onnx", W + 1, reader=True)
    shared_weights.externalize(owner, "owner")
    with pytest.raises(ValueError, match="no tensor in common"):
        shared_weights.link(other, owner)


# ------------------------------------------------------------------------------------------ in the builder


def _recipes(src: Path) -> tuple[Recipe, Recipe]:
    def recipe(role: str, path: Path, width: int, **kw) -> Recipe:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        return Recipe(role=role, file=f"{role}.onnx", format="onnx", license="test",
                      sources=({"kind": "path", "path": str(path), "sha256": sha},),
                      inputs=(TensorSpec("x", ("batch", 64), "float32"),),
                      outputs=(TensorSpec("y", ("batch", width), "float32"),), **kw)

    return (recipe("owner", src / "owner.onnx", 64, shares_weights=True),
            recipe("reader", src / "reader.onnx", 8, weights_from="owner"))


def _ctx(tmp_path: Path) -> FetchContext:
    return FetchContext(cache_dir=tmp_path / "cache", log=lambda _m: None)


def test_pack_stores_shared_weights_once_and_checks_them(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    want = _run(_graph(src / "reader.onnx", W, reader=True))
    _graph(src / "owner.onnx", W, reader=False)
    pack = tmp_path / "pack"
    result = build_pack(pack, recipes=_recipes(src), ctx=_ctx(tmp_path), log=lambda _m: None)
    assert result.failures == {} and result.built == ["owner", "reader"]

    m = load_manifest(pack)
    owner, reader = m.entry("owner"), m.entry("reader")
    (name,) = owner.data
    assert reader.data == owner.data and name.endswith(".weights")
    assert sorted(p.name for p in pack.iterdir()) == sorted(["manifest.json", "owner.onnx", "reader.onnx", name])
    np.testing.assert_array_equal(open_model(m, "reader", device="cpu").run({"x": X})[0], want)

    assert models_cmd.run(_args("list", "--models", str(pack))) == 0
    assert f"shared weights {name} (16.0 KB), read by owner, reader" in capsys.readouterr().out

    # unchanged: nothing rebuilt
    again = build_pack(pack, recipes=_recipes(src), ctx=_ctx(tmp_path), log=lambda _m: None)
    assert again.skipped == ["owner", "reader"] and not again.changed

    # a damaged weights file is refused for every role that reads it, naming the file
    blob = pack / name
    blob.write_bytes(b"\0" + blob.read_bytes()[1:])
    with pytest.raises(ModelError, match=rf"{name} \(weights of reader\) does not match the manifest"):
        verify_file(m, "reader")
    with pytest.raises(ModelError, match="weights of owner"):
        open_model(m, "owner", device="cpu")
    fixed = build_pack(pack, recipes=_recipes(src), ctx=_ctx(tmp_path), log=lambda _m: None)
    assert fixed.built == ["owner", "reader"]
    verify_file(load_manifest(pack), "reader")


def _built_pack(tmp_path: Path) -> tuple[Path, Path, str]:
    """(source folder, a pack built from it, the name of its weights file)."""
    src = tmp_path / "src"
    src.mkdir()
    _graph(src / "owner.onnx", W, reader=False)
    _graph(src / "reader.onnx", W, reader=True)
    pack = tmp_path / "pack"
    build_pack(pack, recipes=_recipes(src), ctx=_ctx(tmp_path), log=lambda _m: None)
    (name,) = load_manifest(pack).entry("owner").data
    return src, pack, name


def test_new_owner_weights_rebuild_the_reader_and_drop_the_old_file(tmp_path):
    src, pack, old = _built_pack(tmp_path)

    w2 = W * 0.5
    want = _run(_graph(src / "reader.onnx", w2, reader=True))
    _graph(src / "owner.onnx", w2, reader=False)
    result = build_pack(pack, recipes=_recipes(src), ctx=_ctx(tmp_path), log=lambda _m: None)
    assert result.failures == {} and result.built == ["owner", "reader"]
    m = load_manifest(pack)
    (new,) = m.entry("owner").data
    assert new != old and m.entry("reader").data == {new: m.entry("owner").data[new]}
    assert not (pack / old).exists()
    np.testing.assert_array_equal(open_model(m, "reader", device="cpu").run({"x": X})[0], want)


def test_a_reader_that_fails_keeps_its_previous_weights_file(tmp_path):
    src, pack, old = _built_pack(tmp_path)

    _graph(src / "owner.onnx", W * 2, reader=False)
    owner_recipe, reader_recipe = _recipes(src)
    broken = dataclasses.replace(reader_recipe, sources=({"kind": "path", "path": str(src / "gone.onnx"),
                                                          "sha256": "0" * 64},))
    result = build_pack(pack, recipes=(owner_recipe, broken), ctx=_ctx(tmp_path), log=lambda _m: None)
    assert result.built == ["owner"] and result.kept == ["reader"]
    m = load_manifest(pack)
    assert (pack / old).exists() and m.entry("reader").data == {old: m.entry("reader").data[old]}
    verify_file(m, "reader")  # still whole: the old weights file stays while a role reads it


def test_a_reader_without_its_owner_says_what_to_build(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _graph(src / "reader.onnx", W, reader=True)
    _graph(src / "owner.onnx", W, reader=False)  # the recipe exists, but the pack has no owner
    result = build_pack(tmp_path / "pack", recipes=(_recipes(src)[1],), ctx=_ctx(tmp_path), log=lambda _m: None)
    msg = result.failures["reader"].one_line()
    assert "reads the weights of owner" in msg and "build owner too" in msg


def test_default_recipes_share_the_minilm_weights():
    assert recipe_for("text_encoder").shares_weights
    assert recipe_for("text_emotion").weights_from == recipe_for("sarcasm").weights_from == "text_encoder"


def _args(*argv: str):
    import argparse

    parser = argparse.ArgumentParser()
    models_cmd.add_arguments(parser)
    return parser.parse_args(list(argv))
