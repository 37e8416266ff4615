"""What the terminal shows: the progress bar and the tables."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from harness.stats.efficiency import RunKpis
from harness.types import MetricSummary, SliceSummary


class _TokensPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.fields.get("since") and time.monotonic() - task.fields["since"]
        tokens = task.fields.get("tokens", 0)
        rate = tokens / elapsed if elapsed else 0.0
        return Text(f"{rate:,.1f} tok/s", style="cyan")


class RichProgress:
    """done/total, tokens per second and ETA, on stderr so stdout stays clean."""

    def __init__(self, label: str, console: Console | None = None) -> None:
        self.label = label
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            _TokensPerSecond(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console or Console(stderr=True), transient=False,
        )
        self.task_id: TaskID | None = None
        self.tokens = 0

    def start(self, total: int, done: int) -> None:
        self.progress.start()
        self.task_id = self.progress.add_task(
            self.label, total=total, completed=done, tokens=0, since=time.monotonic()
        )

    def advance(self, count: int, tokens: int) -> None:
        self.tokens += tokens
        if self.task_id is not None:
            self.progress.update(self.task_id, advance=count, tokens=self.tokens)

    def close(self) -> None:
        self.progress.stop()


def results_table(title: str, summaries: Sequence[MetricSummary]) -> Table:
    table = Table(title=title)
    for column in ("metric", "value", "95% CI", "n", "errors"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for s in summaries:
        if s.n == 0:  # nothing answered: no value to show, only the errors
            table.add_row(s.metric, "-", "-", "0", str(s.n_errors))
            continue
        table.add_row(s.metric, f"{s.value:.4f}", f"[{s.ci_low:.4f}, {s.ci_high:.4f}]",
                      str(s.n), str(s.n_errors))
    return table


def slices_table(slices: Sequence[SliceSummary]) -> Table:
    """Per-slice breakdown: one row per (metric, slice, group)."""
    table = Table(title="slices")
    for column in ("metric", "slice", "group", "value", "95% CI", "n", "errors"):
        table.add_column(column, justify="right" if column in ("value", "95% CI", "n", "errors")
                         else "left", overflow="fold")
    for s in slices:
        shown = ("-", "-") if s.n == 0 or math.isnan(s.value) else (
            f"{s.value:.4f}", f"[{s.ci_low:.4f}, {s.ci_high:.4f}]")
        table.add_row(s.metric, s.slice, s.group, *shown, str(s.n), str(s.n_errors))
    return table


def kpi_lines(kpis: RunKpis) -> list[str]:
    """Efficiency KPIs as short lines; what was not measured says so."""

    def seconds(*values: float | None) -> str:
        if values[0] is None:
            return "not measured"
        return " / ".join(f"{v:.3f}" for v in values if v is not None) + " s"

    def number(value: float | None, unit: str, digits: int = 1) -> str:
        return "not measured" if value is None else f"{value:,.{digits}f} {unit}"

    timed = f" over {kpis.answers_timed} answers" if kpis.answers_timed else ""
    if kpis.invocations:
        throughput = (f"{number(kpis.output_tokens_per_s, 'output tok/s')}, "
                      f"{number(kpis.prompt_tokens_per_s, 'prompt tok/s')} "
                      f"over {kpis.invocations} invocation(s)")
    else:
        throughput = "not measured (no invocation generated answers)"
    return [
        f"latency p50/p90/p99: {seconds(kpis.latency_p50, kpis.latency_p90, kpis.latency_p99)}"
        + timed,
        f"time to first token p50/p90/p99: "
        f"{seconds(kpis.ttft_p50, kpis.ttft_p90, kpis.ttft_p99)}",
        f"throughput: {throughput}",
        f"peak memory: RSS {number(kpis.peak_rss_mb, 'MiB', 0)}, "
        f"GPU {number(kpis.gpu_peak_mb, 'MiB', 0)}; "
        f"GPU energy {number(kpis.gpu_energy_j, 'J')}",
    ]


def sandbox_line(record: dict[str, Any]) -> str:
    """How the run's generated code was isolated (the manifest's ``code_execution``)."""
    kept = [what for what, key in (("own filesystem view", "filesystem"), ("no network", "network"),
                                   ("own PID namespace", "pid_namespace"),
                                   ("unprivileged uid", "separate_user")) if record.get(key)]
    line = f"code execution: sandbox {record['level']} ({', '.join(kept) or 'limits only'})"
    if not record.get("full"):
        line += f" · NOT FULL ISOLATION: {record.get('fallback')}"
    return line + (" · strict" if record.get("strict") else "")
