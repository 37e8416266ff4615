"""The backend registry: each scheme declares its options, and the spec parser holds
every backend to its declaration (docs/backends.md, docs/contributing.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CliRun

from harness.backends import BACKENDS, parse_model_spec
from harness.backends.spec import DATA_PARALLEL_OPTIONS, NUMBER_VALUED
from harness.errors import ModelSpecError

TARGETS = {"embedded": "smollm2-135m", "hf": "hf:org/model", "openai":
           "openai:http://127.0.0.1:9/v1@m", "vllm": "vllm:org/model",
           "vllm-serve": "vllm-serve:org/model", "serve": "serve:org/model"}
# what the identity dropped before the registry (one global list): unchanged per scheme
SPEED_BEFORE = {
    "batch_size", "concurrency", "timeout", "max_retries", "backoff", "device",
    "gpu_memory_utilization", "startup_timeout", "port", "data_parallel", "log",
    "max_num_seqs", "store_every", "replica_cpus", "replica_gpus", "prefix_cache_mb",
    "stream", "distributed_executor_backend",
}


def test_every_scheme_is_registered_and_tested() -> None:
    assert set(BACKENDS) == set(TARGETS)


@pytest.mark.parametrize("scheme", sorted(TARGETS))
def test_declared_options_split_into_identity_and_speed(scheme: str) -> None:
    kind = BACKENDS[scheme]
    assert not kind.identity_options & kind.speed_options
    assert kind.speed_options | DATA_PARALLEL_OPTIONS == (kind.options & SPEED_BEFORE)


@pytest.mark.parametrize("scheme", sorted(TARGETS))
def test_unknown_option_is_rejected_for_every_backend(scheme: str) -> None:
    with pytest.raises(ModelSpecError) as raised:
        parse_model_spec(f"{TARGETS[scheme]}?batchsize=4")  # a typo of batch_size
    message = str(raised.value)
    assert "unknown option 'batchsize'" in message and "\n" not in message
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("scheme", sorted(TARGETS))
def test_speed_options_leave_the_identity_and_identity_options_stay(scheme: str) -> None:
    kind = BACKENDS[scheme]
    plain = parse_model_spec(TARGETS[scheme]).identity
    for option in sorted(kind.speed_options | DATA_PARALLEL_OPTIONS):
        assert parse_model_spec(f"{TARGETS[scheme]}?{option}=2").identity == plain, option
    for option in sorted(kind.identity_options):
        value = "2" if option in NUMBER_VALUED else "x"
        identity = parse_model_spec(f"{TARGETS[scheme]}?{option}={value}").identity
        assert identity != plain and f"{option}={value}" in identity, option


def test_number_valued_options_are_checked_at_parse_time() -> None:
    with pytest.raises(ModelSpecError, match="batch_size='many' is not a number"):
        parse_model_spec("hf:org/model?batch_size=many")


def test_unknown_option_on_the_command_line_is_one_line_and_writes_nothing(
        cli: CliRun, tmp_path: Path) -> None:
    result = cli("run", "--model", "hf:smollm2-135m?batchsize=4", "--suite", "smoke",
                 "--db", "x.db")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unknown option 'batchsize' for hf:" in result.stderr
    assert not (tmp_path / "x.db").exists()
