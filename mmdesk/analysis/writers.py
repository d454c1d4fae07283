"""Incremental, atomic result files.

Records go to ``FILE.partial``, one complete line per write, flushed each time: a run killed
outright leaves a ``.partial`` file whose every line is a finished record. ``close()`` (also after an
error or Ctrl-C) moves it onto ``FILE`` in one rename, so readers never see a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from mmdesk.analysis.records import CSV_COLUMNS, csv_row
from mmdesk.errors import MmdeskError


class PartialFile:
    """``FILE.partial`` written line by line and flushed, renamed onto ``FILE`` by ``close()``;
    standard output when there is no file. Used by every incremental result writer."""

    def __init__(self, out: str | os.PathLike[str] | None, example: str, newline: str = "") -> None:
        self.path = Path(out) if out else None
        self.partial_path = self.path.with_name(self.path.name + ".partial") if self.path else None
        self.stream: IO[str]
        if self.path is not None:
            if self.path.is_dir():
                raise MmdeskError(f"--out {self.path} is a directory", f"give a file name such as {example}")
            if not self.path.parent.exists():
                raise MmdeskError(f"the folder of --out {self.path} does not exist", "create it or choose another path")
            self.stream = open(self.partial_path, "w", encoding="utf-8", newline=newline)  # noqa: SIM115 - close()
        else:
            self.stream = sys.stdout

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.path is None:
            self.stream.flush()
            return
        if not self.stream.closed:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            os.replace(self.partial_path, self.path)


class RecordWriter:
    def __init__(self, out: str | os.PathLike[str] | None, fmt: str = "jsonl") -> None:
        if fmt not in ("jsonl", "csv"):
            raise MmdeskError(f"unknown output format {fmt!r}", "use --format jsonl or --format csv")
        self.fmt = fmt
        self._file = PartialFile(out, "result.jsonl")
        self.path, self.partial_path = self._file.path, self._file.partial_path
        self._csv = csv.DictWriter(self._file.stream, fieldnames=CSV_COLUMNS) if fmt == "csv" else None
        self._csv_header = False
        self.meta: dict[str, Any] | None = None
        self.windows = 0

    def write(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if self._csv is not None:
            if kind == "meta" or kind == "end":
                self._write_sidecar(record)
                return
            if not self._csv_header:
                self._csv.writeheader()
                self._csv_header = True
            buf = io.StringIO()
            csv.DictWriter(buf, fieldnames=CSV_COLUMNS).writerow(csv_row(record))
            self._file.write(buf.getvalue())
        else:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        if kind == "window":
            self.windows += 1

    def _write_sidecar(self, record: dict[str, Any]) -> None:
        # CSV keeps its meta and end records in FILE.meta.json, written atomically.
        if record["type"] == "meta":
            self.meta = {"meta": record}
        else:
            assert self.meta is not None
            self.meta["end"] = record
        if self.path is None:
            return
        side = self.path.with_name(self.path.name + ".meta.json")
        tmp = side.with_name(side.name + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(side)

    def close(self) -> None:
        self._file.close()
