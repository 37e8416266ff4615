"""What a run was made with: enough to reproduce it or explain a difference."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import __version__
from harness.metrics import METRICS
from harness.metrics.sandbox import detect_isolation, require_policy
from harness.suites.config import Suite

TRACKED_PACKAGES = ("torch", "transformers", "vllm", "openai", "accelerate", "numpy")


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def git_sha() -> str | None:
    """The commit of the evalarena source, when it runs from a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                           capture_output=True, text=True, timeout=5, check=False).stdout
    return out.stdout.strip() + ("-dirty" if dirty.strip() else "")


def hardware(torch_info: bool = True) -> dict[str, Any]:
    """The machine; with ``torch_info``, what torch sees (CUDA, GPUs, threads). Importing
    torch takes ~2 s, so runs that load no model here (HTTP servers, imported answers)
    leave it out."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu": _cpu_model(), "gpus": [], "cuda": None, "driver": None}
    if not torch_info:
        return info
    try:
        import torch
    except ImportError:
        return info
    info["cuda"] = torch.version.cuda
    info["cpu_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["driver"] = _nvidia_driver()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None


def code_isolation(suite: Suite) -> dict[str, Any] | None:
    """For a suite whose metrics run generated code, the sandbox it gets on this machine
    (harness/metrics/sandbox.py); None for other suites. Below full isolation this warns,
    or raises ``SandboxUnavailableError`` under ``EVALARENA_SANDBOX=strict``: plans call
    it so that the refusal comes before anything is written."""
    if not any(getattr(METRICS.get(name), "executes_code", False)
               for name in suite.config.metrics):
        return None
    isolation = detect_isolation()
    require_policy(isolation)
    return isolation.record()


def build_manifest(suite: Suite, model_id: str, limit: int | None, seed: int,
                   local_model: bool = True) -> dict[str, Any]:
    """``local_model``: the model runs in this process or on this machine (hardware
    matters); False for a remote endpoint or imported answers."""
    manifest: dict[str, Any] = {
        "evalarena": __version__,
        "git_sha": git_sha(),
        "model": model_id,
        "seed": seed,
        "limit": limit,
        "packages": package_versions(),
        "hardware": hardware(torch_info=local_model),
        "suite": {
            "name": suite.name,
            "file": str(suite.file),
            "hash": suite.hash,
            "data_hash": suite.data_hash,
            "config": suite.config.model_dump(mode="json"),
            "template_hashes": suite.template_hashes(),
        },
    }
    if suite.base_hash is not None:  # a derived suite: the suite whose items it perturbs
        manifest["suite"]["base_hash"] = suite.base_hash
    if (sandbox := code_isolation(suite)) is not None:
        manifest["code_execution"] = sandbox
    return manifest
