"""Model parameters and system prompt files (issue 27): validated up front, each error naming the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_faef.core.deployment import (
    REASONING_MAX_TOKENS,
    DeploymentError,
    ModelParams,
    judge_question,
    parse_model_params,
    read_system_prompt,
)

MODELS = ["openai/gpt-4o-mini", "ollama/llama3:8b", "openai/judge"]
SOURCE = "--faef-model-param"


def parse(*entries: str) -> dict[str, ModelParams]:
    return parse_model_params(entries, models=MODELS, source=SOURCE)


def test_values_are_read_as_json_and_kept_by_kind() -> None:
    params = parse(
        "openai/gpt-4o-mini:temperature=0.7",
        "openai/gpt-4o-mini:max_tokens=4096",
        "openai/gpt-4o-mini:seed=7",
        "openai/gpt-4o-mini:reasoning_effort=high",
        'openai/gpt-4o-mini:stop=["\\n\\n", "END"]',
    )["openai/gpt-4o-mini"]

    assert (params.temperature, params.max_tokens, params.seed) == (0.7, 4096, 7)
    assert params.extra == (("reasoning_effort", "high"), ("stop", ["\n\n", "END"]))


def test_a_model_name_with_a_colon_is_read_up_to_the_last_colon() -> None:
    assert parse("ollama/llama3:8b:top_k=40")["ollama/llama3:8b"].extra == (("top_k", 40),)


def test_star_applies_to_every_model_and_a_model_s_own_entry_wins() -> None:
    params = parse("*:temperature=0.2", "openai/judge:temperature=0")

    assert params["openai/gpt-4o-mini"].temperature == 0.2
    assert params["openai/judge"].temperature == 0.0


def test_headers_are_sent_but_reported_by_name_only() -> None:
    params = parse("openai/gpt-4o-mini:extra_headers.X-Api-Version=2024-06-01")["openai/gpt-4o-mini"]

    assert params.headers == (("X-Api-Version", "2024-06-01"),)
    assert params.extra == ()
    assert params.describe() == {"extra_headers": ["X-Api-Version"]}


def test_a_description_reads_back_as_the_same_parameters_but_header_values() -> None:
    params = parse("openai/gpt-4o-mini:top_p=0.9", "openai/gpt-4o-mini:seed=3", "*:extra_headers.X-A=secret")[
        "openai/gpt-4o-mini"
    ]

    again = ModelParams.described(params.describe())

    assert again.describe() == params.describe()
    assert again.extra == params.extra and again.seed == 3


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("temperature=0.5", "is not MODEL:KEY=VALUE"),
        ("openai/gpt-4o-mini:temperature", "is not MODEL:KEY=VALUE"),
        ("openai/gpt-4o-mni:temperature=0.5", "did you mean 'openai/gpt-4o-mini'?"),
        ("openai/gpt-4o-mini:temprature=0.5", "unknown parameter 'temprature' (known: *; did you mean 'temperature'?"),
        ("openai/gpt-4o-mini:temperature=hot", "temperature must be a number, not 'hot'"),
        ("openai/gpt-4o-mini:temperature=3", "temperature must lie between 0 and 2, not 3"),
        ("openai/gpt-4o-mini:top_p=true", "top_p must be a number, not 'true'"),
        ("openai/gpt-4o-mini:max_tokens=0", "max_tokens must be at least 1, not 0"),
        ("openai/gpt-4o-mini:max_tokens=1.5", "max_tokens must be a whole number, not '1.5'"),
        ("openai/gpt-4o-mini:reasoning_effort=max", "reasoning_effort must be one of none, minimal, low, medium, high"),
        ("openai/gpt-4o-mini:stop=[]", "stop must be a text or a JSON list of texts"),
        ("openai/gpt-4o-mini:extra_headers.=x", "names no HTTP header"),
        ("openai/gpt-4o-mini:extra_headers.X-A=", "is empty"),
    ],
)
def test_a_bad_entry_is_an_error_that_names_it(entry: str, message: str) -> None:
    with pytest.raises(DeploymentError) as error:
        parse(entry)

    assert str(error.value).startswith(f"{SOURCE}: {entry!r}")
    assert _matches(str(error.value), message)


def _matches(text: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(text, f"*{pattern}*")


def test_reasoning_effort_makes_room_for_thinking_unless_a_cap_is_given() -> None:
    thinking = parse("openai/gpt-4o-mini:reasoning_effort=low")["openai/gpt-4o-mini"]
    capped = parse("openai/gpt-4o-mini:reasoning_effort=low", "openai/gpt-4o-mini:max_tokens=300")["openai/gpt-4o-mini"]

    assert thinking.cap(16) == REASONING_MAX_TOKENS
    assert capped.cap(16) == 300
    assert ModelParams().cap(16) == 16


def test_a_system_prompt_file_is_read_and_named(tmp_path: Path) -> None:
    path = tmp_path / "system.md"
    path.write_text("  You are careful.\r\n", encoding="utf-8")

    prompt = read_system_prompt(path, source="--faef-system-prompt")

    assert prompt.text == "You are careful."
    assert prompt.describe() == {"source": str(path), "sha256": prompt.sha256, "characters": 16}


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"\n  \n", "the system prompt is empty"), (b"caf\xe9", "is not UTF-8")],
)
def test_a_system_prompt_file_that_cannot_be_used_is_named(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "system.txt"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(DeploymentError) as error:
        read_system_prompt(path, source="--faef-system-prompt")

    assert str(error.value).startswith(f"--faef-system-prompt: {path}: ")
    assert message in str(error.value)


def test_the_judge_reads_the_conversation_before_the_question() -> None:
    assert judge_question("Q?", ()) == "Q?"
    assert judge_question("Q?", (("user", "Hi  there."), ("assistant", "Hello."))) == (
        "(asked after this conversation)\nuser: Hi there.\nassistant: Hello.\nuser: Q?"
    )
