"""evalarena: evaluate LLM checkpoints on task suites, with judges and human review."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evalarena")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
