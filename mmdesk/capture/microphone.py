"""A microphone via sounddevice/PortAudio as a live source of 16 kHz mono ``AudioChunk``s.

The input stream runs at the device's native rate and channel count (up to 2 channels, mixed to
mono). Each PortAudio block is resampled to 16 kHz with a persistent ``av.AudioResampler`` (its
filter state carries over between blocks, so there are no seams) and put into a
``NewestWinsBuffer``.

Timing: the first block's first sample is placed on the session clock (callback time minus the
input latency PortAudio reports), and every chunk after it at ``anchor + samples / 16000`` from
a running count of delivered samples, so consecutive chunks are exactly contiguous and rounding
never accumulates. If the device falls behind the clock by more than ``RESYNC_S`` (an overflow
lost samples, or its clock is slow) the anchor jumps forward; it never jumps backwards.

A device that disappears mid-session (PortAudio ends the stream, or no block arrives for
``stall_s`` seconds) ends the source: ``lost`` is True and ``error`` says what happened.
"""

from __future__ import annotations

import logging
import threading
import time
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from mmdesk.capture.base import register_source
from mmdesk.capture.live import LiveSource
from mmdesk.core.clock import SessionClock
from mmdesk.core.types import AUDIO_RATE, AudioChunk
from mmdesk.errors import DeviceError

log = logging.getLogger(__name__)

#: the device clock may lag the session clock this much before chunk times are moved forward
RESYNC_S = 0.5
#: close() waits at most this long for PortAudio to stop the stream
CLOSE_TIMEOUT_S = 2.0
_HINT_PICK = "connect a microphone or pick another input device (`mmdesk doctor` lists them)"


def _sounddevice() -> Any:
    """Import sounddevice; ``DeviceError`` if it or the PortAudio library is missing."""
    try:
        import sounddevice
    except OSError as e:  # raised on import when libportaudio cannot be loaded
        raise DeviceError(
            f"the PortAudio library is missing ({e})",
            "install it (Debian/Ubuntu: apt install libportaudio2; macOS: brew install portaudio)",
        ) from None
    except ImportError as e:
        raise DeviceError(
            f"sounddevice is not installed ({e})", "pip install sounddevice"
        ) from None
    return sounddevice


class _Resampler:
    """Streaming float32 mono resampler from ``rate`` to 16 kHz (stateful, no seams)."""

    def __init__(self, rate: int) -> None:
        import av

        self.rate = rate
        self._av = av
        self._pts = 0
        self._tb = Fraction(1, rate)
        self._r = (
            None
            if rate == AUDIO_RATE
            else av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        )

    def __call__(self, mono: np.ndarray) -> np.ndarray:
        if self._r is None:
            return mono.astype(np.float32, copy=True)
        frame = self._av.AudioFrame.from_ndarray(
            np.ascontiguousarray(mono, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = self._tb
        self._pts += len(mono)
        out = self._r.resample(frame)
        if not out:
            return np.zeros(0, dtype=np.float32)
        arrays = [f.to_ndarray().reshape(-1) for f in out]
        return (
            np.concatenate(arrays).astype(np.float32, copy=False)
            if len(arrays) > 1
            else arrays[0].copy()
        )


@register_source("microphone")
class MicrophoneSource(LiveSource):
    """Audio from an input device, as contiguous 16 kHz mono chunks on the session clock."""

    modalities: ClassVar[frozenset[str]] = frozenset({"audio"})

    def __init__(
        self,
        device: int | str | None = None,
        *,
        clock: SessionClock | None = None,
        block_ms: int = 100,
        buffer: int = 50,
        stall_s: float = 3.0,
    ) -> None:
        super().__init__(clock=clock, buffer=buffer)
        if block_ms <= 0:
            raise ValueError(f"block_ms must be > 0, got {block_ms}")
        self.device = (
            int(device) if isinstance(device, str) and device.strip().isdigit() else device
        )
        self.block_ms = block_ms
        self.stall_s = max(stall_s, 4 * block_ms / 1000)
        #: device facts once open: name, index, native rate, channels, host API
        self.info: dict[str, Any] = {}
        #: PortAudio blocks flagged with an input overflow (samples lost by the device)
        self.overflows = 0
        #: forward jumps of the chunk times (device clock behind the session clock)
        self.resyncs = 0
        self.blocks = 0
        self._stream: Any = None
        self._resample: _Resampler | None = None
        self._anchor: float | None = None
        self._count = 0  # 16 kHz samples delivered since the anchor
        self._last_block = 0.0  # time.monotonic() of the last callback
        self._closing = threading.Event()

    @classmethod
    def is_available(cls) -> bool:
        try:
            _sounddevice()
        except Exception:
            return False
        return True

    def open(self) -> None:
        if self._opened:
            return
        if self._closed:
            raise RuntimeError(
                "MicrophoneSource cannot be reopened after close(); create a new one"
            )
        sd = _sounddevice()
        dev = _input_device(sd, self.device)
        rate = int(round(float(dev["default_samplerate"]) or 48_000))
        channels = max(1, min(2, int(dev["max_input_channels"])))
        blocksize = max(16, int(rate * self.block_ms / 1000))
        self.info = {
            "index": dev["index"],
            "name": dev["name"],
            "samplerate": rate,
            "channels": channels,
            "hostapi": _hostapi_name(sd, dev),
        }
        self._resample = _Resampler(rate)
        try:
            stream = sd.InputStream(
                device=dev["index"],
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=blocksize,
                callback=self._callback,
                finished_callback=self._finished,
            )
        except Exception as e:
            raise DeviceError(
                f"cannot open microphone {dev['name']!r} ({_short(e)})", _HINT_PICK
            ) from None
        self._stream = stream
        self._last_block = time.monotonic()
        self._opened = True
        try:
            stream.start()
        except Exception as e:
            self.close()
            raise DeviceError(
                f"cannot start microphone {dev['name']!r} ({_short(e)})", _HINT_PICK
            ) from None

    # PortAudio's thread -------------------------------------------------------------------------

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = self.clock.now()
        self._last_block = time.monotonic()
        if self._closing.is_set():
            return
        try:
            if status and getattr(status, "input_overflow", False):
                self.overflows += 1
            self.blocks += 1
            mono = indata[:, 0] if indata.shape[1] == 1 else indata.mean(axis=1)
            assert self._resample is not None
            latency = _latency(time_info, frames, self._resample.rate)
            block_start = now - latency
            if self._anchor is None:
                self._anchor = max(0.0, block_start)
                self._count = 0
            else:
                expected = self._anchor + self._count / AUDIO_RATE
                if block_start - expected > RESYNC_S:
                    self._anchor = block_start
                    self._count = 0
                    self.resyncs += 1
            samples = self._resample(mono)
            if not len(samples):
                return
            np.clip(samples, -1.0, 1.0, out=samples)
            chunk = AudioChunk(t=self._anchor + self._count / AUDIO_RATE, samples=samples)
            self._count += len(samples)
            self._buffer.put(chunk)
        except Exception as e:  # never let an exception escape into PortAudio's thread
            log.debug("microphone callback failed", exc_info=True)
            self._mark_lost(f"microphone processing failed ({_short(e)})")
            raise _abort() from None

    def _finished(self) -> None:
        if not self._closing.is_set():
            self._mark_lost(
                f"microphone {self.info.get('name', self.device)!r} stopped unexpectedly "
                "(disconnected or taken by another program?)"
            )

    # consumer side --------------------------------------------------------------------------------

    def read(self, timeout: float | None = None) -> AudioChunk | None:  # type: ignore[override]
        if timeout is not None:
            return super().read(timeout)  # type: ignore[return-value]
        # block until a chunk arrives, but keep the stall watchdog running meanwhile
        while True:
            item = super().read(min(0.5, self.stall_s / 2))
            if item is not None or self.exhausted:
                return item  # type: ignore[return-value]

    def _check_health(self) -> None:
        if not self._opened or self._closed or self.lost:
            return
        stream = self._stream
        if stream is not None and not stream.active and not self._closing.is_set():
            self._mark_lost(
                f"microphone {self.info.get('name', self.device)!r} stream is no longer running"
            )
        elif time.monotonic() - self._last_block > self.stall_s:
            self._mark_lost(
                f"microphone {self.info.get('name', self.device)!r} delivered no audio for "
                f"{self.stall_s:.0f} s (disconnected?)"
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closing.set()
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            # A wedged driver can block PortAudio's abort; never let that freeze the caller.
            closer = threading.Thread(
                target=_shutdown, args=(stream,), name="mmdesk-mic-close", daemon=True
            )
            closer.start()
            closer.join(CLOSE_TIMEOUT_S)
            if closer.is_alive():
                log.warning(
                    "microphone stream did not close within %.0f s; leaving it to finish",
                    CLOSE_TIMEOUT_S,
                )
        self._buffer.close()


def _shutdown(stream: Any) -> None:
    for step in (stream.abort, stream.close):
        try:
            step(ignore_errors=True)
        except Exception:
            log.debug("shutting the microphone stream down failed", exc_info=True)


def _abort() -> BaseException:
    try:
        import sounddevice

        return sounddevice.CallbackAbort()
    except Exception:
        return RuntimeError("abort")


def _latency(time_info: Any, frames: int, rate: int) -> float:
    """Seconds from the block's first sample to now (PortAudio's ADC time, else block length)."""
    fallback = frames / rate
    try:
        adc = float(time_info.inputBufferAdcTime)
        cur = float(time_info.currentTime)
    except Exception:
        return fallback
    lat = cur - adc
    if adc > 0 and cur > 0 and 0.0 <= lat < 1.0:
        return max(lat, 0.0)
    return fallback


def _short(e: BaseException) -> str:
    s = str(e).strip() or type(e).__name__
    return s.splitlines()[0]


def _hostapi_name(sd: Any, dev: dict[str, Any]) -> str:
    try:
        return str(sd.query_hostapis(dev["hostapi"])["name"])
    except Exception:
        return ""


def _input_device(sd: Any, device: int | str | None) -> dict[str, Any]:
    try:
        dev = sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as e:
        if device is None:
            raise DeviceError("no microphone found (no default input device)", _HINT_PICK) from None
        raise DeviceError(f"no microphone {device!r} ({_short(e)})", _HINT_PICK) from None
    dev = dict(dev)
    if int(dev.get("max_input_channels", 0)) < 1:
        raise DeviceError(f"device {dev.get('name', device)!r} has no input channels", _HINT_PICK)
    if "index" not in dev:
        dev["index"] = device
    return dev


def list_microphones() -> list[dict[str, Any]]:
    """Input devices (for ``mmdesk doctor``): index, name, channels, samplerate, hostapi, default.

    Never raises; an empty list means PortAudio is missing or there is no input device.
    """
    try:
        sd = _sounddevice()
        devices = sd.query_devices()
    except Exception:
        return []
    try:
        default_in = sd.default.device[0]
    except Exception:
        default_in = -1
    out: list[dict[str, Any]] = []
    for d in devices:
        if int(d.get("max_input_channels", 0)) < 1:
            continue
        out.append(
            {
                "index": d["index"],
                "name": d["name"],
                "channels": int(d["max_input_channels"]),
                "samplerate": float(d["default_samplerate"]),
                "hostapi": _hostapi_name(sd, d),
                "default": d["index"] == default_in,
            }
        )
    return out
