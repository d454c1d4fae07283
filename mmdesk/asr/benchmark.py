"""``mmdesk bench asr``: word error rate and real-time factor of speech-to-text, and live latency.

* WER (jiwer, after lower-casing and dropping punctuation) on the real read speech in
  ``../shared/assets/media`` (two_cities.wav, beckett.wav, with their known texts), on ten RAVDESS
  clips joined (one actor repeating two sentences: a trap for Whisper, which skips repeats) and on
  speech synthesised by espeak-ng from a known text.
* RTF: wall time of VAD + Whisper divided by the audio's duration, median of ``--repeat`` runs
  (the audio is decoded beforehand: decoding is not speech-to-text). Also the CPU time of the process
  (all its threads) per second of audio, which other processes on a shared machine do not inflate:
  on an otherwise idle machine the wall RTF lies between it and it divided by the cores used.
* Live latency: two_cities.wav fed in real time to the live source; seconds from the end of each
  utterance's speech to its final text event (median and max).

Numbers are printed, never asserted; docs/benchmarks.md has this machine kind's figures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmdesk.errors import MmdeskError

TWO_CITIES = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it "
    "was the season of Darkness, it was the spring of hope, it was the winter of despair, we had everything "
    "before us, we had nothing before us, we were all going direct to Heaven, we were all going direct the "
    "other way - in short, the period was so far like the present period, that some of its noisiest "
    "authorities insisted on its being received, for good or for evil, in the superlative degree of "
    "comparison only."
)
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
ESPEAK_TEXT = (
    "Oh great, another meeting that could have been an email. I absolutely love waiting in line for three "
    "hours. The quick brown fox jumps over the lazy dog. Yeah, right, because that always works out so well "
    "for us. Thank you so much for reminding me, I would never have remembered on my own."
)


def words(text: str) -> str:
    """Lower case, punctuation and dashes dropped: what WER compares."""
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split())


def _assets(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("MMDESK_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "assets"


def _espeak_wav(text: str, folder: Path) -> Path | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    out = folder / "espeak.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "160", "-w", str(out), text], check=True, capture_output=True)
    return out


def run_asr(args: Any) -> dict[str, Any]:
    try:
        import jiwer
    except ImportError:
        raise MmdeskError("jiwer is not installed", "pip install jiwer (the dev extra has it)") from None
    from mmdesk.asr.engine import choose_model, open_engine
    from mmdesk.asr.segmenter import SpeechSegmenter
    from mmdesk.asr.transcriber import SpeechTranscriber
    from mmdesk.capture.clip import ClipSource
    from mmdesk.core.types import AudioChunk
    from mmdesk.inference.pack import open_pack
    from mmdesk.perception.vad import SileroVad

    assets = _assets(getattr(args, "assets", None))
    manifest = open_pack(args.models)
    t = time.perf_counter()
    engine = open_engine(choose_model(getattr(args, "asr_model", None), manifest), device=args.device)
    load_s = time.perf_counter() - t

    def chunks_of(path: Path) -> list[AudioChunk]:
        with ClipSource(path, video=False, subtitles=False) as src:
            src.open()
            return [c for c in iter(src.read, None) if isinstance(c, AudioChunk)]

    def transcriber() -> SpeechTranscriber:
        return SpeechTranscriber(engine, SpeechSegmenter(SileroVad(manifest)))

    items: list[tuple[str, list[AudioChunk], str]] = []
    for name, text in (("two_cities.wav", TWO_CITIES), ("beckett.wav", BECKETT)):
        path = assets / "media" / name
        if path.is_file():
            items.append((name, chunks_of(path), text))
    ravdess = sorted((assets / "av" / "ravdess_actor05").glob("01-*.mp4"))[2:12]
    if ravdess:  # the joined clip of the pipeline benchmark: two sentences, said again and again
        joined, t0 = [], 0.0
        for clip in ravdess:
            cs = chunks_of(clip)
            joined += [AudioChunk(t0 + c.t, c.samples) for c in cs]
            t0 += cs[-1].end
        items.append((f"RAVDESS actor 05, {len(ravdess)} clips joined", joined,
                      " ".join(RAVDESS_STATEMENTS[p.name.split("-")[4]] for p in ravdess)))
    tmp = Path(tempfile.mkdtemp(prefix="mmdesk-bench-asr-"))
    notes: list[str] = []
    try:
        espeak = _espeak_wav(ESPEAK_TEXT, tmp)
        if espeak is not None:
            items.append(("espeak-ng (en-us, 5 sentences)", chunks_of(espeak), ESPEAK_TEXT))
        else:
            notes.append("espeak-ng not installed: synthetic speech skipped")
        if not (assets / "media").is_dir():
            notes.append(f"no real speech at {assets / 'media'}: set MMDESK_ASSETS")
        rows = []
        for name, chunks, text in items:
            seconds = chunks[-1].end - chunks[0].t
            rtfs, cpu_rtfs, hyp = [], [], ""
            for _ in range(max(1, args.repeat)):
                tr = transcriber()
                t, cpu = time.perf_counter(), time.process_time()
                hyp = " ".join(u.text for u in tr.stream(chunks))
                rtfs.append((time.perf_counter() - t) / seconds)
                cpu_rtfs.append((time.process_time() - cpu) / seconds)
            out = jiwer.process_words(words(text), words(hyp) or "<empty>")
            rows.append({"audio": name, "seconds": round(seconds, 2), "wer": round(out.wer, 4),
                         "substitutions": out.substitutions, "deletions": out.deletions, "insertions": out.insertions,
                         "reference_words": len(words(text).split()),
                         "rtf_median": round(float(np.median(rtfs)), 4), "rtf_runs": [round(r, 4) for r in rtfs],
                         "cpu_rtf_median": round(float(np.median(cpu_rtfs)), 4),
                         "hypothesis": hyp})  # fmt: skip
        live = None
        two_cities = assets / "media" / "two_cities.wav"
        if not getattr(args, "no_live", False) and two_cities.is_file():
            live = _live_latency(transcriber(), chunks_of(two_cities))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"model": engine.name, "device": engine.device, "multilingual": engine.multilingual,
            "load_seconds": round(load_s, 2), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
            "items": rows, "live": live, "notes": notes}  # fmt: skip


def _live_latency(transcriber: Any, chunks: list[Any]) -> dict[str, Any]:
    from mmdesk.asr.live import SpeechTextSource
    from mmdesk.core.clock import SessionClock

    clock = SessionClock()
    live = SpeechTextSource(transcriber, clock=clock)
    live.open()

    def microphone() -> None:
        t0 = chunks[0].t
        for chunk in chunks:
            time.sleep(max(0.0, chunk.end - t0 - clock.now()))
            live.feed(chunk)
        live.close()

    feeder = threading.Thread(target=microphone, daemon=True)
    feeder.start()
    while not live.exhausted:
        live.read(0.2)
    feeder.join()
    lat = live.latencies
    return {"finals": live.finals, "partials": live.partials,
            "latency_median_s": round(float(np.median(lat)), 3) if lat else None,
            "latency_max_s": round(float(np.max(lat)), 3) if lat else None,
            "latencies_s": [round(x, 3) for x in lat], "dropped_seconds": live.dropped_seconds,
            "final_cpu_median_s": round(float(np.median(live.final_cpu_seconds)), 3) if lat else None}  # fmt: skip


def print_asr(r: dict[str, Any]) -> None:
    print(f"speech to text: {r['model']} on {r['device']} (loaded in {r['load_seconds']} s; "
          f"{r['cpu_count']} CPUs, load average {r['load_average'][0]:.1f})")
    print(f"{'audio':<34} {'seconds':>8} {'WER':>7} {'S/D/I':>8} {'RTF (median)':>13} {'CPU s / s':>10}")
    for row in r["items"]:
        sdi = f"{row['substitutions']}/{row['deletions']}/{row['insertions']}"
        print(f"{row['audio']:<34} {row['seconds']:>8.1f} {row['wer']:>7.1%} {sdi:>8} {row['rtf_median']:>13.3f} "
              f"{row['cpu_rtf_median']:>10.3f}")
    if r["live"]:
        lv = r["live"]
        print(f"live (two_cities.wav in real time): {lv['finals']} finals, {lv['partials']} partials; end of speech "
              f"-> final text: median {lv['latency_median_s']} s, max {lv['latency_max_s']} s; "
              f"CPU time of a final's Whisper call: median {lv['final_cpu_median_s']} s")
    for note in r["notes"]:
        print(f"note: {note}")
