"""Child process for the live GUI test: PortAudio must start with HOME pointing at the test
microphone's .asoundrc (it reads the ALSA configuration once per process).

Usage: live_child.py CAMERA_URL SECONDS. Runs the main window live with that camera and the
``mmdesk_mic`` test microphone for SECONDS and prints one JSON line of what the window showed.
"""

from __future__ import annotations

import json
import os
import sys
import time

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication


def main(camera: str, seconds: float) -> dict:
    from mmdesk.qt.qt_main_window import MainWindow
    from mmdesk.qt.qt_stall import StallMeter
    from mmdesk.session.engine import Engine

    app = QApplication(sys.argv[:1])
    w = MainWindow(Engine(), QSettings("mmdesk-test", "mmdesk"))
    w.resize(1280, 800)
    w.show()
    meter = StallMeter()
    deadline = time.monotonic() + 120
    while w.engine.loaded is None and time.monotonic() < deadline:  # models load first, as for a user
        app.processEvents()
        time.sleep(0.02)
    w.set_devices(None if camera == "none" else camera, None if os.environ.get("NO_MIC") else "mmdesk_mic")
    w.start_live()
    meter.start()
    seen = {"frames": 0, "max_db": -100.0, "max_fps": 0.0, "banners": [], "wave_max": 0.0, "wave_min": 0.0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
        if w.video.image is not None:
            seen["frames"] += 1
        seen["max_db"] = max(seen["max_db"], w.audio.meter.db)
        _, lo, hi = w.audio.waveform()
        if len(hi):
            seen["wave_max"], seen["wave_min"] = max(seen["wave_max"], float(hi.max())), min(seen["wave_min"], float(lo.min()))
        if w.live is not None:
            seen["max_fps"] = max(seen["max_fps"], w.live.stats().capture_fps)
        if w.banner.isVisible() and w.banner.text() not in seen["banners"]:
            seen["banners"].append(w.banner.text())
    meter.stop()
    stats = w.live.stats() if w.live is not None else None
    windows = w.data.windows
    out = {
        **seen,
        "windows": len(windows),
        "faces": sum(r["face"]["present"] for r in windows),
        "face_reasons": sorted({r["face"].get("reason", "") for r in windows}),
        "voice_reasons": sorted({r["voice"].get("reason", "") for r in windows}),
        "vad_max": max((r["voice"]["vad_prob"] for r in windows), default=0.0),
        "timeline_points": len(w.timeline.curves["happy"].getData()[0] if windows else ()),
        "timeline_source": w.timeline.source,
        "last_happy": None,
        "timeline_last_happy": None,
        "provider": w.stat["provider"].text(),
        "status": {k: v.text() for k, v in w.stat.items()},
        "dropped_windows": stats.dropped_windows if stats else None,
        "stalls": meter.report(),
    }
    # the newest window the plotted judgement has a value for, as the timeline shows it
    src = w.timeline.source
    shown = [r for r in windows if (r.get("fused") if src == "fused" else r[src].get("probs"))]
    if shown:
        last = shown[-1]
        out["last_happy"] = (last["fused"] if src == "fused" else last[src])["probs"]["happy"]
        x, y = w.timeline.curves["happy"].getData()
        out["timeline_last_happy"] = float(y[list(x).index((last["start"] + last["end"]) / 2)])
    w.shutdown()
    w.deleteLater()
    app.processEvents()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2])), default=str), flush=True)
