"""Per-modality perception on onnxruntime (no torch, no Qt): face, voice, VAD, text."""
