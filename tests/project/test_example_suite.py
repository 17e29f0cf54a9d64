"""The example suite covers every category of the trust taxonomy (issue 18), with at least four paired items in each
of the seven categories."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_faef import cli
from pytest_faef.cli.validate import validate
from pytest_faef.core.taxonomy import CATEGORIES

ROOT = Path(__file__).resolve().parents[2]


def test_faef_validate_coverage_shows_all_seven_categories_covered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)

    assert cli.main(["validate", "--coverage", "example_suite"]) == cli.EXIT_OK

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("taxonomy coverage: 7 of 7 categories, ")
    assert "categories without items: none" in lines


def test_each_category_has_four_items_and_nothing_is_unclassified() -> None:
    coverage = validate([ROOT / "example_suite"]).coverage

    assert coverage.unclassified == 0
    assert {category.id: coverage.count(category.id) >= 4 for category in CATEGORIES} == {
        category.id: True for category in CATEGORIES
    }
    for entry in ("reliability.sycophancy", "reliability.misinformation", "robustness.prompt-attacks"):
        assert coverage.count(entry) >= 2, entry
