"""`evalarena contamination ngrams | membership | report`: per-item contamination
signals of a stored run (harness/contamination; docs/beyond_accuracy.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.common import DEFAULT_DB, DbOption, ReportFormat, open_existing, out

contamination_app = typer.Typer(no_args_is_help=True, help="Contamination signals per item: "
                                "n-gram overlap with a corpus, membership scores, report.")
RunArgument = Annotated[str, typer.Argument(help="Run id (or a unique prefix).")]


@contamination_app.command()
def ngrams(
    run_id: RunArgument,
    corpus: Annotated[list[Path], typer.Option(
        help="A corpus file (.jsonl or .txt, optionally .gz) or a folder of them; "
             "repeatable.")],
    db: DbOption = DEFAULT_DB,
    n: Annotated[int, typer.Option(min=1, help="N-gram length in words (13: GPT-3's).")] = 13,
    text_field: Annotated[str, typer.Option(help="The JSONL documents' text field.")] = "text",
    min_coverage: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Flag a matched item only when matched n-grams cover this "
                               "share of its words (0: any match, GPT-3's 'dirty').")] = 0.0,
) -> None:
    """Overlap of each item (prompt fields and reference) with a corpus, streamed; stores
    one signal per item and flags the dirty ones."""
    from harness.contamination import ngram_check

    with open_existing(db) as store:
        summary = ngram_check(store, run_id, corpus, n=n, text_field=text_field,
                              min_coverage=min_coverage)
    out.print(f"{summary['items']} items, {summary['flagged']} flagged · read "
              f"{summary['bytes'] / 1e6:,.1f} MB ({summary['documents']:,} documents) in "
              f"{summary['seconds']:.1f} s", highlight=False)


@contamination_app.command()
def membership(
    run_id: RunArgument,
    model: Annotated[str, typer.Option(
        help="A model in process (smollm2-135m, hf:PATH: Min-K%++) or an OpenAI-compatible "
             "server with echo + logprobs (openai:URL@NAME, e.g. vLLM: Min-K%).")],
    db: DbOption = DEFAULT_DB,
    k: Annotated[float, typer.Option(min=0.01, max=1.0,
                                     help="Share of lowest-scoring tokens averaged.")] = 0.2,
    threshold: Annotated[float | None, typer.Option(
        help="Flag items whose Min-K%++ is above this (calibrate it on unseen text; "
             "default: no flags, signals only).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the typos behind the gap.")] = 0,
) -> None:
    """The model's Min-K%++ score of each item (and Min-K%, and the score with typos);
    stored per item."""
    from harness.backends import load_backend
    from harness.contamination import membership_check

    with open_existing(db) as store:
        store.get_run(run_id)  # a bad id is refused before the model loads
        backend = load_backend(model)
        try:
            summary = membership_check(store, run_id, backend, k=k, threshold=threshold,
                                       seed=seed)
        finally:
            backend.close()
    errors = ", ".join(f"{kind} {n}" for kind, n in summary["errors"].items())
    out.print(f"{summary['items']} items scored, {summary['flagged']} flagged"
              + (f" · not scored (errors): {errors}" if errors else ""), highlight=False)


@contamination_app.command()
def report(
    run_id: RunArgument,
    db: DbOption = DEFAULT_DB,
    format: Annotated[ReportFormat, typer.Option(help="text or json.")] = ReportFormat.TEXT,
    seed: Annotated[int, typer.Option(help="Seed for the bootstrap.")] = 0,
) -> None:
    """Per check: the share of flagged items, and every metric on the unflagged and the
    flagged items, each with a 95% CI."""
    from harness.contamination import contamination_report

    with open_existing(db) as store:
        run, reports = contamination_report(store, run_id, seed=seed)
    if format == "json":
        out.print_json(json.dumps({"run": run.id, "suite": run.suite, "checks": [{
            "method": r.method, "params": r.params, "summary": r.summary,
            "flagged_share": _interval(r.flagged_share), "mean_signal": _interval(r.mean_signal),
            "mean_gap": _interval(r.mean_gap) if r.mean_gap else None,
            "metrics": [{"metric": s.metric, "unflagged": _interval(s.clean),
                         "flagged": _interval(s.flagged)} for s in r.splits]}
            for r in reports]}))
        return
    for r in reports:
        share = r.flagged_share
        table = Table(title=f"{run.suite} · run {run.id} · {r.method} · flagged "
                            f"{_fmt(share)} · mean signal {_fmt(r.mean_signal)}"
                            + (f" · gap {_fmt(r.mean_gap)}" if r.mean_gap else ""))
        for column in ("metric", "unflagged [95% CI]", "n", "flagged [95% CI]", "n "):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for s in r.splits:
            table.add_row(s.metric, _fmt(s.clean, n=False), str(s.clean[3]),
                          _fmt(s.flagged, n=False), str(s.flagged[3]))
        out.print(table)


def _interval(value: tuple[float, float, float, int] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    mean, low, high, n = value
    clean = [None if math.isnan(v) else v for v in (mean, low, high)]
    return {"value": clean[0], "ci_low": clean[1], "ci_high": clean[2], "n": n}


def _fmt(value: tuple[float, float, float, int] | None, n: bool = True) -> str:
    if value is None or math.isnan(value[0]):
        return "-"
    text = f"{value[0]:.4f} [{value[1]:.4f}, {value[2]:.4f}]"
    return text + (f" (n={value[3]})" if n else "")


def register(app: typer.Typer) -> None:
    """Add the `contamination` command group to the `evalarena` app."""
    app.add_typer(contamination_app, name="contamination")
