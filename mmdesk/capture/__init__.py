"""Capture sources behind one contract; see ``base.Source``."""

from mmdesk.capture.base import Source, create_source, register_source, registered_sources

__all__ = ["Source", "create_source", "register_source", "registered_sources"]
