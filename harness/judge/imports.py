"""Another system's answers, imported as a run of model ``import:<name>``.

An imported answer file becomes an ordinary run: one ``runs`` row, the suite's
own requests for the imported items (built for the model ``import:<name>``),
``run_samples`` rows, and ``completions`` with backend ``import``. Everything
downstream (scores, export, judging, battles) then treats the answers like a
local model's. The whole file is validated before anything is written, and
re-importing the same file is a no-op; answers that differ from ones already
stored under the same name are refused rather than silently kept or replaced.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.judge.plan import IMPORT_PREFIX
from harness.manifest import build_manifest, code_isolation
from harness.runner import score_run
from harness.store import RunRecord, Store, utc_now
from harness.suites.config import Suite
from harness.suites.requests import build_requests, select_rows
from harness.suites.turns import next_turn, split_turn_id, turn_count, turn_id
from harness.types import Completion, Request, Sample

_NAME = re.compile(r"^[\w.:@+-]+$")


@dataclass(frozen=True)
class ImportPlan:
    run_id: str
    model: str  # import:<name>
    suite: Suite
    file: Path
    file_hash: str
    fields: dict[str, str | None]
    items: list[tuple[Sample, Request, str]]  # in suite order


@dataclass(frozen=True)
class ImportOutcome:
    run_id: str
    model: str
    imported: int  # answers newly stored
    already: int  # answers that were stored before (same text)


def field_value(row: Any, path: str) -> Any:
    """``a.b.0.c`` walks dict keys and list indices (negative ones too). KeyError if absent."""
    value = row
    for part in path.split("."):
        if isinstance(value, list) and re.fullmatch(r"-?\d+", part):
            try:
                value = value[int(part)]
            except IndexError:
                raise KeyError(path) from None
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


def plan_import(file: Path, suite: Suite, name: str | None = None, id_field: str = "id",
                answer_field: str = "answer", model_field: str | None = "model") -> ImportPlan:
    """Read and check the whole file; writes nothing. Errors name the line and field."""
    source = str(file)
    code_isolation(suite)  # strict sandbox policy: refused here, before any write
    if not file.is_file():
        raise InputError(source, None, "no such file (or not a regular file)")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(source, None, "not UTF-8 text") from None
    known = {sample_id for sample_id, _ in select_rows(suite, None, 0)}
    turns = turn_count(suite.config)
    answers: dict[str, str | list[str]] = {}
    names: set[str] = set()
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): see data.py
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(source, where, f"not JSON ({exc.msg})") from None
        try:
            item = str(field_value(row, id_field))
            answer = field_value(row, answer_field)
        except KeyError as exc:
            raise InputError(source, f"{where}: {exc.args[0]}", "missing") from None
        if turns > 1:
            if not (isinstance(answer, list) and len(answer) == turns
                    and all(isinstance(a, str) for a in answer)):
                raise InputError(source, f"{where}: {answer_field}", f"suite {suite.name!r} "
                                 f"has {turns} turns: the answer must be a list of {turns} "
                                 "strings, one per turn")
        elif not isinstance(answer, str):
            raise InputError(source, f"{where}: {answer_field}",
                             f"the answer must be a string, not {type(answer).__name__}")
        if item not in known:
            raise InputError(source, f"{where}: {id_field}",
                             f"{item!r} is not an item of suite {suite.name!r}")
        if item in answers:
            raise InputError(source, f"{where}: {id_field}", f"{item!r} appears twice")
        answers[item] = answer
        if name is None and model_field is not None:
            try:
                names.add(str(field_value(row, model_field)))
            except KeyError:
                raise InputError(source, f"{where}: {model_field}",
                                 "missing (or give --name)") from None
    if not answers:
        raise InputError(source, None, "no answers in the file")
    if name is None:
        if len(names) != 1:
            raise InputError(source, model_field, f"lines name {len(names)} different models; "
                             "give --name" if names else "give --name")
        name = names.pop()
    if not _NAME.match(name):
        raise InputError("--name", name, "use letters, digits and . _ - : @ + only")
    model = f"{IMPORT_PREFIX}{name}"
    file_hash = hashlib.sha256(raw).hexdigest()[:16]
    run_id = hashlib.sha256(json.dumps([model, suite.hash, "import", file_hash]).encode()
                            ).hexdigest()[:12]
    fields = {"id_field": id_field, "answer_field": answer_field, "model_field": model_field}
    return ImportPlan(run_id, model, suite, file, file_hash, fields,
                      _import_items(suite, model, answers))


def _import_items(suite: Suite, model: str, answers: dict[str, str | list[str]]
                  ) -> list[tuple[Sample, Request, str]]:
    """The suite's requests for the imported items with their answers; a conversation's
    turns are built one after another from the imported answers to the turns before."""
    if turn_count(suite.config) == 1:
        return [(sample, request, str(answers[sample.id]))
                for sample, request in build_requests(suite, model, None, 0)
                if sample.id in answers]
    current = [(s, r) for s, r in build_requests(suite, model, None, 0)
               if split_turn_id(s.id)[0] in answers]
    items: list[tuple[Sample, Request, str]] = []
    while current:
        given = {s.id: answers[item][turn - 1] for s, _ in current
                 for item, turn in [split_turn_id(s.id)]}
        items += [(s, r, given[s.id]) for s, r in current]
        current = next_turn(suite.config, str(suite.file), current, given)
    position = {s.id: i for i, (s, _, _) in enumerate(items)}
    return sorted(items, key=lambda x: (position[turn_id(split_turn_id(x[0].id)[0], 1)],
                                        split_turn_id(x[0].id)[1]))


def execute_import(store: Store, plan: ImportPlan) -> ImportOutcome:
    """Store the plan as a completed run (idempotent)."""
    stored = store.completions(r.key for _, r, _ in plan.items)
    clashes = [s.id for s, r, a in plan.items
               if r.key in stored and stored[r.key].texts[:1] != (a,)]
    if clashes:
        raise InputError(str(plan.file), None,
                         f"{plan.model} already has different answers for {len(clashes)} "
                         f"items (first: {clashes[0]}); import under another --name")
    store.register_models([(plan.model, None, "imported",
                            {"run": plan.run_id, "suite": plan.suite.name,
                             "file": str(plan.file), "sha256": plan.file_hash})])
    now = utc_now()
    manifest = build_manifest(plan.suite, plan.model, None, 0, local_model=False)
    manifest["import"] = {"file": str(plan.file), "sha256": plan.file_hash, **plan.fields}
    store.upsert_run(RunRecord(plan.run_id, plan.model, plan.suite.name, plan.suite.hash,
                               "running", None, 0, len(plan.items), manifest, now, now))
    store.add_run_samples(plan.run_id, [(s, r) for s, r, _ in plan.items])
    fresh = [(r.key, Completion(texts=(a,), finish_reasons=("stop",)))
             for _, r, a in plan.items if r.key not in stored]
    store.save_completions(plan.run_id, "import", fresh)
    score_run(store, plan.run_id)
    store.set_run_status(plan.run_id, "completed")
    return ImportOutcome(plan.run_id, plan.model, len(fresh), len(plan.items) - len(fresh))
