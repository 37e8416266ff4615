"""Task suites: one YAML file describes data, prompt, answer and metrics.

Validation is strict and early: unknown fields, templates that name a field
the data lacks, and unreadable data are all reported (file and field, one line)
before any request is built, so a bad suite never touches the database.
docs/tasks.md documents every field.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import InputError, SuiteError
from harness.metrics import METRICS, Extraction
from harness.stats.slices import StatsConfig, check_stats
from harness.suites.data import DataSource, NotUTF8Error, decode_text, fingerprint, load_rows
from harness.suites.judge_block import JudgeConfig, check_judge
from harness.suites.robustness_block import Perturbation, RobustnessConfig
from harness.suites.templates import TemplateEnvironment

TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"  # the repository's tasks/
_ENV = TemplateEnvironment(keep_trailing_newline=True)  # sandboxed: suites are shared files
compile_template = lru_cache(maxsize=256)(_ENV.from_string)  # each template is compiled once


def render_item(source: str, field: str, template: str, context: dict[str, Any],
                sample_id: str) -> str:
    """One template over one item; a failure is an input error naming field and item."""
    try:
        return compile_template(template).render(context)
    except jinja2.UndefinedError as exc:
        raise SuiteError(source, field, f"item {sample_id}: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise SuiteError(source, field, f"item {sample_id}: {exc}") from None
# names a template may use besides the data's own fields
_BUILTINS = {"choices", "doc", "range", "loop", "true", "false", "none"}
# what each turn of a conversation adds to its item's data row: the turn's number (from 1)
# and the item's id, which the turns of one conversation share (its cluster)
TURN_FIELDS = ("turn", "conversation")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptConfig(_Strict):
    """A chat prompt (``system`` + ``user``), a plain ``text`` prompt, or a conversation
    (``system`` + ``turns``: one user message per turn, each turn sent with the model's
    own earlier answers; harness/suites/turns.py)."""

    system: str | None = None
    user: str | None = None
    turns: list[str] | None = Field(None, min_length=1)
    text: str | None = None
    preamble: str | None = None  # text prompts: rendered once, before the few-shot examples


class ChoicesConfig(_Strict):
    field: str | None = None  # a data field holding the list of choices
    fields: list[str] | None = None  # or one data field per choice
    values: list[str] | None = None  # or the same choices for every item (e.g. [no, yes])
    # with `field`: the field is one string, and this regex's matches (group 1 if it has
    # one) are the choices, e.g. "A. ...\nB. ..." split by "(?m)^[AB]\\.\\s*(.*?)\\s*$"
    pattern: str | None = None
    template: str = " {{ choice }}"  # the continuation scored for each choice
    labels: list[str] | None = None  # letters a target may name instead of an index
    # set: each item's choices are put in an order drawn from this seed and the item's
    # row, and the target follows its choice (GPQA, whose data lists the right answer first)
    shuffle: int | None = None


class FewshotConfig(_Strict):
    n: int = Field(ge=1)
    seed: int = 1234
    data: DataSource | None = None  # default: the suite's own rows, minus the item itself
    answer: str | None = None  # template of an example's answer; default: the right choice
    same_field: str | None = None  # draw examples only from rows sharing this field's value
    separator: str = "\n\n"
    # random: n rows drawn per item (seeded by `seed` and the item's id); first: the first
    # n rows of the pool (after same_field) in data order, so every item of a group shares
    # its examples (lm-evaluation-harness's fixed per-subject MMLU examples) and a backend
    # can reuse the shared prompt prefix's computation
    sampler: Literal["random", "first"] = "random"


class GenerationConfig(_Strict):
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: list[str] = []
    n: int = Field(1, ge=1)
    seed: int | None = None


class SuiteConfig(_Strict):
    name: str
    description: str = ""
    license: str
    kind: Literal["generate", "multiple_choice"]
    data: DataSource
    prompt: PromptConfig
    target: str = ""  # template: the reference answer, or the right choice's index or label
    choices: ChoicesConfig | None = None
    fewshot: FewshotConfig | None = None
    generation: GenerationConfig = GenerationConfig()
    extract: Extraction = Extraction()
    metrics: list[str]  # may be empty for open-ended suites that only a judge scores
    judge: JudgeConfig | None = None  # docs/judge.md; not part of the suite's hash
    stats: StatsConfig | None = None  # docs/statistics.md; not part of the suite's hash
    # docs/beyond_accuracy.md: the perturbations `run --perturb suite` applies (not part of
    # the hash), and the one a derived suite (harness/suites/perturbed.py) was made with
    robustness: RobustnessConfig | None = None
    perturbation: Perturbation | None = None

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; known: {', '.join(sorted(METRICS))}")
        return value


@dataclass(frozen=True)
class Suite:
    config: SuiteConfig
    file: Path
    rows: list[dict[str, Any]]
    fewshot_rows: list[dict[str, Any]]
    data_hash: str
    base_hash: str | None = None  # a derived suite's: the hash of the suite it was made from

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def hash(self) -> str:
        # the judge and stats blocks change how answers are judged and summarised, not
        # the answers: left out so that editing them never turns stored answers into a new run
        config = self.config.model_dump(mode="json", exclude={"judge", "stats", "robustness"})
        _drop_added_defaults(config)
        payload = json.dumps({"config": config, "data": self.data_hash}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def template_hashes(self) -> dict[str, str]:
        return {
            name: hashlib.sha256(source.encode()).hexdigest()[:16]
            for name, source in _templates(self.config).items()
        }


# fields added after suites had stored runs, with their default: left out of the hash while
# at that default, so a suite that does not use a new field keeps its hash (and its run ids)
_ADDED_DEFAULTS: dict[tuple[str, str], Any] = {("fewshot", "sampler"): "random",
                                               ("prompt", "turns"): None,
                                               ("choices", "shuffle"): None,
                                               ("data", "more_paths"): [],
                                               ("fewshot.data", "more_paths"): [],
                                               ("", "perturbation"): None}


def _drop_added_defaults(config: dict[str, Any]) -> None:
    for (block, field), default in _ADDED_DEFAULTS.items():
        values: Any = config
        for name in block.split(".") if block else ():  # "fewshot.data": a block in a block
            values = values.get(name) if isinstance(values, dict) else None
        if isinstance(values, dict) and values.get(field) == default:
            del values[field]


def find_suite_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InputError("--suite", None, f"no suite file at {path}")
        return path
    candidate = TASKS_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in TASKS_DIR.glob("*.yaml")))
    raise InputError("--suite", None, f"no suite named {name_or_path!r}; shipped: {known}")


def _utf8(raw: bytes, source: str) -> str:
    """The file's text; a byte that is not UTF-8 is an input error naming its line."""
    try:
        return decode_text(raw)
    except NotUTF8Error as exc:
        raise SuiteError(source, f"line {exc.line}", f"not UTF-8 text (byte 0x{exc.byte:02x} "
                         f"at offset {exc.offset})") from None


def _yaml_line(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}"
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow
        return f"line {text[:exc.position].count(chr(10)) + 1}"
    return "yaml"


def _yaml_problem(exc: yaml.YAMLError) -> object:
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character {exc.character!r} is not allowed in YAML"
    return getattr(exc, "problem", None) or exc


def load_suite(name_or_path: str) -> Suite:
    """Parse, validate and read the data of a suite. Raises SuiteError/DataError."""
    file = find_suite_file(name_or_path)
    source = str(file)
    text = _utf8(file.read_bytes(), source)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteError(source, _yaml_line(exc, text),
                         f"YAML syntax error: {' '.join(str(_yaml_problem(exc)).split())}"
                         ) from None
    if not isinstance(raw, dict):
        raise SuiteError(source, None, "a suite file must be a YAML mapping")
    try:
        config = SuiteConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "suite"
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        raise SuiteError(source, field, message) from None
    check_shape(config, source)
    if "~" in config.name:  # it separates a suite's name from a perturbation's label
        raise SuiteError(source, "name", "a suite's name cannot contain '~'")
    rows = load_rows(config.data, file, "data")
    fewshot_rows = rows
    if config.fewshot is not None and config.fewshot.data is not None:
        fewshot_rows = load_rows(config.fewshot.data, file, "fewshot.data")
    check_templates(config, source, rows, fewshot_rows)
    _check_metric_needs(config, source, rows)
    if config.judge is not None:
        fields = data_fields(rows)
        if config.prompt.turns is not None:
            fields |= set(TURN_FIELDS)
        check_judge(config.judge, config.kind, file, fields, config.prompt.turns is not None)
    if config.stats is not None:
        check_stats(config.stats, file, [{**r, **dict.fromkeys(TURN_FIELDS, "")} for r in rows]
                    if config.prompt.turns is not None else rows)
    suite = Suite(config, file, rows, fewshot_rows, fingerprint(config.data, file))
    if config.robustness is not None:
        from harness.suites.perturbed import derive_all  # it builds on this module

        derive_all(suite, config.robustness.perturbations)  # each must fit: refused here
    return suite


def data_fields(rows: list[dict[str, Any]]) -> set[str]:
    """The fields every row has (of the first thousand)."""
    return set.intersection(*(set(r) for r in rows[:1000])) if rows else set()


def check_shape(config: SuiteConfig, source: str) -> None:
    prompt = config.prompt
    if sum(x is not None for x in (prompt.text, prompt.user, prompt.turns)) != 1:
        raise SuiteError(source, "prompt",
                         "give one of 'user' (chat), 'text' (plain) or 'turns' (conversation)")
    if prompt.turns is not None:
        if config.kind != "generate":
            raise SuiteError(source, "prompt.turns", "a conversation is a generate suite")
        if config.fewshot is not None:
            raise SuiteError(source, "fewshot", "a conversation ('prompt.turns') takes no "
                             "few-shot examples")
    if prompt.text is not None and prompt.system is not None:
        raise SuiteError(source, "prompt.system", "a plain 'text' prompt has no system message")
    if prompt.preamble is not None and prompt.text is None:
        raise SuiteError(source, "prompt.preamble", "a chat prompt uses 'system' instead")
    if config.kind == "multiple_choice":
        choices = config.choices
        given = [] if choices is None else [
            x for x in (choices.field, choices.fields, choices.values) if x is not None]
        if len(given) != 1:
            raise SuiteError(source, "choices",
                             "multiple_choice needs one of choices.field, .fields or .values")
        if choices is not None and choices.pattern is not None:
            if choices.field is None:
                raise SuiteError(source, "choices.pattern", "a pattern splits choices.field")
            try:
                re.compile(choices.pattern)
            except re.error as exc:
                raise SuiteError(source, "choices.pattern", f"invalid regex: {exc}") from None
    elif config.choices is not None:
        raise SuiteError(source, "choices", "only a multiple_choice suite has choices")
    if config.extract.regex is not None:
        try:
            re.compile(config.extract.regex)
        except re.error as exc:
            raise SuiteError(source, "extract.regex", f"invalid regex: {exc}") from None
    fewshot = config.fewshot
    if fewshot is not None and fewshot.answer is None and config.kind == "generate":
        raise SuiteError(source, "fewshot.answer", "a generate suite needs an answer template")


def _check_metric_needs(config: SuiteConfig, source: str, rows: list[dict[str, Any]]) -> None:
    """Metrics may declare ``min_samples`` (pass@k needs n >= k) and ``required_fields``."""
    fields = data_fields(rows)
    for name in config.metrics:
        metric = METRICS[name]
        needed = getattr(metric, "min_samples", 1)
        if needed > config.generation.n:
            raise SuiteError(source, "generation.n",
                             f"metric {name!r} needs n >= {needed} samples per item")
        missing = [f for f in getattr(metric, "required_fields", ()) if f not in fields]
        if missing:
            raise SuiteError(source, "metrics",
                             f"metric {name!r} needs the data field {missing[0]!r}")


def _templates(config: SuiteConfig) -> dict[str, str]:
    found = {f"prompt.{k}": v for k, v in config.prompt.model_dump().items()
             if v is not None and k != "turns"}
    found.update({f"prompt.turns.{i}": t for i, t in enumerate(config.prompt.turns or [])})
    found["target"] = config.target
    if config.choices is not None:
        found["choices.template"] = config.choices.template
    if config.fewshot is not None and config.fewshot.answer is not None:
        found["fewshot.answer"] = config.fewshot.answer
    return found


def _check_ids(rows: list[dict[str, Any]], id_field: str, source: str) -> None:
    """Item ids are what runs, stored answers and votes are keyed by: each must be a
    string or an integer, and no two items may share one."""
    first: dict[str, int] = {}
    for number, row in enumerate(rows, 1):
        value = row.get(id_field)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SuiteError(source, "data.id_field", f"item {number}: id {value!r} is "
                             f"{type(value).__name__}, not a string or an integer")
        if (seen := first.setdefault(str(value), number)) != number:
            raise SuiteError(source, "data.id_field",
                             f"id {str(value)!r} is used by items {seen} and {number}")


def check_templates(config: SuiteConfig, source: str, rows: list[dict[str, Any]],
                    fewshot_rows: list[dict[str, Any]]) -> None:
    fields = data_fields(rows)
    if config.data.id_field is not None and config.data.id_field not in fields:
        raise SuiteError(source, "data.id_field", f"the data has no field {config.data.id_field!r}")
    if config.data.id_field is not None:
        _check_ids(rows, config.data.id_field, source)
    if config.prompt.turns is not None:
        taken = sorted(fields & set(TURN_FIELDS))
        if taken:
            raise SuiteError(source, "prompt.turns", f"a conversation adds the field "
                             f"{taken[0]!r} to each turn, and the data already has one")
    same_field = config.fewshot.same_field if config.fewshot else None
    if same_field is not None and same_field not in fields:
        raise SuiteError(source, "fewshot.same_field", f"the data has no field {same_field!r}")
    if config.choices is not None:
        for name in config.choices.fields or ([config.choices.field]
                                              if config.choices.field else []):
            if name not in fields:
                raise SuiteError(source, "choices", f"the data has no field {name!r}")
    for where, text in _templates(config).items():
        try:  # compiling also finds unknown filters and tests ("|efault")
            used = jinja2.meta.find_undeclared_variables(_ENV.parse(text))
        except jinja2.TemplateSyntaxError as exc:
            raise SuiteError(source, where, f"template syntax error: {exc.message}") from None
        allowed = fields | _BUILTINS | ({"choice", "label"} if where == "choices.template"
                                        else set()) | (set(TURN_FIELDS)
                                                       if where.startswith("prompt.turns")
                                                       else set())
        if where == "fewshot.answer":
            allowed = allowed & (set.intersection(*(set(r) for r in fewshot_rows[:1000]))
                                 | _BUILTINS)
        missing = sorted(used - allowed)
        if missing:
            raise SuiteError(
                source, where,
                f"template uses {missing[0]!r}, which the data does not have "
                f"(fields: {', '.join(sorted(fields))})",
            )
