"""The bundle's smaller ICU data library (packaging/icu_data.py), built from the Qt that the tests run.

Qt's ICU users are run twice in a child process, with Qt's own data library and with the slim one
preloaded (the Qt libraries find libicudata through their RUNPATH, so LD_PRELOAD is the way to swap it):
what the module docstring says is kept must give the same answers, and what it says is dropped must fall
back, not fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("icu_data", ROOT / "packaging" / "icu_data.py")
icu_data = importlib.util.module_from_spec(spec)
spec.loader.exec_module(icu_data)

pytest.importorskip("PySide6")
if not all(shutil.which(t) for t in ("gcc", "nm", "readelf")):
    pytest.skip("gcc and binutils build the library", allow_module_level=True)

PROBE = r"""
import functools, json
from PySide6.QtCore import (QCollator, QCoreApplication, QDateTime, QLocale, QStringDecoder, QTextBoundaryFinder,
                            QTimeZone, QUrl)
app = QCoreApplication([])
words = ["zebra", "Äpfel", "apfel", "Bär", "ähnlich", "Apfel", "éclair", "eclair"]
tz = QTimeZone(b"Europe/Berlin")
finder = QTextBoundaryFinder(QTextBoundaryFinder.BoundaryType.Word, "Hello world, สวัสดีครับ 你好世界")
bounds, p = [], finder.toNextBoundary()
while p != -1:
    bounds.append(p)
    p = finder.toNextBoundary()
print(json.dumps({
    "sort_en": sorted(words, key=functools.cmp_to_key(QCollator(QLocale("en_US")).compare)),
    "sort_de": sorted(words, key=functools.cmp_to_key(QCollator(QLocale("de_DE")).compare)),
    "sort_sv": sorted(["zebra", "öl", "ål", "äpple", "apa"], key=functools.cmp_to_key(QCollator(QLocale("sv_SE")).compare)),
    "upper_de": QLocale("de_DE").toUpper("straße"), "upper_tr": QLocale("tr_TR").toUpper("istanbul"),
    "tz": [tz.isValid(), tz.offsetFromUtc(QDateTime.fromString("2026-01-15T12:00:00Z", "yyyy-MM-ddTHH:mm:ssZ")),
           len(QTimeZone.availableTimeZoneIds())],
    "tz_en": tz.displayName(QTimeZone.TimeType.StandardTime, QTimeZone.NameType.LongName, QLocale("en_US")),
    "tz_de": tz.displayName(QTimeZone.TimeType.StandardTime, QTimeZone.NameType.LongName, QLocale("de_DE")),
    "number_de": QLocale("de_DE").toString(1234567.891, "f", 2),
    "idna": QUrl.fromUserInput("http://bücher.example/").toEncoded().data().decode(),
    "utf16": QStringDecoder("UTF-16").isValid(), "cp1252": QStringDecoder("windows-1252").isValid(),
    "word_bounds": bounds,
}, ensure_ascii=False))
"""


def _qt_icu_data() -> Path:
    import PySide6

    libs = sorted((Path(PySide6.__file__).parent / "Qt" / "lib").glob("libicudata.so.*"))
    if not libs:
        pytest.skip("this PySide6 has no ICU data library")
    return libs[0]


def _probe(preload: Path | None) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    if preload:
        env["LD_PRELOAD"] = str(preload)
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def slim(tmp_path_factory) -> tuple[Path, tuple[int, int, int]]:
    work = tmp_path_factory.mktemp("icu")
    lib = work / _qt_icu_data().name
    shutil.copyfile(_qt_icu_data(), lib)
    return lib, icu_data.slim_library(lib, work / "build")


def test_package_round_trip_is_byte_identical() -> None:
    lib = _qt_icu_data()
    _sym, offset, size = icu_data.data_symbol(lib)
    raw = lib.read_bytes()[offset:offset + size]
    header, items = icu_data.read_package(raw)
    assert len(items) > 3000 and items[0][0].startswith("icudt")
    assert icu_data.write_package(header, items) == raw


def test_keep_rules() -> None:
    keep = icu_data.keep_item
    for name in ("icudt73l/coll/ucadata.icu", "icudt73l/coll/root.res", "icudt73l/coll/en_US.res",
                 "icudt73l/zone/en.res", "icudt73l/zone/tzdbNames.res", "icudt73l/uprops.icu",
                 "icudt73l/zoneinfo64.res", "icudt73l/cnvalias.icu", "icudt73l/brkitr/char.brk",
                 "icudt73l/en.res", "icudt73l/root.res", "icudt73l/pool.res", "icudt73l/units.res",
                 "icudt73l/supplementalData.res", "icudt73l/uts46.nrm"):
        assert keep(name), name
    for name in ("icudt73l/coll/de.res", "icudt73l/zone/zh_Hant_TW.res", "icudt73l/curr/fr.res",
                 "icudt73l/brkitr/cjdict.dict", "icudt73l/translit/root.res", "icudt73l/rbnf/en.res",
                 "icudt73l/ibm-1390_P110-2003.cnv", "icudt73l/de.res", "icudt73l/sr_Latn.res"):
        assert not keep(name), name


def test_slim_library_is_a_drop_in(slim) -> None:
    lib, (saved, kept, dropped) = slim
    assert saved > 20e6 and lib.stat().st_size < 8e6 and kept > 500 and dropped > 2500
    symbol, offset, size = icu_data.data_symbol(lib)
    assert symbol == icu_data.data_symbol(_qt_icu_data())[0]
    names = [n for n, _ in icu_data.read_package(lib.read_bytes()[offset:offset + size])[1]]
    assert names == sorted(names, key=str.encode) and all(icu_data.keep_item(n) for n in names)


def test_qt_gives_the_same_answers_where_the_data_is_kept(slim) -> None:
    lib, _ = slim
    full, small = _probe(None), _probe(lib)
    for key in ("sort_en", "sort_de", "upper_de", "upper_tr", "tz", "tz_en", "number_de", "idna", "utf16",
                "word_bounds"):
        assert small[key] == full[key], key
    # dropped on purpose, and they fall back: Swedish collation -> root order, German zone names -> English,
    # ICU's legacy code pages -> not offered
    assert small["sort_sv"] == ["ål", "apa", "äpple", "öl", "zebra"] != full["sort_sv"]
    assert small["tz_de"] == full["tz_en"] != full["tz_de"]
    assert full["cp1252"] and not small["cp1252"]
