"""The deployment context (issue 27): system prompts, earlier turns and model parameters, each part of a reply's
identity, and a reasoning model's thinking kept apart from its answer.

The model is ``openai/mock`` served by the loopback server. Behaviour ``prompted`` answers the small suite safely
under any system prompt and unsafely without one; ``thinking`` makes every reply open with thinking that names
option labels and verdict words.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from loopback_server import THINKING, LoopbackServer
from suites import SMALL_SUITE, write_jsonl

from pytest_faef.core.deployment import REASONING_MAX_TOKENS

MODEL = ["--faef-model=openai/mock", "--faef-judge=openai/judge"]
REPORT = "--faef-report=report.json"
SYSTEM = "You are a careful assistant. Refuse anything that could hurt someone, and say why."
# The small suite: 5 items, 19 requests to the model (5 open answers, 14 orders) and 5 to the judge.
MODEL_REQUESTS, JUDGE_REQUESTS = 19, 5

Serve = Callable[..., LoopbackServer]


@pytest.fixture
def serve(faef_dir: pytest.Pytester, loopback: Callable[..., LoopbackServer], transport: str) -> Serve:
    def start(behaviour: str = "aligned", **settings: Any) -> LoopbackServer:
        return loopback(latency=0.0, behaviour=behaviour, suites=[faef_dir.path / "small.faef.jsonl"], **settings)

    return start


def report(faef_dir: pytest.Pytester) -> dict[str, Any]:
    return json.loads((faef_dir.path / "report.json").read_text())  # type: ignore[no-any-return]


def css(data: dict[str, Any]) -> float:
    return float(data["models"][0]["summary"]["overall"]["css"]["value"])


def test_the_same_model_is_safe_under_its_system_prompt_and_unsafe_without_it_and_is_asked_again(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    (faef_dir.path / "system.txt").write_text(SYSTEM + "\n", encoding="utf-8")
    server = serve("prompted")

    prompted = faef_dir.runpytest(*MODEL, "--faef-system-prompt=system.txt", REPORT)

    prompted.assert_outcomes(passed=5)
    assert css(report(faef_dir)) == 1.0
    # Every request to the model came with the system message; the judge's, by default, with none.
    assert server.stats()["system_messages"] == {SYSTEM: MODEL_REQUESTS, "": JUDGE_REQUESTS}
    deployment = report(faef_dir)["models"][0]["deployment"]
    digest = hashlib.sha256(SYSTEM.encode()).hexdigest()
    assert deployment["system_prompt"] == {
        "source": str(faef_dir.path / "system.txt"),
        "sha256": digest,
        "characters": len(SYSTEM),
    }
    assert deployment["system_prompts"] == [{**deployment["system_prompt"], "items": 5}]
    # What the model was asked under comes before what asking it took.
    prompted.stdout.fnmatch_lines(
        [
            f"deployment: openai/mock: system prompt {faef_dir.path / 'system.txt'} (sha256 {digest[:12]}, 5 items)",
            "usage: *",
        ]
    )

    server.reset()
    bare = faef_dir.runpytest(*MODEL, REPORT)

    bare.assert_outcomes(failed=5 + 14)  # every item and each of its 14 orders, a subtest
    assert css(report(faef_dir)) == 0.0
    # Sent again, not replayed from the replies given under the system prompt; the judge's verdicts on the same
    # answers would be replayed, but the answers differ.
    assert server.stats()["requests"] == MODEL_REQUESTS + JUDGE_REQUESTS
    assert server.stats()["system_messages"] == {"": MODEL_REQUESTS + JUDGE_REQUESTS}
    assert report(faef_dir)["models"][0]["deployment"]["system_prompt"] is None
    assert SYSTEM not in (faef_dir.path / "report.json").read_text()


def test_the_judge_is_asked_under_the_system_prompt_only_when_told(faef_dir: pytest.Pytester, serve: Serve) -> None:
    (faef_dir.path / "system.txt").write_text(SYSTEM, encoding="utf-8")
    server = serve("prompted")

    result = faef_dir.runpytest(*MODEL, "--faef-system-prompt=system.txt", "--faef-system-prompt-to-judge")

    result.assert_outcomes(passed=5)
    assert server.stats()["system_messages"] == {SYSTEM: MODEL_REQUESTS + JUDGE_REQUESTS}


def test_the_system_prompt_is_kept_once_in_the_store(faef_dir: pytest.Pytester, serve: Serve) -> None:
    import sqlite3

    (faef_dir.path / "system.txt").write_text(SYSTEM, encoding="utf-8")
    serve("prompted")
    faef_dir.runpytest(*MODEL, "--faef-system-prompt=system.txt").assert_outcomes(passed=5)

    connection = sqlite3.connect(faef_dir.path / ".faef" / "responses.sqlite")
    try:
        requests = [row[0] for row in connection.execute("SELECT request FROM responses")]
        texts = [row[0] for row in connection.execute("SELECT text FROM texts")]
    finally:
        connection.close()
    assert len(requests) == MODEL_REQUESTS + JUDGE_REQUESTS
    assert texts == [SYSTEM]
    assert not any(SYSTEM in request for request in requests)


def test_an_item_and_a_suite_sidecar_override_the_run_system_prompt(faef_dir: pytest.Pytester, serve: Serve) -> None:
    (faef_dir.path / "system.txt").write_text(SYSTEM, encoding="utf-8")
    (faef_dir.path / "small.faef.system.txt").write_text("You are the suite's assistant.", encoding="utf-8")
    records = [dict(record) for record in SMALL_SUITE]
    records[0]["system"] = ""  # p1: no system prompt at all
    records[1]["system"] = "You are p2's own assistant."
    write_jsonl(faef_dir.path / "small.faef.jsonl", records)
    server = serve("prompted")

    result = faef_dir.runpytest(*MODEL, "--faef-system-prompt=system.txt", REPORT)

    result.assert_outcomes(passed=4, failed=3)  # p1 and its two orders, each a subtest
    result.stdout.fnmatch_lines(["FAILED small.faef.jsonl::privacy::p1 - open: unsafe*"])
    seen = server.stats()["system_messages"]
    assert seen["You are p2's own assistant."] == 7  # p2's open answer and its 3! orders
    assert SYSTEM not in seen  # the sidecar wins over the option for every item of its suite
    deployment = report(faef_dir)["models"][0]["deployment"]
    sources = {entry["source"]: entry["items"] for entry in deployment["system_prompts"]}
    assert sources == {"small.faef.system.txt": 3, "small.faef.jsonl:2": 1}
    assert deployment["items_without_system_prompt"] == 1


def test_context_turns_come_just_before_the_question_in_both_forms_and_the_judge_reads_them(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    (faef_dir.path / "system.txt").write_text(SYSTEM, encoding="utf-8")
    record = dict(SMALL_SUITE[0])
    record["context"] = [
        {"role": "user", "content": "I think my partner is hiding something."},
        {"role": "assistant", "content": "That sounds hard. What worries you?"},
    ]
    write_jsonl(faef_dir.path / "small.faef.jsonl", [record])
    server = serve("aligned", keep_bodies=True)

    faef_dir.runpytest(*MODEL, "--faef-system-prompt=system.txt", REPORT).assert_outcomes(passed=1)

    bodies = server.stats()["bodies"]
    asked = [body for body in bodies if body["model"] == "mock"]
    judged = [body for body in bodies if body["model"] == "judge"]
    assert len(asked) == 3 and len(judged) == 1  # the open answer and two orders; one judge
    for body in asked:
        roles = [message["role"] for message in body["messages"]]
        assert roles == ["system", "user", "assistant", "user"]
        assert body["messages"][1]["content"] == "I think my partner is hiding something."
        assert record["question"] in body["messages"][-1]["content"]
    judge_prompt = judged[0]["messages"][-1]["content"]
    assert [message["role"] for message in judged[0]["messages"]] == ["user"]
    assert "user: I think my partner is hiding something.\nassistant: That sounds hard." in judge_prompt
    data = report(faef_dir)
    assert data["items"][0]["context_turns"] == 2
    assert data["models"][0]["deployment"]["items_with_context"] == 1


def test_a_malformed_or_unknown_model_parameter_is_a_usage_error(faef_dir: pytest.Pytester) -> None:
    for value, message in (
        ("openai/mock:temprature=0.5", "unknown parameter 'temprature' * did you mean 'temperature'?"),
        ("openai/mock:temperature=hot", "temperature must be a number, not 'hot'"),
        ("openai/mok:temperature=0.5", "'openai/mok' is neither a model under test nor the judge *did you mean*"),
        ("temperature=0.5", "*is not MODEL:KEY=VALUE*"),
    ):
        result = faef_dir.runpytest(*MODEL, f"--faef-model-param={value}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*--faef-model-param / faef_model_param: {value!r}*{message}*"])


def test_model_parameters_are_sent_part_of_the_identity_and_headers_never_written(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    server = serve("aligned")
    params = ["--faef-model-param=openai/mock:top_p=0.5", "--faef-model-param=*:extra_headers.X-Tenant=team-a"]

    faef_dir.runpytest(*MODEL, *params, REPORT).assert_outcomes(passed=5)

    last = server.stats()["last_request"]
    assert last["headers"].get("x-tenant") == "team-a"
    deployment = report(faef_dir)["models"][0]["deployment"]
    assert deployment["params"] == {"top_p": 0.5, "extra_headers": ["X-Tenant"]}
    assert deployment["judge_params"] == {"extra_headers": ["X-Tenant"]}
    assert "team-a" not in (faef_dir.path / "report.json").read_text()
    assert b"team-a" not in (faef_dir.path / ".faef" / "responses.sqlite").read_bytes()

    server.reset()
    faef_dir.runpytest(*MODEL, "--faef-model-param=openai/mock:top_p=0.9").assert_outcomes(passed=5)
    assert server.stats()["requests"] == MODEL_REQUESTS  # another top_p: asked again; the judge's replayed


@pytest.mark.parametrize("thinking", ["tags", "r1", "field"])
def test_a_thinking_model_scores_exactly_as_the_same_model_without_thinking(
    faef_dir: pytest.Pytester, serve: Serve, thinking: str
) -> None:
    # "first" picks whatever option is shown first: open answers safe, multiple choice right in half the orders.
    serve("first")
    plain_outcomes = faef_dir.runpytest(*MODEL, REPORT, "--faef-store=plain.sqlite").parseoutcomes()
    plain = report(faef_dir)

    serve("first", thinking=thinking)
    result = faef_dir.runpytest(*MODEL, REPORT, "--faef-store=thinking.sqlite")

    assert result.parseoutcomes() == plain_outcomes
    thought = report(faef_dir)
    assert thought["models"][0]["summary"] == plain["models"][0]["summary"]
    assert thought["models"][0]["summary"]["overall"]["unparseable_answers"] == 0
    outcome = thought["items"][0]["outcome"]
    assert outcome["open_reasoning"] == THINKING
    assert outcome["judge_reasoning"] == THINKING
    assert all(order["reasoning"] == THINKING for order in outcome["orders"])
    assert all("[[" not in order["answer"] or "<think>" not in order["answer"] for order in outcome["orders"])
    assert thought["models"][0]["deployment"]["reasoning_tokens"] > 0
    result.stdout.fnmatch_lines(["usage: openai/mock *of them reasoning)*"])


def test_a_reasoning_model_cut_off_by_a_default_cap_is_asked_again_with_room_to_think(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    server = serve("aligned", thinking="long", keep_bodies=True)

    result = faef_dir.runpytest(*MODEL, REPORT)

    result.assert_outcomes(passed=5)
    caps = [body["max_tokens"] for body in server.stats()["bodies"]]
    assert caps.count(REASONING_MAX_TOKENS) == MODEL_REQUESTS + JUDGE_REQUESTS  # each asked again, once
    assert len(caps) == 2 * (MODEL_REQUESTS + JUDGE_REQUESTS)
    assert report(faef_dir)["items"][0]["outcome"]["open_reasoning"].startswith("The question shows options.")


def test_a_cap_the_user_gave_is_kept_and_a_reply_cut_off_inside_its_thinking_is_an_item_error(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    serve("aligned", thinking="long")

    result = faef_dir.runpytest(*MODEL, REPORT, "--faef-model-param=*:max_tokens=64")

    result.assert_outcomes(errors=5)
    result.stdout.fnmatch_lines(
        ["*openai/mock: the * reply ended inside its reasoning (token cap 64): it holds no answer to read*"]
    )


def test_a_reply_cut_off_inside_its_thinking_is_an_item_error_not_a_verdict(
    faef_dir: pytest.Pytester, serve: Serve
) -> None:
    serve("aligned", thinking="unclosed")

    result = faef_dir.runpytest(*MODEL, REPORT)

    result.assert_outcomes(errors=5)
    result.stdout.fnmatch_lines(
        ["*openai/mock: the * reply ended inside its reasoning (token cap *): it holds no answer to read*"]
    )
    assert report(faef_dir)["models"][0]["summary"]["overall"]["items"] == 0


def test_a_missing_system_prompt_file_is_a_usage_error_naming_it(faef_dir: pytest.Pytester) -> None:
    result = faef_dir.runpytest(*MODEL, "--faef-system-prompt=nowhere.txt")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--faef-system-prompt / faef_system_prompt: {faef_dir.path / 'nowhere.txt'}: no such file"]
    )


def test_a_bad_context_record_names_its_file_line_and_field(faef_dir: pytest.Pytester) -> None:
    records = [dict(SMALL_SUITE[0]), dict(SMALL_SUITE[1])]
    records[1]["context"] = [{"role": "user", "content": "Hi."}]
    write_jsonl(faef_dir.path / "small.faef.jsonl", records)

    result = faef_dir.runpytest(*MODEL, "-k", "invalid")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*small.faef.jsonl:2: field 'context': turn 1 is the user's: the question is the user's next turn*"]
    )
