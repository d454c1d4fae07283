"""``mmdesk bench``: per-stage latency, throughput, memory, and ONNX vs PyTorch eager.

Numbers are printed, never asserted: see docs/benchmarks.md for this machine kind's figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CLIP = "../shared/assets/av/ravdess_actor05/01-01-03-01-01-02-05.mp4"
STAGES = ("decode", "windowing", "face_detection", "face_model", "vad", "audio_features", "voice_model",
          "text_encoder", "fusion")
SENTENCES = [
    "Wow, great food.",
    "Oh my God, I can't believe you did that!",
    "I'm fine.",
    "So, um, are you going to tell me what happened last night or do I have to guess?",
    "That is the worst idea anyone has ever had in the history of this apartment.",
    "Yeah, right, because that always works out so well for us.",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", choices=("pipeline", "asr"), default="pipeline",
                   help="pipeline (default): the clip pipeline stage by stage; asr: speech-to-text WER, RTF, latency")
    p.add_argument("--clip", help=f"clip to analyse (default: {DEFAULT_CLIP} relative to the repo)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--repeat", type=int, default=3, help="analyse the clip this many times (default 3)")
    p.add_argument("--fps", type=float, default=5.0, help="video frames analysed per second (default 5)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--models", help="model pack directory")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager comparison")
    p.add_argument("--asr-model", metavar="MODEL", help="bench asr: Whisper model (default: the pack's)")
    p.add_argument("--no-live", action="store_true", help="bench asr: skip the real-time live latency run (44 s)")


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "median_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan")}
    a = np.asarray(values)
    return {"n": int(a.size), "median_ms": round(float(np.median(a)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "mean_ms": round(float(a.mean()), 3)}


def _time(fn, n: int = 30, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _default_clip() -> Path:
    root = Path(__file__).resolve().parents[2]
    return (root / DEFAULT_CLIP).resolve()


def run(args: argparse.Namespace) -> int:
    if args.what == "asr":
        from mmdesk.asr.benchmark import print_asr, run_asr

        report = run_asr(args)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_asr(report)
        return 0
    from mmdesk.analysis.analyzer import Analyzer, AnalyzerSettings
    from mmdesk.analysis.clip import ClipRun, analyse_clip
    from mmdesk.capture.clip import ClipSource
    from mmdesk.capture.probe import probe
    from mmdesk.errors import MmdeskError
    from mmdesk.inference.pack import open_pack
    from mmdesk.perception.face import face_crop
    from mmdesk.perception.imageops import resize_bilinear
    from mmdesk.sync.windower import WindowSpec

    clip = Path(args.clip) if args.clip else _default_clip()
    if not clip.is_file():
        raise MmdeskError(f"benchmark clip {clip} not found", "pass one with --clip FILE")
    info = probe(clip)
    manifest = open_pack(args.models)
    analyzer = Analyzer(manifest, AnalyzerSettings(device=args.device))
    spec = WindowSpec(2.0, 0.5)

    # 1. the whole clip pipeline, as `mmdesk analyze` runs it
    per_window: dict[str, list[float]] = {s: [] for s in STAGES}
    wall, media, windows = 0.0, 0.0, 0
    for i in range(max(1, args.repeat) + 1):  # the first pass warms caches and is not counted
        run_ = ClipRun(clip)
        t = time.perf_counter()
        results = list(analyse_clip(clip, analyzer, spec, max_fps=args.fps or None, run=run_))
        elapsed = time.perf_counter() - t
        if i == 0:
            continue
        wall += elapsed
        media += run_.media_seconds
        windows += len(results)
        for r in results:
            for s in STAGES:
                per_window[s].append(r.timings_ms.get(s, 0.0))
    per_frame = {k: list(v) for k, v in analyzer.times.per_frame.items()}

    # 2. face detection + expression per 640×480 frame, on frames of the clip
    frames = []
    with ClipSource(clip, audio=False, subtitles=False, max_fps=5) as src:
        while len(frames) < 12 and not src.exhausted:
            item = src.read(timeout=1.0)
            if item is not None and hasattr(item, "image"):
                frames.append(resize_bilinear(item.image, (640, 480)))
    face_ms: list[float] = []
    for _ in range(3):
        for img in frames:
            t = time.perf_counter()
            dets = analyzer.detector.detect(img)
            if dets:
                analyzer.expression.predict(face_crop(img, dets[0], analyzer.expression.size)[None])
            face_ms.append((time.perf_counter() - t) * 1e3)

    # 3. text encoder + head on sentences of different lengths (no cache)
    text_ms = []
    for _ in range(5):
        for s in SENTENCES:
            analyzer.text._cache.clear()
            t = time.perf_counter()
            analyzer.text.predict(s)
            text_ms.append((time.perf_counter() - t) * 1e3)
    fusion_wall, fusion_cpu = _fusion_ms(analyzer)
    rss = _peak_rss_mb()

    report: dict[str, Any] = {
        "clip": str(clip), "clip_seconds": info.duration, "resolution": f"{info.width}x{info.height}",
        "machine": f"{platform.machine()} {platform.processor() or ''} {__import__('os').cpu_count()} cpus".strip(),
        "settings": {"window": spec.length, "hop": spec.hop, "fps": args.fps, "repeat": args.repeat},
        "providers": analyzer.providers(),
        "stages_per_window": {s: _stats(v) for s, v in per_window.items()},
        "per_frame": {k: _stats(v) for k, v in per_frame.items()},
        "face_640x480_frame": _stats(face_ms),
        "text_per_sentence": _stats(text_ms),
        "fusion_per_window_3_modalities": ({"wall": _stats(fusion_wall), "cpu": _stats(fusion_cpu)}
                                           if fusion_wall else analyzer.fusion_problem),
        "windows": windows,
        "windows_per_s": round(windows / wall, 2) if wall else None,
        "x_real_time": round(media / wall, 2) if wall else None,
        "peak_rss_mb": round(rss, 1),
    }
    if not args.no_torch:
        report["onnx_vs_torch"] = _torch_comparison(analyzer, manifest, frames)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


def _fusion_ms(analyzer) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of fusion with face, voice and text present (8 subsets, attribution,
    interaction, the record), at the token counts of a 2 s window: 4 face frames (the analyzer's
    FACE_TOKENS), 25 voice steps, 12 word pieces. CPU time is what the call costs when the machine is not shared."""
    if analyzer.fusion is None:
        return [], []
    rng = np.random.default_rng(0)
    tokens = {m: rng.standard_normal((n, analyzer.fusion.dims[m])).astype(np.float32)
              for m, n in (("face", 4), ("voice", 25), ("text", 12))}
    uni = {m: tuple(rng.dirichlet(np.ones(7))) for m in tokens}
    wall, cpu = [], []
    for i in range(210):
        t, c = time.perf_counter(), time.thread_time()
        analyzer.fusion.fuse(tokens, uni).as_record()
        if i >= 10:
            wall.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.thread_time() - c) * 1e3)
    return wall, cpu


def _torch_comparison(analyzer, manifest, frames) -> dict[str, Any]:
    """The same inputs through the ONNX sessions and through the PyTorch models they came from."""
    try:
        import torch
    except ImportError:
        return {"skipped": "PyTorch is not installed (it is only needed for this comparison)"}
    from mmdesk.perception.face import face_crop
    from mmdesk.training.eager import load_eager_models

    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        eager = load_eager_models(manifest)
    except Exception as exc:  # a missing source wheel must not break the benchmark
        return {"skipped": f"PyTorch models unavailable: {exc}"}
    out: dict[str, Any] = {}
    # face expression: one crop
    img = frames[0] if frames else np.zeros((480, 640, 3), np.uint8)
    dets = analyzer.detector.detect(img)
    crop = face_crop(img, dets[0], analyzer.expression.size)[None] if dets else np.zeros((1, 64, 64), np.uint8)
    x = ((crop.astype(np.float32) / 255 - 0.5) / 0.5)[:, None]
    out["face_expression"] = _pair(lambda: analyzer.expression.model.run({"image": x}),
                                   lambda: eager["face_expression"](torch.from_numpy(x)))
    # voice: 2 s of speech-like noise through features → model (features excluded: same numpy code)
    feats = analyzer.voice.features(np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1)
    f = feats.astype(np.float32)
    out["voice_emotion"] = _pair(lambda: analyzer.voice.model.run({analyzer.voice._input: f}),
                                 lambda: eager["voice_emotion"](torch.from_numpy(f)))
    # text encoder: one mid-length sentence
    enc = analyzer.text.tokenizer.encode(SENTENCES[3])
    ids = np.asarray([enc.ids], np.int64)
    mask = np.ones_like(ids)
    out["text_encoder"] = _pair(lambda: analyzer.text.encoder.run({"input_ids": ids, "attention_mask": mask}),
                                lambda: eager["text_encoder"](torch.from_numpy(ids), torch.from_numpy(mask)))
    return out


def _pair(onnx_fn, torch_fn) -> dict[str, float]:
    import torch

    onnx_ms = float(np.median(_time(onnx_fn, 50)))
    with torch.inference_mode():
        torch_ms = float(np.median(_time(torch_fn, 50)))
    return {"onnx_median_ms": round(onnx_ms, 3), "torch_median_ms": round(torch_ms, 3),
            "speedup": round(torch_ms / onnx_ms, 2) if onnx_ms > 0 else None}


def _print(r: dict[str, Any]) -> None:
    print(f"clip: {r['clip']} ({r['clip_seconds']:.2f} s, {r['resolution']}), {r['machine']}")
    print(f"settings: {r['settings']}")
    print("active providers: " + ", ".join(f"{k}={v}" for k, v in r["providers"].items()))
    # decoding runs ahead in its own thread: its time lands on whichever window is emitted next,
    # so for decode the mean per window is the figure to read
    print(f"\n{'stage (ms per window)':24s} {'median':>9s} {'p95':>9s} {'mean':>9s}")
    for s, st in r["stages_per_window"].items():
        print(f"{s:24s} {st['median_ms']:9.3f} {st['p95_ms']:9.3f} {st['mean_ms']:9.3f}")
    print(f"\n{'per analysed frame (ms)':24s} {'median':>9s} {'p95':>9s}")
    for s, st in r["per_frame"].items():
        print(f"{s:24s} {st['median_ms']:9.3f} {st['p95_ms']:9.3f}")
    st = r["face_640x480_frame"]
    print(f"{'face det+expr 640×480':24s} {st['median_ms']:9.3f} {st['p95_ms']:9.3f}")
    st = r["text_per_sentence"]
    print(f"{'text enc+head/sentence':24s} {st['median_ms']:9.3f} {st['p95_ms']:9.3f}")
    st = r["fusion_per_window_3_modalities"]
    if isinstance(st, dict):
        print(f"{'fusion+attribution/win':24s} {st['wall']['median_ms']:9.3f} {st['wall']['p95_ms']:9.3f}"
              f"   (CPU time: median {st['cpu']['median_ms']:.3f})")
    else:
        print(f"fusion: not available ({st})")
    print(f"\nwindows: {r['windows']}  windows/s: {r['windows_per_s']}  × real time: {r['x_real_time']}  "
          f"peak RSS: {r['peak_rss_mb']} MB")
    cmp_ = r.get("onnx_vs_torch")
    if cmp_:
        if "skipped" in cmp_:
            print(f"\nONNX vs PyTorch eager: skipped ({cmp_['skipped']})")
        else:
            print(f"\n{'ONNX vs PyTorch eager':24s} {'onnx ms':>9s} {'torch ms':>9s} {'ratio':>7s}")
            for k, v in cmp_.items():
                print(f"{k:24s} {v['onnx_median_ms']:9.3f} {v['torch_median_ms']:9.3f} {v['speedup']:6.2f}×")
