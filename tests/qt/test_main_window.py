"""The main window on a real RAVDESS clip: panels hold the analysis' values, seek by click, keys,
save/reopen/export, drag and drop, missing devices with text-only analysis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication
from qt_support import temp_settings, wait_until

from mmdesk.core.labels import LABELS
from mmdesk.qt.qt_main_window import MainWindow
from mmdesk.qt.qt_timeline import LIVE_SPAN_S, live_range
from mmdesk.session.model import FUSION_MISSING, MODALITIES


def alone_top(record: dict, modality: str) -> str:
    """What the "alone" card must show: the fusion head's single-modality pass, else the unimodal model."""
    view = (record.get("alone") or {}).get(modality) or record[modality]
    return max(LABELS, key=lambda k: view["probs"][k])


@pytest.fixture(scope="module")
def analysed(qapp, engine, ravdess_clip: Path, tmp_path_factory) -> MainWindow:
    """One window that analysed the clip (shared: the analysis is the slow part)."""
    w = MainWindow(engine, temp_settings(tmp_path_factory.mktemp("prefs")))
    w.resize(1280, 800)
    w.show()
    finished: list[bool] = []
    w.analysis_finished.connect(finished.append)
    w.open_clip(str(ravdess_clip))
    wait_until(qapp, lambda: finished, 120, "the clip analysis")
    wait_until(qapp, lambda: not (w._dirty or w._plot_steps), 5, "a redraw")
    assert finished == [True], w.last_error
    yield w
    w.close()


def test_panels_hold_the_values_of_the_analysis(analysed: MainWindow) -> None:
    w = analysed
    windows = w.data.windows
    assert len(windows) == 6 and w.data.end["complete"] and not w.progress.isVisible()
    fusion = w.data.fusion_available
    src = w.timeline.source
    assert src == ("fused" if fusion else "face")  # no fused values: the face judgement is plotted
    for label in LABELS:
        x, y = w.timeline.curves[label].getData()
        view = [r["fused"] if src == "fused" else r["face"] for r in windows]
        assert np.allclose(y, [v["probs"][label] for v in view])
        assert np.allclose(x, [(r["start"] + r["end"]) / 2 for r in windows])
    rec = w.selected_record()
    assert rec is not None and w.timeline.selection.getRegion() == pytest.approx((rec["start"], rec["end"]))
    assert w.alone.shown["face"] == alone_top(rec, "face") and w.video.box == tuple(rec["face"]["box"])
    shown = rec["fused"] if fusion else rec["face"]  # the box says whose judgement it carries
    assert w.video.label == f"{shown['label']} {shown['probs'][shown['label']]:.2f} ({'fused' if fusion else 'face'})"
    if fusion:
        assert w.attribution.shown == {m: rec["attribution"]["values"][m] for m in MODALITIES}
        assert w.interaction.shown_type == rec["interaction"]["type"]
        assert "paired by label" in w.interaction.caveat.text()  # the training caveat is on screen
        assert w.alone.shown["fused"] == rec["fused"]["label"]
        assert np.allclose(w.timeline.curves["sarcasm"].getData()[1], [r["fused"]["sarcasm"] for r in windows])
    else:  # an honest message instead of numbers
        assert w.attribution.shown == {} and FUSION_MISSING in w.attribution.message.text()
        assert w.interaction.shown_type == "" and FUSION_MISSING in w.interaction.reason.text()
        assert "fused" not in w.alone.shown and FUSION_MISSING in w.timeline.note.text()
    assert "CPU" in w.stat["provider"].text()
    # the clip's speech, transcribed, reached the text model and the transcript pane
    said = [r for r in windows if r["text"]["present"]]
    assert said and all(r["text"]["origins"] == ["asr"] for r in said)
    # ...once, as said, not in the overlapping pieces the windows cut it into
    assert [line.split(") ", 1)[1] for line in w.transcript.lines] == ["Kids are talking by the door."], \
        w.transcript.lines
    (utt,) = w.data.end["asr"]["transcript"]
    assert w.transcript.lines[0].startswith(f"[0:{utt['start']:04.1f}] (asr)")
    if rec["text"]["present"]:
        assert w.alone.shown["text"] == alone_top(rec, "text")


def test_click_on_the_timeline_seeks_and_selects(analysed: MainWindow, qtbot) -> None:
    w = analysed
    target = w.data.windows[1]
    t = (target["start"] + target["end"]) / 2
    x, y = w.timeline.x_to_widget(t)
    viewport = w.timeline.plot.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=viewport.mapFrom(w.timeline, QPoint(x, y)))
    assert w.selected == 1 and w.position == pytest.approx(t, abs=0.05)
    assert w.timeline.selection.getRegion() == pytest.approx((target["start"], target["end"]))
    assert w.alone.shown["face"] == alone_top(target, "face")
    # arrows step by window; space toggles playback
    w.setFocus()
    qtbot.keyClick(w, Qt.Key.Key_Right)
    assert w.selected == 2 and w.position == pytest.approx((w.data.windows[2]["start"] + w.data.windows[2]["end"]) / 2)
    qtbot.keyClick(w, Qt.Key.Key_Left)
    qtbot.keyClick(w, Qt.Key.Key_Left)
    qtbot.keyClick(w, Qt.Key.Key_Left)
    assert w.selected == 0
    if w.player.available:
        qtbot.keyClick(w, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: w.player.playing, timeout=5000)
        qtbot.keyClick(w, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: not w.player.playing, timeout=5000)


def test_save_reopen_export_and_drop(analysed: MainWindow, engine, qtbot, tmp_path: Path) -> None:
    w = analysed
    w.select(3)
    session = tmp_path / "talk.jsonl"
    assert w.save(str(session))
    assert w.export(str(tmp_path / "t.csv"), "csv") and w.export(str(tmp_path / "t.out.jsonl"), "jsonl")
    assert w.export(str(tmp_path / "t.png"), "png") and (tmp_path / "t.png").stat().st_size > 10_000
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 7
    lines = [json.loads(x) for x in (tmp_path / "t.out.jsonl").read_text().splitlines()]
    assert lines[1:-1] == w.data.windows
    assert not w.save(str(tmp_path / "missing" / "s.jsonl")) and "does not exist" in w.banner.text()

    other = MainWindow(engine, temp_settings(tmp_path))
    qtbot.addWidget(other)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(session))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    other.dropEvent(drop)
    assert other.mode == "session" and other.data.windows == w.data.windows
    assert other.selected == 3 and other.data.meta["models"] == w.data.meta["models"]
    assert other.data.source_path == w.data.source_path
    assert other.transcript.lines == w.transcript.lines  # the reopened session shows the same transcript
    other.shutdown()


def test_preferences_persist(engine, qtbot, tmp_path: Path) -> None:
    w = MainWindow(engine, temp_settings(tmp_path))
    qtbot.addWidget(w)
    w.timeline.set_source("voice")
    w.camera_combo.setEditText("http://127.0.0.1:9/cam.mjpg")
    w.close()
    again = MainWindow(engine, temp_settings(tmp_path))
    qtbot.addWidget(again)
    assert again.timeline.source == "voice" and again.camera_combo.currentText() == "http://127.0.0.1:9/cam.mjpg"
    again.shutdown()


def test_missing_devices_keep_text_analysis_working(engine, qtbot, tmp_path: Path) -> None:
    w = MainWindow(engine, temp_settings(tmp_path))
    qtbot.addWidget(w)
    w.show()
    w.set_devices(camera=97, microphone="no such microphone")
    w.start_live()
    qtbot.waitUntil(lambda: "no camera at index 97" in w.video.message, timeout=15000)
    assert w.banner.isVisible() and w.live is not None
    w.text_box.setText("What a wonderful surprise, thank you so much!")
    qtbot.keyClick(w.text_box, Qt.Key.Key_Return)
    assert w.text_box.text() == ""
    qtbot.waitUntil(lambda: any(r["text"]["present"] for r in w.data.windows), timeout=20000)
    rec = next(r for r in w.data.windows if r["text"]["present"])
    assert rec["text"]["text"] == "What a wonderful surprise, thank you so much!" and rec["text"]["origins"] == ["typed"]
    assert not rec["face"]["present"] and rec["face"]["reason"] == "no camera"
    assert any("(typed) What a wonderful surprise" in line for line in w.transcript.lines)
    qtbot.waitUntil(lambda: "windows/s" in w.stat["wps"].text() and "CPU" in w.stat["provider"].text(), timeout=5000)
    w.shutdown()
    assert w.live is None and w.data.end is not None


def test_stopping_live_returns_at_once_and_keeps_the_session(engine, qtbot, tmp_path: Path) -> None:
    """Stop closes threads and devices in the background (it froze the window ~1.5 s); the windows
    are kept and the session ends with an end record; a start while it stops waits for it."""
    w = MainWindow(engine, temp_settings(tmp_path))
    qtbot.addWidget(w)
    w.show()
    w.set_devices(camera=None, microphone=None)
    w.live_button.click()
    assert w.live is not None and w.mode == "live"
    w.text_box.setText("Thank you, that was really kind of you.")
    qtbot.keyClick(w.text_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: any(r["text"]["present"] for r in w.data.windows), timeout=20000)
    w.live_button.click()  # stop
    assert w.live is None and w.live_button.text() == "Start live"
    qtbot.waitUntil(lambda: w.mode == "session" and w.data.end is not None, timeout=15000)
    kept = [r["text"]["text"] for r in w.data.windows if r["text"]["present"]]
    assert kept == ["Thank you, that was really kind of you."]
    w.live_button.click()  # start again, then stop and start before the stop has finished
    w.live_button.click()
    w.live_button.click()
    assert w.mode == "live" and w.live_button.text() == "Stop live"
    # started, and its meta record arrived (a session stopped before that has nothing to end)
    qtbot.waitUntil(lambda: w.live is not None and not w._stopping and bool(w.data.meta), timeout=15000)
    assert not any(r["text"]["present"] for r in w.data.windows) and w.data.end is None  # a fresh session
    w.shutdown()
    assert w.live is None and w.data.end is not None


def test_live_views_scroll_and_hold_the_values_of_the_windows_in_view(analysed: MainWindow, engine, tmp_path: Path) -> None:
    """A live session longer than the timeline's span: the timeline and the stacked contributions
    show the windows in view with their values, and new values never resize the plots (a row of
    cards as wide as its text once moved the splitter back and forth, redrawing every axis)."""
    w = MainWindow(engine, temp_settings(tmp_path))
    w.resize(1280, 800)
    w.show()
    w._reset(mode="live")  # the views of a live session, fed records as its inference thread delivers them
    w._on_record(analysed.data.meta)
    sizes, card_widths = set(), set()
    for i in range(100):  # 51.5 s of windows, 2 s every 0.5 s, with the clip's values
        r = {**analysed.data.windows[i % len(analysed.data.windows)], "index": i, "start": i * 0.5, "end": i * 0.5 + 2}
        w._on_record(r)
        while True:  # the timeline, then the stacked contributions and the panels
            w._redraw()
            if not w._plot_steps:
                break
        QApplication.processEvents()
        sizes.add((w.timeline.plot.size().toTuple(), w.attribution.stack.size().toTuple(), w.audio.plot.size().toTuple()))
        card_widths.add(w.alone.minimumSizeHint().width())
    assert len(sizes) == 1 and len(card_widths) == 1, (sizes, card_widths)
    windows, end = w.data.windows, 51.5
    assert w.selected_record() is windows[-1] and w.timeline.selection.getRegion() == pytest.approx((49.5, 51.5))
    assert w.timeline.plot.getViewBox().viewRange()[0] == pytest.approx(live_range(end))
    # drawn: one window left of the view (its line enters from the edge), then every window in it
    centres = np.array([(r["start"] + r["end"]) / 2 for r in windows])
    first = int(np.searchsorted(centres, end - LIVE_SPAN_S)) - 1
    src = w.timeline.source
    for label in LABELS:
        x, y = w.timeline.curves[label].getData()
        assert np.allclose(x, centres[first:])
        assert np.allclose(y, [(r["fused"] if src == "fused" else r[src])["probs"][label] for r in windows[first:]])
    if w.data.fusion_available:
        values = np.array([[r["attribution"]["values"][m] for m in MODALITIES] for r in windows[first:]])
        below = np.zeros(len(values))  # the stack: positive shares upwards, negative downwards from 0
        above = np.zeros(len(values))
        for k, m in enumerate(MODALITIES):
            bars = w.attribution.stack_items[m].opts
            assert np.allclose(bars["x"], centres[first:]) and np.allclose(bars["height"], np.abs(values[:, k]))
            assert np.allclose(bars["y0"], np.where(values[:, k] >= 0, above, below + values[:, k]))
            above, below = above + values[:, k].clip(0), below + values[:, k].clip(None, 0)
        assert w.attribution.shown == {m: windows[-1]["attribution"]["values"][m] for m in MODALITIES}
    w.shutdown()


def test_status_bar_shows_the_provider_the_sessions_report(pack_dir: Path, qtbot, tmp_path: Path, monkeypatch) -> None:
    """There is no GPU here: onnxruntime is made to report CUDA for every session the engine
    opens. The status bar must show what the running sessions report, not what was asked for."""
    import onnxruntime as ort

    from mmdesk.session.engine import Engine, EngineSettings

    with monkeypatch.context() as m:
        m.setattr(ort.InferenceSession, "get_providers", lambda self: ["CUDAExecutionProvider", "CPUExecutionProvider"])
        cuda = Engine(EngineSettings(device="auto", models=str(pack_dir)))
        assert set(cuda.analyzer().providers().values()) == {"CUDAExecutionProvider"}
    w = MainWindow(cuda, temp_settings(tmp_path))
    qtbot.addWidget(w)
    w.show()
    w.set_devices(camera=None, microphone=None)
    w.start_live()
    qtbot.waitUntil(lambda: bool(w.data.meta), timeout=30000)  # the inference thread read the providers
    assert w.stat["provider"].text() == "Provider: <b>CUDA</b>"
    w._show_stats(provider="—")  # what the live session's stats say, a few times a second
    qtbot.waitUntil(lambda: w.stat["provider"].text() == "Provider: <b>CUDA</b>", timeout=5000)
    # a clip's records: one model left on the CPU is said so
    meta = w.data.meta
    w._reset(mode="clip")
    w._on_record({**meta, "providers": {"face_expression": "CUDAExecutionProvider",
                                               "voice_emotion": "CPUExecutionProvider"}})
    assert w.stat["provider"].text() == "Provider: <b>CUDA (partly CPU)</b>"
    w.shutdown()
