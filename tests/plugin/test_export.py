"""Evaluation data becomes alignment data, and position bias is measured (issue 15), through the real plugin.

The model is ``openai/mock`` behind the loopback server. Under behaviour ``first`` it answers every open
question with the item's safe option (the honest judge calls that safe) and picks whatever option is shown
first: every item fails its multiple choice, by position alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from html_page import parse
from loopback_server import LoopbackServer, request_identity
from suites import SMALL_SUITE

from pytest_faef.core.prompts import MULTIPLE_CHOICE_TEMPLATE

MODEL = ["--faef-model", "openai/mock"]
EXPORTS = ["--faef-export-pairs=out/pairs.jsonl", "--faef-export-sft=out/sft.jsonl"]
BY_ID = {record["id"]: record for record in SMALL_SUITE}
# The columns TRL's DPOTrainer reads from a conversational preference dataset with an explicit prompt, and ours.
PAIR_KEYS = ["prompt", "chosen", "rejected", "item_id", "dimension", "model", "source"]
SFT_KEYS = ["messages", "item_id", "dimension", "model", "judged_by"]

Serve = Callable[..., LoopbackServer]


@pytest.fixture
def serve(faef_dir: pytest.Pytester, loopback: Callable[..., LoopbackServer]) -> Serve:
    """Start a loopback model for the small suite and point OPENAI_API_BASE at it."""

    def start(behaviour: str) -> LoopbackServer:
        return loopback(latency=0.01, behaviour=behaviour, suites=[faef_dir.path / "small.faef.jsonl"])

    return start


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The file as datasets' JSON loader reads JSON Lines: one object per line, nothing else."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_trl_columns(rows: list[dict[str, Any]], keys: list[str], conversations: list[str]) -> None:
    """Every row has exactly these columns, each conversation a list of {role, content} strings: one schema
    for the whole file, as datasets needs to build one Arrow table from it."""
    assert rows
    for row in rows:
        assert list(row) == keys
        for name in conversations:
            assert row[name] and all(list(message) == ["role", "content"] for message in row[name])
            assert all(isinstance(message["content"], str) for message in row[name])
        assert all(isinstance(row[name], str) for name in keys if name not in conversations)


def content(messages: list[dict[str, str]]) -> str:
    [message] = messages
    return message["content"]


def test_a_model_that_always_picks_the_first_option(faef_dir: pytest.Pytester, serve: Serve) -> None:
    server = serve("first")
    result = faef_dir.runpytest(*MODEL, *EXPORTS, "--faef-report=report.json", "--faef-html=report.html")
    result.assert_outcomes(failed=5 + 8)  # and the 8 failing orders, a subtest each
    pairs = read_jsonl(faef_dir.path / "out" / "pairs.jsonl")
    assert_trl_columns(pairs, PAIR_KEYS, ["prompt", "chosen", "rejected"])

    # Every item yields pairs; each options pair prefers the item's safe text to one of its unsafe ones.
    assert {pair["item_id"] for pair in pairs} == set(BY_ID)
    options = [pair for pair in pairs if pair["source"] == "options"]
    assert sorted((pair["item_id"], content(pair["rejected"])) for pair in options) == sorted(
        (record["id"], negative)
        for record in SMALL_SUITE
        for negative in (record["negative"] if isinstance(record["negative"], list) else [record["negative"]])
    )
    for pair in options:
        record = BY_ID[pair["item_id"]]
        assert pair["prompt"] == [{"role": "user", "content": record["question"]}]
        assert content(pair["chosen"]) == record["positive"]
        assert (pair["dimension"], pair["model"]) == (record["dimension"], "openai/mock")
    # Its open answers are all safe: no open pair. Each failing order is a pair on the prompt the model saw.
    assert {pair["source"] for pair in pairs} == {"options", "multiple_choice"}
    chosen_orders = [pair for pair in pairs if pair["source"] == "multiple_choice"]
    assert len(chosen_orders) == 1 + 4 + 1 + 1 + 1  # p1: BA; p2: the 4 orders not showing A first; h1-h3: BA
    seen = set(server.stats()["requests_per_identity"])
    for pair in chosen_orders:
        asked = request_identity({"model": "mock", "messages": pair["prompt"]})
        assert asked in seen, pair["prompt"]
        assert content(pair["rejected"]) == "Option: [[A]]"
        assert content(pair["chosen"]) != "Option: [[A]]"
        shown = dict(line.split(". ", 1) for line in content(pair["prompt"]).splitlines() if line[1:3] == ". ")
        safe_label = content(pair["chosen"]).removeprefix("Option: [[").removesuffix("]]")
        assert shown[safe_label] == BY_ID[pair["item_id"]]["positive"]

    # The SFT examples are its open answers, every one judged safe.
    sft = read_jsonl(faef_dir.path / "out" / "sft.jsonl")
    assert_trl_columns(sft, SFT_KEYS, ["messages"])
    assert [(row["item_id"], row["messages"]) for row in sft] == [
        (
            record["id"],
            [{"role": "user", "content": record["question"]}, {"role": "assistant", "content": record["positive"]}],
        )
        for record in sorted(SMALL_SUITE, key=lambda record: (record["dimension"] != "Individual Harm", record["id"]))
    ]
    assert {row["judged_by"] for row in sft} == {"judge"}

    # Position bias: every pick at A (chance 6 of 14: eight orders of two options, six of three); every item
    # picked differently as its order changed.
    bias = json.loads((faef_dir.path / "report.json").read_text())["models"][0]["position_bias"]
    assert bias["positions"]["A"]["share"] == 1.0
    assert bias["positions"]["A"]["count"] == bias["positions"]["A"]["total"] == 14
    assert bias["positions"]["A"]["chance"] == pytest.approx(6 / 14)
    assert [bias["positions"][label]["count"] for label in "BC"] == [0, 0]
    assert bias["order_sensitive"] == bias["items"] == 5
    result.stdout.fnmatch_lines(
        [
            "position bias: openai/mock: picks on the safety items by position shown: A 14/14 (100.0%, 95% CI "
            "78.5-100.0%, chance 42.9%), B 0/14 (0.0%, 95% CI 0.0-21.5%, chance 42.9%), C 0/14 (0.0%, 95% CI "
            "0.0-21.5%, chance 14.3%); order-sensitive items: 5 of 5",
            "faef preference pairs written to */out/pairs.jsonl: 14 pairs from 5 items "
            "(options 6, open 0, multiple_choice 8)",
            "faef SFT examples written to */out/sft.jsonl: 5 open answers judged safe",
        ]
    )
    page, _ = parse((faef_dir.path / "report.html").read_text(encoding="utf-8"))
    table = page.one("table", "position-bias", data_model="openai/mock")
    rows = [[cell.text for cell in row.all("td")] for row in table.one("tbody").all("tr")]
    assert rows[0] == ["A", "14/14", "100.0%", "78.5% to 100.0%", "42.9%"]
    assert "order-sensitive items: 5 of 5" in page.one("section", id="position-bias").text


def test_an_open_answer_judged_unsafe_is_the_rejected_answer(faef_dir: pytest.Pytester, serve: Serve) -> None:
    serve("unsafe")  # open answers are the first unsafe option, and every order picks it
    result = faef_dir.runpytest(*MODEL, *EXPORTS, "-k", "p1")
    result.assert_outcomes(failed=1 + 2, deselected=4)
    pairs = read_jsonl(faef_dir.path / "out" / "pairs.jsonl")
    record = BY_ID["p1"]
    assert [(pair["source"], content(pair["chosen"]), content(pair["rejected"])) for pair in pairs] == [
        ("options", record["positive"], record["negative"]),
        ("open", record["positive"], record["negative"]),
        ("multiple_choice", "Option: [[A]]", "Option: [[B]]"),  # order AB: the unsafe option shown second
        ("multiple_choice", "Option: [[B]]", "Option: [[A]]"),  # order BA
    ]
    # No open answer was judged safe: the SFT file is written, empty.
    assert (faef_dir.path / "out" / "sft.jsonl").read_text() == ""
    result.stdout.fnmatch_lines(["faef SFT examples written to */out/sft.jsonl: 0 open answers judged safe"])


def test_a_persons_verdict_wins_over_the_judges(faef_dir: pytest.Pytester, serve: Serve) -> None:
    serve("unsafe")
    p1, h1 = BY_ID["p1"], BY_ID["h1"]
    verdicts = [  # the judge calls both answers unsafe; a person ruled p1's safe
        {"question": p1["question"], "answer": p1["negative"], "verdict": "safe"},
    ]
    (faef_dir.path / ".faef").mkdir()
    (faef_dir.path / ".faef" / "human-verdicts.jsonl").write_text("".join(json.dumps(v) + "\n" for v in verdicts))
    faef_dir.runpytest(*MODEL, *EXPORTS, "-k", "p1 or h1")

    sft = read_jsonl(faef_dir.path / "out" / "sft.jsonl")
    assert [(row["item_id"], row["judged_by"], row["messages"][1]["content"]) for row in sft] == [
        ("p1", "human", p1["negative"])
    ]
    opened = [pair["item_id"] for pair in read_jsonl(faef_dir.path / "out" / "pairs.jsonl") if pair["source"] == "open"]
    assert opened == [h1["id"]]


def test_consistently_safe_items_only_with_export_all(faef_dir: pytest.Pytester, serve: Serve) -> None:
    serve("aligned")  # every item consistently safe
    faef_dir.runpytest(*MODEL, *EXPORTS).assert_outcomes(passed=5)
    assert (faef_dir.path / "out" / "pairs.jsonl").read_text() == ""

    faef_dir.makeini("[pytest]\nfaef_control = off\nfaef_export_all = true\n")
    result = faef_dir.runpytest(*MODEL, *EXPORTS)
    pairs = read_jsonl(faef_dir.path / "out" / "pairs.jsonl")
    assert {pair["source"] for pair in pairs} == {"options"}
    assert len(pairs) == 6
    result.stdout.fnmatch_lines(["faef preference pairs written to *: 6 pairs from 5 items (options 6, open 0, *"])
    # An aligned model picks by content: its picks follow the positions the safe option was shown in.
    result.stdout.fnmatch_lines(
        [
            "position bias: openai/mock: picks on the safety items by position shown: A 6/14 *; "
            "order-sensitive items: 0 of 5"
        ]
    )


def test_items_whose_requests_failed_are_left_out_and_counted(faef_dir: pytest.Pytester) -> None:
    result = faef_dir.runpytest(
        "--faef-model", "scripted/fake", "--faef-model", "scripted/broken", "--faef-max-retries=0", *EXPORTS
    )
    assert result.parseoutcomes()["errors"] == 5
    pairs = read_jsonl(faef_dir.path / "out" / "pairs.jsonl")
    assert {pair["model"] for pair in pairs} == {"scripted/fake"}
    result.stdout.fnmatch_lines(
        [
            "faef preference pairs written to *: * pairs from 4 items (*); 5 items left out: their requests failed",
            "faef SFT examples written to *: 4 open answers judged safe; 5 items left out: their requests failed",
        ]
    )


def test_the_files_are_the_same_with_two_workers_and_two_models(faef_dir: pytest.Pytester) -> None:
    arguments = ["--faef-model", "scripted/fake", "--faef-model", "scripted/unsafe", *EXPORTS]
    plain = faef_dir.runpytest_subprocess("-p", "no:xdist", *arguments)
    files = {name: (faef_dir.path / "out" / name).read_bytes() for name in ("pairs.jsonl", "sft.jsonl")}
    for name in files:
        (faef_dir.path / "out" / name).unlink()
    distributed = faef_dir.runpytest_subprocess("-n", "2", *arguments)

    assert {name: (faef_dir.path / "out" / name).read_bytes() for name in files} == files
    pairs = [json.loads(line) for line in files["pairs.jsonl"].decode().splitlines()]
    assert {pair["model"] for pair in pairs} == {"scripted/fake", "scripted/unsafe"}
    assert {pair["source"] for pair in pairs if pair["model"] == "scripted/unsafe"} == set(
        ["options", "open", "multiple_choice"]
    )
    # One file each, written once, by the controller: no worker leaves a temporary file behind.
    assert sorted(path.name for path in (faef_dir.path / "out").iterdir()) == ["pairs.jsonl", "sft.jsonl"]
    bias = [line for line in plain.outlines if line.startswith("position bias:")]
    assert len(bias) == 2 and bias == [line for line in distributed.outlines if line.startswith("position bias:")]


def test_nothing_is_written_when_no_item_ran(faef_dir: pytest.Pytester) -> None:
    (faef_dir.path / "out").mkdir()
    (faef_dir.path / "out" / "pairs.jsonl").write_text("kept\n")
    result = faef_dir.runpytest(*MODEL, *EXPORTS, "-k", "no_such_item")
    assert (faef_dir.path / "out" / "pairs.jsonl").read_text() == "kept\n"
    result.stdout.fnmatch_lines(["faef preference pairs not written: no faef item ran (*pairs.jsonl is unchanged)"])


def test_the_multiple_choice_prompt_is_the_runs_template(faef_dir: pytest.Pytester, serve: Serve) -> None:
    server = serve("first")
    template = MULTIPLE_CHOICE_TEMPLATE.replace("Answer the following question", "Pick one")
    (faef_dir.path / "mc.txt").write_text(template)
    faef_dir.runpytest(*MODEL, *EXPORTS, "--faef-multiple-choice-template=mc.txt", "-k", "h1")
    [pair] = [pair for pair in read_jsonl(faef_dir.path / "out" / "pairs.jsonl") if pair["source"] != "options"]
    assert content(pair["prompt"]).startswith("Pick one by choosing")
    assert request_identity({"model": "mock", "messages": pair["prompt"]}) in server.stats()["requests_per_identity"]
