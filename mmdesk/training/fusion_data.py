"""Token banks for training the fusion head, made by the runtime's own encoders (onnxruntime).

No face+voice+text corpus with aligned labels exists on this machine, so the default training set
pairs *real* examples *by label*: a FER2013 face, an EmoDB/RAVDESS voice and a MELD utterance that
carry the same emotion are shown together as one example. Sarcasm comes from text corpora
(MUStARD utterances with and without their context, SemEval-2018 and TweetEval irony). Aligned
clips (see ``fusion_aligned``) are added as they are when the user has them.

Each bank holds variable-length token sequences in one flat array plus offsets, the label, and a
group id (speaker or image) for honest held-out splits. Banks are cached in an npz keyed by the
encoders' sha256 and the data's sha256, so retraining after a change of the head is quick.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mmdesk.core.labels import FER2013_LABELS, LABELS, RAVDESS_TO_COMMON
from mmdesk.errors import MmdeskError
from mmdesk.inference.manifest import Manifest
from mmdesk.perception.face import FaceExpression
from mmdesk.perception.text import TextEmotion
from mmdesk.perception.voice import VoiceEmotion
from mmdesk.perception.voice_features import load_audio
from mmdesk.training.datasets import emodb_items, meld_items, ravdess_items

WINDOW_S = 2.0  # the analyzer's default window: voice crops have this length
HOP_S = 1.0
SR = 16_000


@dataclass
class Bank:
    """Sequences ``tokens[offsets[i]:offsets[i+1]]`` with ``labels[i]`` (−1 = no label) and ``groups[i]``."""

    tokens: np.ndarray  # (sum T, D) float32
    offsets: np.ndarray  # (N + 1,) int64
    labels: np.ndarray  # (N,) int64
    groups: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return len(self.labels)

    def item(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def build(cls, seqs: Sequence[np.ndarray], labels: Sequence[int], groups: Sequence[str], dim: int) -> Bank:
        offsets = np.zeros(len(seqs) + 1, np.int64)
        offsets[1:] = np.cumsum([len(s) for s in seqs])
        tokens = np.concatenate(seqs).astype(np.float32) if seqs else np.zeros((0, dim), np.float32)
        return cls(tokens, offsets, np.asarray(labels, np.int64), np.asarray(groups, dtype=str))

    def subset(self, idx: Iterable[int]) -> Bank:
        idx = list(idx)
        return Bank.build([self.item(i) for i in idx], self.labels[idx], self.groups[idx], self.tokens.shape[1])

    def save(self, path: Path, prefix: str, out: dict[str, np.ndarray]) -> None:
        out.update({f"{prefix}_tokens": self.tokens, f"{prefix}_offsets": self.offsets,
                    f"{prefix}_labels": self.labels, f"{prefix}_groups": self.groups})

    @classmethod
    def load(cls, data: dict[str, np.ndarray], prefix: str) -> Bank:
        return cls(data[f"{prefix}_tokens"], data[f"{prefix}_offsets"], data[f"{prefix}_labels"],
                   data[f"{prefix}_groups"])


# -- faces ---------------------------------------------------------------------------------------
def _face_variants(img48: np.ndarray, size: int, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """The image at the model's size, its mirror, and small shifts/zooms with brightness changes:
    a stand-in for the frames of one face across a window."""
    base = cv2.resize(img48, (size, size), interpolation=cv2.INTER_LINEAR)
    out = [base, base[:, ::-1].copy()]
    while len(out) < n:
        s = rng.uniform(0.92, 1.08)
        m = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-8, 8), s)
        m[:, 2] += rng.uniform(-0.05, 0.05, 2) * size
        img = cv2.warpAffine(base, m, (size, size), borderMode=cv2.BORDER_REFLECT)
        img = np.clip(img.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15), 0, 255)
        out.append(img.astype(np.uint8))
    return out[:n]


def face_bank(expr: FaceExpression, npz: Path, split: str, per_class: int, variants: int,
              seed: int, progress: Callable[[str], None]) -> tuple[Bank, np.ndarray]:
    """Face embeddings, and the face model's own probabilities for each of them (row-aligned with the
    bank's tokens): the teacher that the head's face-only reading is distilled towards."""
    data = np.load(npz)
    if f"{split}_images" not in data:
        raise MmdeskError(f"{npz} has no {split}_images array", "pass the FER2013 npz from ../shared/assets/face")
    images, fer_labels = data[f"{split}_images"], data[f"{split}_labels"]
    rng = np.random.default_rng(seed)
    seqs, labels, groups, teacher = [], [], [], []
    for fer_idx, name in enumerate(FER2013_LABELS):
        idx = np.flatnonzero(fer_labels == fer_idx)
        idx = rng.permutation(idx)[:per_class]
        for start in range(0, len(idx), 256):
            chunk = idx[start:start + 256]
            crops = np.stack([v for i in chunk for v in _face_variants(images[i], expr.size, rng, variants)])
            probs, emb = expr.predict_with_embedding(crops)
            teacher.append(probs.astype(np.float32))
            emb = emb.reshape(len(chunk), variants, -1)
            seqs.extend(emb)
            labels.extend([LABELS.index(name)] * len(chunk))
            groups.extend(f"fer-{split}-{i}" for i in chunk)
        progress(f"faces {split}: {name} {len(idx)}")
    bank = Bank.build(seqs, labels, groups, expr.embedding_dim or 0)
    return bank, (np.concatenate(teacher) if teacher else np.zeros((0, len(LABELS)), np.float32))


# -- voices --------------------------------------------------------------------------------------
def voice_bank(voice: VoiceEmotion, emodb: Path | None, ravdess: Path | None,
               progress: Callable[[str], None]) -> Bank:
    items = []
    if emodb:
        items += emodb_items(emodb)[0]
    if ravdess:
        items += ravdess_items(ravdess)[0]
    if not items:
        raise MmdeskError("no voice data for the fusion head", "pass --emodb DIR and/or --ravdess DIR")
    seqs, labels, groups = [], [], []
    win, hop = int(WINDOW_S * SR), int(HOP_S * SR)
    for n, item in enumerate(items):
        audio = load_audio(item.path)
        starts = range(0, max(1, len(audio) - win + hop), hop) if len(audio) > win else [0]
        for s in starts:
            crop = audio[s:s + win]
            if len(crop) < win:
                crop = np.pad(crop, (0, win - len(crop)))
            _, frames = voice.predict_features_with_frames(voice.features(crop))
            seqs.append(frames)
            labels.append(item.label)
            groups.append(item.speaker)
        if n % 100 == 0:
            progress(f"voices: {n}/{len(items)}")
    return Bank.build(seqs, labels, groups, voice.frames_dim or 0)


# -- text ----------------------------------------------------------------------------------------
def text_bank(text: TextEmotion, texts: Sequence[str], labels: Sequence[int], groups: Sequence[str],
              progress: Callable[[str], None], what: str) -> Bank:
    seqs = []
    order = np.argsort([len(t) for t in texts])  # similar lengths per batch: less padding work
    out: list[np.ndarray | None] = [None] * len(texts)
    for start in range(0, len(order), 64):
        idx = order[start:start + 64]
        batch = [texts[i] for i in idx]
        enc = text.tokenizer.encode_batch([t[:5000] for t in batch])
        _, tokens, _ = text.embed(batch)
        for j, i in enumerate(idx):
            out[i] = tokens[j, : len(enc[j].ids)]
        if start % 1280 == 0:
            progress(f"{what}: {start}/{len(texts)}")
    seqs = [s for s in out if s is not None]
    return Bank.build(seqs, labels, groups, tokens.shape[-1])


def meld_texts(csv_path: Path) -> tuple[list[str], list[int], list[str]]:
    items = meld_items(csv_path)
    return [i.text for i in items], [i.label for i in items], [f"meld-{i.dialogue}" for i in items]


def sarcasm_texts(mustard: Path | None, irony: Sequence[Path]) -> tuple[list[str], list[int], list[str]]:
    """MUStARD utterances alone and with their last context line; irony tweets (label 1 = ironic)."""
    texts, labels, groups = [], [], []
    if mustard:
        data = json.loads(Path(mustard).read_text(encoding="utf-8"))
        for key, d in data.items():
            y = int(bool(d["sarcasm"]))
            texts.append(d["utterance"])
            labels.append(y)
            groups.append(f"mustard-{key}")
            if d.get("context"):
                texts.append(f"{d['context'][-1]} {d['utterance']}")
                labels.append(y)
                groups.append(f"mustard-{key}")
    for path in irony:
        t, y = _irony_file(Path(path))
        texts += t
        labels += y
        groups += [f"irony-{path.stem}-{i}" for i in range(len(t))]
    return texts, labels, groups


def _irony_file(path: Path) -> tuple[list[str], list[int]]:
    """SemEval-2018 task A (``index<TAB>label<TAB>text``) or a TweetEval ``*_text.txt`` with labels beside it."""
    if path.suffix == ".txt" and path.name.endswith("_text.txt"):
        lab = path.with_name(path.name.replace("_text.txt", "_labels.txt"))
        texts = path.read_text(encoding="utf-8").splitlines()
        labels = [int(x) for x in lab.read_text(encoding="utf-8").split()]
        return texts, labels
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].strip().isdigit():
            labels.append(int(parts[1]))
            texts.append(parts[2])
    return texts, labels


def ravdess_clip_label(path: Path) -> int | None:
    parts = Path(path).stem.split("-")
    common = RAVDESS_TO_COMMON.get(parts[2]) if len(parts) == 7 else None
    return LABELS.index(common) if common else None


def cache_key(manifest: Manifest, roles: Sequence[str], inputs: Sequence[Path | None], extra: dict) -> str:
    h = hashlib.sha256()
    for r in roles:
        h.update(manifest.entry(r).sha256.encode())
    for p in inputs:
        if p is not None:
            st = Path(p).stat()
            h.update(f"{p}:{st.st_size}:{int(st.st_mtime)}".encode())
    h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()[:16]
