"""Save, reopen and export sessions.

A saved session is the JSON Lines file ``mmdesk analyze`` writes (meta, windows, end), with the
app's settings added to the meta record under ``"app"``; so ``mmdesk analyze`` output opens in the
app too. Files are written to ``FILE.tmp`` and renamed onto ``FILE``: a crash never leaves a
half-written session.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmdesk.analysis.records import CSV_COLUMNS, csv_row
from mmdesk.errors import MmdeskError
from mmdesk.session.model import SessionData

SESSION_SUFFIX = ".jsonl"



def _atomic_write(path: Path, write: Any) -> None:
    path = Path(path)
    if path.is_dir():
        raise MmdeskError(f"{path} is a folder", "choose a file name")
    if not path.parent.is_dir():
        raise MmdeskError(f"the folder of {path} does not exist", "create it or choose another place")
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise MmdeskError(f"cannot write {path} ({e.strerror or e})", "check the disk space and permissions") from None


def save_session(path: str | os.PathLike[str], data: SessionData, app_settings: dict[str, Any] | None = None) -> Path:
    """Write the session as JSON Lines (meta with ``app`` settings, windows, end)."""
    meta = dict(data.meta) if data.meta else {"type": "meta"}
    meta["app"] = {"saved": datetime.now(UTC).isoformat(timespec="seconds"), **(app_settings or {})}
    records = [meta, *data.windows]
    if data.end is not None:
        records.append(data.end)

    def write(f: Any) -> None:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    _atomic_write(Path(path), write)
    return Path(path)


def load_session(path: str | os.PathLike[str]) -> SessionData:
    """Read a saved session or ``mmdesk analyze`` output; a bad line is skipped, not fatal."""
    p = Path(path)
    if not p.is_file():
        raise MmdeskError(f"session file {p} not found", "choose a .jsonl file saved by mmdesk")
    data = SessionData()
    bad = 0
    try:
        with open(p, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if not isinstance(record, dict) or record.get("type") not in ("meta", "window", "end"):
                        raise ValueError
                    if record["type"] == "window":
                        float(record["start"]), float(record["end"]), int(record["index"])
                except (ValueError, KeyError, TypeError):
                    bad += 1
                    continue
                data.add(record)
    except (OSError, UnicodeDecodeError) as e:
        raise MmdeskError(f"cannot read session {p} ({e})", "choose a .jsonl file saved by mmdesk") from None
    if not data.meta and not data.windows:
        raise MmdeskError(f"{p} holds no mmdesk records", "choose a .jsonl file saved by mmdesk or mmdesk analyze")
    if bad:
        data.meta.setdefault("notes", []).append(f"{bad} unreadable line(s) skipped when opening {p.name}")
    return data


def export_csv(path: str | os.PathLike[str], data: SessionData) -> Path:
    """One row per window, with the columns of ``mmdesk analyze --format csv`` (fusion included)."""

    def write(f: Any) -> None:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for record in data.windows:
            w.writerow(csv_row(record))

    _atomic_write(Path(path), write)
    return Path(path)


def export_jsonl(path: str | os.PathLike[str], data: SessionData) -> Path:
    """The records as JSON Lines, exactly as ``mmdesk analyze`` writes them (no app settings)."""

    def write(f: Any) -> None:
        for r in data.records():
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    _atomic_write(Path(path), write)
    return Path(path)
