"""mmdesk: multimodal emotion and sarcasm analysis from face, voice and text."""

__version__ = "0.1.0"
