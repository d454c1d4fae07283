"""Model manifest, pack location and verification, onnxruntime sessions. No torch here."""
