"""doctor, bench and device selection through the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from mmdesk.cli import main
from mmdesk.inference.runtime import cuda_problem

RAVDESS = "av/ravdess_actor05/01-01-04-01-01-01-05.mp4"  # 640×360, sad


def test_python_dash_m_and_version() -> None:
    out = subprocess.run([sys.executable, "-m", "mmdesk", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("mmdesk ")


def test_doctor_json_on_a_good_install(capsys, pack_dir) -> None:
    assert main(["doctor", "--json", "--no-devices"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == []
    assert "CPUExecutionProvider" in report["providers_available"]
    roles = report["models"]
    assert {"face_detector", "face_expression", "vad", "voice_emotion", "text_encoder", "text_emotion"} <= set(roles)
    assert all(m["verified"] for m in roles.values())
    expected = "CUDAExecutionProvider" if cuda_problem() is None else "CPUExecutionProvider"
    assert roles["face_expression"]["active_provider"] == expected  # the provider really running


def test_doctor_fails_on_a_tampered_pack(tmp_path, capsys, pack_dir) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(pack_dir, pack)
    data = bytearray((pack / "voice_emotion.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (pack / "voice_emotion.onnx").write_bytes(bytes(data))
    assert main(["doctor", "--models", str(pack), "--no-devices"]) == 1
    out = capsys.readouterr().out
    assert "voice_emotion.onnx" in out and "does not match the manifest" in out and "status: BROKEN" in out


def test_doctor_names_a_voice_model_from_an_older_pack(tmp_path, capsys, pack_dir) -> None:
    """The files verify, but the voice entry asks for the log-mel CNN's features: doctor says so, as analyze
    would, instead of reporting ok."""
    pack = tmp_path / "pack"
    shutil.copytree(pack_dir, pack)
    manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
    entries = manifest["models"]
    entries["voice_emotion"]["preprocessing"] = {k: v for k, v in entries["voice_emotion"]["preprocessing"].items()
                                                 if k != "kind"}
    (pack / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["doctor", "--models", str(pack), "--no-devices"]) == 1
    out = capsys.readouterr().out
    assert "voice_emotion" in out and "log-mel CNN" in out and "mmdesk models build" in out and "status: BROKEN" in out


def test_analyze_refuses_a_tampered_model_naming_it(tmp_path, capsys, assets, pack_dir) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(pack_dir, pack)
    (pack / "face_expression.onnx").write_bytes(b"\0" * 100)
    code = main(["analyze", str(assets / RAVDESS), "--models", str(pack), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "face_expression.onnx" in err and "Traceback" not in err


@pytest.mark.skipif(cuda_problem() is None, reason="CUDA is usable here")
def test_device_cuda_without_cuda_is_a_clear_error(tmp_path, capsys, assets, pack_dir) -> None:
    code = main(["analyze", str(assets / RAVDESS), "--device", "cuda", "--quiet", "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "--device cuda" in err and "--device auto" in err


def test_bench_reports_every_stage(capsys, monkeypatch, tmp_path, assets, pack_dir) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["bench", "--clip", str(assets / RAVDESS), "--repeat", "1", "--json"]) == 0
    # the eager models' wheel members (89 MB a run) were cleaned up; torch keeps its own cache there
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []
    report = json.loads(capsys.readouterr().out)
    stages = report["stages_per_window"]
    for stage in ("decode", "windowing", "face_detection", "face_model", "vad", "audio_features", "voice_model"):
        assert stages[stage]["n"] == report["windows"] > 0 and stages[stage]["p95_ms"] >= stages[stage]["median_ms"]
    assert report["x_real_time"] > 0 and report["peak_rss_mb"] > 50
    assert report["text_per_sentence"]["n"] == 30
    assert set(report["providers"].values()) <= {"CPUExecutionProvider", "CUDAExecutionProvider"}
    cmp_ = report["onnx_vs_torch"]
    assert {"face_expression", "voice_emotion", "text_encoder"} <= set(cmp_)
    assert all(v["onnx_median_ms"] > 0 and v["torch_median_ms"] > 0 for v in cmp_.values())
