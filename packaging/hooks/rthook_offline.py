# PyInstaller runtime hook: the installed application never downloads anything. Everything it runs is in
# the bundled model pack; these switches make libraries that could fetch models (huggingface_hub, used by
# faster-whisper) fail fast instead of reaching the network. A user can still override them.
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
