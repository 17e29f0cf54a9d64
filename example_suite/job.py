"""The main job (``python3 -m tox -e example``): run the example suite, pass when it ran, fail when it is broken.

A 135M model fails many items, and a failing item makes pytest exit 1: the summary is the point here, so exit 1
passes. A broken suite does not: an invalid record or a collection error fails the job (exit 1, with a line
saying which), as does any other status of pytest's (a usage error, no tests ran, an interrupt). Your own CI
should gate on pytest's exit status 0; docs/ci.md says how to tell failing items from a broken suite there.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from pytest_faef.plugin.items import INVALID_RECORD_PROPERTY


class BrokenSuite:
    """Counts what makes a suite broken rather than failing: invalid records and files that did not collect."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.problems.append(f"{report.nodeid or 'collection'}: did not collect")

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "setup" and report.failed:
            self.problems += [str(value) for name, value in report.user_properties if name == INVALID_RECORD_PROPERTY]


def main(args: list[str]) -> int:
    broken = BrokenSuite()
    status = pytest.main(args, plugins=[broken])
    if broken.problems:
        print(f"example job failed: the suite is broken ({len(broken.problems)}):", file=sys.stderr)
        for problem in broken.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0 if status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) else int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
