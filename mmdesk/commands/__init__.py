"""One module per CLI command: ``add_arguments(parser)`` and ``run(args) -> int``.

Modules are imported only when their command runs, so ``mmdesk doctor`` never pays for torch.
"""

COMMANDS: dict[str, str] = {
    "analyze": "Analyse a recorded clip window by window (JSON Lines or CSV)",
    "transcribe": "Transcribe a clip's speech with word timestamps (.srt, .vtt, .jsonl)",
    "models": "Build, list or verify the model pack",
    "train": "Train the project's own models (voice, face, text, sarcasm, fusion)",
    "eval": "Evaluate the pack's models on a dataset (metrics + dataset sha256)",
    "bench": "Measure per-stage latency and throughput",
    "doctor": "Check the installation: versions, providers, devices, models",
    "gui": "The desktop app (scripted: --open CLIP --screenshot FILE.png)",
}
