"""Speech to text: VAD-gated Whisper (the pack's on onnxruntime; others through faster-whisper) for clips and the microphone.

* ``engine``: the Whisper model (the pack's tiny.en, a local folder or a hub id) and one decoding call.
* ``segmenter``: Silero VAD (the pack's, the same one that decides voice presence) cuts a
  continuous signal into utterances; silence and noise never reach Whisper.
* ``transcriber``: utterances batched up to Whisper's 30 s context, with word timestamps mapped back
  onto the timeline; memory stays bounded however long the signal is.
* ``events``: utterances as ``TextEvent(origin="asr")`` for the windower: the words overlapping a
  window, or (``context="utterance"``) the current and the previous utterance.
* ``live``: streaming transcription of a live audio feed, partial and final text events.
* ``writers``: .srt / .vtt / .jsonl transcripts.

No Qt and no torch here: faster-whisper and ctranslate2 (optional) are imported lazily by ``engine``.
"""
