"""What a judging is: contestants, judges, and every judge request. Writes nothing.

Contestants are runs of the suite (local models, or imported answers as
``import:<name>``), named by their model identity or by a label given as
``LABEL=RUN``, so the same model under two settings can meet itself. A judge's
id hashes everything that changes its verdicts (model identity, template,
settings, policy, what the judge is shown), so judgments made under other
settings are never mixed with these; a jury has its own id over its members.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import InputError
from harness.judge import likelihood
from harness.judge.prompts import JudgeTemplate, Mode, Turn
from harness.judge.verdicts import Combine
from harness.store import Store
from harness.suites.config import Suite
from harness.suites.data import fingerprint, load_rows
from harness.suites.judge_block import JudgeConfig, render
from harness.suites.turns import split_turn_id, turn_count, turn_id, user_message
from harness.types import GenerationParams, Request, RequestKind

IMPORT_PREFIX = "import:"
_LABEL = re.compile(r"[A-Za-z0-9._-]+")  # LABEL=RUN; no ':' so a model spec is never a label


@dataclass(frozen=True)
class Contestant:
    name: str  # how judgments and battles call it
    run_id: str
    model: str  # the run's model identity (import:<name> for imported answers)
    answers: dict[str, str]  # sample id -> answer text, answered samples only, in suite order
    docs: dict[str, dict[str, Any]]  # sample id -> data row

    @property
    def spec(self) -> str | None:
        return None if self.model.startswith(IMPORT_PREFIX) else self.model


@dataclass(frozen=True)
class Judge:
    id: str
    identity: str  # model identity the judge requests are sent to
    label: str


@dataclass(frozen=True)
class JudgePlan:
    suite: Suite
    mode: Mode
    template: JudgeTemplate
    config: JudgeConfig  # the suite's judge block, with command-line overrides applied
    judges: tuple[Judge, ...]
    panel_id: str  # the judge's id, or the jury's when there are several judges
    combine: Combine
    contestants: tuple[Contestant, ...]
    pairs: tuple[tuple[str, str], ...]  # (model_a, model_b), pairwise only
    references: dict[str, dict[str, Any]]  # reference_data rows by sample id

    @property
    def metric(self) -> str:
        return f"judge:{self.panel_id}:score"

    @property
    def source(self) -> str:
        return f"judge:{self.panel_id}"

    def contestant(self, name: str) -> Contestant:
        return next(c for c in self.contestants if c.name == name)

    def settings(self) -> dict[str, Any]:
        """What is recorded with the judge in the ``models`` table."""
        return {"mode": self.mode, "suite": self.suite.name, "template": self.template.name,
                "template_hash": self.template.hash, "scale": self.template.scale.name,
                "policy": self.config.policy, "max_tokens": self.config.max_tokens,
                "temperature": self.config.temperature, "combine": self.combine,
                "verdict": self.config.verdict, "members": [j.id for j in self.judges]}


@dataclass(frozen=True)
class Slot:
    """One judge request to make: one answer, or one pair in one order."""

    judge: Judge
    sample_id: str
    model_a: str
    model_b: str | None
    swapped: bool
    run_a: str
    run_b: str | None
    len_a: int
    len_b: int | None
    shown: tuple[str, ...]  # the answers in the order the judge sees them
    request: Request


def resolve_contestants(store: Store, suite: str, refs: Sequence[str],
                        where: dict[str, list[str]] | None = None) -> list[Contestant]:
    """Runs of ``suite`` named by run id (prefix), model identity, or LABEL=either;
    with ``where``, only their items whose data field has one of the listed values."""
    runs = [r for r in store.list_runs() if r.suite == suite]
    found: list[Contestant] = []
    for ref in refs:
        label, sep, target = ref.partition("=")
        if not (sep and target and _LABEL.fullmatch(label)):
            label, target = "", ref
        by_model = [r for r in runs if r.model == target]
        by_id = [r for r in runs if r.id.startswith(target)]
        matches = by_model or by_id
        if not matches:
            raise InputError("--model", ref, f"no run of suite {suite!r} has this model or id "
                             "(see `evalarena runs`; import answers with `evalarena import`)")
        if len(matches) > 1:
            ids = ", ".join(r.id for r in matches)
            raise InputError("--model", ref, f"{len(matches)} runs of suite {suite!r} match "
                             f"({ids}); name one by run id")
        run = matches[0]
        samples = store.run_samples(run.id)
        for field, values in (where or {}).items():
            if samples and not any(field in s.sample.doc for s in samples):
                raise InputError("--where", field, "the suite's data has no such field")
            samples = [s for s in samples if str(s.sample.doc.get(field)) in values]
        texts = store.completions(s.request_key for s in samples)
        answers = {s.sample.id: texts[s.request_key].texts[0] for s in samples
                   if s.request_key in texts and texts[s.request_key].texts}
        name = label or run.model
        if any(c.name == name for c in found):
            raise InputError("--model", ref, f"two contestants are called {name!r}; label "
                             "them LABEL=RUN")
        found.append(Contestant(name, run.id, run.model, answers,
                                {s.sample.id: s.sample.doc for s in samples}))
    return found


def judge_label(identity: str) -> str:
    """A readable prefix for a judge id: the served model's or directory's name."""
    base = identity.split("?", 1)[0]
    if base.startswith("openai:"):
        base = base.rpartition("@")[2]
    elif ":" in base:
        base = base.split(":", 1)[1]
    base = base.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-")[:40] or "judge"


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def plan_judging(suite: Suite, mode: Mode, template: JudgeTemplate, config: JudgeConfig,
                 judges: Sequence[str], contestants: Sequence[Contestant],
                 baseline: str | None = None, combine: Combine = "majority",
                 label: str | None = None) -> JudgePlan:
    """Validate the combination and fix every id. ``judges`` are model identities."""
    if not judges:
        raise InputError("--judge", None, "name at least one judge model")
    if len(set(judges)) != len(judges):
        raise InputError("--judge", None, "the same judge is named twice")
    names = [c.name for c in contestants]
    if baseline is not None and baseline not in names:
        raise InputError("--baseline", baseline, "the baseline must also be one of the "
                         f"contestants ({', '.join(names)})")
    if mode == "pairwise":
        if baseline is not None:
            pairs = tuple((n, baseline) for n in names if n != baseline)
        else:
            pairs = tuple((a, b) for i, a in enumerate(names) for b in names[i + 1:])
        if not pairs:
            raise InputError("--model", None, "pairwise judging needs at least two contestants")
    else:
        if baseline is not None:
            raise InputError("--baseline", baseline, "a baseline only applies to --mode pairwise")
        pairs = ()
        if not contestants:
            raise InputError("--model", None, "name at least one contestant")
    references, data_hash = {}, None
    if config.reference_data is not None:
        rows = load_rows(config.reference_data, suite.file, "judge.reference_data")
        id_field = config.reference_data.id_field
        references = {str(row[id_field]) if id_field else str(i): row
                      for i, row in enumerate(rows)}
        data_hash = fingerprint(config.reference_data, suite.file, "judge.reference_data")
    settings = [mode, template.name, template.hash, config.max_tokens, config.temperature,
                config.policy, _question_template(suite, config), config.reference, data_hash]
    if config.verdict != "generate":  # kept out otherwise: existing judge ids stay valid
        settings.append(config.verdict)
    if turn_count(suite.config) > 1:  # and so for the later turns' prompts
        if template.multi_turn is None:
            raise InputError("--template", template.name, "this template cannot grade the "
                             "later turns of a conversation (it has no multi-turn prompts)")
        settings.append(template.multi_turn_hash)
    members = tuple(
        Judge(f"{label or judge_label(identity)}-{_hash([identity, *settings])}", identity,
              label or judge_label(identity))
        for identity in judges)
    panel_id = members[0].id if len(members) == 1 else \
        f"{label or 'jury'}-{_hash([sorted(j.id for j in members), combine])}"
    return JudgePlan(suite, mode, template, config, members, panel_id, combine,
                     tuple(contestants), pairs, references)


def _question_template(suite: Suite, config: JudgeConfig) -> str:
    prompt = suite.config.prompt
    if config.question is None and prompt.turns is not None:
        return json.dumps(prompt.turns)  # each turn's own user message
    return config.question or prompt.user or prompt.text or ""


def _texts(plan: JudgePlan, sample_id: str, doc: dict[str, Any]) -> tuple[str, str | None]:
    """The question and the reference answer the judge is shown for one sample (a turn,
    for a conversation: its user message, and the reference to that turn)."""
    source = str(plan.suite.file)
    context = {**doc, "doc": doc}
    conversation = plan.suite.config.prompt.turns is not None
    item = split_turn_id(sample_id)[0] if conversation else sample_id
    if conversation and plan.config.question is None:
        question = user_message(plan.suite.config, source, doc, split_turn_id(sample_id)[1],
                                sample_id)
    else:
        question = render(source, "judge.question",
                          _question_template(plan.suite, plan.config), context, sample_id)
    reference = None
    if plan.config.reference is not None:
        if item in plan.references:
            context["ref"] = plan.references[item]
        reference = render(source, "judge.reference", plan.config.reference, context,
                           sample_id).strip() or None
    return question, reference


def _earlier_turns(plan: JudgePlan, sample_id: str, first: Contestant,
                   second: Contestant | None) -> tuple[Turn, ...]:
    """A later turn's conversation so far, as the judge sees it (A's answers first)."""
    if plan.suite.config.prompt.turns is None:
        return ()
    item, turn = split_turn_id(sample_id)
    earlier = []
    for number in range(1, turn):
        earlier_id = turn_id(item, number)
        question, reference = _texts(plan, earlier_id, first.docs[earlier_id])
        answers = (first.answers[earlier_id],) if second is None else \
            (first.answers[earlier_id], second.answers[earlier_id])
        earlier.append(Turn(question, answers, reference))
    return tuple(earlier)


def _group(template: JudgeTemplate, doc: dict[str, Any]) -> str | None:
    """The item's value of the field that picks the template's system prompt."""
    if template.group_field is None:
        return None
    value = doc.get(template.group_field)
    return None if value is None else str(value)


def build_slots(plan: JudgePlan) -> list[Slot]:
    """Every first-attempt judge request, per judge, item, contestant or pair and order."""
    config = plan.config
    params = GenerationParams(max_tokens=config.max_tokens, temperature=config.temperature)
    by_likelihood = config.verdict == "likelihood"
    verdict_tokens = likelihood.continuations(plan.template.scale)
    slots: list[Slot] = []
    units: list[tuple[str, Contestant, Contestant | None]] = []
    if plan.mode == "single":
        units = [(s, c, None) for c in plan.contestants for s in c.answers]
    else:
        for a_name, b_name in plan.pairs:
            a, b = plan.contestant(a_name), plan.contestant(b_name)
            units += [(s, a, b) for s in a.answers if s in b.answers]
    for judge in plan.judges:
        for sample_id, first, second in units:
            question, reference = _texts(plan, sample_id, first.docs[sample_id])
            answer_a = first.answers[sample_id]
            answer_b = second.answers[sample_id] if second is not None else None
            earlier = _earlier_turns(plan, sample_id, first, second)
            group = _group(plan.template, first.docs[sample_id])
            orders = [(False, (answer_a,))] if answer_b is None else \
                [(False, (answer_a, answer_b)), (True, (answer_b, answer_a))]
            for swapped, shown in orders:
                history = tuple(Turn(t.question, t.answers[::-1] if swapped else t.answers,
                                     t.reference) for t in earlier)
                messages = plan.template.render(question, shown, reference, history, group)
                request = Request(RequestKind.LOGLIKELIHOOD, judge.identity, messages=messages,
                                  continuations=verdict_tokens) if by_likelihood else \
                    Request(RequestKind.GENERATE, judge.identity, messages=messages,
                            params=params)
                slots.append(Slot(judge, sample_id, first.name,
                                  second.name if second else None, swapped,
                                  first.run_id, second.run_id if second else None, len(answer_a),
                                  len(answer_b) if answer_b is not None else None, shown,
                                  request))
    return slots
