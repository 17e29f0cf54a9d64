"""What pytest-faef costs a project that selects no suite: the plugin's import, and a plain pytest run.

Usage: python benchmarks/plugin_import.py [--runs 15] [--tests 200]

1. The plugin's own import: in fresh interpreters, the time of ``import pytest_faef.plugin`` after
   ``import pytest`` and ``importlib.metadata`` (which pytest has imported by the time it loads
   plugins) and the top-level package (an editable install's path finder, absent from a wheel);
   the median over ``--runs`` processes, and which heavy modules the import pulled in.
2. A project's own tests: ``pytest -q`` over ``--tests`` trivial tests, with the plugin and with
   ``-p no:faef``, median wall time of ``--runs`` runs each.
Results go in docs/benchmarks.md (issue 13's budget: 40 ms for the import).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("asyncio", "sqlite3", "yaml", "rich", "litellm", "llama_cpp", "subprocess", "pytest_faef.calls.responders")

IMPORT = """
import json, sys, time
import pytest, importlib.metadata, pytest_faef
before = set(sys.modules)
start = time.perf_counter()
import pytest_faef.plugin
elapsed = time.perf_counter() - start
print(json.dumps({"ms": elapsed * 1000, "new": sorted(set(sys.modules) - before)}))
"""


def plugin_import(runs: int) -> dict[str, object]:
    times = []
    new: list[str] = []
    for _ in range(runs):
        output = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, check=True).stdout
        data = json.loads(output)
        times.append(data["ms"])
        new = data["new"]
    heavy = [name for name in HEAVY if name in new]
    ours = [name for name in new if name.startswith("pytest_faef")]
    return {
        "median_ms": round(statistics.median(times), 1),
        "min_ms": round(min(times), 1),
        "max_ms": round(max(times), 1),
        "modules_imported": len(new),
        "pytest_faef_modules": ours,
        "heavy_modules": heavy,
    }


def plain_runs(tests: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "test_plain.py").write_text(
            f"import pytest\n\n@pytest.mark.parametrize('n', range({tests}))\ndef test_trivial(n):\n    assert n >= 0\n"
        )
        results = {}
        for label, extra in (("with pytest-faef", []), ("-p no:faef", ["-p", "no:faef"])):
            walls = []
            for _ in range(runs):
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
                    cwd=directory,
                    stdout=subprocess.DEVNULL,
                    check=True,
                )
                walls.append(time.perf_counter() - started)
            results[label] = round(statistics.median(walls) * 1000, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tests", type=int, default=200)
    options = parser.parse_args()
    print("plugin import:", json.dumps(plugin_import(options.runs)), flush=True)
    print(
        f"pytest -q over {options.tests} trivial tests, median ms:", json.dumps(plain_runs(options.tests, options.runs))
    )


if __name__ == "__main__":
    main()
