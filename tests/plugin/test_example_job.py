"""The main job, ``python3 -m tox -e example``, run as tox runs it: its command is read from tox.ini.

The scripted model stands in for the embedded one (named in the copy of example_suite/pytest.ini),
so the job's plumbing is checked in seconds: where pytest finds its configuration, which exit
statuses pass, and that a second run replays every reply (issue 12).
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from suites import CONFTEST, TESTS_DIR

from pytest_faef.core.control import builtin_items

ROOT = TESTS_DIR.parent
EMBEDDED = "faef_model = faef-local/smollm2"
EXAMPLE_ITEMS = 59  # the README's example: 59 items


@dataclasses.dataclass(frozen=True)
class JobRun:
    status: int  # as tox sees it: 0 passes the job
    output: str


def example_job(project: Path, *posargs: str) -> JobRun:
    """Run tox.ini's example command in ``project`` as tox would (``{toxworkdir}`` is ``project/.tox``)."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tox.ini")
    lines = [line for line in config["testenv:example"]["commands"].splitlines() if line.strip()]
    assert len(lines) == 1, lines
    words = shlex.split(lines[0].replace("{toxworkdir}", str(project / ".tox")).replace("{toxinidir}", str(project)))
    ignore_status = words[0] == "-"  # tox's prefix for "ignore the exit status"
    words = words[1:] if ignore_status else words
    command = [sys.executable if words[0] in ("python", "pytest") else words[0], *words[1:]]
    if words[0] == "pytest":
        command[1:1] = ["-m", "pytest"]
    command = [arg for word in command for arg in (posargs if word == "{posargs}" else (word,))]
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR)}
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)
    return JobRun(status=0 if ignore_status else done.returncode, output=done.stdout + done.stderr)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's example job: example_suite/ under a root configured for pytest."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # its [tool.pytest.ini_options] is the rootdir trap
    suite = tmp_path / "example_suite"
    shutil.copytree(ROOT / "example_suite", suite, ignore=shutil.ignore_patterns(".faef", ".pytest_cache"))
    ini = (suite / "pytest.ini").read_text()
    assert EMBEDDED in ini
    (suite / "pytest.ini").write_text(ini.replace(EMBEDDED, "faef_model = scripted/fake"))
    (suite / "conftest.py").write_text(CONFTEST)
    return tmp_path


def report(project: Path) -> dict[str, Any]:
    return json.loads((project / ".tox" / "example-report.json").read_text())  # type: ignore[no-any-return]


def requests(data: dict[str, Any]) -> tuple[int, int]:
    """(requests, of which replayed from the store) over every item of a report."""
    usage = [counts for item in data["items"] for counts in item["outcome"]["usage"].values()]
    return int(sum(counts["requests"] for counts in usage)), int(sum(counts["cached"] for counts in usage))


def kinds(data: dict[str, Any]) -> tuple[int, int]:
    """(safety items, capability items) of a report."""
    capability = sum(item["kind"] == "capability" for item in data["items"])
    return len(data["items"]) - capability, capability


def configuration(project: Path) -> str:
    """The header lines of a run configured by example_suite/pytest.ini."""
    return f"rootdir: {project / 'example_suite'}\nconfigfile: pytest.ini\n"


def test_a_second_run_replays_every_reply_and_reports_every_item(project: Path) -> None:
    first = example_job(project)
    assert first.status == 0, first.output
    assert configuration(project) in first.output
    sent, replayed = requests(report(project))
    assert kinds(report(project)) == (EXAMPLE_ITEMS, len(builtin_items()))  # the suite, and the built-in control
    assert sent > 0 and replayed == 0

    second = example_job(project)
    assert second.status == 0, second.output
    # Once the report files exist, `--faef-report PATH` made pytest take PATH for a test path, find
    # the root's configuration instead of example_suite/pytest.ini and run nothing.
    assert configuration(project) in second.output
    assert kinds(report(project)) == (EXAMPLE_ITEMS, len(builtin_items()))
    assert requests(report(project)) == (sent, sent)  # every verdict's reply from the store
    assert f"{sent} replies (0 fresh, {sent} replayed from the store, recorded " in second.output
    # The only requests: the drift check's sample, asked again to see that the model did not change.
    assert "faef drift check: scripted/fake: unchanged (0 of 16 differ; " in second.output
    assert (project / ".tox" / "example-report.html").stat().st_size > 0


def test_the_job_fails_on_a_broken_suite_though_failing_items_pass_it(project: Path) -> None:
    suite = project / "example_suite" / "safety.faef.jsonl"
    suite.write_text(
        suite.read_text() + '{"id": "broken", "dimension": "Privacy", "question": "q?", "positive": "a"}\n'
    )
    (project / "example_suite" / "unreadable.faef.yaml").write_text("- id: [unclosed\n")

    run = example_job(project, "-k", "priv-01 or broken or invalid")

    assert run.status == 1, run.output
    assert "example job failed: the suite is broken (2):" in run.output
    assert "field 'negative': missing" in run.output and "unreadable.faef.yaml" in run.output
    # The summary says it whole too, and pytest's short summary still names each error.
    assert "faef: 2 invalid suite records, not run (fix them; faef validate):" in run.output


@pytest.mark.parametrize(
    "posargs",
    [
        pytest.param(["--faef-min-css=bogus"], id="usage-error"),
        pytest.param(["-k", "no_such_item"], id="no-tests-ran"),
    ],
)
def test_the_job_fails_unless_pytest_ran_its_items(project: Path, posargs: list[str]) -> None:
    reports = [project / ".tox" / name for name in ("example-report.json", "example-report.html")]
    for path in reports:
        path.parent.mkdir(exist_ok=True)
        path.write_text("the last good run's report\n")
    run = example_job(project, *posargs)
    assert run.status != 0, run.output
    assert [path.read_text() for path in reports] == ["the last good run's report\n"] * 2


def test_the_readme_figures_are_written_from_a_run_and_checked_against_the_next(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """benchmarks/readme_figures.py (issue 31): every figure it knows is a phrase of the real README; it calls the
    README stale against another run, writes that run's figures and summary block into it, and then agrees."""
    run = example_job(project)
    assert run.status == 0, run.output
    scratch = tmp_path_factory.mktemp("readme")
    readme, output = scratch / "README.md", scratch / "output.txt"
    shutil.copy(ROOT / "README.md", readme)
    output.write_text(run.output)
    script = [
        sys.executable,
        str(ROOT / "benchmarks" / "readme_figures.py"),
        str(project / ".tox" / "example-report.json"),
    ]
    check = [*script, f"--output={output}", f"--readme={readme}"]

    stale = subprocess.run(check, capture_output=True, text=True, check=False)
    assert stale.returncode == 1, stale.stdout
    assert "MISSING" not in stale.stdout and "STALE the summary block" in stale.stdout

    written = subprocess.run([*check, "--write"], capture_output=True, text=True, check=False)
    assert written.returncode == 0, written.stdout
    again = subprocess.run(check, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stdout
    text = readme.read_text()
    data = report(project)
    safety = [item for item in data["items"] if item["kind"] == "safety"]
    passed = sum(item["verdicts"]["consistent_safe"] for item in safety)
    assert f"faef: {len(safety)} items: {passed} passed, {len(safety) - passed} failed" in text
    assert "FAEF consistency: scripted/fake" in text and str(project) not in text
    # Only the figures and the block changed: the README's prose around them is the same.
    assert len(text.splitlines()) - len((ROOT / "README.md").read_text().splitlines()) < 10
