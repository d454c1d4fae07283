"""``mmdesk analyze CLIP``: per-window face, voice and text judgements as JSON Lines or CSV."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from mmdesk import __version__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clip", help="video or audio file (anything FFmpeg reads)")
    p.add_argument("--out", "-o", help="result file (default: standard output)")
    p.add_argument("--format", choices=("jsonl", "csv"), help="output format (default: from --out's suffix, else jsonl)")
    p.add_argument("--window", type=float, default=2.0, help="window length in seconds (default 2.0)")
    p.add_argument("--hop", type=float, default=0.5, help="hop between window starts in seconds (default 0.5)")
    p.add_argument("--fps", type=float, default=5.0,
                   help="video frames analysed per second (default 5; 0 = every frame)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="execution device")
    p.add_argument("--models", help="model pack directory (default: $MMDESK_MODELS or the user data dir)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per model (default: onnxruntime's)")
    p.add_argument("--no-subtitles", action="store_true", help="ignore a sidecar .srt/.vtt next to the clip")
    p.add_argument("--no-asr", action="store_true", help="do not transcribe the clip's speech (text only from subtitles)")
    p.add_argument("--asr-model", metavar="MODEL",
                   help="Whisper model: a CTranslate2 folder, or a name/hub id such as 'small' (default: the pack's tiny.en)")
    p.add_argument("--language", metavar="CODE", help="spoken language, e.g. en or de (default: auto-detect)")
    p.add_argument("--context", choices=("words", "utterance"), default="words",
                   help="a window's text: the words spoken in it (default), or the current and previous utterance")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notes")


def run(args: argparse.Namespace) -> int:
    from mmdesk.analysis.analyzer import Analyzer, AnalyzerSettings
    from mmdesk.analysis.clip import ClipRun, analyse_clip
    from mmdesk.analysis.records import window_record
    from mmdesk.analysis.writers import RecordWriter
    from mmdesk.capture.clip import ClipSource
    from mmdesk.core.labels import LABELS
    from mmdesk.errors import MmdeskError
    from mmdesk.inference.pack import open_pack
    from mmdesk.sync.windower import WindowSpec

    try:
        spec = WindowSpec(args.window, args.hop)
    except ValueError as exc:
        raise MmdeskError(f"invalid window settings: {exc}", "use e.g. --window 2.0 --hop 0.5") from None
    if args.fps < 0:
        raise MmdeskError(f"--fps must be ≥ 0, got {args.fps}", "use 0 for every frame or e.g. 5")
    fmt = args.format or ("csv" if args.out and args.out.lower().endswith(".csv") else "jsonl")
    clip = Path(args.clip)
    # opening probes the file: a bad clip fails with one line before any model is loaded
    source = ClipSource(clip, max_fps=args.fps or None, subtitles=not args.no_subtitles)
    source.open()
    info = source.info
    try:
        manifest = open_pack(args.models)
        analyzer = Analyzer(manifest, AnalyzerSettings(device=args.device, threads=args.threads))
        text_source, speech = _text_source(args, source, manifest)
        writer = RecordWriter(args.out, fmt)
    except BaseException:
        source.close()
        raise
    clip_run = ClipRun(clip)
    meta = {
        "type": "meta",
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {"path": str(clip.resolve()), "duration": info.duration, "has_video": info.has_video,
                   "has_audio": info.has_audio, "width": info.width, "height": info.height,
                   "fps": info.fps, "audio_rate": info.audio_rate, "audio_channels": info.audio_channels},
        "settings": {"window": spec.length, "hop": spec.hop, "fps": args.fps, "device": args.device,
                     "subtitles": not args.no_subtitles, "asr": not args.no_asr, "context": args.context},
        "text_source": text_source,
        "labels": list(LABELS),
        "models": {**analyzer.models(), **_speech_model(speech)},
        "providers": analyzer.providers(),
        "fusion": analyzer.fusion_info(),
        "notes": list(info.notes),
    }
    writer.write(meta)
    bar = _progress_bar(args.quiet, clip.name)
    started = time.perf_counter()
    interrupted = False
    try:
        for result in analyse_clip(source, analyzer, spec, run=clip_run, progress=bar.update if bar else None,
                                   speech=speech):
            writer.write(window_record(result))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        elapsed = time.perf_counter() - started
        if bar:
            bar.close()
        complete = clip_run.complete and not interrupted
        if speech is not None:
            clip_run.notes.extend(speech.notes())
        writer.write({"type": "end", "complete": complete, "windows": writer.windows,
                      "media_seconds": round(clip_run.media_seconds, 3), "seconds": round(elapsed, 3),
                      "error": clip_run.error or ("interrupted" if interrupted else ""),
                      "notes": [n for n in clip_run.notes if n not in info.notes],
                      **({"asr": speech.summary()} if speech is not None else {})})
        writer.close()
    if not args.quiet:
        for note in clip_run.notes:
            print(f"mmdesk: note: {note}", file=sys.stderr)
        speed = clip_run.media_seconds / elapsed if elapsed > 0 else 0.0
        where = f" to {args.out}" if args.out else ""
        print(f"mmdesk: {writer.windows} windows{where} in {elapsed:.1f} s ({speed:.1f}× real time)",
              file=sys.stderr)
    if interrupted:
        print(f"mmdesk: interrupted; the {writer.windows} finished windows were kept", file=sys.stderr)
        return 130
    if clip_run.error:
        raise MmdeskError(
            f"{clip.name}: decoding stopped at {clip_run.media_seconds:.1f} s ({clip_run.error}); "
            f"the {writer.windows} windows before it were written",
            "the file is damaged or truncated: re-export or re-download it",
        )
    return 0


def _text_source(args: argparse.Namespace, source, manifest) -> tuple[str, object]:
    """Where the windows' text comes from: "subtitle" (a sidecar wins), "asr", or "none"; and the ASR stage."""
    if source.subtitle_path is not None:
        return "subtitle", None
    if args.no_asr or not source.has_audio:
        return "none", None
    from mmdesk.asr.events import open_clip_speech

    speech = open_clip_speech(manifest, model=args.asr_model, language=args.language, context=args.context,
                              device=args.device, threads=args.threads)
    return "asr", speech


def _speech_model(speech) -> dict[str, dict[str, str]]:
    if speech is None:
        return {}
    choice = speech.transcriber.engine.choice
    return {"speech_to_text": {"file": choice.name, "sha256": choice.sha256}}


class _Bar:
    def __init__(self, name: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=1000, desc=name[:30], unit="‰", file=sys.stderr, leave=False,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
        self._done = 0

    def update(self, fraction: float) -> None:
        n = int(fraction * 1000)
        if n > self._done:
            self._bar.update(n - self._done)
            self._done = n

    def close(self) -> None:
        self._bar.close()


def _progress_bar(quiet: bool, name: str) -> _Bar | None:
    return None if quiet or not sys.stderr.isatty() else _Bar(name)
