"""Where decoded audio goes and where the playback clock comes from.

``DeviceOutput`` plays float32 samples through a sounddevice (PortAudio) output stream fed by a
callback; the number of samples the device has taken is the master clock, so video follows what is
heard. ``SilentOutput`` is the clock without a device (none present, or it failed): monotonic time.
Both are used from the player's thread only, except ``DeviceOutput._callback`` (PortAudio's thread),
which shares the queue and the counters with it under one lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: the device callback has not run for this long while playing: the device is gone or hung
STALL_S = 1.5
#: PortAudio's output latency asked for: long enough that a Python callback delayed by the GIL
#: (analysis threads run beside playback) does not underrun, short enough for pause to feel prompt
LATENCY_S = 0.1

log = logging.getLogger(__name__)


class AudioOutput(Protocol):
    silent: bool
    rate: int
    channels: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def reset(self, at: float) -> None: ...
    def position(self) -> float: ...
    def write(self, samples: np.ndarray) -> None: ...
    def end(self) -> None: ...
    def buffered(self) -> float: ...
    def failure(self) -> str: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class OutputDevice:
    """The output device playback would use (found once, on the caller's thread)."""

    index: int
    name: str
    rate: int
    channels: int


def find_output(device: int | str | None = None) -> tuple[OutputDevice | None, str]:
    """(the default or named output device, "") or (None, why playback will be silent)."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:  # OSError: PortAudio itself is missing
        return None, f"no audio output ({e}): playback is silent"
    try:
        info: Any = sd.query_devices(device, kind="output")
    except (ValueError, sd.PortAudioError):
        return None, "no audio output device: playback is silent"
    if int(info["max_output_channels"]) < 1:
        return None, "no audio output device: playback is silent"
    return OutputDevice(int(info["index"]), str(info["name"]), int(info["default_samplerate"]),
                        min(2, int(info["max_output_channels"]))), ""


class SilentOutput:
    """No sound; the clock is monotonic time while running."""

    silent = True
    rate = 0
    channels = 0

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._at = 0.0  # clip time when (re)started or when stopped
        self._t0: float | None = None  # monotonic time of the start; None while stopped

    def start(self) -> None:
        if self._t0 is None:
            self._t0 = self._clock()

    def stop(self) -> None:
        self._at = self.position()
        self._t0 = None

    def reset(self, at: float) -> None:
        self._at = at
        if self._t0 is not None:
            self._t0 = self._clock()

    def position(self) -> float:
        return self._at if self._t0 is None else self._at + (self._clock() - self._t0)

    def write(self, samples: np.ndarray) -> None:
        pass

    def end(self) -> None:
        pass

    def buffered(self) -> float:
        return 0.0

    def failure(self) -> str:
        return ""

    def close(self) -> None:
        self._t0 = None


class DeviceOutput:
    """A PortAudio output stream playing queued (n, channels) float32 blocks.

    Clock: ``base + taken / rate - latency`` where ``taken`` counts the clip's samples the callback
    handed to the device (an underrun does not advance it, so video waits for late audio instead of
    running ahead); after ``end()`` the silence after the last sample counts too, so a video track
    longer than its audio keeps playing at the device's pace.
    """

    silent = False

    def __init__(self, device: OutputDevice) -> None:
        import sounddevice as sd

        self.rate, self.channels = device.rate, device.channels
        self._lock = threading.Lock()
        self._blocks: deque[np.ndarray] = deque()
        self._head = 0  # samples of _blocks[0] already taken
        self._queued = 0
        self._taken = 0
        self._base = 0.0
        self._floor = 0.0  # the clock never goes below this (the position at the last start/seek)
        self._ended = False
        self._running = False
        self._last_callback = 0.0
        self._lost = ""
        self._stream = sd.OutputStream(device=device.index, samplerate=self.rate, channels=self.channels,
                                       dtype="float32", latency=LATENCY_S, callback=self._callback,
                                       finished_callback=self._finished)
        self.latency = float(self._stream.latency)

    def _callback(self, outdata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        # PortAudio's thread: copy what is queued, nothing else (it holds the GIL meanwhile)
        n = 0
        with self._lock:
            while n < frames and self._blocks:
                block = self._blocks[0]
                take = min(frames - n, len(block) - self._head)
                outdata[n:n + take] = block[self._head:self._head + take]
                n += take
                self._head += take
                if self._head == len(block):
                    self._blocks.popleft()
                    self._head = 0
            self._queued -= n
            self._taken += frames if self._ended else n
            self._last_callback = time.monotonic()
        if n < frames:
            outdata[n:] = 0

    def _finished(self) -> None:
        if self._running:  # PortAudio ended the stream by itself: the device went away
            self._lost = "the audio output device stopped"

    def start(self) -> None:
        if self._running:
            return
        with self._lock:
            self._last_callback = time.monotonic()
        self._running = True
        self._stream.start()

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._stream.stop()  # plays out what the device holds (≤ latency), so everything taken was heard
        with self._lock:
            self._floor = self._base + self._taken / self.rate

    def reset(self, at: float) -> None:
        with self._lock:
            self._blocks.clear()
            self._head = self._queued = self._taken = 0
            self._base = self._floor = at
            self._ended = False

    def position(self) -> float:
        with self._lock:
            if not self._running:
                return self._floor
            return max(self._floor, self._base + self._taken / self.rate - self.latency)

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            self._blocks.append(samples)
            self._queued += len(samples)

    def end(self) -> None:
        with self._lock:
            self._ended = True

    def buffered(self) -> float:
        with self._lock:
            return self._queued / self.rate

    def failure(self) -> str:
        if self._lost:
            return self._lost
        if self._running and time.monotonic() - self._last_callback > STALL_S:
            return "the audio output device stopped responding"
        return ""

    def close(self) -> None:
        self._running = False
        try:
            self._stream.abort()
            self._stream.close()
        except Exception as e:  # noqa: BLE001  (a vanished device may refuse even this; nothing to save)
            log.debug("closing the audio output: %s", e)
