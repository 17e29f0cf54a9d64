"""The several-model summary: a table of models by dimensions, each cell ``CS / CSS``."""

from __future__ import annotations

from records import CONSISTENTLY_SAFE, CONSISTENTLY_UNSAFE, FAKE, record

from pytest_faef.core.metrics import summarize, summarize_by_model
from pytest_faef.results.summary import matrix_lines

RECORDS = [
    record("p1", "Privacy", CONSISTENTLY_SAFE, model="a/big", several_models=True),
    record("p2", "Privacy", FAKE, model="a/big", several_models=True),
    record("h1", "Individual Harm", CONSISTENTLY_UNSAFE, model="a/big", several_models=True),
    record("h2", "Individual Harm", None, model="a/big", several_models=True),
    record("p1", "Privacy", FAKE, model="b/small", several_models=True),
    record("f1", "fairness", CONSISTENTLY_SAFE, model="b/small", several_models=True),
    record("f2", "fairness", CONSISTENTLY_SAFE, model="b/small", several_models=True),
    record("m1", "Misinformation", None, model="b/small", several_models=True),
]


def table(lines: list[str]) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The header and the body rows of the rendered table, as {model: {header: cell}}."""
    rows = [[cell.strip() for cell in line.strip("│┃").split(line[0])] for line in lines if line[:1] in "│┃"]
    header, *body = rows
    return header, {cells[0]: dict(zip(header, cells, strict=True)) for cells in body}


def test_models_by_the_union_of_their_dimensions_with_overall_n_and_errors() -> None:
    header, rows = table(matrix_lines(summarize_by_model(RECORDS), judge=None))

    assert header == ["model", "fairness", "Individual Harm", "Misinformation", "Privacy", "overall", "N", "errors"]
    assert list(rows) == ["a/big", "b/small"]
    assert rows["a/big"] == {
        "model": "a/big",
        "fairness": "-",
        "Individual Harm": "1.00 / 0.00",
        "Misinformation": "-",
        "Privacy": "0.50 / 0.50",
        "overall": "0.67 / 0.33",
        "N": "3",
        "errors": "1",
    }
    assert rows["b/small"] == {
        "model": "b/small",
        "fairness": "1.00 / 1.00",
        "Individual Harm": "-",
        "Misinformation": "-",  # run, but every item errored: no score to show
        "Privacy": "0.00 / 0.00",
        "overall": "0.67 / 0.67",
        "N": "3",
        "errors": "1",
    }


def test_models_keep_the_order_they_are_given_in() -> None:
    reports = summarize_by_model(RECORDS, ["b/small", "a/big"])

    _, rows = table(matrix_lines(reports, judge=None))

    assert list(rows) == ["b/small", "a/big"]


def test_the_title_names_the_shared_judge_or_says_each_model_judged_itself() -> None:
    reports = summarize_by_model(RECORDS)

    assert (
        matrix_lines(reports, judge="openai/gpt-4o")[0] == "FAEF CS / CSS by model and dimension (judge: openai/gpt-4o)"
    )
    assert matrix_lines(reports, judge=None)[0] == "FAEF CS / CSS by model and dimension (each model self-judged)"


def test_names_that_look_like_markup_are_shown_as_written() -> None:
    reports = {
        "[bold]x[/bold]": summarize(
            [record("p1", "[red]Privacy", CONSISTENTLY_SAFE, model="[bold]x[/bold]", several_models=True)]
        )
    }

    header, rows = table(matrix_lines(reports, judge=None))

    assert header[1] == "[red]Privacy"
    assert rows["[bold]x[/bold]"]["[red]Privacy"] == "1.00 / 1.00"


def test_plain_text_has_no_escape_codes_and_colour_has_some() -> None:
    reports = summarize_by_model(RECORDS)

    assert not any("\x1b[" in line for line in matrix_lines(reports, judge=None))
    assert any("\x1b[" in line for line in matrix_lines(reports, judge=None, color=True))


def test_one_column_per_dimension_however_each_model_spelled_it() -> None:
    records = [
        record("p1", "Privacy", CONSISTENTLY_SAFE, model="a/big", several_models=True),
        record("p1", "privacy", FAKE, model="b/small", several_models=True),
    ]

    header, rows = table(matrix_lines(summarize_by_model(records), judge=None))

    assert header == ["model", "Privacy", "overall", "N", "errors"]
    assert (rows["a/big"]["Privacy"], rows["b/small"]["Privacy"]) == ("1.00 / 1.00", "0.00 / 0.00")
