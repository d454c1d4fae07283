"""Build the model pack from the recipes: fetch, export or copy, check, and swap in atomically.

Everything is staged in a temporary folder next to the pack (same file system). Only when every role has
been staged does the swap start: the old ``manifest.json`` is removed first, the staged files are moved in,
and the new manifest is written last (itself atomically). An interrupted build therefore leaves either the
old pack untouched or a folder without a manifest, which never verifies; never a half-new pack that does.

A second run is fast: a role whose file still matches its manifest entry, built from the same recipe
fingerprint, is skipped (``force=True`` rebuilds everything selected).
"""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import shutil
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmdesk import __version__
from mmdesk.errors import MmdeskError, ModelError
from mmdesk.inference.manifest import (
    MANIFEST_NAME,
    Manifest,
    ModelEntry,
    TensorSpec,
    check_io,
    load_manifest,
    sha256_file,
    sha256_path,
)
from mmdesk.modelpack.recipes import DEFAULT_RECIPES, RETIRED_ROLES, Recipe
from mmdesk.modelpack.sources import (
    ChecksumError,
    FetchContext,
    ProjectModelMissing,
    Resolved,
    describe,
    resolve_any,
)

Log = Callable[[str], None]

#: formats whose "file" is a folder, pinned as a whole by ``sha256_tree``
FOLDER_FORMATS = ("ctranslate2-whisper", "onnx-whisper")


def _print(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------- checks

def onnx_io(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs as onnxruntime sees them; unnamed dimensions come back as ``"?"``."""
    from mmdesk.inference.runtime import _ort, tensor_specs

    try:
        sess = _ort().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime has its own exception types
        raise ModelError(f"{path} cannot be loaded by onnxruntime: {str(exc).splitlines()[0]}", "") from None

    return tensor_specs(sess.get_inputs()), tensor_specs(sess.get_outputs())


def _refine(actual: list[TensorSpec], expected: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    """The file's IO, with dimensions the file leaves unnamed (``?``) taken from the recipe."""
    out = []
    for i, a in enumerate(actual):
        e = expected[i] if i < len(expected) and len(expected[i].shape) == len(a.shape) else None
        shape = tuple(
            (e.shape[j] if e is not None else "?") if d == "?" else d for j, d in enumerate(a.shape)
        )
        out.append(TensorSpec(a.name, shape, a.dtype))
    return tuple(out)


#: the files of a Whisper model folder, by format: faster-whisper's CTranslate2 folder, mmdesk's ONNX one
WHISPER_FILES = {
    "ctranslate2-whisper": ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt"),
    "onnx-whisper": ("encoder.onnx", "decoder.onnx", "tokenizer.json", "whisper_onnx.json"),
}


def check_whisper_dir(path: Path, fmt: str = "onnx-whisper") -> None:
    missing = [name for name in WHISPER_FILES[fmt] if not (path / name).is_file()]
    kind = "an ONNX" if fmt == "onnx-whisper" else "a CTranslate2"
    if not path.is_dir() or missing:
        raise ModelError(
            f"{path} is not {kind} Whisper model folder (missing {', '.join(missing) or 'the folder'})",
            "rebuild the pack with `mmdesk models build`",
        )
    config = WHISPER_FILES[fmt][-1] if fmt == "onnx-whisper" else "config.json"
    try:
        json.loads((path / config).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path / config} is unreadable ({exc})", "rebuild the pack with `mmdesk models build`") from None


def check_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception subclasses
        raise ModelError(
            f"{path} is not a tokenizers JSON file ({str(exc).splitlines()[0]})",
            "rebuild the pack with `mmdesk models build`",
        ) from None


# ------------------------------------------------------------------------------------------- export


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    """Exporters are chatty (torch.onnx logs warnings about optional packages); keep errors only."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export(recipe: Recipe, source: Path, out: Path) -> None:
    module = recipe.exporter
    if module is None:
        raise ModelError(f"{recipe.role}: unknown build step {recipe.build!r}", "use copy or export:NAME")
    if not _has_torch():
        raise ModelError(
            f"building {recipe.role} ({recipe.build}) needs torch, which is not installed",
            "install the training extra (`pip install 'mmdesk[train]'`), or build the pack where it is and "
            "copy it over; `--only` builds the other roles",
        )
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise ModelError(
                f"the exporter {module} for {recipe.role} is not in this mmdesk", "update mmdesk"
            ) from None
        raise ModelError(
            f"exporting {recipe.role} needs the Python module {exc.name!r}, which is not installed",
            "install the training extra: `pip install 'mmdesk[train]'`",
        ) from None
    fn = getattr(mod, "export_onnx", None)
    if not callable(fn):
        raise ModelError(f"{module} has no export_onnx()", "update mmdesk")
    with _step_errors(f"exporting {recipe.role} with {module}.export_onnx"):
        with warnings.catch_warnings(), _quiet_loggers("torch", "onnxscript"):
            warnings.simplefilter("ignore")
            fn(source, out)
    if not out.exists():
        raise ModelError(f"{module}.export_onnx did not write {out.name}", "")


@contextlib.contextmanager
def _step_errors(what: str):
    """A build step's failure as one ModelError line (the libraries it uses raise many types)."""
    try:
        yield
    except MmdeskError:
        raise
    except Exception as exc:  # noqa: BLE001 - see above
        if os.environ.get("MMDESK_DEBUG"):
            traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(f"{what} failed: {type(exc).__name__}: {first}", "set MMDESK_DEBUG=1 for the traceback") from None


# -------------------------------------------------------------------------------------------- build


@dataclass
class BuildResult:
    pack_dir: Path
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # up to date
    kept: list[str] = field(default_factory=list)  # failed, previous entry kept
    failures: dict[str, MmdeskError] = field(default_factory=dict)
    changed: bool = False
    manifest: Manifest | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    def raise_for_failures(self) -> None:
        if not self.failures:
            return
        missing = {r: e for r, e in self.failures.items() if isinstance(e, ProjectModelMissing)}
        other = {r: e for r, e in self.failures.items() if r not in missing}
        parts = [f"{e.problem}: {e.hint}" if e.hint else e.problem for e in missing.values()]
        parts += [e.problem if e.problem.startswith(r) or f" {r} " in e.problem else f"{r}: {e.problem}"
                  for r, e in other.items()]  # fmt: skip
        kept = f" (the previous {', '.join(self.kept)} kept)" if self.kept else ""
        raise ModelError(
            f"the model pack in {self.pack_dir} is incomplete, {len(self.failures)} role(s) not built{kept}: "
            + "; ".join(parts),
            "the other roles are in the pack; once the above is fixed, `mmdesk models build` builds the rest",
        )


def build_info() -> dict[str, Any]:
    def version(*dists: str) -> str | None:
        for d in dists:
            try:
                return importlib.metadata.version(d)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    return {
        "mmdesk": __version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "onnxruntime": version("onnxruntime-gpu", "onnxruntime", "onnxruntime-directml"),
        "torch": version("torch"),
    }


def _expected(recipe: Recipe, resolved: Resolved | None) -> tuple[tuple, tuple, tuple, dict]:
    """Expected inputs, outputs, labels and preprocessing; a project model's sidecar overrides the recipe."""
    meta = resolved.meta if resolved else {}
    try:
        inputs = tuple(TensorSpec.from_dict(t) for t in meta["inputs"]) if "inputs" in meta else recipe.inputs
        outputs = tuple(TensorSpec.from_dict(t) for t in meta["outputs"]) if "outputs" in meta else recipe.outputs
    except (KeyError, TypeError) as exc:
        raise ModelError(f"the sidecar of {recipe.role} has malformed inputs/outputs ({exc})", "retrain it") from None
    labels = tuple(meta.get("labels", recipe.labels))
    preprocessing = dict(meta.get("preprocessing", recipe.preprocessing))
    return inputs, outputs, labels, preprocessing


def _fingerprint(recipe: Recipe, resolved: Resolved | None) -> str:
    extra = json.dumps(resolved.meta, sort_keys=True, default=str) if resolved and resolved.meta else ""
    return recipe.fingerprint(extra)


def _share(recipe: Recipe, out: Path, files: Path, donor: tuple[ModelEntry, Path] | None) -> dict[str, str]:
    """Weights kept once (:mod:`mmdesk.modelpack.shared_weights`): the owner's go into a weights file staged next
    to its graph; a reader's common tensors point at the owner's file. Returns the entry's ``data``."""
    from mmdesk.modelpack import shared_weights

    if recipe.shares_weights:
        with _step_errors(f"moving the weights of {recipe.role} into a shared file"):
            weights = shared_weights.externalize(out, Path(recipe.file).stem)
        return {weights.name: sha256_file(weights)}
    if donor is None or not donor[0].data:
        raise ModelError(f"{recipe.role} reads the weights of {recipe.weights_from}, which the pack does not have "
                         "in a shared weights file", f"build {recipe.weights_from} too (`mmdesk models build`)")
    entry, where = donor
    for name in entry.data:  # onnxruntime reads them next to the graph: the staged one is checked below
        if not (files / name).exists():
            _link_or_copy(where / name, files / name)
    with _step_errors(f"pointing {recipe.role} at the weights of {recipe.weights_from}"):
        name, _ = shared_weights.link(out, where / entry.file)
    return {name: entry.data[name]}


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or no hard links there
        shutil.copyfile(src, dst)


def _stage_role(recipe: Recipe, ctx: FetchContext, work: Path, files: Path, resolved: Resolved | None,
                donor: tuple[ModelEntry, Path] | None = None) -> ModelEntry:
    if resolved is None:
        resolved = resolve_any(recipe.sources, ctx, work, recipe.role)
    out = files / recipe.file
    if recipe.build == "copy":
        folder = recipe.format in FOLDER_FORMATS
        if resolved.path.is_dir() != folder:
            want = "a folder" if folder else "a file"
            raise ModelError(f"{recipe.role}: {resolved.path} is not {want}, as {recipe.format} needs", "fix the recipe")
        ctx.log(f"  copying {resolved.path.name}")
        if folder:
            shutil.copytree(resolved.path, out)
        else:
            shutil.copyfile(resolved.path, out)
    else:
        ctx.log(f"  {recipe.build} from {resolved.path.name}")
        _export(recipe, resolved.path, out)
    data = _share(recipe, out, files, donor) if recipe.shares_weights or recipe.weights_from else {}
    sha = sha256_path(out)
    if recipe.sha256 and sha != recipe.sha256:
        raise ChecksumError(f"{recipe.role}: the built {recipe.file} has sha256 {sha}, expected {recipe.sha256}",
                            "fix the recipe")
    inputs, outputs, labels, preprocessing = _expected(recipe, resolved)
    where = f"the {recipe.role} model from {describe(resolved.spec)}"
    if recipe.format == "onnx":
        actual_in, actual_out = onnx_io(out)
        if inputs or outputs:
            probe = ModelEntry(role=recipe.role, file=recipe.file, sha256=sha, format="onnx", source={}, license="",
                               inputs=inputs, outputs=outputs)  # fmt: skip
            try:
                check_io(probe, out, actual_in, actual_out)
            except ModelError as exc:
                raise ModelError(f"{where} does not match the recipe: {exc.problem}", exc.hint) from None
        inputs, outputs = _refine(actual_in, inputs), _refine(actual_out, outputs)
    elif recipe.format == "tokenizer-json":
        check_tokenizer(out)
    elif recipe.format in WHISPER_FILES:
        check_whisper_dir(out, recipe.format)
    source = {**resolved.spec, "recipe": _fingerprint(recipe, resolved)}
    if resolved.meta:
        source.update({k: resolved.meta[k] for k in ("sha256", "metrics", "command") if k in resolved.meta})
    return ModelEntry(
        role=recipe.role,
        file=recipe.file,
        sha256=sha,
        format=recipe.format,
        source=source,
        license=recipe.license,
        card="",
        inputs=inputs,
        outputs=outputs,
        labels=labels,
        preprocessing=preprocessing,
        build=recipe.build,
        description=recipe.description,
        data=data,
    )


def _up_to_date(old: ModelEntry | None, recipe: Recipe, pack_dir: Path, fingerprint: str,
                donor: ModelEntry | None) -> bool:
    if old is None or old.file != recipe.file or old.source.get("recipe") != fingerprint:
        return False
    if recipe.weights_from and (donor is None or old.data != donor.data):  # the owner has new weights
        return False
    return _still_valid(old, pack_dir)


def _still_valid(old: ModelEntry | None, pack_dir: Path) -> bool:
    if old is None:
        return False
    files = {old.file: old.sha256, **old.data}
    return all((pack_dir / name).exists() and sha256_path(pack_dir / name) == sha for name, sha in files.items())


def _move(src: Path, dst: Path) -> None:
    if src.is_dir():  # a folder model: the old folder goes first (os.replace cannot replace a folder)
        if dst.is_dir():
            shutil.rmtree(dst)
        shutil.move(src, dst)
        return
    try:
        os.replace(src, dst)
    except OSError:  # another file system (the pack dir is a mount point)
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def path_size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder model."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def default_cards_dir(ctx: FetchContext) -> Path | None:
    return ctx.root / "models" / "cards" if ctx.root else None


def build_pack(
    pack_dir: Path,
    *,
    recipes: Iterable[Recipe] = DEFAULT_RECIPES,
    only: Iterable[str] | None = None,
    force: bool = False,
    ctx: FetchContext | None = None,
    cards_dir: Path | None = None,
    log: Log = _print,
) -> BuildResult:
    """Build (or update) the pack in ``pack_dir``; failures are collected per role, not raised.

    Call :meth:`BuildResult.raise_for_failures` to turn them into one ModelError.
    """
    pack_dir = Path(pack_dir).expanduser().absolute()
    recipes = tuple(recipes)
    ctx = ctx or FetchContext(log=log)
    cards_dir = cards_dir if cards_dir is not None else default_cards_dir(ctx)
    known = [r.role for r in recipes]
    selected = list(only) if only else known
    unknown = [r for r in selected if r not in known]
    if unknown:
        raise ModelError(f"unknown model role(s) {', '.join(unknown)}", f"choose from {', '.join(known)}")

    old: Manifest | None = None
    if (pack_dir / MANIFEST_NAME).is_file():
        try:
            old = load_manifest(pack_dir)
        except ModelError as exc:
            log(f"ignoring the existing manifest: {exc.problem}")
    old_entries = dict(old.entries) if old else {}

    result = BuildResult(pack_dir=pack_dir)
    entries = {role: e for role, e in old_entries.items() if role not in RETIRED_ROLES}  # their files go below
    pack_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{pack_dir.name}.build-", dir=pack_dir.parent))
    files, cards, work = staging / "files", staging / "cards", staging / "work"
    for d in (files, cards, work):
        d.mkdir()
    staged: list[str] = []
    try:
        for recipe in recipes:
            if recipe.role not in selected:
                continue
            log(f"{recipe.role}:")
            prev = old_entries.get(recipe.role)
            try:
                resolved = None
                if recipe.is_project:  # cheap, and its sidecar is part of the fingerprint
                    resolved = resolve_any(recipe.sources, ctx, work, recipe.role)
                donor = None
                if recipe.weights_from and recipe.weights_from in entries:
                    where = files if recipe.weights_from in result.built else pack_dir
                    donor = (entries[recipe.weights_from], where)
                if not force and _up_to_date(prev, recipe, pack_dir, _fingerprint(recipe, resolved),
                                             donor[0] if donor else None):
                    log(f"  up to date ({recipe.file} {prev.sha256[:12]})")
                    result.skipped.append(recipe.role)
                    continue
                role_work = work / recipe.role
                role_work.mkdir()
                entry = _stage_role(recipe, ctx, role_work, files, resolved, donor)
                shutil.rmtree(role_work, ignore_errors=True)  # extracted wheel members can be large
            except MmdeskError as exc:
                result.failures[recipe.role] = exc
                log(f"  FAILED: {exc.one_line()}")
                if _still_valid(prev, pack_dir):
                    result.kept.append(recipe.role)
                    log(f"  keeping the previous {prev.file}")
                else:
                    entries.pop(recipe.role, None)
                continue
            entries[recipe.role] = entry
            staged.append(entry.file)
            if recipe.shares_weights:
                staged += list(entry.data)
            result.built.append(recipe.role)
            log(f"  built {entry.file} ({path_size(files / entry.file):,} bytes, sha256 {entry.sha256[:12]})")

        # Model cards: models/cards/<card> -> <pack>/cards/<card>.
        by_role = {r.role: r for r in recipes}
        staged_cards: list[str] = []
        for role, entry in list(entries.items()):
            recipe = by_role.get(role)
            if recipe is None or not recipe.card:
                continue
            src = cards_dir / recipe.card if cards_dir else None
            if src is None or not src.is_file():
                if entry.card:
                    entries[role] = dataclasses.replace(entry, card="")
                log(f"note: no model card {src or recipe.card} for {role}")
                continue
            rel = f"cards/{recipe.card}"
            dst = pack_dir / rel
            if recipe.card not in staged_cards and not (dst.is_file() and filecmp.cmp(src, dst, shallow=False)):
                shutil.copyfile(src, cards / recipe.card)
                staged_cards.append(recipe.card)
            if entry.card != rel:
                entries[role] = dataclasses.replace(entry, card=rel)

        new = Manifest(directory=pack_dir, entries=entries, built=old.built if old else {})
        same = old is not None and not staged and not staged_cards and (
            json.loads(new.to_json())["models"] == json.loads(old.to_json())["models"]
        )
        if same:
            result.manifest = old
            return result
        if not entries:
            log("nothing was built; the pack was not written")
            return result

        # Swap in: the pack stops verifying (no manifest) before the first file changes.
        pack_dir.mkdir(parents=True, exist_ok=True)
        (pack_dir / MANIFEST_NAME).unlink(missing_ok=True)
        for name in staged:
            _move(files / name, pack_dir / name)
        if staged_cards:
            (pack_dir / "cards").mkdir(exist_ok=True)
            for name in staged_cards:
                _move(cards / name, pack_dir / "cards" / name)
        in_use = {e.file for e in entries.values()} | {name for e in entries.values() for name in e.data}
        for name in {n for e in old_entries.values() for n in (e.file, *e.data)} - in_use:
            if (pack_dir / name).is_dir():
                shutil.rmtree(pack_dir / name)
            elif (pack_dir / name).is_file():
                (pack_dir / name).unlink()
        new = Manifest(directory=pack_dir, entries=entries, built=build_info())
        new.write()
        result.manifest = new
        result.changed = True
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
