"""The pack's Whisper model is a folder: pinned as a whole, so any changed or extra file fails."""

from __future__ import annotations

import shutil

import pytest

from mmdesk.cli import main
from mmdesk.errors import ModelError
from mmdesk.inference.manifest import Manifest, sha256_tree, verify_file


@pytest.fixture
def small_pack(tmp_path, manifest):
    """A pack holding only a copy of the speech_to_text folder and its manifest entry."""
    entry = manifest.entry("speech_to_text")
    shutil.copytree(manifest.path("speech_to_text"), tmp_path / entry.file)
    Manifest(directory=tmp_path, entries={"speech_to_text": entry}).write()
    return Manifest(directory=tmp_path, entries={"speech_to_text": entry})


def test_the_copy_verifies_and_its_digest_is_the_manifests(small_pack, capsys) -> None:
    path = verify_file(small_pack, "speech_to_text")
    assert path.is_dir() and sha256_tree(path) == small_pack.entry("speech_to_text").sha256
    assert main(["models", "verify", "--models", str(small_pack.directory)]) == 0
    assert "loads as onnx-whisper" in capsys.readouterr().out  # both graphs opened in onnxruntime


@pytest.mark.parametrize("tamper", ["changed", "extra", "removed"])
def test_a_tampered_folder_fails_verification(tamper, small_pack, capsys) -> None:
    folder = small_pack.directory / "speech_to_text"
    if tamper == "changed":
        with open(folder / "whisper_onnx.json", "a") as f:
            f.write("x")
    elif tamper == "extra":
        (folder / "notes.txt").write_text("hello")
    else:
        (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="does not match the manifest"):
        verify_file(small_pack, "speech_to_text")
    assert main(["models", "verify", "--models", str(small_pack.directory)]) == 2
    assert "FAIL  speech_to_text" in capsys.readouterr().out


def test_other_models_in_the_desktop_bundle_say_why(monkeypatch) -> None:
    """The bundle leaves faster-whisper out: asking it for another model names the way to get one."""
    import sys

    from mmdesk.asr.engine import ModelChoice, open_engine
    from mmdesk.errors import MmdeskError

    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import fails, as in the bundle
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    with pytest.raises(MmdeskError, match="desktop bundle runs only the pack's Whisper model, not 'small'") as err:
        open_engine(ModelChoice("small", "small"))
    assert "mmdesk[faster-whisper]" in err.value.hint
