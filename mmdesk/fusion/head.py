"""Run the fusion head on one window: every subset of the present modalities in one batched call.

The encoders run once per window; their token sequences are repeated once per subset with the
masks of the left-out modalities set to zero, so the 2^n fused passes cost one onnxruntime call.
From the subset outputs come the fused judgement (all present), what each modality alone
predicts (singletons), the exact Shapley attribution and the interaction type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdesk.core.calibration import checked_temperature, temperature_scale
from mmdesk.core.labels import LABELS
from mmdesk.errors import ModelError
from mmdesk.fusion.attribution import MODALITIES, Attribution, attribute, subsets
from mmdesk.fusion.incongruity import incongruity
from mmdesk.fusion.interaction import Interaction, classify
from mmdesk.inference.manifest import Manifest, ModelEntry
from mmdesk.inference.runtime import OnnxModel, open_model

DIGITS = 6


@dataclass(frozen=True)
class FusionOutput:
    probs: tuple[float, ...]  # fused, over LABELS
    sarcasm: float
    incongruity: float | None
    valence: dict[str, float]
    alone: dict[str, tuple[tuple[float, ...], float] | None]  # modality -> (probs, sarcasm)
    attribution: Attribution
    sarcasm_attribution: Attribution
    interaction: Interaction
    attention: dict[str, dict[str, float]]  # target modality -> source modality -> mass

    @property
    def label(self) -> str:
        return LABELS[int(np.argmax(self.probs))]

    def as_record(self) -> dict[str, object]:
        r = lambda x: round(float(x), DIGITS)
        attribution = self.attribution.as_record(DIGITS)
        attribution["sarcasm"] = self.sarcasm_attribution.as_record(DIGITS)
        return {
            "fused": {"probs": {k: r(p) for k, p in zip(LABELS, self.probs)}, "label": self.label,
                      "sarcasm": r(self.sarcasm),
                      "incongruity": None if self.incongruity is None else r(self.incongruity),
                      "valence": {m: r(v) for m, v in self.valence.items()}},
            "alone": {m: None if a is None else {"probs": {k: r(p) for k, p in zip(LABELS, a[0])},
                                                  "label": LABELS[int(np.argmax(a[0]))], "sarcasm": r(a[1])}
                      for m, a in self.alone.items()},
            "attribution": attribution,
            "interaction": self.interaction.as_record(),
            "attention": {t: {s: r(x) for s, x in row.items()} for t, row in self.attention.items()},
        }


class FusionHead:
    """The pack's ``fusion`` model. ``dims`` are the token sizes it was trained on."""

    def __init__(self, manifest: Manifest, device: str = "auto") -> None:
        # one intra-op thread: the graph is ~280 tiny ops, and waking a pool per op cost more than it
        # saved (measured 15 % slower with 2 threads on the 2-core machine)
        self.model: OnnxModel = open_model(manifest, "fusion", device, threads=1)
        entry = manifest.entry("fusion")
        self.dims: dict[str, int] = {m: int(entry.preprocessing["dims"][m]) for m in MODALITIES}
        self.trained_with: dict[str, str] = dict(entry.preprocessing.get("trained_with", {}))
        self.trained_on: str = str(entry.preprocessing.get("trained_on", ""))
        # fitted on the held-out sarcasm texts (fusion card); 1.0 for heads from before it
        self.sarcasm_temperature = checked_temperature(entry.preprocessing.get("sarcasm_temperature"),
                                                       "the fusion head's sarcasm output",
                                                       "run `mmdesk train fusion` or rebuild the pack")
        self._empty_out: tuple[np.ndarray, np.ndarray] | None = None
        stale = [role for role, ident in self.trained_with.items()
                 if role in manifest.entries and encoder_identity(manifest.entries[role]) != ident]
        if stale:
            raise ModelError(f"the fusion head was trained on other versions of {', '.join(stale)} than this "
                             "model pack holds: run `mmdesk train fusion` to retrain it on these encoders")

    def _calibrated(self, sarcasm: np.ndarray) -> np.ndarray:
        return np.asarray(temperature_scale(sarcasm, self.sarcasm_temperature), np.float32)

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        """The head's output with nothing shown (only the null tokens): the attribution baseline."""
        if self._empty_out is None:
            feeds = {}
            for m in MODALITIES:
                feeds[m] = np.zeros((1, 1, self.dims[m]), np.float32)
                feeds[f"{m}_mask"] = np.zeros((1, 1), np.float32)
            emotion, sarcasm, _ = self.model.run(feeds)
            self._empty_out = (emotion, self._calibrated(sarcasm))
        return self._empty_out

    def fuse(self, tokens: dict[str, np.ndarray | None],
             unimodal: dict[str, tuple[float, ...] | None] | None = None) -> FusionOutput | None:
        """``tokens[m]``: (T_m, D_m) float32, or None when m is absent. None when all are absent.

        ``unimodal`` holds each encoder's own label distribution, used for the incongruity score.
        """
        players = [m for m in MODALITIES if tokens.get(m) is not None and len(tokens[m]) > 0]
        if not players:
            return None
        rows = subsets(players)[1:]  # the empty set gives a constant: computed once, below
        b = len(rows)
        feeds: dict[str, np.ndarray] = {}
        for m in MODALITIES:
            x = tokens.get(m) if m in players else None
            if x is None:
                x = np.zeros((1, self.dims[m]), np.float32)
            elif x.ndim != 2 or x.shape[1] != self.dims[m]:
                raise ModelError(f"fusion input {m} has shape {x.shape}, the head expects (T, {self.dims[m]})")
            feeds[m] = np.ascontiguousarray(np.broadcast_to(x.astype(np.float32, copy=False), (b, *x.shape)))
            mask = np.zeros((b, len(x)), np.float32)
            mask[[i for i, s in enumerate(rows) if m in s]] = 1.0
            feeds[f"{m}_mask"] = mask
        emotion, sarcasm, attention = self.model.run(feeds)
        sarcasm = self._calibrated(sarcasm)  # before attribution: the Shapley values split what is shown
        empty = self._empty()
        rows = [frozenset(), *rows]
        emotion = np.concatenate([empty[0], emotion])
        sarcasm = np.concatenate([empty[1], sarcasm])
        attention = attention[-1]  # of the full set (nothing is attended to in the empty set)
        full = len(rows) - 1  # subsets() lists the full set last
        target = int(np.argmax(emotion[full]))
        v_emotion = {s: float(emotion[i, target]) for i, s in enumerate(rows)}
        v_sarcasm = {s: float(sarcasm[i]) for i, s in enumerate(rows)}
        alone: dict[str, tuple[tuple[float, ...], float] | None] = dict.fromkeys(MODALITIES)
        for i, s in enumerate(rows):
            if len(s) == 1:
                (m,) = s
                alone[m] = (tuple(float(p) for p in emotion[i]), float(sarcasm[i]))
        uni = unimodal or {}
        score, valences = incongruity(uni.get("text"), uni.get("face"), uni.get("voice"))
        att = {MODALITIES[i]: {MODALITIES[j]: float(attention[i, j]) for j in range(3)
                               if j != i and MODALITIES[j] in players}
               for i in range(3) if MODALITIES[i] in players}
        return FusionOutput(
            probs=tuple(float(p) for p in emotion[full]),
            sarcasm=float(sarcasm[full]),
            incongruity=score,
            valence=valences,
            alone=alone,
            attribution=attribute(LABELS[target], v_emotion, players),
            sarcasm_attribution=attribute("sarcasm", v_sarcasm, players),
            interaction=classify(v_emotion, players, LABELS[target]),
            attention=att,
        )


def encoder_identity(entry: ModelEntry) -> str:
    """What a fusion head depends on: the exact encoder file (its sha256). The pack's exports are
    byte-for-byte reproducible from their pinned sources (a clean machine builds the same sha256),
    while the recipe's fingerprint also changes with comments in the exporter, which must not
    switch fusion off."""
    return entry.sha256
