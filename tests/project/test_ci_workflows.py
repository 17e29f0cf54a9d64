"""The workflows in docs/ci.md (issue 16) parse as YAML, and their commands are real: every --faef-* option
exists, every faef subcommand and its arguments parse, and the merge job merges exactly what the N shard
jobs write."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_faef.cli import SUBCOMMANDS
from pytest_faef.core.shards import parse_shard
from pytest_faef.plugin.options import OPTIONS

CI = Path(__file__).resolve().parents[2] / "docs" / "ci.md"
FLAGS = {option.flag for option in OPTIONS}


def workflows() -> dict[str, dict[str, Any]]:
    """Each YAML block of docs/ci.md by the file named in its first line."""
    blocks = re.findall(r"^```yaml\n(# (\S+)\n.*?)^```$", CI.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {name: yaml.safe_load(text) for text, name in blocks}


def github() -> tuple[list[str], list[str], int]:
    """The shard job's commands, the merge job's, and the number of shards of the matrix."""
    jobs = workflows()[".github/workflows/faef.yml"]["jobs"]
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1))
    assert jobs["merge"]["needs"] == "shard"

    def commands(job: str) -> list[str]:
        return [step["run"] for step in jobs[job]["steps"] if "run" in step]

    return commands("shard"), commands("merge"), len(shards)


def gitlab() -> tuple[list[str], list[str], int]:
    jobs = workflows()[".gitlab-ci.yml"]
    assert jobs["faef-gate"]["needs"] == ["faef-shard"]
    assert jobs["faef-shard"]["stage"] == jobs["stages"][0] and jobs["faef-gate"]["stage"] == jobs["stages"][1]
    return jobs["faef-shard"]["script"], jobs["faef-gate"]["script"], jobs["faef-shard"]["parallel"]


def simple_commands(script: str, *, index: int, count: int) -> list[list[str]]:
    """The words of each simple command in a shell script, with the shard's variables filled in."""
    for variable, value in (("${{ matrix.shard }}", index), ("$CI_NODE_INDEX", index), ("$CI_NODE_TOTAL", count)):
        script = script.replace(variable, str(value))
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue
        for part in re.split(r";|\|\||&&", line):
            words = shlex.split(part, comments=True)
            if words:
                commands.append(words)
    return commands


WORKFLOWS = pytest.mark.parametrize("workflow", [github, gitlab], ids=["github", "gitlab"])


def test_docs_ci_holds_a_github_and_a_gitlab_workflow() -> None:
    assert sorted(workflows()) == [".github/workflows/faef.yml", ".gitlab-ci.yml"]


@WORKFLOWS
def test_each_shard_job_runs_its_own_shard_with_real_options(workflow: Any) -> None:
    shard_job, _, count = workflow()

    for index in range(1, count + 1):
        runs = [words for script in shard_job for words in simple_commands(script, index=index, count=count)]
        pytest_runs = [words for words in runs if words[0] == "pytest"]
        assert len(pytest_runs) == 1
        options = [word.split("=", 1) for word in pytest_runs[0] if word.startswith("--faef-")]
        assert {name for name, *_ in options} <= FLAGS, {name for name, *_ in options} - FLAGS
        values = dict(option for option in options if len(option) == 2)
        shard = parse_shard(values["--faef-shard"], source="docs/ci.md")
        assert (shard.index, shard.count) == (index, count)


@WORKFLOWS
def test_the_merge_job_merges_every_shards_report_and_store_with_real_arguments(workflow: Any) -> None:
    shard_job, merge_job, count = workflow()
    reports, stores = set(), set()
    for index in range(1, count + 1):
        for words in (w for script in shard_job for w in simple_commands(script, index=index, count=count)):
            if words[0] == "pytest":
                reports |= {word.split("=", 1)[1] for word in words if word.startswith("--faef-report=")}
            if words[0] == "cp":
                stores.add(words[-1])

    merges = [words for script in merge_job for words in simple_commands(script, index=0, count=count)]
    merges = [words for words in merges if words[0] == "faef"]
    parsed = [_parse_faef(words) for words in merges]

    assert [args.stores is not None for args in parsed] == [True, False]  # unite the stores, then gate
    assert set(parsed[0].stores) == stores and len(stores) == count
    assert set(parsed[1].reports) == reports and len(reports) == count
    assert parsed[1].min_css  # the merge job gates


def _parse_faef(words: list[str]) -> argparse.Namespace:
    """``faef SUBCOMMAND ...`` parsed by the real command's parser; an unknown option fails the test."""
    assert words[1] in SUBCOMMANDS, words
    parser = argparse.ArgumentParser(prog=f"faef {words[1]}", exit_on_error=False, allow_abbrev=False)
    importlib.import_module(SUBCOMMANDS[words[1]]).add_arguments(parser)
    args, unknown = parser.parse_known_args(words[2:])
    assert not unknown, unknown
    return args
