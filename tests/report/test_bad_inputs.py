"""The docs' table of bad inputs (docs/troubleshooting.md) is current: it lists every case of experiments/bad_inputs.py, and the cases
refused before any data is read still print what the table says."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "experiments" / "bad_inputs.py")
bad_inputs = importlib.util.module_from_spec(_spec)
sys.modules["bad_inputs"] = bad_inputs  # dataclasses look their module up there
_spec.loader.exec_module(bad_inputs)


def _table_rows() -> dict[str, str]:
    page = bad_inputs.PAGE.read_text()
    table = page[page.index(bad_inputs.START) + len(bad_inputs.START):page.index(bad_inputs.END)]
    return {line.split("|")[1].strip().strip("`"): line for line in table.strip().splitlines()[2:]}


def test_docs_table_lists_every_case_in_order():
    assert list(_table_rows()) == [case.id for case in bad_inputs.CASES]
    assert all(" | 2 | error: " in row or "check-" in row for row in _table_rows().values())


def test_fast_cases_still_print_what_the_table_says():
    rows = _table_rows()
    cases = [c for c in bad_inputs.CASES if c.fast][:2]
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            assert bad_inputs.row(case, *bad_inputs.run_case(case, Path(folder), None)) == rows[case.id]
