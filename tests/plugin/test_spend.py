"""Spend well (issue 17): the cost before a run, a budget that stops requests, and a limit on requests
in flight that finds a rate-limited endpoint's pace by itself.

The model is ``openai/gpt-4o-mini`` served by the loopback server: litellm knows its price, so replies
have a cost, and the server can rate-limit like a provider (429 with ``retry-after-ms``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from loopback_server import LoopbackServer

MODEL = ["--faef-model", "openai/gpt-4o-mini"]
# The small suite needs 24 requests: open + judge per item, plus 2 + 6 + 2 + 2 + 2 orders.
REQUESTS = 24

Serve = Callable[..., LoopbackServer]


@pytest.fixture
def serve(faef_dir: pytest.Pytester, loopback: Serve, transport: str) -> Serve:
    def start(**settings: object) -> LoopbackServer:
        return loopback(behaviour="aligned", suites=[faef_dir.path / "small.faef.jsonl"], **settings)

    return start


def estimate_line(result: pytest.RunResult) -> str:
    found = [line for line in result.outlines if line.startswith("faef estimate:")]
    assert len(found) == 1, result.outlines
    return found[0]


def test_collect_only_tells_what_a_run_would_cost_and_sends_nothing(faef_dir: pytest.Pytester, serve: Serve) -> None:
    server = serve(latency=0.01)

    result = faef_dir.runpytest(*MODEL, "--collect-only", "-q")

    assert result.ret == pytest.ExitCode.OK
    assert server.stats()["requests"] == 0
    line = estimate_line(result)
    # Self-judged: one target, 24 requests, none stored; tokens counted, a price range in dollars.
    match = re.fullmatch(
        rf"faef estimate: openai/gpt-4o-mini \(at {re.escape(server.url)}\): 24 requests, 0 in the store; "
        r"24 to send: ~([\d,]+) to ([\d,]+) prompt tokens, \$([\d.]+) to \$([\d.]+)",
        line,
    )
    assert match, line
    low_tokens, high_tokens = (int(group.replace(",", "")) for group in match.group(1, 2))
    low_cost, high_cost = float(match.group(3)), float(match.group(4))
    assert 0 < low_tokens < high_tokens  # the judge's prompts hold answers not given yet
    assert 0 < low_cost < high_cost

    # After a run, the same selection costs nothing: every request is in the store.
    faef_dir.runpytest(*MODEL).assert_outcomes(passed=5)
    again = faef_dir.runpytest(*MODEL, "--collect-only", "-q")
    assert estimate_line(again).endswith(f": {REQUESTS} requests, {REQUESTS} in the store; nothing to send")


def test_a_real_run_states_the_estimate_in_its_header(faef_dir: pytest.Pytester, serve: Serve) -> None:
    serve(latency=0.01)
    result = faef_dir.runpytest(*MODEL, "-k", "h1")  # one item: open, judge and two orders
    result.assert_outcomes(passed=1, deselected=4)
    assert ": 4 requests, 0 in the store; 4 to send: ~" in estimate_line(result)
    header_end = next(index for index, line in enumerate(result.outlines) if line.startswith("collected"))
    assert result.outlines.index(estimate_line(result)) == header_end + 1


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_a_budget_stops_new_requests_and_fails_the_session_with_one_line(
    faef_dir: pytest.Pytester, serve: Serve, workers: list[str]
) -> None:
    server = serve(latency=0.05)
    # A request of this suite costs about $0.00001 at gpt-4o-mini's price: the budget buys a few.
    run = faef_dir.runpytest_subprocess if workers else faef_dir.runpytest
    result = run(*MODEL, *workers, "--faef-max-cost=0.00003", "--faef-concurrency=1")

    sent = server.stats()["requests"]
    assert 0 < sent < REQUESTS
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) >= 1
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*not sent: budget of $0.000030 reached (--faef-max-cost)*"])
    budget = [line for line in result.outlines if line.startswith("FAEF budget reached")]
    assert len(budget) == 1, result.outlines
    match = re.fullmatch(
        r"FAEF budget reached: this run's replies cost \$([\d.]+) of the \$0.000030 allowed \(--faef-max-cost, "
        r"at litellm's prices\): (\d+) items? (was|were) not evaluated",
        budget[0],
    )
    assert match, budget[0]
    # With one request at a time per process, the spend passes the budget by at most one reply per process.
    assert 0.00003 <= float(match.group(1)) < 0.00003 + 0.00002 * (1 + len(workers) // 2 * 2)
    assert int(match.group(2)) == outcomes["errors"]


def test_replies_from_the_store_cost_nothing_against_the_budget(faef_dir: pytest.Pytester, serve: Serve) -> None:
    serve(latency=0.01)
    faef_dir.runpytest(*MODEL).assert_outcomes(passed=5)

    result = faef_dir.runpytest(*MODEL, "--faef-max-cost=0.000001", "--faef-drift-check=0")

    result.assert_outcomes(passed=5)
    assert not [line for line in result.outlines if line.startswith("FAEF budget reached")]


def test_auto_concurrency_finds_a_rate_limited_endpoints_pace_without_failing_an_item(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    # 30 requests a second, a burst of 2: the first round of 4 in flight already meets 429s.
    server = serve(latency=0.02, rate_limit=30, burst=2)

    result = faef_dir.runpytest(*MODEL, "--faef-max-retries=6")

    result.assert_outcomes(passed=5)
    stats = server.stats()
    assert stats["rate_limited"] > 0  # it was limited, and still every item was evaluated
    assert stats["successes"] == REQUESTS


def test_concurrency_takes_auto_or_a_number(faef_dir: pytest.Pytester) -> None:
    result = faef_dir.runpytest("--faef-model", "scripted/aligned", "--faef-concurrency=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--faef-concurrency / faef_concurrency: 'many' is neither auto nor a number*"])


def test_the_estimate_counts_samples_and_perturbed_variants_as_the_run_asks_them(
    faef_dir: pytest.Pytester, loopback: Serve
) -> None:
    """One estimate (issue 31): the variants --faef-perturb will ask (a variant of the options alone shares the
    item's open form and is counted once), and each sample's requests, with the judge's on sampled answers that
    repeat as the range's low end (an answer given twice shares one verdict)."""
    server = loopback(behaviour="robust", suites=[faef_dir.path / "small.faef.jsonl"], latency=0.01)
    settings = [*MODEL, "--faef-samples=2", "--faef-perturb=3", "--faef-perturb-kinds=typo,labels"]

    line = estimate_line(faef_dir.runpytest(*settings, "--collect-only", "-q"))
    match = re.search(r"; ([\d,]+) to ([\d,]+) to send: ", line)
    assert match, line
    low, high = (int(group.replace(",", "")) for group in match.groups())

    result = faef_dir.runpytest(*settings)
    result.assert_outcomes(passed=5)
    sent = server.stats()["successes"]
    assert low <= sent <= high, (line, sent)
    assert sent == low  # the server answers an open question the same way every time: every verdict is shared
    # The second sample's judge request on each distinct open question may be shared: 5 items and their 10 typo
    # variants (a variant of the labels asks the item's own open question).
    assert high - low == 15


def test_the_missing_key_message_counts_as_the_estimate_does(
    faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = [*MODEL, "--faef-samples=2", "--faef-perturb=2"]
    line = estimate_line(faef_dir.runpytest(*settings, "--collect-only", "-q"))
    match = re.search(r"; (?:[\d,]+ to )?([\d,]+) to send: ", line)
    assert match, line

    result = faef_dir.runpytest(*settings)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*needs OPENAI_API_KEY, which is not set: {match.group(1)} of its requests*"])
