"""docs/errors.md is rendered from tests/integration/error_cases.yml and covers every option."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("errors_table", ROOT / "tools" / "errors_table.py")
errors_table = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(errors_table)


def test_errors_page_is_up_to_date():
    expected = errors_table.render(errors_table.load_table())
    assert errors_table.PAGE.read_text() == expected, "docs/errors.md is out of date: run tools/errors_table.py"


def test_every_module_filter_role_and_option_is_in_the_table():
    assert errors_table.coverage_problems(errors_table.load_table()) == []


def test_row_ids_are_unique_and_rows_complete():
    table = errors_table.load_table()
    ids = [case["id"] for content in table["contents"] for case in content["cases"]]
    assert len(ids) == len(set(ids))
    for content in table["contents"]:
        assert content["kind"] in ("module", "filter", "lookup", "role") and content["checks"] in errors_table.CHECK_TEXT
        for case in content["cases"]:
            assert ("message" in case) != ("message_start" in case), case["id"]
            assert case["stage"] in errors_table.STAGE_TEXT, case["id"]
            assert {"option", "value"} <= set(case), case["id"]
