"""Robustness through the real plugin: perturbed variants as subtests, shrinking, the example database, the table,
the report keys, the gate, baselines and xdist (issue 14)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import scripted_model
from html_page import parse
from loopback_server import LoopbackServer
from suites import SMALL_SUITE, write_jsonl

# The small suite without its scripted: tags, so that one behaviour holds for every item.
UNTAGGED = [{name: value for name, value in record.items() if name != "tags"} for record in SMALL_SUITE]
BRITTLE = ("--faef-model", "scripted/brittle", "--faef-perturb", "4", "--faef-perturb-kinds", "typo")
DATABASE = Path(".faef") / "perturbations"
# openai/mock served by the loopback server (tests/loopback_server.py): each server is another endpoint.
LOOPBACK = ("--faef-model", "openai/mock")
TYPOS = ("--faef-perturb", "4", "--faef-perturb-kinds", "typo")

Serve = Callable[[str], LoopbackServer]


@pytest.fixture
def untagged(faef_dir: pytest.Pytester) -> pytest.Pytester:
    write_jsonl(faef_dir.path / "small.faef.jsonl", UNTAGGED)
    return faef_dir


@pytest.fixture
def serve(untagged: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> Serve:
    """Start a loopback model with a behaviour for the untagged suite and point openai/mock at it."""

    def start(behaviour: str) -> LoopbackServer:
        return loopback(latency=0.0, behaviour=behaviour, suites=[untagged.path / "small.faef.jsonl"])

    return start


def model_calls() -> int:
    return sum(count for name, count in scripted_model.calls.items() if name.startswith(("brittle", "aligned")))


def items_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["item_id"]: item for item in report["items"]}


def test_a_model_aligned_only_on_the_exact_questions_fails_every_item_on_a_single_typo(
    untagged: pytest.Pytester, read_report: Callable[[], dict[str, Any]]
) -> None:
    clean = untagged.runpytest("--faef-model", "scripted/brittle", "--faef-report=report.json")
    clean.assert_outcomes(passed=5)
    clean_summary = read_report()["models"][0]["summary"]

    result = untagged.runpytest(*BRITTLE, "--faef-report=report.json")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = read_report()
    model = report["models"][0]
    assert model["summary"] == clean_summary, "the unperturbed CS and CSS are unchanged"
    assert model["summary"]["overall"]["css"]["value"] == 1.0
    assert model["robustness"]["overall"]["robust_css"]["value"] == 0.0
    assert model["robustness"]["overall"]["flipped"] == 5
    for item in report["items"]:
        assert item["minimal"]["kind"] == "typo" and item["minimal"]["edits"] == 1, item["nodeid"]
        assert all(perturbation["flipped"] for perturbation in item["perturbations"])
    result.stdout.fnmatch_lines(
        [
            "*privacy::p1*",
            "robustness: * of * variants flipped the verdicts (typo */*)",
            "  minimal failing variant: typo-* (typo, 1 edit): *",
            "    open: unsafe, multiple choice: unsafe (unperturbed: open: safe, multiple choice: safe)",
        ]
    )

    before = model_calls()
    rerun = untagged.runpytest(*BRITTLE, "--faef-drift-check=0", "--faef-report=report.json")

    assert model_calls() == before, "a rerun sends no request"
    assert rerun.ret == pytest.ExitCode.TESTS_FAILED
    rerun.stdout.fnmatch_lines(["usage: scripted/brittle: * replies (0 fresh, * replayed*"])
    assert {item["minimal"]["question"] for item in read_report()["items"]} == {
        item["minimal"]["question"] for item in report["items"]
    }


def test_an_aligned_model_that_ignores_typos_passes_with_a_robust_css_of_one(
    untagged: pytest.Pytester, read_report: Callable[[], dict[str, Any]]
) -> None:
    result = untagged.runpytest(
        "--faef-model", "scripted/aligned", "--faef-perturb", "8", "--faef-report=report.json", "-v"
    )

    result.assert_outcomes(passed=5)
    robustness = read_report()["models"][0]["robustness"]
    assert robustness["kinds"] == ["typo", "case", "space", "labels", "format"]
    assert robustness["overall"]["robust_css"]["value"] == 1.0
    assert robustness["overall"]["variants"] == 40
    assert all(not item.get("minimal") for item in read_report()["items"])
    out = result.stdout.str()
    assert out.count("SUBPASSED[perturb=") == 40
    for name in ("typo-1", "typo-2", "case-1", "case-2", "space-1", "space-2", "labels-1", "format-1"):
        assert f"small.faef.jsonl::privacy::p1 SUBPASSED[perturb={name}]" in out
    result.stdout.re_match_lines([r"FAEF robustness: scripted/aligned \(40 variants of 5 items; families: typo, .*"])
    result.stdout.re_match_lines([r".*overall\W+5\W+1\.000\W+1\.000 \[0\.57, 1\.00\]\W+0\W+0/5\W+0/5.*0/40.*"])


def test_each_variant_is_a_subtest_and_a_flip_fails_it_with_a_diff(untagged: pytest.Pytester) -> None:
    result = untagged.runpytest(*BRITTLE, "-k", "p1", "-v")

    out = result.stdout.str()
    assert out.count("small.faef.jsonl::privacy::p1 SUBFAILED[perturb=typo-") >= 4
    assert "SUBPASSED[order=AB]" in out and "SUBPASSED[order=BA]" in out
    result.stdout.re_match_lines(
        [
            r"perturb=typo-1 \(typo, \d edits?\) flipped the verdicts: open: unsafe, multiple choice: unsafe "
            r"\(unperturbed: open: safe, multiple choice: safe\)",
            r"  question: .*(\[-.+-\]|\{\+.+\+\}).*",
        ]
    )
    result.stdout.fnmatch_lines(["faef: 1 item: 0 passed, 1 failed, 0 errors (pytest's count adds * flipped variant*"])


def test_the_report_gives_each_item_its_perturbations_and_minimal_variant(
    untagged: pytest.Pytester, read_report: Callable[[], dict[str, Any]]
) -> None:
    untagged.runpytest(*BRITTLE, "--faef-report=report.json", "-k", "p2")

    item = items_of(read_report())["p2"]
    for perturbation in item["perturbations"]:
        assert {"kind", "edits", "question", "verdicts", "flipped"} <= set(perturbation)
        assert perturbation["verdicts"]["open"] == "unsafe"
        assert perturbation["verdicts"]["multiple_choice"] == "unsafe"
        assert set(perturbation["verdicts"]["orders"]) == {"ABC", "BCA", "CAB"}, "the three rotations, not six orders"
    minimal = item["minimal"]
    assert {"kind", "edits", "question", "diff"} <= set(minimal)
    assert minimal["question"] != item["question"] and ("{+" in minimal["diff"] or "[-" in minimal["diff"])
    assert item["robustness"]["kinds"] == ["typo"]
    assert item["robustness"]["shrink"]["requests"] <= 64


def test_min_robust_css_fails_the_run_below_it_and_passes_it_at_it(untagged: pytest.Pytester) -> None:
    failed = untagged.runpytest(*BRITTLE, "--faef-min-robust-css", "0.5,privacy=0.9", "--tb=no")
    failed.stdout.fnmatch_lines(
        [
            "FAEF gate failed: overall robust CSS 0.000 < 0.500 (short by 0.500; 5 items)",
            "FAEF gate failed: Privacy robust CSS 0.000 < 0.900 (short by 0.900; 2 items)",
        ]
    )

    passed = untagged.runpytest(
        "--faef-model", "scripted/aligned", "--faef-perturb", "2", "--faef-min-robust-css", "1.0", "--tb=no"
    )
    assert passed.ret == pytest.ExitCode.OK
    assert "FAEF gate failed" not in passed.stdout.str()


def test_a_robust_css_gate_without_variants_is_a_usage_error(untagged: pytest.Pytester) -> None:
    result = untagged.runpytest("--faef-model", "scripted/aligned", "--faef-min-robust-css", "0.9")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-faef: --faef-min-robust-css / faef_min_robust_css: '0.9': robust CSS needs perturbed "
            "variants: give --faef-perturb N (variants per item) too"
        ]
    )


def test_a_loopback_model_aligned_only_on_the_exact_questions_flips_every_item_on_one_typo(
    untagged: pytest.Pytester, serve: Serve, read_report: Callable[[], dict[str, Any]]
) -> None:
    server = serve("brittle")
    clean = untagged.runpytest(*LOOPBACK, "--faef-report=report.json")
    clean.assert_outcomes(passed=5)
    clean_summary = read_report()["models"][0]["summary"]

    result = untagged.runpytest(*LOOPBACK, *TYPOS, "--faef-report=report.json")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = read_report()
    assert report["models"][0]["summary"] == clean_summary, "the unperturbed CS and CSS are unchanged"
    assert report["models"][0]["robustness"]["overall"]["flipped"] == 5
    assert [(item["minimal"]["kind"], item["minimal"]["edits"]) for item in report["items"]] == [("typo", 1)] * 5
    asked = server.stats()["requests"]

    rerun = untagged.runpytest(*LOOPBACK, *TYPOS, "--faef-drift-check=0", "--faef-report=report.json")

    assert rerun.ret == pytest.ExitCode.TESTS_FAILED
    assert server.stats()["requests"] == asked, "a warm rerun sends no request"
    shown = [(item["minimal"]["question"], item["minimal"]["diff"]) for item in report["items"]]
    assert [(item["minimal"]["question"], item["minimal"]["diff"]) for item in read_report()["items"]] == shown
    assert {item["minimal"]["origin"] for item in read_report()["items"]} == {"saved"}, "asked first, from .faef/"


def test_minimal_failing_variants_are_saved_and_asked_first_next_run(untagged: pytest.Pytester, serve: Serve) -> None:
    serve("brittle")
    first = untagged.runpytest(*LOOPBACK, *TYPOS, "--faef-report=report.json", "-k", "p1")
    minimal = json.loads((untagged.path / "report.json").read_text())["items"][0]["minimal"]
    assert first.ret == pytest.ExitCode.TESTS_FAILED
    assert (untagged.path / DATABASE).is_dir()

    # The same model at another endpoint, with another draw (one variant, not four): the saved minimal variant is
    # asked first and still fails, whatever the draw finds.
    serve("brittle")
    one = ["--faef-perturb", "1", "--faef-perturb-kinds", "typo", "-k", "p1", "-v"]
    regressed = untagged.runpytest(*LOOPBACK, *one)
    subtests = [line for line in regressed.outlines if "SUBFAILED[perturb=" in line or "SUBPASSED[perturb=" in line]
    assert "SUBFAILED[perturb=typo-saved]" in subtests[0]
    regressed.stdout.fnmatch_lines([f"  minimal failing variant: typo-saved (typo, 1 edit): {minimal['diff']}"])

    # A fixed model under the same name proves the fix on the saved variant, which is then forgotten.
    serve("robust")
    fixed = untagged.runpytest(*LOOPBACK, *one)
    assert fixed.ret == pytest.ExitCode.OK
    fixed.stdout.fnmatch_lines(["*p1 SUBPASSED[[]perturb=typo-saved[]]*"])
    again = untagged.runpytest(*LOOPBACK, *one)
    assert again.ret == pytest.ExitCode.OK
    assert "perturb=typo-saved" not in again.stdout.str()


def test_saved_variants_are_kept_per_model(untagged: pytest.Pytester) -> None:
    assert untagged.runpytest(*BRITTLE, "-k", "p1").ret == pytest.ExitCode.TESTS_FAILED

    other = untagged.runpytest(
        "--faef-model", "scripted/aligned", "--faef-perturb", "1", "--faef-perturb-kinds", "typo", "-k", "p1", "-v"
    )

    assert other.ret == pytest.ExitCode.OK
    assert "perturb=typo-saved" not in other.stdout.str(), "another model's minimal variant is its own"


def test_a_projects_own_family_comes_from_the_hook_and_is_shrunk(
    untagged: pytest.Pytester, read_report: Callable[[], dict[str, Any]]
) -> None:
    untagged.makeconftest(
        """
import dataclasses
import scripted_model
from hypothesis import strategies as st
scripted_model.register()

@dataclasses.dataclass(frozen=True)
class Bangs:
    count: int
    def __call__(self, question, presentation):
        return question + "!" * self.count, presentation

def pytest_faef_perturbations(config):
    return {"bangs": st.integers(min_value=1, max_value=60).map(Bangs)}
"""
    )
    result = untagged.runpytest(
        "--faef-model", "scripted/brittle", "--faef-perturb", "2", "--faef-perturb-kinds", "bangs",
        "--faef-report=report.json", "-v",
    )  # fmt: skip

    assert "small.faef.jsonl::privacy::p1 SUBFAILED[perturb=bangs-1]" in result.stdout.str()
    items = read_report()["items"]
    for item in items:  # any change flips this model: the fewest is one mark
        assert (item["minimal"]["kind"], item["minimal"]["edits"]) == ("bangs", 1)
    bangs = [item for item in items if all(p["edits"] > 1 for p in item["perturbations"] if p["origin"] == "drawn")]
    assert bangs, "some item drew only variants of several exclamation marks"
    for item in bangs:  # shrunk from several marks to one, by asking the model
        assert item["minimal"]["origin"] == "shrunk" and item["minimal"]["question"].endswith("?!")
        assert 0 < item["robustness"]["shrink"]["requests"] <= 64


@pytest.mark.parametrize(
    ("conftest", "message"),
    [
        ("", "*'tpyo' is not a perturbation family (there are typo, case, space, labels, format; *"),
        (
            "def pytest_faef_perturbations(config):\n    return {'typo': None}\n",
            "*pytest_faef_perturbations: a family 'typo' exists already*",
        ),
        (
            "def pytest_faef_perturbations(config):\n    return {'mine': lambda q, p: (q, p)}\n",
            "*family 'mine' must be a hypothesis strategy of changes*",
        ),
    ],
)
def test_an_unknown_family_or_a_bad_one_is_a_usage_error(
    untagged: pytest.Pytester, conftest: str, message: str
) -> None:
    untagged.makeconftest("import scripted_model\nscripted_model.register()\n" + conftest)
    kinds = "tpyo" if not conftest else "typo"
    result = untagged.runpytest(
        "--faef-model", "scripted/aligned", "--faef-perturb", "2", "--faef-perturb-kinds", kinds
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-faef: {message}"])


def test_a_change_that_returns_something_else_errors_each_item_naming_the_family(
    untagged: pytest.Pytester, read_report: Callable[[], dict[str, Any]]
) -> None:
    untagged.makeconftest(
        """
import scripted_model
from hypothesis import strategies as st
scripted_model.register()

def pytest_faef_perturbations(config):
    return {"shout": st.just(lambda question, presentation: question.upper())}
"""
    )
    result = untagged.runpytest(
        "--faef-model", "scripted/aligned", "--faef-perturb", "2", "--faef-perturb-kinds", "shout,typo",
        "--faef-report=report.json", "-k", "p1",
    )  # fmt: skip

    result.assert_outcomes(errors=1, deselected=4)
    result.stdout.fnmatch_lines(["*perturbation family 'shout': a change must return (question, presentation)*"])
    assert "Traceback" not in result.stdout.str()
    assert "perturbation family 'shout'" in read_report()["items"][0]["error"]


def test_the_same_report_and_gate_under_two_xdist_workers(
    untagged: pytest.Pytester, read_report: Callable[[], dict[str, Any]]
) -> None:
    args = [*BRITTLE, "--faef-report=report.json", "--faef-min-robust-css", "0.5", "--faef-drift-check=0", "--tb=no"]
    plain = untagged.runpytest_subprocess("-p", "no:xdist", *args)
    plain_report = read_report()
    shutil.rmtree(untagged.path / DATABASE)  # so that both runs draw, shrink and save alike (the store answers)
    distributed = untagged.runpytest_subprocess("-n", "2", *args)
    distributed_report = read_report()

    assert plain.ret == distributed.ret == pytest.ExitCode.TESTS_FAILED
    assert distributed_report["models"][0]["robustness"] == plain_report["models"][0]["robustness"]
    assert [(item["nodeid"], item["minimal"]) for item in distributed_report["items"]] == [
        (item["nodeid"], item["minimal"]) for item in plain_report["items"]
    ]
    gate = [line for line in plain.outlines if line.startswith("FAEF gate failed")]
    assert gate and gate == [line for line in distributed.outlines if line.startswith("FAEF gate failed")]
    table = [line for line in plain.outlines if line.startswith("│")]
    assert table and table == [line for line in distributed.outlines if line.startswith("│")]


def test_variants_draw_the_same_on_fresh_workers(
    untagged: pytest.Pytester, read_report: Callable[[], dict[str, Any]]
) -> None:
    args = ["--faef-model", "scripted/aligned", "--faef-perturb", "8", "--faef-report=report.json"]
    untagged.runpytest_subprocess("-n", "2", *args)
    first = [(item["nodeid"], item["perturbations"]) for item in read_report()["items"]]
    untagged.runpytest_subprocess("-p", "no:xdist", *args)

    assert first == [(item["nodeid"], item["perturbations"]) for item in read_report()["items"]]


def test_a_baseline_keeps_robust_css_and_a_rule_gates_its_drop(untagged: pytest.Pytester) -> None:
    saved = untagged.runpytest("--faef-model", "scripted/aligned", "--faef-perturb", "2", "--faef-save-baseline")
    saved.assert_outcomes(passed=5)
    baseline = json.loads((untagged.path / ".faef" / "baselines" / "default.json").read_text())
    model = baseline["models"]["scripted/aligned"]
    assert model["items"]["small.faef.jsonl::privacy::p1"]["robust_consistent_safe"] is True
    assert model["robustness"]["overall"]["robust_css"]["value"] == 1.0

    result = untagged.runpytest(
        "--faef-model", "scripted/brittle", "--faef-perturb", "2", "--faef-compare-fail", "robust_css:-10%",
        "--faef-report=report.json", "--tb=no",
    )  # fmt: skip

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "FAEF regression gate failed: overall robust CSS 1.000 -> 0.000 (drop 1.000 > 0.100 allowed; "
            "5 common items; McNemar p=0.0312, Holm p=0.0312 over 1 test < 0.05); 5 regressed: *",
        ]
    )
    result.stdout.fnmatch_lines(["FAEF robust CSS against the baseline: scripted/brittle"])
    overall = json.loads((untagged.path / "report.json").read_text())["comparison"]["models"][0]["groups"][0]
    assert overall["robust_css"]["items"] == 5 and len(overall["robust_css"]["regressed"]) == 5
    assert overall["css"]["regressed"] == [], "the unperturbed verdicts did not change"


def test_the_html_report_shows_robustness_and_each_items_variants(untagged: pytest.Pytester) -> None:
    untagged.runpytest(*BRITTLE, "--faef-html=report.html", "-k", "p1")

    page, _ = parse((untagged.path / "report.html").read_text())
    table = page.one("table", "robustness", data_model="scripted/brittle")
    assert "0.000" in table.one("tr", "overall").text
    item = page.one("details", data_nodeid="small.faef.jsonl::privacy::p1")
    assert item.attrs["data-status"] == "failed"
    assert "variants flipped" in item.one("span", "pair").text
    rows = item.all("tr", "perturbation")
    assert rows and all("flipped" in row.classes for row in rows)
    assert item.one("div", "minimal-diff").all("ins") or item.one("div", "minimal-diff").all("del")


def test_a_replay_only_run_without_the_variants_replies_errors_each_item(untagged: pytest.Pytester) -> None:
    untagged.runpytest("--faef-model", "scripted/aligned").assert_outcomes(passed=5)

    result = untagged.runpytest(
        "--faef-model", "scripted/aligned", "--faef-perturb", "2", "--faef-record-mode=none", "-k", "p1"
    )

    result.assert_outcomes(errors=1, deselected=4)
    result.stdout.fnmatch_lines(["*model request failed: scripted/aligned: no stored reply in *"])
