"""The embedded model's replies with prefix reuse equal those without it, bit for bit, however a run is cut or
ordered (issue 29): the small suite in file order and shuffled, one item under -k, the failures under --lf, and
two xdist workers, each asking the model afresh, against one run that evaluates every prompt from scratch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from suites import SMALL_SUITE, write_jsonl

from pytest_faef.calls.local_model import REUSE_VARIABLE

pytest.importorskip("llama_cpp", reason='needs the local extra: pip install "pytest-faef[local]"')

MODEL = ["--faef-model", "faef-local/smollm2", "--faef-open-max-tokens=16", "--faef-control=off", "-p", "no:randomly"]
SHUFFLE = """
import random

def pytest_collection_modifyitems(items):
    random.Random(7).shuffle(items)
"""

Replies = dict[str, tuple[str, str, list[tuple[str, str]]]]


def run(pytester: pytest.Pytester, name: str, *args: str) -> Replies:
    """The replies behind a run's verdicts, by item: the open answer, the judge's verdict, each order's pick. A
    store of its own for each run, so that every reply is asked of the model, none replayed."""
    pytester.runpytest_subprocess(*MODEL, f"--faef-store=stores/{name}.sqlite", f"--faef-report={name}.json", *args)
    report: dict[str, Any] = json.loads((pytester.path / f"{name}.json").read_text())
    return {
        item["nodeid"]: (
            item["outcome"]["open_answer"],
            item["outcome"]["open_verdict"],
            [(order["order"], order["picked"]) for order in item["outcome"]["orders"]],
        )
        for item in report["items"]
    }


def test_replies_with_reuse_equal_replies_without_it_under_k_lf_shuffling_and_xdist(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(pytester.path / "small.faef.jsonl", SMALL_SUITE[:4])
    monkeypatch.setenv(REUSE_VARIABLE, "0")
    reference = run(pytester, "reference")
    monkeypatch.delenv(REUSE_VARIABLE)
    assert len(reference) == 4

    assert run(pytester, "ordered") == reference
    pytester.makepyfile(shuffle=SHUFFLE)
    assert run(pytester, "shuffled", "-p", "shuffle") == reference
    [(nodeid, alone)] = run(pytester, "alone", "-k", "h1").items()
    assert nodeid.endswith("h1") and alone == reference[nodeid]
    # The items that failed (the 135M model fails some) asked again on their own, and under two workers.
    failed = run(pytester, "failed", "--lf")
    assert failed and all(failed[nodeid] == reference[nodeid] for nodeid in failed)
    assert run(pytester, "xdist", "-n", "2") == reference
