"""Child process for the audio-output tests: PortAudio must start after HOME points at the test
.asoundrc (it reads the ALSA configuration once per process).

Usage: audio_child.py CLIP play. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time


def main(clip: str, mode: str) -> dict:
    from mmdesk.playback import Player, PlayerEvents, find_output

    device, note = find_output()
    out: dict = {"device": None if device is None else device.__dict__, "note": note}
    if device is None:
        return out
    events: list = []
    frames: list[float] = []
    player = Player(PlayerEvents(frame=lambda f: frames.append(f.t),
                                 position=lambda t: events.append(("position", time.monotonic(), t)),
                                 playing=lambda p: events.append(("playing", time.monotonic(), p)),
                                 problem=lambda m: events.append(("problem", time.monotonic(), m))),
                    output=device)
    player.load(clip)
    time.sleep(0.5)
    t0 = time.monotonic()
    player.play()
    while player.playing and time.monotonic() - t0 < 20:
        time.sleep(0.02)
    out.update(wall=time.monotonic() - t0, frames=frames, events=events, playing=player.playing)
    player.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])), flush=True)
