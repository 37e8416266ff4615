"""The judge commands: `judge`, `judge-report`, `winrate` and `import`. Thin calls into
harness.judge."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.common import (
    DEFAULT_DB,
    DbOption,
    JudgeMode,
    JuryCombine,
    OrderPolicy,
    ReportFormat,
    VerdictSource,
    err,
    open_existing,
    out,
    parse_where,
)
from harness.errors import InputError


def _line(text: str, markup: bool = False) -> None:
    """One line of output, never wrapped (scripts and tests read these lines)."""
    out.print(text, soft_wrap=True, highlight=False, markup=markup)


def _f(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.{digits}f}"


def judge(
    suite: Annotated[str, typer.Option(help="Suite whose answers are judged (its `judge:` "
                                       "block picks the templates).")],
    model: Annotated[list[str], typer.Option(
        help="A contestant: run id (prefix), model identity with one run of the suite, or "
             "LABEL=either. Repeat for several.")],
    judge_model: Annotated[list[str], typer.Option(
        "--judge", help="Judge model spec (as for `run --model`); repeat for a jury.")],
    db: DbOption = DEFAULT_DB,
    mode: Annotated[JudgeMode, typer.Option(
        help="single (grade 1-10) or pairwise (both orders).")] = JudgeMode.SINGLE,
    template: Annotated[str | None, typer.Option(
        help="Judge template instead of the suite's for this mode: a shipped name, "
             "mt-bench-package, arena-hard-package or a .yaml file (docs/judge.md).")]
        = None,
    baseline: Annotated[str | None, typer.Option(
        help="Pairwise: compare every other contestant with this one (default: all pairs).")]
        = None,
    policy: Annotated[OrderPolicy | None, typer.Option(
        help="A pair whose winner flips with the order becomes a tie or is dropped "
             "(tie | drop; default from the suite).")] = None,
    combine: Annotated[JuryCombine, typer.Option(
        help="How a jury combines its judges: majority (median grade) or mean.")]
        = JuryCombine.MAJORITY,
    max_tokens: Annotated[int | None, typer.Option(
        min=1, help="Judge reply length limit (default from the suite).")] = None,
    label: Annotated[str | None, typer.Option(
        help="Readable prefix for the judge id (default: the judge model's name).")] = None,
    verdict: Annotated[VerdictSource | None, typer.Option(
        help="generate (the judge writes a reply ending in a verdict) or likelihood (the "
             "verdict tokens are scored; no text generated; default from the suite).")]
        = None,
    price_input: Annotated[float, typer.Option(
        min=0, help="USD per million prompt tokens, for the cost line.")] = 0.0,
    price_output: Annotated[float, typer.Option(
        min=0, help="USD per million output tokens, for the cost line.")] = 0.0,
    data_parallel: Annotated[int, typer.Option(
        min=1, help="Replicas of each judge model in Ray actors (docs/scaling.md).")] = 1,
    where: Annotated[list[str] | None, typer.Option(
        help="Only items whose data FIELD has one of the values: FIELD=V1,V2 (repeatable); "
             "judging more later reuses every verdict already stored.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Judge stored answers with an LLM; rerunning resumes and never re-asks a judge."""
    from harness.backends import load_backend, parse_model_spec, with_data_parallel
    from harness.cli.render import RichProgress
    from harness.judge.grade import run_judging
    from harness.judge.plan import plan_judging, resolve_contestants
    from harness.judge.prompts import resolve_template
    from harness.suites.config import data_fields, load_suite
    from harness.suites.judge_block import check_template

    if label is not None and not label.replace("-", "").replace("_", "").replace(".", "") \
            .isalnum():
        raise InputError("--label", label, "use letters, digits and . _ - only")
    loaded = load_suite(suite)
    config = loaded.config.judge
    if config is None:
        raise InputError(str(loaded.file), "judge", "this suite has no judge block "
                         "(see docs/judge.md)")
    mode_name = mode.value
    if template is not None and template.endswith((".yaml", ".yml")):
        template = str(Path(template).resolve())  # a file named here is relative to the cwd
    name = template or config.template_name(mode_name)  # type: ignore[arg-type]
    if name is None:
        raise InputError(str(loaded.file), f"judge.{mode_name}",
                         f"no template for {mode_name} judging")
    chosen = resolve_template(name, mode_name, loaded.file,  # type: ignore[arg-type]
                              "--template" if template else f"judge.{mode_name}")
    check_template(chosen, data_fields(loaded.rows), loaded.config.prompt.turns is not None,
                   str(loaded.file), "--template" if template else f"judge.{mode_name}")
    updates: dict[str, Any] = {}
    if policy is not None:
        updates["policy"] = policy.value
    if max_tokens is not None:
        updates["max_tokens"] = max_tokens
    if verdict is not None:
        updates["verdict"] = verdict.value
    config = config.model_copy(update=updates)
    specs = {}
    for spec in judge_model:
        parsed = parse_model_spec(spec)
        if parsed.identity in specs:
            raise InputError("--judge", spec, "the same judge is named twice")
        specs[parsed.identity] = with_data_parallel(parsed, data_parallel)
    with open_existing(db) as store:
        contestants = resolve_contestants(store, loaded.name, model, parse_where(where))
        plan = plan_judging(loaded, mode_name, chosen, config, list(specs), contestants,  # type: ignore[arg-type]
                            baseline, combine.value, label)
        progress = None if quiet else (lambda text: RichProgress(text, err))
        outcome = run_judging(store, plan, lambda identity: load_backend(specs[identity]),
                              progress)
    _print_outcome(outcome, plan.metric, price_input, price_output)
    _line(f"judge {outcome.panel} · results in {db} (evalarena judge-report --judge "
          f"{outcome.panel})")


def _print_outcome(outcome: Any, metric: str, price_input: float, price_output: float) -> None:
    table = Table(title=f"judges · {outcome.mode}")
    for column in ("judge", "judgments", "generated", "reused", "retried", "parse errors",
                   "request errors", "tokens in", "tokens out", "cost USD"):
        table.add_column(column, justify="left" if column == "judge" else "right")
    for s in outcome.judges:
        cost = s.prompt_tokens / 1e6 * price_input + s.output_tokens / 1e6 * price_output
        rate = f" ({100 * s.parse_errors / s.slots:.0f}%)" if s.slots else ""
        table.add_row(s.judge, str(s.slots), str(s.generated), str(s.reused), str(s.retried),
                      f"{s.parse_errors}{rate}", str(s.request_errors), str(s.prompt_tokens),
                      str(s.output_tokens), f"{cost:.4f}")
    out.print(table)
    if outcome.mode == "single":
        scores = Table(title=metric)
        for column in ("model", "mean grade", "95% CI", "n", "no verdict"):
            scores.add_column(column, justify="left" if column == "model" else "right")
        for name, s in outcome.scores.items():
            scores.add_row(name, _f(s.value, 2), f"[{_f(s.ci_low, 2)}, {_f(s.ci_high, 2)}]",
                           str(s.n), str(s.n_errors))
        out.print(scores)
        return
    pairs = Table(title="pairs (both orders)")
    for column in ("model_a", "model_b", "a wins", "b wins", "ties", "flipped",
                   "no outcome"):
        pairs.add_column(column, justify="left" if column.startswith("model") else "right")
    for (a, b), tally in outcome.pairs.items():
        pairs.add_row(a, b, str(tally["a"]), str(tally["b"]), str(tally["tie"]),
                      str(tally["inconsistent"]), str(tally["none"]))
    out.print(pairs)


def judge_report(
    db: DbOption = DEFAULT_DB,
    judge_id: Annotated[str | None, typer.Option(
        "--judge", help="Judge or jury id (or a prefix); default: every judge.")] = None,
    suite: Annotated[str | None, typer.Option(help="Only judgments of this suite.")] = None,
    format: Annotated[ReportFormat, typer.Option(help="text or json.")] = ReportFormat.TEXT,
    price_input: Annotated[float, typer.Option(
        min=0, help="USD per million prompt tokens, for the cost line.")] = 0.0,
    price_output: Annotated[float, typer.Option(
        min=0, help="USD per million output tokens, for the cost line.")] = 0.0,
) -> None:
    """Judge quality: parse errors, position and length bias, self-preference, agreement."""
    from harness.judge.report import judge_report as build

    with open_existing(db) as store:
        reports = build(store, judge_id, suite, price_input, price_output)
    if judge_id is not None and not reports:
        raise InputError("--judge", judge_id, "no judgments by this judge")
    if format == "json":
        out.print_json(json.dumps(_no_nan(reports), default=str))
        return
    if not reports:
        _line("no judgments yet (see `evalarena judge`)")
    for r in reports:
        _print_report(r)


def _print_report(r: dict[str, Any]) -> None:
    t = r["tokens"]
    jury = f" · jury of {len(r['members'])} ({r['combine']})" if len(r["members"]) > 1 else ""
    _line(f"[bold]judge {r['judge']}[/bold] · {r['mode']} · template {r['template']} · "
          f"policy {r['policy']}{jury}", markup=True)
    _line(f"  judgments {r['judgments']} · parse errors {r['parse_errors']} "
          f"({100 * r['parse_error_rate']:.1f}%, excluded) · retried {r['retried']}, "
          f"recovered {r['retry_recovered']}")
    for reason, count in r["parse_error_examples"]:
        _line(f"    {count} × {reason}")
    _line(f"  tokens: {t['requests']} requests, {t['prompt']} in, {t['output']} out, "
          f"cost ${t['cost']:.4f}")
    if r["mode"] == "single":
        for model, s in r["scores"].items():
            _line(f"  {model}: mean {_f(s['mean'], 2)} [{_f(s['ci_low'], 2)}, "
                  f"{_f(s['ci_high'], 2)}] n={s['n']}")
        _line(f"  length bias: correlation(length, grade) = "
              f"{_f(r['length_score_correlation'])}")
        if r["self_preference"]:
            sp = r["self_preference"]
            _line(f"  self-preference: own model {_f(sp['own_mean'], 2)} vs others "
                  f"{_f(sp['others_mean'], 2)}")
        return
    _line(f"  pairs {r['pairs']} · both orders {r['pairs_complete']} · position bias "
          f"(winner flips with order) {_pct(r['position_bias_rate'])} · first-shown wins "
          f"{_pct(r['first_position_win_rate'])} of decisive verdicts")
    _line(f"  outcomes: {r['outcomes']}")
    lb = r["length_bias"]
    _line(f"  length bias: longer answer wins {_pct(lb['longer_win_rate'])} "
          f"[{_pct(lb['ci_low'])}, {_pct(lb['ci_high'])}] of {lb['n']} decisive pairs; "
          + ", ".join(f"{b['ratio']}: {_pct(b['longer_win_rate'])} (n={b['n']})"
                      for b in lb["by_ratio"]))
    sp = r["self_preference"]
    if sp:
        _line(f"  self-preference ({', '.join(sp['models'])}): wins "
              f"{_pct(sp['own_win_rate'])} of {sp['n']}; other judges give it "
              f"{_pct(sp['other_judges_win_rate'])} (n={sp['other_judges_n']})")
    human = r["human_agreement"]
    _line("  human votes: " + (f"{human['n']} items, agreement {_f(human['percent'], 1)}%, "
                               f"Cohen's kappa {_f(human['kappa'])}" if human
                               else "none on these pairs yet"))
    for other, a in r["judge_agreement"].items():
        _line(f"  vs judge {other}: {a['n']} pairs, agreement {_f(a['percent'], 1)}%, "
              f"kappa {_f(a['kappa'])}")


def _no_nan(value: Any) -> Any:
    """NaN (an undefined rate) as JSON null, which every JSON reader accepts."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def _pct(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def winrate(
    suite: Annotated[str, typer.Option(help="Suite whose pairwise judgments are read.")],
    baseline: Annotated[list[str], typer.Option(
        help="A model the others were judged against (e.g. import:o3-mini-2025-01-31); "
             "repeat to pool the games against several, as Arena-Hard v2.0 does with one "
             "baseline per category.")],
    db: DbOption = DEFAULT_DB,
    judge_id: Annotated[str | None, typer.Option(
        "--judge", help="Judge id (or a unique prefix); default: the only judge of the suite.")]
        = None,
    weight: Annotated[int, typer.Option(
        min=1, help="How many times a clear verdict (>>) counts (Arena-Hard: 3).")] = 3,
    by: Annotated[str | None, typer.Option(
        help="Also per value of this data field (e.g. category).")] = None,
    format: Annotated[ReportFormat, typer.Option(help="text or json.")] = ReportFormat.TEXT,
) -> None:
    """Win rate against a baseline from pairwise verdicts, as Arena-Hard-Auto scores: each
    order a game, a clear win counting --weight times; 95% CI over questions."""
    from harness.judge.winrate import win_rates
    from harness.suites.config import load_suite
    from harness.suites.requests import select_rows
    from harness.suites.turns import split_turn_id

    loaded = load_suite(suite)
    with open_existing(db) as store:
        judges = [j for j in store.judge_ids() if judge_id is None or j.startswith(judge_id)]
        rows = [r for j in judges for r in store.judgments(j, loaded.name, "pairwise")]
    found = sorted({r.judge for r in rows})
    if len(found) != 1:
        raise InputError("--judge", judge_id or "", f"{len(found)} judges have pairwise "
                         f"judgments of {loaded.name}" + (f": {', '.join(found)}; name one"
                                                           if found else ""))
    # a conversation's samples are its turns (ITEM#TURN): group and resample by item
    conversation = loaded.config.prompt.turns is not None
    item_of = {r.sample_id: split_turn_id(r.sample_id)[0] if conversation else r.sample_id
               for r in rows}
    groups = None
    if by is not None:
        data = dict(select_rows(loaded, None, 0))
        if data and by not in next(iter(data.values())):
            raise InputError("--by", by, f"the data of {loaded.name} has no such field")
        groups = {sample: f"{by}={data[item].get(by)}" if item in data else "?"
                  for sample, item in item_of.items()}
    results = win_rates(rows, baseline, weight=weight, groups=groups, clusters=item_of)
    if not results:
        raise InputError("--baseline", ", ".join(baseline), "no pairwise judgments against "
                         f"it by {found[0]}")
    if format == "json":
        out.print_json(json.dumps(_no_nan([vars(r) for r in results])))
        return
    table = Table(title=f"win rate against {', '.join(baseline)} · judge {found[0]} · "
                        f"weight {weight}")
    for column in ("model", "group", "win rate", "95% CI", "questions", "incomplete"):
        table.add_column(column, justify="left" if column in ("model", "group") else "right")
    for r in results:
        table.add_row(r.model, r.group, _pct(r.value), f"[{_pct(r.ci_low)}, {_pct(r.ci_high)}]",
                      str(r.questions), str(r.incomplete))
    out.print(table)


def import_answers(
    file: Annotated[Path, typer.Argument(help="JSONL file: one answer per line.")],
    suite: Annotated[str, typer.Option(help="Suite the answers belong to (ids must match "
                                       "its items).")],
    db: DbOption = DEFAULT_DB,
    name: Annotated[str | None, typer.Option(
        help="Model name (stored as import:NAME); default: the lines' model field.")] = None,
    id_field: Annotated[str, typer.Option(
        help="Field holding the item id (dotted path, e.g. uid or question_id).")] = "id",
    answer_field: Annotated[str, typer.Option(
        help="Field holding the answer (dotted path; list indices allowed, e.g. "
             "messages.-1.content.answer).")] = "answer",
    model_field: Annotated[str, typer.Option(
        help="Field naming the model, used when --name is not given.")] = "model",
) -> None:
    """Import another system's answers as a model, to score or judge against them."""
    from harness.judge.imports import execute_import, plan_import
    from harness.store import Store
    from harness.suites.config import load_suite

    plan = plan_import(file, load_suite(suite), name, id_field, answer_field, model_field)
    with Store(db) as store:
        outcome = execute_import(store, plan)
    _line(f"{outcome.model}: {len(plan.items)} answers for suite {plan.suite.name} as run "
          f"{outcome.run_id} (new {outcome.imported}, already stored {outcome.already}) · {db}")


def register(app: typer.Typer) -> None:
    """Add these commands to the `evalarena` app."""
    app.command()(judge)
    app.command("judge-report")(judge_report)
    app.command()(winrate)
    app.command("import")(import_answers)
