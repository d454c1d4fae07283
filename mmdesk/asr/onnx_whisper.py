"""Whisper on onnxruntime: the same decoding as faster-whisper 1.2.1 on CTranslate2, without CTranslate2.

Exploratory (docs/whisper_onnx.md): CTranslate2's library is 81 MB of the desktop bundle while onnxruntime
is already in it. :class:`OnnxWhisperEngine` has :class:`mmdesk.asr.engine.WhisperEngine`'s interface
(``decode(audio16k_float32, language) -> Decoded``) and reproduces what faster-whisper does for mmdesk's
settings (greedy, ``word_timestamps=True``, temperatures (0.0, 0.4, 0.8), no previous-text prompt, no VAD):

* log-mel features: faster-whisper's ``FeatureExtractor`` in numpy
  (``mmdesk.perception.voice_features.whisper_logmel``, which the voice emotion model reads too);
* the 30 s window loop of ``WhisperModel.generate_segments`` (seek, no-speech skip, segments split at
  timestamp tokens, the seek moved to the last word's end);
* ``generate_with_fallback``: greedy at 0.0, sampled (best of 5) at 0.4 / 0.8 when the gzip compression
  ratio is > 2.4 or the average log-probability < -1.0, unless it is silence (no-speech prob > 0.6);
* CTranslate2's logits processing: suppressed tokens, blank suppression at the first step, timestamp rules
  (pairs, monotone, max initial 1.0 s, "timestamp if their total probability beats every text token"),
  the no-speech probability from the first step's logits;
* word timestamps as ``WhisperModel.find_alignment`` + CTranslate2's ``align``: the alignment heads'
  cross-attention over the window's frames, softmax, normalised over tokens, median filter (width 7),
  averaged over heads, DTW; words split on spaces, punctuation merged, the duration clamps of
  ``add_word_timestamps``; word probability = mean over its tokens of the token's probability among the
  text tokens.

The model folder (built by ``mmdesk.training.whisper_onnx_export.build_onnx_whisper``) holds
``encoder.onnx``, ``decoder.onnx``, ``tokenizer.json`` and ``whisper_onnx.json``. Imports: numpy,
onnxruntime, tokenizers only.
"""

from __future__ import annotations

import itertools
import json
import string
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mmdesk.asr.engine import FALLBACK_TEMPERATURES, Decoded, ModelChoice
from mmdesk.asr.types import Word
from mmdesk.errors import MmdeskError, ModelError
from mmdesk.perception.voice_features import whisper_logmel as log_mel

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_FRAMES = 3000  # one 30 s window of 10 ms frames
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100
INPUT_STRIDE = 2
TOKENS_PER_SECOND = FRAMES_PER_SECOND // INPUT_STRIDE  # 50
TIME_PRECISION = 0.02
MAX_INITIAL_TIMESTAMP = 1.0
MEDIAN_FILTER_WIDTH = 7
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
BEST_OF = 5
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
ENCODER_FILE, DECODER_FILE, CONFIG_FILE = "encoder.onnx", "decoder.onnx", "whisper_onnx.json"


# ---------------------------------------------------------------------------------------------- features
def pad_or_trim(features: np.ndarray, length: int = N_FRAMES) -> np.ndarray:
    if features.shape[-1] > length:
        return features[..., :length]
    if features.shape[-1] < length:
        return np.pad(features, [(0, 0)] * (features.ndim - 1) + [(0, length - features.shape[-1])])
    return features


# --------------------------------------------------------------------------------------------- tokenizer
class WhisperTokenizer:
    """What faster-whisper's ``Tokenizer`` does for an English-only model, over ``tokenizers``."""

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        import tokenizers

        self.tokenizer = tokenizers.Tokenizer.from_file(str(path))
        self.sot, self.eot = int(config["sot"]), int(config["eot"])
        self.no_timestamps = int(config["no_timestamps"])
        self.timestamp_begin = self.no_timestamps + 1
        self.no_speech = int(config["no_speech"])
        self.specials = [int(config[k]) for k in ("transcribe", "translate", "sot", "sot_prev", "sot_lm",
                                                  "no_speech")]
        self.sot_sequence = [self.sot]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode([t for t in tokens if t < self.eot])

    def decode_with_timestamps(self, tokens: list[int]) -> str:
        outputs: list[Any] = [[]]
        for token in tokens:
            if token >= self.timestamp_begin:
                outputs.append(f"<|{(token - self.timestamp_begin) * 0.02:.2f}|>")
                outputs.append([])
            else:
                outputs[-1].append(token)
        return "".join(s if isinstance(s, str) else self.tokenizer.decode(s) for s in outputs)

    def non_speech_tokens(self) -> list[int]:
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += ["<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", '("', "((", "))", "(((", ")))",
                    "[[", "]]", "{{", "}}", "♪♪", "♪♪♪"]
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + list(miscellaneous):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return sorted(result)

    def suppress_tokens(self) -> list[int]:
        """faster-whisper's ``get_suppressed_tokens(tokenizer, [-1])``."""
        return sorted(set(self.non_speech_tokens()) | set(self.specials))

    def split_tokens_on_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        decoded_full = self.decode_with_timestamps(tokens)
        replacement_char = "\ufffd"
        words: list[str] = []
        word_tokens: list[list[int]] = []
        current: list[int] = []
        unicode_offset = 0
        for token in tokens:
            current.append(token)
            decoded = self.decode_with_timestamps(current)
            try:
                index: int | None = decoded.index(replacement_char) + unicode_offset
            except ValueError:
                index = None
            if index is None or (index < len(decoded_full) and decoded_full[index] == replacement_char):
                words.append(decoded)
                word_tokens.append(current)
                current = []
                unicode_offset += len(decoded)
        return words, word_tokens

    def split_to_word_tokens(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        subwords, subword_tokens_list = self.split_tokens_on_unicode(tokens)
        words: list[str] = []
        word_tokens: list[list[int]] = []
        for subword, subword_tokens in zip(subwords, subword_tokens_list):
            special = subword_tokens[0] >= self.eot
            with_space = subword.startswith(" ")
            punctuation = subword.strip() in string.punctuation
            if special or with_space or punctuation or len(words) == 0:
                words.append(subword)
                word_tokens.append(subword_tokens)
            else:
                words[-1] = words[-1] + subword
                word_tokens[-1].extend(subword_tokens)
        return words, word_tokens


# ------------------------------------------------------------------------------------------------ model
class Backend(Protocol):
    """The two graphs. ``encode(mel [1, 80, 3000]) -> cross`` (per decoder layer: keys [1, H, dh, 1500],
    values [1, H, 1500, dh]); ``decode(tokens [1, T], self_kv, cross) -> (logits [1, T, V], new_self_kv,
    alignment_qk [1, A, T, 1500])`` where ``self_kv`` is the per-layer list [k_0, v_0, k_1, ...] of
    [1, H, P, dh] caches (P may be 0)."""

    n_layers: int
    n_heads: int
    head_dim: int

    def encode(self, mel: np.ndarray) -> list[np.ndarray]: ...

    def decode(self, tokens: np.ndarray, self_kv: list[np.ndarray],
               cross: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]: ...


class OrtBackend:
    def __init__(self, folder: Path, *, threads: int | None = None, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.enable_cpu_mem_arena = False  # the arena kept ~60 MB more after a decode, for no speed measured
        providers = providers or ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(folder / ENCODER_FILE), opts, providers=providers)
        self.decoder = ort.InferenceSession(str(folder / DECODER_FILE), opts, providers=providers)
        inputs = {i.name: i.shape for i in self.decoder.get_inputs()}
        self.n_layers = sum(1 for n in inputs if n.startswith("cross_k_"))
        _, self.n_heads, self.head_dim, _ = (int(d) for d in inputs["cross_k_0"])
        self._cross_names = [o.name for o in self.encoder.get_outputs()][1:]
        self._self_names = [f"self_{kv}_{i}" for i in range(self.n_layers) for kv in ("k", "v")]

    def encode(self, mel: np.ndarray) -> list[np.ndarray]:
        return self.encoder.run(self._cross_names, {"mel": np.ascontiguousarray(mel, dtype=np.float32)})

    def decode(self, tokens: np.ndarray, self_kv: list[np.ndarray],
               cross: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        feeds = {"tokens": tokens, **dict(zip(self._self_names, self_kv)), **dict(zip(self._cross_names, cross))}
        out = self.decoder.run(None, feeds)
        return out[0], out[1:-1], out[-1]


@dataclass
class _Generation:
    tokens: list[int]
    avg_logprob: float
    temperature: float
    compression_ratio: float
    no_speech_prob: float


def compression_ratio(text: str) -> float:
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x)
    y = x - m
    return y - np.log(np.sum(np.exp(y)))


class WhisperDecoder:
    """faster-whisper's transcription loop over a :class:`Backend` (English-only models)."""

    def __init__(self, backend: Backend, tokenizer: WhisperTokenizer, config: dict[str, Any]) -> None:
        self.backend = backend
        self.tok = tokenizer
        self.vocab = int(config["vocab_size"])
        self.max_length = int(config.get("max_length", 448))
        self.alignment_heads = [tuple(h) for h in config["alignment_heads"]]
        self.suppress = np.array(tokenizer.suppress_tokens(), dtype=np.int64)
        self.suppress_begin = np.array(config["suppress_ids_begin"], dtype=np.int64)
        self.max_initial_id = self.tok.timestamp_begin + round(MAX_INITIAL_TIMESTAMP / TIME_PRECISION)
        self.rng = np.random.default_rng(0)

    # -- one decoding of one window ----------------------------------------------------------------
    def _empty_kv(self) -> list[np.ndarray]:
        b = self.backend
        return [np.zeros((1, b.n_heads, 0, b.head_dim), dtype=np.float32) for _ in range(2 * b.n_layers)]

    def _process(self, logits: np.ndarray, sampled: list[int]) -> np.ndarray:
        """The logits after CTranslate2's processors (suppression, blank at the start, timestamp rules)."""
        tb, eot = self.tok.timestamp_begin, self.tok.eot
        logits = logits.copy()
        logits[self.suppress] = -np.inf
        step = len(sampled)
        if step == 0:
            logits[self.suppress_begin] = -np.inf
        logits[self.tok.no_timestamps] = -np.inf
        check = False
        if step == 0:
            logits[:tb] = -np.inf
            logits[self.max_initial_id + 1:] = -np.inf
        else:
            last = sampled[-1]
            if last >= tb:
                penultimate = sampled[-2] if step >= 2 else last
                if penultimate >= tb:
                    logits[tb:] = -np.inf
                else:
                    logits[:eot] = -np.inf
                    check = True
            else:
                check = True
            for token in reversed(sampled):
                if token >= tb:
                    logits[tb:token] = -np.inf
                    break
        if check:
            logprobs = _log_softmax(logits)
            with np.errstate(under="ignore"):
                ts = logprobs[tb:]
                m = np.max(ts)
                ts_logprob = -np.inf if not np.isfinite(m) else m + np.log(np.sum(np.exp(ts - m)))
            if ts_logprob > np.max(logprobs[:tb]):
                logits[:tb] = -np.inf
        return logits

    def _generate(self, cross: list[np.ndarray], prompt: list[int], temperature: float) -> tuple[list[int], float, float]:
        """One hypothesis: (tokens without eot, cumulative log-prob with eot, no-speech probability)."""
        logits, kv, _ = self.backend.decode(np.array([prompt], dtype=np.int64), self._empty_kv(), cross)
        last = logits[0, -1].astype(np.float32)
        raw = last - last.max()
        no_speech = float(np.exp(raw[self.tok.no_speech]) / np.exp(raw).sum())
        sampled: list[int] = []
        cum = 0.0
        max_new = min(self.max_length // 2, self.max_length - (len(prompt) - 1))
        for _ in range(max_new):
            processed = self._process(last, sampled)
            logprobs = _log_softmax(processed)
            if temperature == 0:
                token = int(np.argmax(processed))
            else:
                z = processed / temperature
                p = np.exp(z - z.max())
                token = int(self.rng.choice(len(p), p=p / p.sum()))
            cum += float(logprobs[token])
            if token == self.tok.eot:
                break
            sampled.append(token)
            logits, kv, _ = self.backend.decode(np.array([[token]], dtype=np.int64), kv, cross)
            last = logits[0, -1].astype(np.float32)
        return sampled, cum, no_speech

    def generate_with_fallback(self, cross: list[np.ndarray], prompt: list[int],
                               temperatures: tuple[float, ...]) -> _Generation:
        all_results: list[_Generation] = []
        below_cr: list[_Generation] = []
        temperature = 0.0
        for temperature in temperatures:
            if temperature > 0:  # best of 5 samples by length-normalised score, as CTranslate2 ranks them
                hyps = [self._generate(cross, prompt, temperature) for _ in range(BEST_OF)]
                tokens, cum, no_speech = max(hyps, key=lambda h: h[1] / max(len(h[0]), 1))
            else:
                tokens, cum, no_speech = self._generate(cross, prompt, 0.0)
            avg = cum / (len(tokens) + 1)
            ratio = compression_ratio(self.tok.decode(tokens).strip())
            result = _Generation(tokens, avg, temperature, ratio, no_speech)
            all_results.append(result)
            needs_fallback = False
            if ratio > COMPRESSION_RATIO_THRESHOLD:
                needs_fallback = True
            else:
                below_cr.append(result)
            if avg < LOG_PROB_THRESHOLD:
                needs_fallback = True
            if no_speech > NO_SPEECH_THRESHOLD and avg < LOG_PROB_THRESHOLD:
                needs_fallback = False
            if not needs_fallback:
                return result
        best = max(below_cr or all_results, key=lambda r: r.avg_logprob)
        return _Generation(best.tokens, best.avg_logprob, temperature, best.compression_ratio, best.no_speech_prob)

    # -- segments and words -----------------------------------------------------------------------
    def _split_segments(self, tokens: list[int], time_offset: float, segment_size: int,
                        segment_duration: float, seek: int) -> tuple[list[dict], int, bool]:
        tb = self.tok.timestamp_begin
        segments: list[dict] = []
        single_timestamp_ending = len(tokens) >= 2 and tokens[-2] < tb <= tokens[-1]
        consecutive = [i for i in range(len(tokens)) if i > 0 and tokens[i] >= tb and tokens[i - 1] >= tb]
        if consecutive:
            slices = list(consecutive)
            if single_timestamp_ending:
                slices.append(len(tokens))
            last_slice = 0
            for current in slices:
                sliced = tokens[last_slice:current]
                segments.append({"seek": seek, "start": time_offset + (sliced[0] - tb) * TIME_PRECISION,
                                 "end": time_offset + (sliced[-1] - tb) * TIME_PRECISION, "tokens": sliced})
                last_slice = current
            if single_timestamp_ending:
                seek += segment_size
            else:
                seek += (tokens[last_slice - 1] - tb) * INPUT_STRIDE
        else:
            duration = segment_duration
            timestamps = [t for t in tokens if t >= tb]
            if timestamps and timestamps[-1] != tb:
                duration = (timestamps[-1] - tb) * TIME_PRECISION
            segments.append({"seek": seek, "start": time_offset, "end": time_offset + duration, "tokens": tokens})
            seek += segment_size
        return segments, seek, single_timestamp_ending

    def align(self, cross: list[np.ndarray], text_tokens: list[int], num_frames: int) -> tuple[list, list[float]]:
        """CTranslate2's ``Whisper.align``: the DTW path [(token, frame)] and each text token's probability."""
        tok = self.tok
        seq = tok.sot_sequence + [tok.no_timestamps] + list(text_tokens) + [tok.eot]
        logits, _, qk = self.backend.decode(np.array([seq], dtype=np.int64), self._empty_kv(), cross)
        logits = logits[0].astype(np.float32)
        outputs = seq[1:] + [0]
        text = logits[:, :tok.eot]
        text = text - text.max(axis=-1, keepdims=True)
        probs = np.exp(text)
        probs /= probs.sum(axis=-1, keepdims=True)
        offset = len(tok.sot_sequence)
        token_probs = [float(probs[offset + t, outputs[offset + t]]) for t in range(len(text_tokens))]
        weights = qk[0].astype(np.float32)  # [A, L, 1500]
        frames = num_frames // 2
        if frames < weights.shape[-1]:
            weights = weights[..., :frames]
        weights = weights - weights.max(axis=-1, keepdims=True)
        weights = np.exp(weights)
        weights /= weights.sum(axis=-1, keepdims=True)
        mean = weights.mean(axis=-2, keepdims=True)
        var = ((weights - mean) ** 2).mean(axis=-2, keepdims=True)
        weights = (weights - mean) / np.sqrt(var)
        weights = median_filter(weights, MEDIAN_FILTER_WIDTH)
        matrix = weights.mean(axis=0)[offset:offset + len(text_tokens) + 1]
        return negative_dtw(matrix), token_probs

    def find_alignment(self, text_tokens: list[int], cross: list[np.ndarray], num_frames: int) -> list[dict]:
        if not text_tokens:
            return []
        path, token_probs = self.align(cross, text_tokens, num_frames)
        text_indices = np.array([p[0] for p in path])
        time_indices = np.array([p[1] for p in path])
        words, word_tokens = self.tok.split_to_word_tokens(text_tokens + [self.tok.eot])
        if len(word_tokens) <= 1:
            return []
        word_boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
        if len(word_boundaries) <= 1:
            return []
        jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
        jump_times = time_indices[jumps] / TOKENS_PER_SECOND
        start_times = jump_times[word_boundaries[:-1]]
        end_times = jump_times[word_boundaries[1:]]
        probs = np.asarray(token_probs, dtype=np.float32)
        word_probabilities = [np.mean(probs[i:j]) for i, j in itertools.pairwise(word_boundaries)]
        return [{"word": w, "tokens": t, "start": s, "end": e, "probability": p}
                for w, t, s, e, p in zip(words, word_tokens, start_times, end_times, word_probabilities)]

    def add_word_timestamps(self, segments: list[dict], cross: list[np.ndarray], num_frames: int,
                            last_speech_timestamp: float) -> float:
        """faster-whisper's ``add_word_timestamps`` for one window's segments."""
        if not segments:
            return last_speech_timestamp
        per_segment = [[t for t in s["tokens"] if t < self.tok.eot] for s in segments]
        text_tokens = [t for seg in per_segment for t in seg]
        alignment = self.find_alignment(text_tokens, cross, num_frames)
        durations = np.array([w["end"] - w["start"] for w in alignment])
        durations = durations[durations.nonzero()]
        median_duration = min(0.7, float(np.median(durations) if len(durations) > 0 else 0.0))
        max_duration = median_duration * 2
        if len(durations) > 0:
            sentence_end_marks = ".。!！?？"
            for i in range(1, len(alignment)):
                if alignment[i]["end"] - alignment[i]["start"] > max_duration:
                    if alignment[i]["word"] in sentence_end_marks:
                        alignment[i]["end"] = alignment[i]["start"] + max_duration
                    elif alignment[i - 1]["word"] in sentence_end_marks:
                        alignment[i]["start"] = alignment[i]["end"] - max_duration
        merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)

        word_index = 0
        time_offset = segments[0]["seek"] / FRAMES_PER_SECOND
        for sub_index, sub in enumerate(segments):
            saved_tokens = 0
            words: list[dict] = []
            while word_index < len(alignment) and saved_tokens < len(per_segment[sub_index]):
                timing = alignment[word_index]
                if timing["word"]:
                    words.append({"word": timing["word"], "start": round(time_offset + timing["start"], 2),
                                  "end": round(time_offset + timing["end"], 2),
                                  "probability": timing["probability"]})
                saved_tokens += len(timing["tokens"])
                word_index += 1
            if words:
                if words[0]["end"] - last_speech_timestamp > median_duration * 4 and (
                    words[0]["end"] - words[0]["start"] > max_duration
                    or (len(words) > 1 and words[1]["end"] - words[0]["start"] > max_duration * 2)
                ):
                    if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
                        boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
                        words[0]["end"] = words[1]["start"] = boundary
                    words[0]["start"] = max(0, words[0]["end"] - max_duration)
                if sub["start"] < words[0]["end"] and sub["start"] - 0.5 > words[0]["start"]:
                    words[0]["start"] = max(0, min(words[0]["end"] - median_duration, sub["start"]))
                else:
                    sub["start"] = words[0]["start"]
                if sub["end"] > words[-1]["start"] and sub["end"] + 0.5 < words[-1]["end"]:
                    words[-1]["end"] = max(words[-1]["start"] + median_duration, sub["end"])
                else:
                    sub["end"] = words[-1]["end"]
                last_speech_timestamp = sub["end"]
            sub["words"] = words
        return last_speech_timestamp

    def transcribe(self, audio: np.ndarray, temperatures: tuple[float, ...] = FALLBACK_TEMPERATURES) -> list[dict]:
        """Segments (dicts with start, end, text, tokens, words, avg_logprob, ...) of up to any length of audio,
        as ``WhisperModel.transcribe(..., beam_size=1, word_timestamps=True, condition_on_previous_text=False,
        vad_filter=False)`` yields them."""
        self.rng = np.random.default_rng(0)
        features = log_mel(audio)
        content_frames = features.shape[-1] - 1
        seek = 0
        last_speech_timestamp = 0.0
        out: list[dict] = []
        while seek < content_frames:
            time_offset = seek * HOP / SAMPLE_RATE
            segment_size = min(N_FRAMES, content_frames - seek)
            segment = pad_or_trim(features[:, seek:seek + segment_size])
            segment_duration = segment_size * HOP / SAMPLE_RATE
            cross = self.backend.encode(segment[None])
            result = self.generate_with_fallback(cross, list(self.tok.sot_sequence), temperatures)
            if result.no_speech_prob > NO_SPEECH_THRESHOLD and not result.avg_logprob > LOG_PROB_THRESHOLD:
                seek += segment_size
                continue
            previous_seek = seek
            segments, seek, single_ending = self._split_segments(result.tokens, time_offset, segment_size,
                                                                 segment_duration, seek)
            last_speech_timestamp = self.add_word_timestamps(segments, cross, segment_size,
                                                             last_speech_timestamp)
            if not single_ending:
                last_word_end = _get_end(segments)
                if last_word_end is not None and last_word_end > time_offset:
                    seek = round(last_word_end * FRAMES_PER_SECOND)
            last_word_end = _get_end(segments)
            if last_word_end is not None:
                last_speech_timestamp = last_word_end
            for s in segments:
                text = self.tok.decode(s["tokens"])
                if s["start"] == s["end"] or not text.strip():
                    continue
                out.append(dict(s, text=text, seek=previous_seek, temperature=result.temperature,
                                avg_logprob=result.avg_logprob, compression_ratio=result.compression_ratio,
                                no_speech_prob=result.no_speech_prob))
        return out


def _get_end(segments: list[dict]) -> float | None:
    return next((w["end"] for s in reversed(segments) for w in reversed(s.get("words") or [])),
                segments[-1]["end"] if segments else None)


def merge_punctuations(alignment: list[dict], prepended: str, appended: str) -> None:
    i, j = len(alignment) - 2, len(alignment) - 1
    while i >= 0:
        previous, following = alignment[i], alignment[j]
        if previous["word"].startswith(" ") and previous["word"].strip() in prepended:
            following["word"] = previous["word"] + following["word"]
            following["tokens"] = previous["tokens"] + following["tokens"]
            previous["word"], previous["tokens"] = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        previous, following = alignment[i], alignment[j]
        if not previous["word"].endswith(" ") and following["word"] in appended:
            previous["word"] = previous["word"] + following["word"]
            previous["tokens"] = previous["tokens"] + following["tokens"]
            following["word"], following["tokens"] = "", []
        else:
            i = j
        j += 1


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a window of ``width`` along the last axis, edges reflected (CTranslate2's MedianFilter)."""
    rank = width // 2
    depth = x.shape[-1]
    if depth <= rank:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(rank, rank)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.median(windows, axis=-1).astype(np.float32)


def negative_dtw(x: np.ndarray) -> list[tuple[int, int]]:
    """CTranslate2's ``negative_dtw`` (dtw.cc): DTW on ``-x``, float32, ties as there; the backtrace stops at
    the first row or column. Vectorised over anti-diagonals."""
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf, dtype=np.float32)
    trace = np.full((n + 1, m + 1), -1, dtype=np.int32)
    cost[0, 0] = 0
    neg = (-x).astype(np.float32)
    for s in range(2, n + m + 1):  # i + j == s, 1 <= i <= n, 1 <= j <= m
        i = np.arange(max(1, s - m), min(n, s - 1) + 1)
        j = s - i
        c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
        t = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        c = np.where(t == 0, c0, np.where(t == 1, c1, c2))
        cost[i, j] = neg[i - 1, j - 1] + c
        trace[i, j] = t
    trace[0, :] = 2
    trace[:, 0] = 1
    i, j = n, m
    result = []
    while i > 0 and j > 0:
        result.append((i - 1, j - 1))
        t = trace[i, j]
        if t == 0:
            i, j = i - 1, j - 1
        elif t == 1:
            i -= 1
        else:
            j -= 1
    return result[::-1]


# ------------------------------------------------------------------------------------------------ engine
class OnnxWhisperEngine:
    """A Whisper model folder from ``build_onnx_whisper`` with :class:`~mmdesk.asr.engine.WhisperEngine`'s
    interface. Not thread-safe: one decoding call at a time."""

    def __init__(self, folder: str | Path, *, device: str = "auto", threads: int | None = None,
                 name: str | None = None, choice: ModelChoice | None = None) -> None:
        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{folder} is not an ONNX Whisper folder ({exc})",
                             "build it with mmdesk.training.whisper_onnx_export") from None
        if config.get("multilingual"):
            raise ModelError(f"{folder}: multilingual Whisper is not supported by the ONNX engine yet",
                             "use the CTranslate2 engine for multilingual models")
        # "auto" stays on the CPU: not measured on a GPU yet (tiny.en spends its time in per-token calls)
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise MmdeskError("--device cuda: onnxruntime has no CUDA provider", "use --device auto or cpu")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        self.folder = folder
        self.device = "cuda" if providers[0] == "CUDAExecutionProvider" else "cpu"
        self._name = name or f"{folder.name} (onnx)"
        self.choice = choice or ModelChoice(str(folder), self._name)  # what records name as the model
        self.multilingual = False
        self.last_segments: list[dict] = []
        self.backend = OrtBackend(folder, threads=threads, providers=providers)
        self.decoder = WhisperDecoder(self.backend, WhisperTokenizer(folder / "tokenizer.json", config), config)

    @property
    def name(self) -> str:
        return self._name

    def check_language(self, language: str | None) -> str | None:
        if not language or language == "auto":
            return "en"
        if self.decoder.tok.tokenizer.token_to_id(f"<|{language.lower()}|>") is None:  # Whisper's codes
            raise MmdeskError(f"unknown language code {language!r} for speech-to-text",
                              "use a Whisper language code such as en, de, fr, es, or auto")
        if language.lower() != "en":
            raise MmdeskError(
                f"the speech-to-text model {self.name} is English-only and cannot transcribe {language!r}",
                "pass --asr-model with a multilingual Whisper model (e.g. 'small', or a local folder)",
            )
        return "en"

    def decode(self, audio: np.ndarray, language: str | None) -> Decoded:
        """Transcribe 16 kHz mono float32 audio (up to 30 s) with word timestamps."""
        self.check_language(language)
        segments = self.decoder.transcribe(np.asarray(audio, dtype=np.float32))
        self.last_segments = segments  # for inspection: temperature, avg_logprob, no_speech_prob per segment
        words = tuple(
            Word(float(w["start"]), max(float(w["end"]), float(w["start"])), w["word"].strip(),
                 float(w["probability"]))
            for seg in segments for w in (seg.get("words") or ()) if w["word"].strip()
        )
        return Decoded(words, "en", 1.0)
