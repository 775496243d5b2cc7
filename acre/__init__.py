"""acre: an on-device long-context runtime for small language models."""

__version__ = "0.1.0"
