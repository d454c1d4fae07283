"""Headless analysis: windows → per-modality results, clip analysis, output records and writers."""
