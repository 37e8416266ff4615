"""Data parallel: N replicas of one backend, each in a Ray actor, sharing the work.

``?data_parallel=N`` on any model spec (or ``--data-parallel N``) starts N Ray
actors, each building the same backend from the spec without that option: the
transformers backend on a CPU slot here, a vLLM engine on ``num_gpus`` GPUs on
a GPU box. Ray places the actors (on this machine, or across a cluster when
``RAY_ADDRESS`` names one); nothing here schedules processes by hand.

Work stealing: the runner's batches are cut into chunks of the replica's own
``batch_size`` and queued; each actor holds at most ``DEPTH`` chunks and gets
the next one from the queue when it returns one, so a fast replica takes more
chunks and a slow one never holds the run. Answers are put back in request
order and handed to the runner batch by batch, with the next batch already
being worked on. Chunks are consecutive slices of the runner's batches, which
are fixed over the whole run, so each replica sees exactly the batches a
single replica would: greedy answers are identical, and resumption stays exact.

``data_parallel`` changes speed, not answers, so it is not part of the model
identity: stored answers are reused whatever N was.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from harness.backends.base import Backend
from harness.backends.spec import DATA_PARALLEL_OPTIONS, ModelSpec
from harness.types import Completion, Request

log = logging.getLogger(__name__)
DEPTH = 2  # chunks an actor holds: one running, one waiting, so it never idles
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20  # requests and answers are small
# a replica that takes a whole run at once (vLLM: batch_size 10^6) still gets it in
# chunks, or the first actor would take everything; 256 keeps a GPU engine's batch full
MAX_CHUNK = 256
DP_OPTIONS = DATA_PARALLEL_OPTIONS  # ours, not the replica's


class Replica:
    """What runs inside each actor: one ordinary backend."""

    def __init__(self, spec: ModelSpec) -> None:
        from harness.backends import load_backend

        self.backend = load_backend(spec)

    def batch_size(self) -> int:
        return self.backend.batch_size

    def run(self, requests: list[Request]) -> list[Completion]:
        return self.backend.run(requests)

    def close(self) -> None:
        self.backend.close()


class DataParallelBackend(Backend):
    def __init__(self, model_id: str, actors: list[Any], chunk_size: int,
                 owns_ray: bool) -> None:
        self.model_id = model_id
        self.actors = actors
        self.chunk_size = chunk_size
        # every actor busy for a few chunks per runner batch, so the batch barrier is rare
        self.batch_size = chunk_size * len(actors) * DEPTH
        self.owns_ray = owns_ray
        self.chunks_done = [0] * len(actors)  # per replica: who did the work

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> DataParallelBackend:
        import ray

        replicas = spec.int_option("data_parallel", 1)
        cpus = spec.float_option("replica_cpus", 1.0)
        on_gpu = spec.scheme in ("vllm", "vllm-serve") and not _vllm_on_cpu()
        default_gpus = spec.float_option("tensor_parallel_size", 1) if on_gpu else 0.0
        gpus = spec.float_option("replica_gpus", default_gpus)
        inner = replace(spec, options={k: v for k, v in spec.options.items()
                                       if k not in DP_OPTIONS})
        owns_ray = _connect(replicas, cpus)
        try:
            actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus)(Replica)
            threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, int(cpus)))
            env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
            if spec.scheme == "vllm" and not on_gpu:
                # vLLM on CPU pins its threads to cores it picks itself, the same cores
                # in every replica; the actors' CPU shares are Ray's to place instead
                env["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
            env |= {k: v for k, v in os.environ.items()
                    if k.startswith(("HF_", "TRANSFORMERS_", "EVALARENA_", "VLLM_"))}
            actors = [actor_class.options(runtime_env={"env_vars": env}).remote(inner)
                      for _ in range(replicas)]
            sizes = ray.get([a.batch_size.remote() for a in actors])  # waits for every load
        except BaseException:
            if owns_ray:
                ray.shutdown()
            raise
        return cls(spec.identity, actors, min(*sizes, MAX_CHUNK), owns_ray)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.run(requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return self.run(requests)

    def run(self, requests: Sequence[Request]) -> list[Completion]:
        return [c for _, chunk in self.run_stream([requests]) for _, c in chunk]

    def run_stream(self, batches: Iterable[Sequence[Request]]
                   ) -> Iterator[tuple[int, list[tuple[int, Completion]]]]:
        """Whole batches, in order, from chunks the actors pull off one queue."""
        import ray
        from ray.exceptions import RayActorError

        upcoming = iter(batches)
        queue: collections.deque[tuple[int, int, list[Request]]] = collections.deque()
        answers: dict[int, list[Completion | None]] = {}
        missing: dict[int, int] = {}
        running: dict[Any, tuple[int, tuple[int, int, list[Request]]]] = {}
        load = [0] * len(self.actors)
        alive = [True] * len(self.actors)
        taken = ready = 0  # batches taken from the runner / handed back to it
        try:
            while True:
                # keep a batch queued beyond what the actors hold (next(None) once exhausted)
                while len(queue) < len(self.actors) * DEPTH and (
                        batch := next(upcoming, None)) is not None:
                    answers[taken], missing[taken] = [None] * len(batch), len(batch)
                    queue.extend((taken, start, list(batch[start:start + self.chunk_size]))
                                 for start in range(0, len(batch), self.chunk_size))
                    taken += 1
                while queue and (idle := [i for i, up in enumerate(alive)
                                          if up and load[i] < DEPTH]):
                    actor = min(idle, key=load.__getitem__)
                    task = queue.popleft()
                    running[self.actors[actor].run.remote(task[2])] = (actor, task)
                    load[actor] += 1
                if missing.get(ready) == 0:
                    yield ready, list(enumerate(answers.pop(ready)))
                    del missing[ready]
                    ready += 1
                    continue
                if not running:
                    return
                [ref], _ = ray.wait(list(running), num_returns=1)
                actor, (number, start, chunk) = running.pop(ref)
                load[actor] -= 1
                try:
                    completions = ray.get(ref)
                except RayActorError:  # the replica died: its chunk goes to the others
                    alive[actor] = False
                    queue.appendleft((number, start, chunk))
                    log.warning("replica %d died; %d left", actor, sum(alive))
                    if not any(alive):
                        raise
                    continue
                answers[number][start:start + len(chunk)] = completions
                missing[number] -= len(chunk)
                self.chunks_done[actor] += 1
        finally:
            for ref in running:  # stopped early: drop what has not started
                with contextlib.suppress(Exception):
                    ray.cancel(ref)

    def close(self) -> None:
        import ray

        if not self.actors:
            return
        with contextlib.suppress(Exception):
            ray.get([a.close.remote() for a in self.actors], timeout=60)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []
        if self.owns_ray:
            ray.shutdown()


def _vllm_on_cpu() -> bool:
    from harness.backends.vllm_platform import on_cpu, vllm_installed

    return vllm_installed() and on_cpu()


def _connect(replicas: int, cpus: float) -> bool:
    """Join the cluster RAY_ADDRESS names, or start a local Ray sized for the replicas.
    Returns whether we started (and so must stop) it."""
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address="auto", **quiet)
    else:
        ray.init(num_cpus=max(os.cpu_count() or 1, int(replicas * cpus + 0.999)),
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                 **quiet)
    return True
