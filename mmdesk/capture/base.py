"""The source contract and its registry.

Every source (clip file, camera, microphone, typed text, subtitles) is used the same way::

    src = create_source("clip", path="talk.mp4")
    src.open()
    while (item := src.read(timeout=0.5)) is not None or not src.exhausted:
        ...
    src.close()

``read`` returns one timestamped item (``VideoFrame``, ``AudioChunk`` or ``TextEvent``) or None when
nothing arrived within ``timeout``. A finite source sets ``exhausted`` once it has delivered its
last item; a live source never does until closed. ``is_available`` is a classmethod that never
raises: it tells whether the backend can work on this machine at all.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from mmdesk.core.types import CaptureItem

S = TypeVar("S", bound=type["Source"])

_REGISTRY: dict[str, type[Source]] = {}


class Source(abc.ABC):
    """One capture backend. Subclasses register themselves with ``@register_source(name)``."""

    name: ClassVar[str] = ""
    #: which modalities this source can produce: subset of {"video", "audio", "text"}
    modalities: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def is_available(cls) -> bool:
        """Whether the backend's libraries/devices can work here; must not raise."""
        return True

    @abc.abstractmethod
    def open(self) -> None:
        """Acquire the file or device; raises ``MediaError``/``DeviceError`` with a clear message."""

    @abc.abstractmethod
    def read(self, timeout: float | None = None) -> CaptureItem | None:
        """The next item, or None if none arrived within ``timeout`` (or the source is exhausted)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file or device; safe to call twice."""

    @property
    def exhausted(self) -> bool:
        """True once a finite source has delivered its last item."""
        return False

    @property
    def dropped(self) -> int:
        """Items dropped because the consumer was slower than the source (newest wins)."""
        return 0

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def register_source(name: str) -> Callable[[S], S]:
    def decorate(cls: S) -> S:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtin_sources() -> None:
    # Imported for their @register_source side effect; a backend whose library is missing is
    # still registered and reports is_available() == False.
    from mmdesk.capture import camera, clip, microphone, text  # noqa: F401


def registered_sources() -> dict[str, type[Source]]:
    _load_builtin_sources()
    return dict(_REGISTRY)


def create_source(name: str, **kwargs: Any) -> Source:
    sources = registered_sources()
    if name not in sources:
        raise ValueError(f"unknown source {name!r}; known: {', '.join(sorted(sources))}")
    return sources[name](**kwargs)
