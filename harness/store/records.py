"""Row types the store hands out, and small helpers shared by its modules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.types import Sample


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class RunRecord:
    id: str
    model: str
    suite: str
    suite_hash: str
    status: str
    limit_n: int | None
    seed: int
    n_samples: int
    manifest: dict[str, Any]
    created_at: str
    updated_at: str

    @property
    def base_hash(self) -> str | None:
        """For a run of a derived (perturbed) suite, the hash of the suite it was made
        from; None otherwise, and for runs whose manifest holds no suite (imports)."""
        suite = self.manifest.get("suite")
        return suite.get("base_hash") if isinstance(suite, dict) else None


def run_from_row(row: dict[str, Any]) -> RunRecord:
    data = dict(row)
    data["manifest"] = json.loads(data["manifest"])
    return RunRecord(**data)


@dataclass(frozen=True)
class StoredSample:
    sample: Sample
    position: int
    request_key: str


@dataclass(frozen=True)
class ScoreRow:
    sample_id: str
    metric: str
    value: float
    extracted: str | None
