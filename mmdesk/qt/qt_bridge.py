"""Signals that carry the session's worker-thread callbacks onto the GUI thread.

A signal emitted on a worker thread reaches slots of objects living on the GUI thread through
Qt's queued connection: no widget is ever touched from a worker.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class SessionBridge(QObject):
    record = Signal(object)  # a record dict (meta, window or end) of a clip analysis
    live_record = Signal(object, object)  # (token of the live session, record)
    live_stopped = Signal(object, object)  # (token, LiveSession) once its threads and devices are closed
    progress = Signal(float)
    failed = Signal(str)
    device = Signal(object)  # mmdesk.session.live.DeviceEvent
    text = Signal(object)  # mmdesk.core.types.TextEvent
    devices_listed = Signal(object, object)  # cameras, microphones (lists of dicts)
    envelope = Signal(object)  # mmdesk.session.waveform.Envelope | None
