"""Synchronised windows over the captured streams."""
