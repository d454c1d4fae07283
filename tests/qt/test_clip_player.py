"""ClipPlayer (the Qt adapter over mmdesk.playback) plays a real clip into a VideoView: frames are painted
on the GUI thread at the view's size, positions arrive about 30 times a second, the end says so."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mmdesk.qt.qt_video import ClipPlayer, VideoView


def test_clip_player_plays_frames_and_positions_into_the_view(qtbot, ravdess_clip: Path) -> None:
    view = VideoView()
    qtbot.addWidget(view)
    view.resize(640, 360)
    view.show()
    player = ClipPlayer(view)
    assert player.available
    assert player.audio_note in ("", "no audio output device: playback is silent")
    gui = threading.current_thread()
    positions: list[float] = []
    states: list[bool] = []
    threads: set[threading.Thread] = set()
    player.position.connect(lambda t: (positions.append(t), threads.add(threading.current_thread())))
    player.playing_changed.connect(states.append)
    player.problem.connect(lambda m: pytest.fail(m))
    try:
        player.load(str(ravdess_clip))
        qtbot.waitUntil(lambda: player.frames == 1, timeout=10000)  # the first frame, before playing
        assert view.image is not None and view.source_size == (1280, 720)
        # converted to fit the view (1280x720 into 640x360), not at the clip's size
        assert view.image.width() <= 640 * view.devicePixelRatioF() and view.image.height() <= 360 * view.devicePixelRatioF()
        t0 = time.monotonic()
        player.toggle()
        assert player.playing
        qtbot.waitUntil(lambda: states[-1:] == [False] and not player.playing, timeout=20000)
        wall = time.monotonic() - t0
        assert states == [True, False]
        assert player.frames > 40, player.frames  # ~96 frames in 3.2 s; some may be dropped under load
        assert positions == sorted(positions) and positions[-1] == pytest.approx(3.2, abs=0.1)
        assert len(positions) / wall > 15 and threads == {gui}
        # seek while paused paints the frame there
        before = player.frames
        player.seek(1.0)
        qtbot.waitUntil(lambda: player.frames == before + 1 and positions[-1] == pytest.approx(1.0), timeout=5000)
        assert not player.playing
    finally:
        player.unload()
        player.close()
