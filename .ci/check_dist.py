"""CI: build the sdist and the wheel, install the wheel with ``[local]`` in a fresh venv, and check what a user gets.

Usage: ``python .ci/check_dist.py WORKDIR`` (``tox -e dist`` runs it). The checks: the sdist holds the
docs, the example suite and the tests; the wheel holds every module of the package; in the fresh
venv pytest lists the plugin and its options, ``faef`` runs from PATH, and the embedded local model
answers one item of the example suite. Exits non-zero at the first check that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(command: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command, echoing it; its output, or exit with it when it fails."""
    print("$", " ".join(map(str, command)), flush=True)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed with status {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"check failed: {message}")
    print("ok:", message, flush=True)


def project_files() -> list[str]:
    """The files of the project as it stands (tracked, or new and not ignored), relative to the repository."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    return sorted({line for line in listed.splitlines() if line and (ROOT / line).is_file()})


def main() -> None:
    work = Path(sys.argv[1]).resolve()
    shutil.rmtree(work, ignore_errors=True)
    source, dist, scratch = work / "source", work / "dist", work / "scratch"
    scratch.mkdir(parents=True)
    # A clean copy: setuptools would also pack whatever a stale *.egg-info/SOURCES.txt of the checkout lists.
    files = project_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    # The wheel is built from the unpacked sdist, so a file missing from the sdist breaks the wheel too.
    run([sys.executable, "-m", "build", "--outdir", dist, source], cwd=work)
    (sdist,) = dist.glob("pytest_faef-*.tar.gz")
    (wheel,) = dist.glob("pytest_faef-*.whl")

    with tarfile.open(sdist) as archive:
        prefix = archive.getnames()[0].split("/")[0] + "/"
        in_sdist = {name.removeprefix(prefix) for name in archive.getnames()}
    for folder in ("pytest_faef", "docs", "example_suite", "tests"):
        missing = {name for name in files if name.startswith(f"{folder}/")} - in_sdist
        check(not missing, f"the sdist holds every tracked file under {folder}/ (missing: {sorted(missing)})")
    check({"README.md", "pyproject.toml", "tox.ini"} <= in_sdist, "the sdist holds README.md, pyproject.toml, tox.ini")

    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
        entry_points = next(archive.read(name) for name in in_wheel if name.endswith(".dist-info/entry_points.txt"))
    missing = {name for name in files if name.startswith("pytest_faef/") and name.endswith(".py")} - in_wheel
    check(not missing, f"the wheel holds every module of the package (missing: {sorted(missing)})")
    data = {name for name in files if name.startswith("pytest_faef/") and not name.endswith(".py")} - in_wheel
    check(not data, f"the wheel holds the package's data, the built-in control among it (missing: {sorted(data)})")
    check(b"[pytest11]\nfaef = pytest_faef.plugin" in entry_points, "the wheel registers the pytest plugin")

    environment = work / "venv"
    venv.create(environment, with_pip=True)
    bin_dir = environment / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", f"{wheel}[local]"], cwd=scratch)
    # From a directory outside the repository, with the venv first on PATH, as a user's shell has it.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    plugins = run(["pytest", "--version", "--version"], cwd=scratch, env=env)
    check("pytest-faef-" in plugins, "pytest --version --version lists the plugin")
    check("--faef-model" in run(["pytest", "--help"], cwd=scratch, env=env), "pytest --help shows --faef-model")
    check("validate" in run(["faef", "--help"], cwd=scratch, env=env), "faef --help runs from PATH")
    where = run(["python", "-c", "import pytest_faef; print(pytest_faef.__file__)"], cwd=scratch, env=env)
    check(where.startswith(str(environment)), f"the package is imported from the venv ({where.strip()})")
    control = run(["faef", "control"], cwd=scratch, env=env)
    check("built-in control: 28 capability items" in control, "the installed package reads its built-in control")

    # [local]: llama.cpp and the SmolLM2 weights answer one item of the example suite for real.
    shutil.copytree(ROOT / "example_suite", scratch / "example_suite", ignore=shutil.ignore_patterns(".*"))
    report = scratch / "report.json"
    # The control off: deselected, its 28 items would be asked all the same, minutes more on the embedded model.
    command = ["pytest", "example_suite", "-k", "fair-01", "-p", "no:cacheprovider", "--faef-control=off"]
    command.append(f"--faef-report={report}")
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):  # 1: the tiny model failed the item, which is not the point here
        sys.exit(f"pytest failed with status {done.returncode}:\n{done.stdout}\n{done.stderr}")
    (item,) = json.loads(report.read_text())["items"]
    check(item.get("outcome") is not None, f"the embedded model answered {item['nodeid']}")


if __name__ == "__main__":
    main()
