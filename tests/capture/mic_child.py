"""Child process for the microphone tests: PortAudio must start after HOME points at the test
.asoundrc, and it reads the ALSA configuration only once per process.

Usage: mic_child.py contract | signal | lost. Prints one JSON line with the results.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def _signal_stats(chunks: list) -> dict:
    x = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
    gaps = [abs(chunks[i + 1].t - chunks[i].end) for i in range(len(chunks) - 1)]
    n = len(x)
    steady = x[n // 4 :] if n > 1600 else x  # skip the resampler's start-up
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady)))) if len(steady) else np.zeros(1)
    return {
        "chunks": len(chunks),
        "seconds": n / 16000,
        "peak_hz": float(np.argmax(spectrum) * 16000 / max(1, len(steady))),
        "rms": float(np.sqrt(np.mean(steady.astype(np.float64) ** 2))) if len(steady) else 0.0,
        "max_abs": float(np.abs(x).max()) if n else 0.0,
        # a seam, dropout or repeated block in a 440 Hz sine shows as a jump of the 2nd difference
        "max_d2": float(np.abs(np.diff(steady, 2)).max()) if len(steady) > 2 else 0.0,
        "max_gap": max(gaps) if gaps else 0.0,
        "sizes": sorted({len(c.samples) for c in chunks})[:5],
        "first_t": chunks[0].t if chunks else None,
        "last_end": chunks[-1].end if chunks else None,
    }


def main(mode: str) -> dict:
    from mmdesk.capture.microphone import MicrophoneSource, list_microphones
    from mmdesk.core.clock import SessionClock

    out: dict = {"available": MicrophoneSource.is_available(), "mics": list_microphones()}
    if mode == "contract":
        from capture_contract import check_contract

        out["contract"] = check_contract(
            MicrophoneSource, lambda: MicrophoneSource("mmdesk_mic"), finite=False, read_for=1.2
        )
    elif mode == "signal":
        clock = SessionClock()
        src = MicrophoneSource(None, clock=clock, block_ms=50, buffer=200)  # the default device
        src.open()
        opened_at = clock.now()
        chunks = []
        while clock.now() - opened_at < 2.0:
            c = src.read(timeout=0.5)
            if c is not None:
                chunks.append(c)
        read_done = clock.now()
        src.close()
        out.update(_signal_stats(chunks))
        out.update(
            info=src.info,
            opened_at=opened_at,
            read_done=read_done,
            dropped=src.dropped,
            overflows=src.overflows,
            lost=src.lost,
            error=src.error,
        )
    elif mode == "lost":
        src = MicrophoneSource("mmdesk_mic", stall_s=1.0)
        src.open()
        chunks = []
        first = src.read(timeout=5)
        if first is not None:
            chunks.append(first)
        print("READY", flush=True)  # the parent now stops feeding the device
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            c = src.read(timeout=0.2)
            if c is not None:
                chunks.append(c)
            elif src.exhausted:
                break
        lost_after = time.monotonic() - t0
        print("LOST", flush=True)  # the parent feeds the device again, so PortAudio can unwind
        sys.stdin.readline()
        t1 = time.monotonic()
        src.close()
        src.close()
        out.update(
            chunks=len(chunks),
            lost=src.lost,
            error=src.error,
            exhausted=src.exhausted,
            lost_after=lost_after,
            close_s=time.monotonic() - t1,
            read_after=src.read(timeout=0.01),
        )
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1]), default=str), flush=True)
