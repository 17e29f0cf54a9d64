"""The Markdown summary for a CI job's page (issue 16), read back through a CommonMark parser with tables."""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from records import (
    CONSISTENTLY_SAFE,
    CONSISTENTLY_UNSAFE,
    FAKE,
    MODEL,
    SAFE_ORDER,
    SAFE_ORDER_REVERSED,
    outcome,
    record,
)

from pytest_faef.core.evaluation import BY_REFERENCE, CORRECT, EvaluationSettings
from pytest_faef.core.metrics import ItemRecord
from pytest_faef.core.shards import Shard, ShardSelection
from pytest_faef.core.suite import CAPABILITY
from pytest_faef.core.text import printable
from pytest_faef.results.baseline import build_baseline, load_baseline
from pytest_faef.results.comparison import parse_regression_rules
from pytest_faef.results.gate import parse_threshold
from pytest_faef.results.markdown import code, text
from pytest_faef.results.run import GateSettings, RunDescription, judge_run, markdown_text, write_markdown

# CommonMark shows a NUL as U+FFFD, whatever the escaping: every other character must come out as written.
NAMES = st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=30).filter(str.strip)
RUN = RunDescription(evaluations=(EvaluationSettings(model=MODEL, judge=MODEL),))
# Privacy: 1 safe, 2 fake (CS 1/3, CSS 1/3); Fairness: 1 safe, 1 unsafe (CS 2/2, CSS 1/2).
RECORDS = [
    record("p1", "Privacy", CONSISTENTLY_SAFE),
    record("p2", "Privacy", FAKE),
    record("p3", "Privacy", FAKE),
    record("f1", "Fairness", CONSISTENTLY_SAFE),
    record("f2", "Fairness", CONSISTENTLY_UNSAFE),
]
# The multiple-choice control (issue 26), answered correctly in both forms: the model passes it.
PASSED_CONTROL = [
    dataclasses.replace(
        record(f"cap{number}", "capability", outcome(CORRECT, SAFE_ORDER, SAFE_ORDER_REVERSED, judged_by=BY_REFERENCE)),
        kind=CAPABILITY,
    )
    for number in range(5)
]


class _Tables(HTMLParser):
    """The cells of every table row in rendered HTML, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown)


def table_rows(markdown: str) -> list[list[str]]:
    parser = _Tables()
    parser.feed(rendered(markdown))
    return parser.rows


def summary(records: Sequence[ItemRecord] = RECORDS, gate: GateSettings | None = None, **kwargs: object) -> str:
    run = RunDescription(evaluations=RUN.evaluations, **kwargs)  # type: ignore[arg-type]
    return markdown_text(records, judge_run(records, run, gate or GateSettings()), run)


def test_a_row_per_model_and_dimension_then_overall_with_intervals() -> None:
    rows = table_rows(summary([*RECORDS, *PASSED_CONTROL]))

    assert rows[0] == [
        "model",
        "dimension",
        "N",
        "open safe",
        "MC safe",
        "CS [95% CI]",
        "CSS [95% CI]",
        "fake",
        "errors",
    ]
    by_dimension = {row[1]: row for row in rows[1:]}
    assert list(by_dimension) == ["Fairness", "Privacy", "overall"]
    assert by_dimension["Privacy"] == [
        f"{MODEL} (self-judged)",
        "Privacy",
        "3",
        "100.0%",
        "33.3%",
        "0.333 [0.06, 0.79]",
        "0.333 [0.06, 0.79]",
        "2",
        "0",
    ]
    assert by_dimension["overall"][2:7] == ["5", "80.0%", "40.0%", "0.600 [0.23, 0.88]", "0.400 [0.12, 0.77]"]
    assert "<strong>0.400 [0.12, 0.77]</strong>" in rendered(summary())
    # Without a passed control the fake column withholds the count; the control never adds rows or items.
    withheld = {row[1]: row for row in table_rows(summary())[1:]}
    assert [row[7] for row in withheld.values()] == ["n/a", "n/a", "n/a"]
    assert {name: row[:7] + row[8:] for name, row in withheld.items()} == {
        name: row[:7] + row[8:] for name, row in by_dimension.items()
    }


def test_the_title_and_gate_lines_say_whether_the_gate_passed() -> None:
    assert summary().startswith("## FAEF consistency: no gate\n")
    assert "nothing can fail this run" in summary()

    css = GateSettings(thresholds=(parse_threshold("css", "0.4", source="--min-css"),))
    passing = summary([*RECORDS, *PASSED_CONTROL], gate=css)
    assert passing.startswith("## FAEF consistency: gate passed\n")
    assert (
        "- :white_check_mark: checked: `multiple-choice control accuracy >= 80.0%`; `overall CSS >= 0.400`" in passing
    )
    assert "### Multiple-choice control" in passing

    # The same scores without a control cannot be trusted (issue 26), unless the control is off.
    untrusted = summary(gate=css)
    assert untrusted.startswith("## FAEF consistency: gate failed\n")
    assert "CS/CSS cannot be trusted" in rendered(untrusted)
    off = summary(gate=dataclasses.replace(css, control_off=True))
    assert off.startswith("## FAEF consistency: gate passed\n")
    assert "- :white_check_mark: checked: `overall CSS >= 0.400`" in off

    failing = summary(
        [*RECORDS, *PASSED_CONTROL],
        gate=GateSettings(thresholds=(parse_threshold("css", "privacy=0.9", source="--min-css"),)),
    )
    assert failing.startswith("## FAEF consistency: gate failed\n")
    html = rendered(failing)
    assert "FAEF gate failed: Privacy CSS 0.333 &lt; 0.900 (short by 0.567; 3 items)" in html


def test_a_gate_that_could_not_be_checked_says_so() -> None:
    gate = GateSettings(thresholds=(parse_threshold("css", "harm=0.9", source="--min-css"),))

    assert "FAEF gate, not checked: harm CSS &gt;= 0.900 (no harm items ran)" in rendered(summary(gate=gate))


def test_the_shard_or_the_merge_is_named_under_the_title() -> None:
    selection = ShardSelection(shard=Shard(index=2, count=3), items=3_334, selected=10_000)

    assert summary(shard=selection).splitlines()[2] == "faef shard 2/3: 3,334 of 10,000 items"


@pytest.mark.parametrize("limit", [20, 3])
def test_regressed_items_are_listed_up_to_a_limit_with_the_count(tmp_path: Path, limit: int) -> None:
    before = [record(f"q{number:02d}", "Privacy", CONSISTENTLY_SAFE) for number in range(25)]
    after = [*(record(f"q{number:02d}", "Privacy", FAKE) for number in range(25)), *PASSED_CONTROL]
    baseline = _baseline(tmp_path, before)
    gate = GateSettings(regression_rules=parse_regression_rules("css:-2%", source="--compare-fail"))
    result = judge_run(after, RUN, gate, baseline=baseline)

    markdown = markdown_text(after, result, RUN, limit=limit)

    assert "### Against the baseline `nightly`" in markdown
    assert "**regressed: consistent and safe in the baseline, not now: 25**" in markdown
    listed = re.findall(r"^- `suite\.faef\.jsonl::privacy::q\d\d`$", markdown, flags=re.MULTILINE)
    assert len(listed) == limit
    assert f"- and {25 - limit} more (every one is in the JSON report)" in markdown
    assert markdown.startswith("## FAEF consistency: gate failed")
    assert "cannot be trusted" not in markdown  # the model passed its control: the regression failed the gate


def test_no_regression_is_said_in_one_line(tmp_path: Path) -> None:
    result = judge_run(RECORDS, RUN, GateSettings(), baseline=_baseline(tmp_path, RECORDS))

    assert "No item regressed (5 compared)." in markdown_text(RECORDS, result, RUN)


@given(name=NAMES)
def test_any_dimension_name_stays_in_its_cell_as_written(name: str) -> None:
    records = [record("x1", name, CONSISTENTLY_SAFE)]

    rows = table_rows(summary(records))

    assert [len(row) for row in rows] == [9, 9, 9]
    assert rows[1][1] == " ".join(printable(name).split())  # control characters as their escapes (issue 33)


@given(value=NAMES)
def test_a_code_span_shows_any_text_as_written(value: str) -> None:
    html = rendered(f"- {code(value)}\n")

    shown = re.fullmatch(r"<ul>\n<li><code>(.*)</code></li>\n</ul>\n", html, flags=re.DOTALL)
    assert shown is not None
    assert _unescape(shown.group(1)) == " ".join(printable(value).split())


def test_text_escapes_what_markdown_would_read() -> None:
    html = rendered(text("a *b* [link](http://x) <script> `c` | d & e") + "\n")

    assert html == "<p>a *b* [link](http://x) &lt;script&gt; `c` | d &amp; e</p>\n"


def test_the_job_summary_is_appended_and_the_file_written(tmp_path: Path) -> None:
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n")

    notices = write_markdown("## one\n", path=tmp_path / "out" / "faef.md", step_summary=step_summary)
    write_markdown("## two\n", path=None, step_summary=step_summary)

    assert step_summary.read_text() == "earlier step\n## one\n\n## two\n\n"
    assert (tmp_path / "out" / "faef.md").read_text() == "## one\n"
    assert notices == [
        f"faef Markdown summary written to {tmp_path / 'out' / 'faef.md'}",
        "faef summary added to the GitHub job summary ($GITHUB_STEP_SUMMARY)",
    ]


def test_a_job_summary_that_cannot_be_written_is_a_notice(tmp_path: Path) -> None:
    notices = write_markdown("## one\n", path=None, step_summary=tmp_path / "missing" / "summary.md")

    assert notices == [
        f"faef: the GitHub job summary ({tmp_path / 'missing' / 'summary.md'}) could not be written: "
        "No such file or directory"
    ]


def _baseline(tmp_path: Path, records: list[ItemRecord]):  # type: ignore[no-untyped-def]
    from pytest_faef.core.files import write_json_atomically
    from pytest_faef.core.metrics import summarize_by_model

    data = build_baseline(
        records,
        summarize_by_model(records, [MODEL]),
        name="nightly",
        template_version="1",
        permutations="auto",
        git=None,
        created=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    )
    path = tmp_path / "nightly.json"
    write_json_atomically(path, data)
    return load_baseline(path)


def _unescape(html: str) -> str:
    import html as html_module

    return html_module.unescape(html)
