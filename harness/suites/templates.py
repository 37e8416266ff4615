"""Templates from files people share (suites, judge blocks, judge prompt files),
rendered so that they can neither run code nor exhaust the machine.

Jinja's immutable sandbox already refuses Python internals (``cycler.__init__
.__globals__``: private attributes are out of reach) and changes to the values a
template sees. On top of it, nothing one expression builds may exceed
``MAX_BUILD`` characters or items: ``'x' * 10**10``, ``'x'|center(10**10)``,
``'%9999999999d' % 1``, ``'{:>9999999999}'.format(1)`` and ``range(10**9)`` all
fail with ``SecurityError`` (a ``jinja2.TemplateError``), which the suite loader
reports as one line naming the file and field. ``lipsum`` is gone: it exists to
produce text in bulk. What is not bounded: CPU time spent in nested loops that
write nothing (``range`` is capped at ``MAX_RANGE`` items per loop).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_BUILD = 1_000_000  # characters or items one expression may build
MAX_RANGE = 10_000  # items in one range()
MAX_EXPONENT = 4_096
_WIDE = re.compile(r"\d{7,}")  # a width or precision of a million or more
_PERCENT_SPEC = re.compile(r"%[-+ #0-9.*]*[a-zA-Z]")


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The one Jinja environment for templates read from files."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, **options)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(count, int) \
                        and len(sequence) * count > MAX_BUILD:
                    raise SecurityError(f"'*' would build {len(sequence) * count:,} items "
                                        f"(at most {MAX_BUILD:,})")
        elif operator == "**":
            if isinstance(right, int | float) and right > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is too large (at most {MAX_EXPONENT})")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if getattr(value, "__name__", None) in ("format", "format_map") \
                and isinstance(getattr(value, "__self__", None), str):
            _check_brace_format(value.__self__)
        return super().wrap_str_format(value)


def _bounded_range(*args: int) -> range:
    found = range(*args)
    if len(found) > MAX_RANGE:
        raise SecurityError(f"range of {len(found):,} items (at most {MAX_RANGE:,})")
    return found


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)  # keeps the pass_context / pass_environment marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[1:], *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_BUILD:
                raise SecurityError(f"filter {name}: argument {value:,} is too large")
        if name == "format":  # "%s"|format(...): the value is a %-format string
            for value in args[:2]:
                if isinstance(value, str):
                    _check_percent_format(value)
        return function(*args, **kwargs)

    return bounded


def _check_percent_format(text: str) -> None:
    for spec in _PERCENT_SPEC.findall(text):
        if _WIDE.search(spec):
            raise SecurityError(f"format width in {spec!r} is too large")


def _check_brace_format(text: str) -> None:
    for _, _, spec, _ in string.Formatter().parse(text):
        if spec and _WIDE.search(spec):
            raise SecurityError(f"format width in {spec!r} is too large")


class PlainFieldFormatter(string.Formatter):
    """``str.format`` for prompt text with ``{name}`` fields only: no ``{a.attr}``,
    no ``{a[0]}``, no nested or wide format specs."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not field_name.isidentifier():
            raise ValueError(f"field {{{field_name}}} is not a plain name")
        return super().get_field(field_name, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        if _WIDE.search(format_spec) or "{" in format_spec:
            raise ValueError(f"format spec {format_spec!r} is not allowed")
        return super().format_field(value, format_spec)


def format_plain(template: str, values: Mapping[str, str]) -> str:
    return PlainFieldFormatter().vformat(template, (), values)
