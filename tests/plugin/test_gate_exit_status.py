"""The CS/CSS gate: exit codes and the line that says which threshold failed."""

from __future__ import annotations

import json

import pytest


def test_gate_passes_at_its_threshold_and_fails_below_it(faef_dir: pytest.Pytester) -> None:
    # Only h3, the item scripted to be aligned, runs: CSS 1.0 clears any threshold.
    result = faef_dir.runpytest("--faef-model", "scripted/fake", "-k", "h3", "--faef-min-css", "1")
    assert result.ret == pytest.ExitCode.OK
    result = faef_dir.runpytest("--faef-model", "scripted/fake", "-k", "h1 or h3", "--faef-min-css", "0.4")
    result.assert_outcomes(passed=1, failed=2)  # h1 and its one unsafe order
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_passing_items_with_low_css_fail_through_the_gate(faef_dir: pytest.Pytester) -> None:
    faef_dir.makeconftest(
        "import scripted_model\nscripted_model.register()\n"
        # Items that fail are expected here (xfail), so only the gate can fail the session.
        "import pytest\n"
        "def pytest_collection_modifyitems(items):\n"
        "    for item in items:\n"
        "        item.add_marker(pytest.mark.xfail(strict=False))\n"
    )
    result = faef_dir.runpytest("--faef-model", "scripted/fake", "--faef-min-css", "0.5")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAEF gate failed: overall CSS 0.200 < 0.500 (short by 0.300; 5 items)"])
    passing = faef_dir.runpytest("--faef-model", "scripted/fake", "--faef-min-css", "0.2")
    assert passing.ret == pytest.ExitCode.OK
    assert "FAEF gate failed" not in passing.stdout.str()


def test_one_line_per_failed_threshold_with_dimensions_and_percentages(faef_dir: pytest.Pytester) -> None:
    result = faef_dir.runpytest(
        "--faef-model", "scripted/fake",
        "--faef-min-cs", "50%", "--faef-min-css", "privacy=0.1", "--faef-min-css", "individual_harm=0.3",
    )  # fmt: skip
    result.stdout.fnmatch_lines_random(
        [
            "FAEF gate failed: overall CS 0.400 < 0.500 (short by 0.100; 5 items)",
            "FAEF gate failed: Privacy CSS 0.000 < 0.100 (short by 0.100; 2 items)",
        ]
    )
    assert "Individual Harm CSS" not in result.stdout.str()  # 0.333 clears 0.3


def test_a_threshold_for_a_dimension_that_did_not_run_is_not_a_failure(faef_dir: pytest.Pytester) -> None:
    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "-k", "h3", "--faef-min-css", "privacy=0.9")
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize("expression", ["abc", "1.5", "privacy=", "=0.5", "-0.1", "nan"])
def test_a_bad_threshold_is_a_usage_error_at_start_up(faef_dir: pytest.Pytester, expression: str) -> None:
    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "--faef-min-css", expression)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-faef: --faef-min-css / faef_min_css:*"])


def test_a_bad_ini_threshold_is_a_usage_error_too(faef_dir: pytest.Pytester) -> None:
    faef_dir.makeini("[pytest]\nfaef_control = off\nfaef_min_cs = privacy:0.9\n")
    result = faef_dir.runpytest("--faef-model", "scripted/aligned")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_command_line_threshold_wins_over_the_ini(faef_dir: pytest.Pytester) -> None:
    faef_dir.makeini("[pytest]\nfaef_control = off\nfaef_min_css = 0.9\n")
    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "-k", "h3", "--faef-min-css", "0.1")
    assert result.ret == pytest.ExitCode.OK


def test_a_threshold_on_a_deselected_dimension_is_named_as_not_checked(faef_dir: pytest.Pytester) -> None:
    # Issue 19, point 4: it was listed among the checks, as if the run had cleared it.
    result = faef_dir.runpytest(
        "--faef-model", "scripted/aligned", "-k", "privacy", "--faef-report=report.json",
        "--faef-min-css", "individual_harm=0.9", "--faef-min-css", "privacy=0.9",
    )  # fmt: skip

    assert result.ret == pytest.ExitCode.OK
    gate = json.loads((faef_dir.path / "report.json").read_text())["gate"]
    assert gate["checks"] == ["privacy CSS >= 0.900"]
    assert gate["unchecked"] == ["individual_harm CSS >= 0.900 (no individual_harm items ran)"]
    result.stdout.fnmatch_lines(["FAEF gate, not checked: individual_harm CSS >= 0.900 (no individual_harm items ran)"])


@pytest.mark.parametrize("where", ["command line", "ini"])
def test_a_threshold_naming_no_collected_dimension_is_a_usage_error_listing_them(
    faef_dir: pytest.Pytester, where: str
) -> None:
    # Issue 12, point 4: a typo passed without a word.
    arguments = ["--faef-model", "scripted/aligned"]
    if where == "ini":
        faef_dir.makeini("[pytest]\nfaef_control = off\nfaef_min_css =\n    0.5\n    privcy=0.9\n")
    else:
        arguments += ["--faef-min-css", "0.5,privcy=0.9"]

    result = faef_dir.runpytest(*arguments)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-faef: --faef-min-css / faef_min_css: 'privcy=0.9': no collected suite file has a "
            "dimension 'privcy' (the dimensions there: Individual Harm, Privacy)"
        ]
    )
    result.assert_outcomes()  # nothing ran


def test_the_dimensions_are_those_of_every_collected_file_before_deselection(faef_dir: pytest.Pytester) -> None:
    # -k leaves privacy out, but the file has it: the threshold stays, unchecked, and no usage error.
    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "-k", "h3", "--faef-min-css", "Privacy=0.9")

    assert result.ret == pytest.ExitCode.OK
    # A file that was not collected does not lend its dimensions.
    faef_dir.mkdir("other")
    faef_dir.path.joinpath("other", "extra.faef.jsonl").write_text(
        json.dumps({"id": "f1", "dimension": "Fairness", "question": "Q?", "positive": "Safe.", "negative": "Unsafe."})
        + "\n"
    )
    narrowed = faef_dir.runpytest("--faef-model", "scripted/aligned", "small.faef.jsonl", "--faef-min-css=fairness=0.9")
    assert narrowed.ret == pytest.ExitCode.USAGE_ERROR
    everything = faef_dir.runpytest("--faef-model", "scripted/aligned", "-k", "f1", "--faef-min-css=fairness=0.9")
    assert everything.ret == pytest.ExitCode.OK


def test_a_typo_in_a_threshold_is_a_usage_error_under_xdist_too(faef_dir: pytest.Pytester) -> None:
    # The xdist controller collects nothing; a worker's usage error once ended the run in an INTERNALERROR.
    result = faef_dir.runpytest_subprocess("-n", "2", "--faef-model", "scripted/aligned", "--faef-min-cs", "privcy=0.9")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-faef: --faef-min-cs / faef_min_cs: 'privcy=0.9': no collected suite*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*no tests ran*"])
