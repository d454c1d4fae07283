"""Export the fusion head to ONNX (dynamo exporter) with dynamic batch and per-modality lengths."""

from __future__ import annotations

from pathlib import Path

from mmdesk.training.fusion_model import (
    INPUT_NAMES,
    MODALITIES,
    OUTPUT_NAMES,
    FusionHead,
)
from mmdesk.training.onnx_export import export_single_file


def example_inputs(head: FusionHead, batch: int = 2, lengths: tuple[int, int, int] = (3, 4, 5)):
    import torch

    g = torch.Generator().manual_seed(0)
    args = []
    for m, t in zip(MODALITIES, lengths):
        args.append(torch.randn(batch, t, head.config.dims()[m], generator=g))
        args.append(torch.ones(batch, t))
    return tuple(args)


def export_fusion(head: FusionHead, out_path: Path) -> float:
    """Write ``out_path``; returns the export time in seconds."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    dyn = {}
    dim_names: dict[str, list[str | int]] = {}
    for m in MODALITIES:
        t = Dim(f"{m}_len", min=1, max=4096)
        dyn[m] = {0: batch, 1: t}
        dyn[f"{m}_mask"] = {0: batch, 1: t}
        dim_names[m] = ["batch", f"{m}_len", head.config.dims()[m]]
        dim_names[f"{m}_mask"] = ["batch", f"{m}_len"]
    dim_names.update({"emotion": ["batch", head.config.n_labels], "sarcasm": ["batch"], "attention": ["batch", 3, 3]})
    return export_single_file(head, example_inputs(head), out_path, input_names=INPUT_NAMES,
                              output_names=OUTPUT_NAMES, dynamic_shapes=dyn, dim_names=dim_names)
