"""onnxruntime sessions with device choice, and the provider that is really active."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mmdesk.errors import DeviceError, ModelError
from mmdesk.inference.manifest import Manifest, TensorSpec, check_io, verify_file

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _ort():
    import onnxruntime as ort

    # provider load failures are detected and reported by us (cuda_problem, active provider)
    ort.set_default_logger_severity(4)
    return ort


@functools.cache
def cuda_problem() -> str | None:
    """None when onnxruntime's CUDA provider can be loaded here, else why it cannot."""
    ort = _ort()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
    import importlib.util

    if hasattr(ort, "preload_dlls") and importlib.util.find_spec("nvidia") is not None:
        # CUDA/cuDNN installed as nvidia-* pip packages are not on the loader path by themselves
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - best effort; the load below tells the real story
            pass
    name = "onnxruntime_providers_cuda.dll" if sys.platform == "win32" else "libonnxruntime_providers_cuda.so"
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    try:
        ctypes.CDLL(os.path.join(capi, "libonnxruntime_providers_shared.so")) if sys.platform != "win32" else None
        ctypes.CDLL(os.path.join(capi, name))
    except OSError as exc:
        missing = str(exc).split(":")[0].strip() if "cannot open shared object" in str(exc) else str(exc)
        return f"a CUDA library is missing: {missing}"
    return None


def available_providers() -> list[str]:
    return list(_ort().get_available_providers())


def providers_for(device: str) -> list[str]:
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}", f"use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    problem = cuda_problem()
    if device == "cuda" and problem:
        raise DeviceError(
            f"--device cuda was requested but CUDA cannot be used: {problem}",
            "install the CUDA 13 runtime and cuDNN 9 (or `pip install onnxruntime-gpu[cuda,cudnn]`), "
            "or use --device auto / cpu",
        )
    if problem is None:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def tensor_specs(args) -> list[TensorSpec]:
    """onnxruntime NodeArgs as TensorSpecs; unnamed dimensions come back as ``"?"``."""
    return [
        TensorSpec(
            name=a.name,
            shape=tuple(d if isinstance(d, int) else (str(d) if d else "?") for d in (a.shape or [])),
            dtype=_ORT_TYPES.get(a.type, a.type),
        )
        for a in args
    ]


@dataclass
class OnnxModel:
    """A verified onnxruntime session for one manifest role."""

    role: str
    path: Path
    session: object
    active_provider: str
    sha256: str

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        return self.session.run(outputs, feeds)


def session_options(threads: int | None = None):
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    n = threads or int(os.environ.get("MMDESK_THREADS", "0") or 0)
    if n > 0:
        so.intra_op_num_threads = n
    so.inter_op_num_threads = 1
    if os.environ.get("MMDESK_SPIN", "0") != "1":
        # Idle workers must not spin: on a 2-core laptop they steal the core the decoder needs.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def open_model(manifest: Manifest, role: str, device: str = "auto", threads: int | None = None) -> OnnxModel:
    """Verify the file (sha256, IO) and open it; the active provider is read back from the session."""
    ort = _ort()
    entry = manifest.entry(role)
    path = verify_file(manifest, role)
    providers = providers_for(device)
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise ModelError(f"model file {path} ({role}) cannot be loaded by onnxruntime: {exc}".splitlines()[0],
                         "rebuild the pack with `mmdesk models build`") from None
    check_io(entry, path, tensor_specs(session.get_inputs()), tensor_specs(session.get_outputs()))
    active = session.get_providers()[0]
    if device == "cuda" and active != "CUDAExecutionProvider":
        raise DeviceError(
            f"--device cuda was requested but onnxruntime fell back to {active} for {path.name} "
            "(CUDA or cuDNN libraries not found)",
            "install the CUDA 13 runtime + cuDNN 9 (or `pip install onnxruntime-gpu[cuda,cudnn]`), "
            "or use --device auto",
        )
    return OnnxModel(role=role, path=path, session=session, active_provider=active, sha256=entry.sha256)
