"""A smaller ICU data library for the bundle: Qt's 32 MB ``libicudata.so.NN`` without the parts Qt never asks
mmdesk's ICU for.

Qt Core links ICU, whose data library holds one ICU "common data" package (the symbol ``icudtNN_dat``):
~3,900 items, most of them translations of currency, language, region, unit and time-zone names into
~800 locales, collation tailorings, transliterators, word dictionaries for Chinese, Japanese, Thai, Khmer,
Burmese and Lao line breaking, and ~200 legacy code-page converters. The bundle keeps what Qt uses ICU for
with mmdesk's English UI (QCollator, case mapping, normalisation, IDNA, time-zone ids, locale fallback)
and drops:

* code-page converters (``*.cnv``): mmdesk reads text files in Python, never through QStringConverter's
  ICU codecs; UTF-8/16/32 and Latin-1 are built into Qt and need no data;
* word-break dictionaries (``brkitr/*.dict``): mmdesk breaks no text with ICU; Qt lays out text with its
  own Unicode tables;
* transliterators and spelled-out number rules (``translit/``, ``rbnf/``);
* every locale but English and root in the collation, currency, language, region, unit and zone-name
  trees and among the top-level locale files: ICU falls back to root for the others, as for any locale it
  does not know, with a warning status, never an error.

The filtered package is written in ICU's own common-data layout (header, sorted table of contents, items
16-byte aligned) and assembled with gcc into a library with the same SONAME and symbol, so nothing that
links it notices. ``tests/installer`` runs Qt's ICU users against it.
"""

from __future__ import annotations

import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

ALIGN = 16
PAD = b"\xaa"  # what ICU's own tools pad with (a package read and written unchanged is byte-identical)
#: item trees whose files are per-locale translations or tailorings
LOCALE_TREES = ("coll", "curr", "lang", "region", "unit", "zone")
#: a per-locale file: "de.res", "zh_Hant_TW.res", "sr_Latn.res" (not "root.res", "pool.res", "units.res")
LOCALE_FILE = re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]+)*\.res$")


class IcuDataError(RuntimeError):
    pass


def keep_item(name: str) -> bool:
    """Whether the bundle keeps the item ``icudtNNl/<path>`` (see the module docstring)."""
    path = name.split("/", 1)[1] if "/" in name else name
    tree, _, base = path.rpartition("/")
    if base.endswith(".cnv") or tree in ("translit", "rbnf"):
        return False
    if tree == "brkitr" and base.endswith(".dict"):
        return False
    if tree in ("", *LOCALE_TREES) and LOCALE_FILE.match(base):
        return base.startswith("en")
    return True


def read_package(data: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(header, [(item name, item bytes incl. its alignment padding)]) of an ICU common-data package."""
    if len(data) < 32 or data[2:4] != b"\xda\x27":
        raise IcuDataError("not an ICU data package (magic bytes missing)")
    header_size = struct.unpack_from("<H", data, 0)[0]
    if data[4 + 4:4 + 4 + 1] != b"\x00" or data[4 + 8:4 + 12] != b"CmnD":
        raise IcuDataError("only little-endian ICU common data (CmnD) packages are supported")
    count = struct.unpack_from("<I", data, header_size)[0]
    entries = [struct.unpack_from("<II", data, header_size + 4 + 8 * i) for i in range(count)]
    items = []
    for i, (name_at, data_at) in enumerate(entries):
        start = header_size + name_at
        name = data[start:data.index(b"\0", start)].decode("ascii")
        end = header_size + entries[i + 1][1] if i + 1 < count else len(data)
        items.append((name, data[header_size + data_at:end]))
    return data[:header_size], items


def write_package(header: bytes, items: list[tuple[str, bytes]]) -> bytes:
    """The package again, with only ``items`` (kept in ICU's sorted order: it binary-searches the names)."""
    items = sorted(items, key=lambda kv: kv[0].encode("ascii"))
    names = b"".join(n.encode("ascii") + b"\0" for n, _ in items)
    toc = 4 + 8 * len(items)
    names_at = toc
    data_at = toc + len(names)
    data_at += -(len(header) + data_at) % ALIGN
    table, blob, name_off = [], bytearray(), names_at
    for name, body in items:
        table.append(struct.pack("<II", name_off, data_at + len(blob)))
        name_off += len(name) + 1
        blob += body
        blob += PAD * (-(len(header) + data_at + len(blob)) % ALIGN)
    head = header + struct.pack("<I", len(items)) + b"".join(table) + names
    return head + PAD * (-len(head) % ALIGN) + bytes(blob)


def data_symbol(lib: Path) -> tuple[str, int, int]:
    """(symbol, file offset, size) of the package inside an ICU data library (binutils)."""
    syms = subprocess.run(["nm", "-D", "-S", "--defined-only", str(lib)], capture_output=True, text=True,
                          check=True).stdout.split()
    for i in range(0, len(syms) - 3, 4):
        addr, size, _kind, name = syms[i:i + 4]
        if re.fullmatch(r"icudt\d+_dat", name):
            return name, _file_offset(lib, int(addr, 16)), int(size, 16)
    raise IcuDataError(f"{lib.name} exports no icudtNN_dat symbol")


def _file_offset(lib: Path, vaddr: int) -> int:
    out = subprocess.run(["readelf", "-lW", str(lib)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            offset, start, size = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if start <= vaddr < start + size:
                return vaddr - start + offset
    raise IcuDataError(f"{lib.name}: the data symbol is in no loadable segment")


def slim_library(lib: Path, work: Path, keep: Callable[[str], bool] = keep_item) -> tuple[int, int, int]:
    """Replace ``lib`` (an ICU data library) by one holding only the kept items; returns (bytes saved, items
    kept, items dropped)."""
    symbol, offset, size = data_symbol(lib)
    raw = lib.read_bytes()
    header, items = read_package(raw[offset:offset + size])
    kept = [(n, b) for n, b in items if keep(n)]
    package = write_package(header, kept)
    work.mkdir(parents=True, exist_ok=True)
    dat, asm, out = work / "icudata.dat", work / "icudata.S", work / lib.name
    dat.write_bytes(package)
    asm.write_text(
        "/* mmdesk: ICU data for the desktop bundle, filtered by packaging/icu_data.py */\n"
        f'.section .rodata\n.globl {symbol}\n.type {symbol}, @object\n.balign 16\n{symbol}:\n'
        f'.incbin "{dat}"\n.size {symbol}, . - {symbol}\n.section .note.GNU-stack,"",@progbits\n',
        encoding="ascii")
    soname = _soname(lib)
    subprocess.run(["gcc", "-shared", "-nostdlib", f"-Wl,-soname,{soname}", "-o", str(out), str(asm)],
                   check=True, capture_output=True)
    saved = lib.stat().st_size - out.stat().st_size
    out.replace(lib)
    return saved, len(kept), len(items) - len(kept)


def _soname(lib: Path) -> str:
    out = subprocess.run(["readelf", "-dW", str(lib)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    return m.group(1) if m else lib.name
