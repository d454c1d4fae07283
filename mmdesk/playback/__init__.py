"""Clip playback without Qt: PyAV decodes, sounddevice plays the sound, the sound card's clock paces
the picture. The desktop app's ``ClipPlayer`` (mmdesk/qt/qt_video.py) is a thin adapter over it."""

from mmdesk.playback.output import OutputDevice, find_output
from mmdesk.playback.player import Frame, Player, PlayerEvents

__all__ = ["Frame", "OutputDevice", "Player", "PlayerEvents", "find_output"]
