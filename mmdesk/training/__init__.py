"""Export and training code (needs the ``train`` extra: torch, transformers, onnx, h5py).

Nothing under ``mmdesk.training`` is imported by the runtime, which only runs the exported ONNX files.
"""
