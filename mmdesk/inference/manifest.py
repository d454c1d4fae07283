"""The model manifest: the contract between the pack builder and every loader.

A pack is a directory holding ``manifest.json`` and the files it names. Each entry records what a
loader must check before trusting a file: its sha256, and for ONNX models the input and output
names, shapes (ints fixed, strings symbolic) and dtypes, plus labels and preprocessing constants.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmdesk.errors import ModelError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str  # numpy-style name: float32, int64, ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(name=d["name"], shape=tuple(d["shape"]), dtype=d["dtype"])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ModelEntry:
    role: str  # face_detector, face_expression, text_encoder, ...
    file: str  # relative to the pack directory
    sha256: str
    format: str  # onnx, tokenizer-json, ctranslate2-whisper
    source: dict[str, Any]  # where it came from (kind, requirement/url/path, sha256, member)
    license: str
    card: str = ""  # relative path of the model card in the pack
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    labels: tuple[str, ...] = ()
    preprocessing: dict[str, Any] = field(default_factory=dict)
    build: str = "copy"  # how the file was produced from the source
    description: str = ""
    # external weight files the ONNX file reads (relative to the pack), name -> sha256; several roles can
    # share one (the MiniLM trunk of text_encoder, text_emotion and sarcasm: mmdesk.modelpack.shared_weights)
    data: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEntry:
        return cls(
            role=d["role"],
            file=d["file"],
            sha256=d["sha256"],
            format=d.get("format", "onnx"),
            source=dict(d.get("source", {})),
            license=d.get("license", ""),
            card=d.get("card", ""),
            inputs=tuple(TensorSpec.from_dict(t) for t in d.get("inputs", [])),
            outputs=tuple(TensorSpec.from_dict(t) for t in d.get("outputs", [])),
            labels=tuple(d.get("labels", [])),
            preprocessing=dict(d.get("preprocessing", {})),
            build=d.get("build", "copy"),
            description=d.get("description", ""),
            data=dict(d.get("data", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        d["labels"] = list(self.labels)
        if not self.data:  # manifests of packs without shared weights stay as they were
            del d["data"]
        return d


@dataclass(frozen=True)
class Manifest:
    directory: Path
    entries: dict[str, ModelEntry]
    built: dict[str, Any] = field(default_factory=dict)  # builder versions, date

    def entry(self, role: str) -> ModelEntry:
        try:
            return self.entries[role]
        except KeyError:
            raise ModelError(
                f"the model pack in {self.directory} has no {role!r} model",
                "rebuild it with `mmdesk models build`",
            ) from None

    def path(self, role: str) -> Path:
        return self.directory / self.entry(role).file

    def to_json(self) -> str:
        body = {
            "version": MANIFEST_VERSION,
            "built": self.built,
            "models": {role: e.to_dict() for role, e in sorted(self.entries.items())},
        }
        return json.dumps(body, indent=2, sort_keys=False) + "\n"

    def write(self) -> Path:
        path = self.directory / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(directory: Path) -> str:
    """One digest for a folder model: sha256 of its sorted ``relative/path<TAB>file sha256`` lines.

    A renamed, added, removed or changed file changes it; the folder's own name does not count.
    """
    h = hashlib.sha256()
    for p in sorted(q for q in directory.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(directory).as_posix()}\t{sha256_file(p)}\n".encode())
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    """``sha256_file`` for a file, ``sha256_tree`` for a folder (models such as CTranslate2's are folders)."""
    return sha256_tree(path) if path.is_dir() else sha256_file(path)


def load_manifest(directory: Path) -> Manifest:
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(
            f"no model pack at {directory} ({MANIFEST_NAME} missing)",
            "build one with `mmdesk models build`, or point --models / MMDESK_MODELS at a pack",
        )
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("version") != MANIFEST_VERSION:
            raise ValueError(f"manifest version {body.get('version')!r}, expected {MANIFEST_VERSION}")
        entries = {role: ModelEntry.from_dict(d) for role, d in body["models"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"the model manifest {path} is unreadable ({exc})", "rebuild it with `mmdesk models build`"
        ) from None
    return Manifest(directory=directory, entries=entries, built=dict(body.get("built", {})))


def verify_file(manifest: Manifest, role: str) -> Path:
    """The entry's file (or folder) path once its sha256, and that of every weight file it reads, match the
    manifest; ModelError naming the file if not."""
    entry = manifest.entry(role)
    path = manifest.directory / entry.file
    _verify_one(path, entry.sha256, role)
    for name, sha in entry.data.items():
        _verify_one(manifest.directory / name, sha, f"weights of {role}")
    return path


def _verify_one(path: Path, expected: str, what: str) -> None:
    if not path.exists():
        raise ModelError(f"model file {path} ({what}) is missing", "rebuild the pack with `mmdesk models build`")
    actual = sha256_path(path)
    if actual != expected:
        raise ModelError(
            f"model file {path} ({what}) does not match the manifest: sha256 {actual[:12]}… "
            f"instead of {expected[:12]}… (tampered with or corrupted)",
            "rebuild the pack with `mmdesk models build` or restore the file",
        )


def check_io(entry: ModelEntry, path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
    """Compare a model's actual IO against the manifest; ModelError naming the file on mismatch."""

    def compare(kind: str, expected: tuple[TensorSpec, ...], actual: list[TensorSpec]) -> None:
        if [t.name for t in expected] != [t.name for t in actual]:
            raise ModelError(
                f"model file {path} ({entry.role}) has {kind} {[t.name for t in actual]}, "
                f"the manifest expects {[t.name for t in expected]}",
                "this is the wrong model for this role; rebuild the pack with `mmdesk models build`",
            )
        for e, a in zip(expected, actual):
            same_rank = len(e.shape) == len(a.shape)
            fixed_ok = same_rank and all(
                not (isinstance(x, int) and isinstance(y, int)) or x == y for x, y in zip(e.shape, a.shape)
            )
            if e.dtype != a.dtype or not fixed_ok:
                raise ModelError(
                    f"model file {path} ({entry.role}) {kind[:-1]} {a.name!r} is {a.dtype}{list(a.shape)}, "
                    f"the manifest expects {e.dtype}{list(e.shape)}",
                    "this is the wrong model for this role; rebuild the pack with `mmdesk models build`",
                )

    compare("inputs", entry.inputs, inputs)
    compare("outputs", entry.outputs, outputs)
