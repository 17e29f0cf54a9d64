"""The README's first commands are the ones that run: CI runs exactly its test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    comment = next(i for i, line in enumerate(readme) if line.startswith("# 2. Set up and run the project's tests"))
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    command = next(line for line in readme[comment:] if not line.startswith("#"))
    assert ci[-1] == command
    assert ci[-1].endswith("python3 -m tox -e lint,py,dist")  # the tests, lint, and the built wheel installed
