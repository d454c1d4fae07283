"""``mmdesk transcribe CLIP``: the clip's speech as text with timestamps (.srt, .vtt, .jsonl or plain text)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mmdesk import __version__


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clip", help="video or audio file (anything FFmpeg reads)")
    p.add_argument("--out", "-o", help="transcript file: .srt, .vtt, .jsonl or .txt (default: text on standard output)")
    p.add_argument("--format", choices=("srt", "vtt", "jsonl", "txt"), help="output format (default: from --out's suffix)")
    p.add_argument("--asr-model", metavar="MODEL",
                   help="Whisper model: a CTranslate2 folder, or a name/hub id such as 'small' (default: the pack's tiny.en)")
    p.add_argument("--language", metavar="CODE", help="spoken language, e.g. en or de (default: auto-detect)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="execution device")
    p.add_argument("--models", help="model pack directory (default: $MMDESK_MODELS or the user data dir)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for Whisper (default: CTranslate2's)")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary on standard error")


def run(args: argparse.Namespace) -> int:
    from mmdesk.asr.engine import choose_model, open_engine
    from mmdesk.asr.events import MIN_CONFIDENCE
    from mmdesk.asr.segmenter import SpeechSegmenter
    from mmdesk.asr.transcriber import SpeechTranscriber
    from mmdesk.asr.writers import TranscriptWriter, format_for
    from mmdesk.capture.clip import ClipSource
    from mmdesk.core.types import AudioChunk
    from mmdesk.errors import MmdeskError
    from mmdesk.inference.pack import open_pack
    from mmdesk.perception.vad import SileroVad

    clip = Path(args.clip)
    source = ClipSource(clip, video=False, subtitles=False)  # probes: a bad clip fails before any model loads
    source.open()
    try:
        manifest = open_pack(args.models)
        engine = open_engine(choose_model(args.asr_model, manifest), device=args.device, threads=args.threads)
        transcriber = SpeechTranscriber(engine, SpeechSegmenter(SileroVad(manifest)), language=args.language)
        writer = TranscriptWriter(args.out, format_for(args.out, args.format))
    except BaseException:
        source.close()
        raise

    def chunks() -> Iterator[AudioChunk]:
        while (item := source.read()) is not None:
            if isinstance(item, AudioChunk):
                yield item

    writer.meta({"version": __version__, "source": str(clip.resolve()), "duration": source.info.duration,
                 "model": engine.name, "model_sha256": engine.choice.sha256,
                 "language": transcriber.language or "auto", "min_confidence": MIN_CONFIDENCE})
    started = time.perf_counter()
    held = 0
    interrupted = False
    try:
        for u in transcriber.stream(chunks()):
            low = u.confidence < MIN_CONFIDENCE
            held += low
            writer.utterance(u, low_confidence=low)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        elapsed = time.perf_counter() - started
        media = source.audio_samples_delivered / 16_000
        s = transcriber.stats
        error = source.error or ("interrupted" if interrupted else "")
        writer.end({"complete": not error, "utterances": s.utterances, "low_confidence": held, "words": s.words,
                    "media_seconds": round(media, 3), "speech_seconds": round(s.speech_seconds, 3),
                    "seconds": round(elapsed, 3), "languages": dict(s.languages), "error": error})
        writer.close()
        source.close()
    if not args.quiet:
        where = f" to {args.out}" if args.out else ""
        speed = f" ({elapsed / media:.3f}× real time)" if media > 0 else ""
        print(f"mmdesk: {s.utterances} utterances, {s.words} words{where} in {elapsed:.1f} s{speed}", file=sys.stderr)
        if held:
            print(f"mmdesk: note: {held} utterance(s) have a mean word probability below {MIN_CONFIDENCE}: speech "
                  f"the model does not know ({engine.name}{' is English-only' if not engine.multilingual else ''})",
                  file=sys.stderr)
        if s.utterances == 0:
            print("mmdesk: note: no speech was transcribed: the VAD heard none, or Whisper found no words in it",
                  file=sys.stderr)
    if interrupted:
        return 130
    if source.error:
        raise MmdeskError(f"{clip.name}: {source.error}; the {s.utterances} utterances before it were written",
                          "the file is damaged or truncated: re-export or re-download it")
    return 0
