"""Every verdict bound to the model that produced it (issue 11): endpoints and revisions in the
store's keys, the drift check before replaying, and provenance in the summary, reports and baselines.

The model is ``openai/mock`` served by the loopback server, which answers the small suite as an
aligned or an unsafe model (``behaviour``); switching the server is switching the model.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from loopback_server import LoopbackServer

from pytest_faef.calls import local_model
from pytest_faef.core.evaluation import EvaluationSettings, open_request
from pytest_faef.core.suite import load_suite

MODEL = ["--faef-model", "openai/mock"]
SAVE = "--faef-save-baseline=base"
GATE = ["--faef-compare=base", "--faef-compare-fail=css:-2%"]
# The small suite needs 24 requests: open + judge per item, plus 2 + 6 + 2 + 2 + 2 orders.
REQUESTS = 24

Serve = Callable[..., LoopbackServer]


@pytest.fixture
def serve(faef_dir: pytest.Pytester, loopback: Callable[..., LoopbackServer], transport: str) -> Serve:
    """Start a loopback model for the small suite and point OPENAI_API_BASE at it."""

    def start(behaviour: str, *, port: int = 0) -> LoopbackServer:
        return loopback(latency=0.01, behaviour=behaviour, suites=[faef_dir.path / "small.faef.jsonl"], port=port)

    return start


def restart(server: LoopbackServer, behaviour: str, serve: Serve) -> LoopbackServer:
    """The same address, another model behind it: a new checkpoint served under the old name."""
    port = server.port
    server.stop()
    return serve(behaviour, port=port)


def lines(result: pytest.RunResult, start: str) -> list[str]:
    return [line for line in result.outlines if line.startswith(start)]


def test_a_reply_stored_for_another_endpoint_is_never_replayed(faef_dir: pytest.Pytester, serve: Serve) -> None:
    aligned = serve("aligned")
    faef_dir.runpytest(*MODEL, SAVE).assert_outcomes(passed=5)

    unsafe = serve("unsafe")  # another endpoint serving a model of the same name
    result = faef_dir.runpytest(*MODEL, *GATE)

    assert unsafe.stats()["requests"] == REQUESTS  # asked, not replayed from the first endpoint's replies
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"note: openai/mock: the model's endpoint differs (baseline {aligned.url}, now {unsafe.url})*",
            "FAEF regression gate failed: overall CSS 1.000 -> 0.000 *",
        ]
    )
    assert lines(result, "usage:") == [
        f"usage: openai/mock (at {unsafe.url}): 24 replies (24 fresh, 0 replayed), 1,205 prompt + 56 completion tokens"
    ]


def test_a_changed_model_behind_the_same_endpoint_is_caught_by_the_drift_check(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    server = serve("aligned")
    faef_dir.runpytest(*MODEL, SAVE).assert_outcomes(passed=5)

    server = restart(server, "unsafe", serve)
    result = faef_dir.runpytest(*MODEL, *GATE)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    [drift] = lines(result, "faef drift check:")
    assert drift.startswith(f"faef drift check: openai/mock (at {server.url}): ")
    # A sequential test, not one difference (issue 28): 16 asked, nearly all differ, decided at the first look.
    assert ": changed (" in drift and "1 look" in drift and "; 16 requests, " in drift
    assert "its 24 stored replies (recorded " in drift
    assert drift.endswith("are stale and were asked again")
    result.stdout.fnmatch_lines(["FAEF regression gate failed: overall CSS 1.000 -> 0.000 *"])
    # Every verdict comes from the model behind the endpoint now: nothing was replayed.
    [usage] = lines(result, "usage:")
    assert "(24 fresh, 0 replayed)" in usage
    assert server.stats()["requests"] >= REQUESTS

    # The new replies are stored under the same keys: the next run is warm again, at the cost of the sample.
    server.reset()
    again = faef_dir.runpytest(*MODEL)
    assert server.stats()["requests"] == 16
    assert ": unchanged (0 of 16 differ; " in lines(again, "faef drift check:")[0]


def test_an_unchanged_model_passes_its_own_baseline_at_the_cost_of_the_drift_sample(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    server = serve("aligned")
    faef_dir.runpytest(*MODEL, SAVE).assert_outcomes(passed=5)
    server.reset()

    result = faef_dir.runpytest(*MODEL, *GATE)

    result.assert_outcomes(passed=5)
    assert server.stats()["requests"] == 16
    [drift] = lines(result, "faef drift check:")
    assert drift.startswith(f"faef drift check: openai/mock (at {server.url}): unchanged (0 of 16 differ; ")
    # The figures the test decided on (issue 28), then what asking again cost: the sample's own requests and tokens.
    assert "an unchanged model's replies differ at 0.100 (assumed; --faef-samples N measures it)" in drift
    assert "sequential test, 1 look: an unchanged model is called stale at most 1% of the time" in drift
    assert re.search(r"; 16 requests, [\d,]+ prompt \+ \d+ completion tokens\); ", drift), drift
    assert "replaying 24 stored replies (recorded " in drift
    [usage] = lines(result, "usage:")
    assert "(0 fresh, 24 replayed from the store, recorded " in usage

    server.reset()
    faef_dir.runpytest(*MODEL, "--faef-drift-check=0").assert_outcomes(passed=5)
    assert server.stats()["requests"] == 0


@pytest.mark.parametrize("changed", [False, True], ids=["unchanged", "changed"])
def test_under_xdist_the_workers_share_one_drift_check(faef_dir: pytest.Pytester, serve: Serve, changed: bool) -> None:
    server = serve("aligned")
    faef_dir.runpytest(*MODEL, SAVE).assert_outcomes(passed=5)
    if changed:
        server = restart(server, "unsafe", serve)
    server.reset()

    result = faef_dir.runpytest_subprocess("-n", "2", *MODEL, *GATE)

    [drift] = lines(result, "faef drift check:")
    if changed:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert "are stale and were asked again" in drift
        result.stdout.fnmatch_lines(["FAEF regression gate failed: overall CSS 1.000 -> 0.000 *"])
    else:
        result.assert_outcomes(passed=5)
        assert server.stats()["requests"] == 16  # one worker checked; the other waited for its result
        assert ": unchanged (0 of 16 differ; " in drift


def test_a_gguf_file_replaced_at_the_same_path_is_another_revision(
    faef_dir: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is only digested: the local model's answers are scripted, so the file need not be a model.
    answered: list[str] = []

    def scripted_reply(model: str, messages: Any, settings: local_model.ReplySettings) -> local_model.LocalReply:
        import scripted_model

        answered.append(model)
        text = scripted_model.answer("aligned", messages[-1]["content"], list(settings.choices or []) or None)
        return local_model.LocalReply(text=text, prompt_tokens=1, completion_tokens=1, finish_reason="stop")

    monkeypatch.setattr(local_model, "reply", scripted_reply)
    monkeypatch.setattr(local_model, "check_available", lambda model: None)
    gguf = faef_dir.path / "tiny.gguf"
    gguf.write_bytes(b"GGUF first build")
    model = ["--faef-model", f"faef-local/{gguf}", "-k", "not h2"]

    faef_dir.runpytest(*model).assert_outcomes(passed=4, deselected=1)
    assert len(answered) == 20
    warm = faef_dir.runpytest(*model)
    first = lines(warm, "usage:")
    # The revision digests the file and the engine, not the machine (llama.cpp's sums depend on the CPU and
    # the thread count): the drift check samples a local model's stored replies too (issue 31).
    [drift] = lines(warm, "faef drift check:")
    assert ": unchanged (0 of 16 differ; " in drift, drift
    assert "0.010 (assumed: the embedded model decodes greedily at temperature 0)" in drift
    assert len(answered) == 20 + 16
    asked_before = len(answered)
    modified = gguf.stat().st_mtime_ns
    gguf.write_bytes(b"GGUF other build")  # the same size, at the same path
    os.utime(gguf, ns=(modified + 10**9, modified + 10**9))  # as a rebuild a second later would

    result = faef_dir.runpytest(*model)

    assert len(answered) == asked_before + 20  # every request asked again: no reply of the old file was replayed
    [usage] = lines(result, "usage:")
    assert "(20 fresh, 0 replayed)" in usage
    revision = local_model.file_revision(f"faef-local/{gguf}")
    assert revision is not None and f"revision {revision})" in usage and "+llama-cpp-" in revision
    assert revision not in first[0]


def test_replay_only_modes_say_that_nothing_was_asked_and_when_the_replies_were_recorded(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    server = serve("aligned")
    faef_dir.runpytest(*MODEL)
    server.reset()

    result = faef_dir.runpytest(*MODEL, "--faef-record-mode=none")

    result.assert_outcomes(passed=5)
    assert server.stats()["requests"] == 0
    assert not lines(result, "faef drift check")
    result.stdout.fnmatch_lines(
        [
            "faef: record mode 'none': no model was asked; 5 items judged on replies replayed from the store",
            "usage: openai/mock (at *): 24 replies (0 fresh, 24 replayed from the store, recorded * UTC), *",
        ]
    )


def test_a_replay_of_a_store_recorded_at_another_endpoint_says_where_its_replies_are(
    faef_dir: pytest.Pytester, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trap of a CI job that replays a committed store without the endpoint it was recorded at.
    server = serve("aligned")
    faef_dir.runpytest(*MODEL)
    monkeypatch.delenv("OPENAI_API_BASE")

    result = faef_dir.runpytest(*MODEL, "--faef-record-mode=none", "-k", "p1")

    result.assert_outcomes(errors=1, deselected=4)
    result.stdout.fnmatch_lines(
        [
            "*openai/mock: no stored reply in * and record mode 'none' sends no requests; the store holds 24 "
            f"replies of openai/mock at {server.url}, but this run asks it at no endpoint, no revision: give the "
            "same endpoint and revision to replay them",
            "faef: record mode 'none': no model was asked; 1 item without a stored reply (see the errors)",
        ]
    )


def test_the_report_gives_every_reply_its_origin_and_the_baseline_its_endpoint_and_revision(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    server = serve("aligned")
    faef_dir.runpytest(*MODEL, "--faef-revision=openai/mock=ckpt-1", SAVE)
    result = faef_dir.runpytest(*MODEL, "--faef-revision=openai/mock=ckpt-1", "--faef-report=report.json")
    result.assert_outcomes(passed=5)

    report = json.loads((faef_dir.path / "report.json").read_text())
    [model] = report["models"]
    assert (model["endpoint"], model["revision"]) == (server.url, "ckpt-1")
    assert (model["judge_endpoint"], model["judge_revision"]) == (server.url, "ckpt-1")
    assert (model["replies"]["requests"], model["replies"]["fresh"], model["replies"]["replayed"]) == (24, 0, 24)
    assert report["run"]["record_mode"] == "new"
    assert report["run"]["provenance"][0].startswith("faef drift check: openai/mock")
    replies = [reply for item in report["items"] for reply in item["outcome"]["replies"]]
    assert len(replies) == REQUESTS
    assert {(reply["origin"], reply["endpoint"], reply["revision"]) for reply in replies} == {
        ("stored", server.url, "ckpt-1")
    }
    assert {reply["request"] for reply in report["items"][0]["outcome"]["replies"]} >= {"open", "judge"}

    baseline = json.loads((faef_dir.path / ".faef" / "baselines" / "base.json").read_text())
    saved = baseline["models"]["openai/mock"]
    assert (saved["endpoint"], saved["revision"]) == (server.url, "ckpt-1")
    assert saved["replies"]["fresh"] == 24


def test_another_revision_is_asked_again_and_the_comparison_notes_it(faef_dir: pytest.Pytester, serve: Serve) -> None:
    server = serve("aligned")
    faef_dir.runpytest(*MODEL, "--faef-revision=openai/mock=ckpt-1", SAVE)
    server.reset()

    result = faef_dir.runpytest(*MODEL, "--faef-revision=openai/mock=ckpt-2", *GATE)

    result.assert_outcomes(passed=5)
    assert server.stats()["requests"] == REQUESTS
    result.stdout.fnmatch_lines(["note: openai/mock: the model's revision differs (baseline ckpt-1, now ckpt-2)*"])


def test_a_revision_for_a_model_not_in_the_run_is_a_usage_error(faef_dir: pytest.Pytester) -> None:
    result = faef_dir.runpytest(*MODEL, "--faef-revision=openai/mokc=ckpt-1")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--faef-revision / faef_revision: 'openai/mokc' is neither a model under test*"])


def test_a_comparison_that_replays_only_replies_older_than_the_baseline_warns_that_it_cannot_see_a_regression(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    serve("aligned")
    faef_dir.runpytest(*MODEL, SAVE)

    result = faef_dir.runpytest(*MODEL, "--faef-record-mode=none", *GATE)

    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "FAEF warning: openai/mock: no new model replies: every verdict of this run was replayed from replies "
            "recorded before the baseline was saved (*): this comparison cannot see a regression"
        ]
    )


def test_a_store_of_schema_1_keeps_working_and_its_old_replies_are_not_matched(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    server = serve("aligned")
    store = faef_dir.path / ".faef" / "responses.sqlite"
    store.parent.mkdir()
    # A reply stored by an earlier version, under the key a request had before endpoints were part of it.
    [first] = load_suite(faef_dir.path / "small.faef.jsonl").items[:1]
    old = open_request(first, EvaluationSettings(model="openai/mock", judge="openai/mock"))
    with sqlite3.connect(store) as connection:
        connection.executescript(SCHEMA_1)
        connection.execute(
            "INSERT INTO responses VALUES (?, 'openai/mock', '{}', 'an old reply', 1, 1, 0, 1700000000.0)", (old.key(),)
        )
    connection.close()

    faef_dir.runpytest(*MODEL, "--faef-report=report.json").assert_outcomes(passed=5)

    assert server.stats()["requests"] == REQUESTS  # the old row was not matched: its key knows no endpoint
    report = json.loads((faef_dir.path / "report.json").read_text())
    assert "an old reply" not in {item["outcome"]["open_answer"] for item in report["items"]}
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == ("3",)
        kept = connection.execute("SELECT judge, judge_endpoint, verdict FROM judgments WHERE item_id = 'old'")
        assert kept.fetchall() == [("openai/mock", "", "safe")]
    connection.close()


SCHEMA_1 = """
CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, request TEXT NOT NULL, text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost REAL NOT NULL, created REAL NOT NULL);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE judgments (judge TEXT NOT NULL, template_version TEXT NOT NULL, answer_key TEXT NOT NULL,
    model TEXT NOT NULL, item_key TEXT NOT NULL, item_id TEXT NOT NULL, dimension TEXT NOT NULL,
    question TEXT NOT NULL, answer TEXT NOT NULL, reply TEXT NOT NULL, verdict TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (judge, template_version, answer_key));
INSERT INTO judgments VALUES ('openai/mock', '1', 'k', 'openai/mock', 'x::y::old', 'old', 'Privacy', 'q', 'a',
    '[[safe]]', 'safe', 1700000000.0);
"""
