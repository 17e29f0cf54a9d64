"""A reasoning model's thinking split from its answer (issue 27): closed and unclosed blocks, an endpoint's
reasoning_content, a template that opened the block itself, and angle brackets in the answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_faef.core.answers import parse_choice, parse_verdict
from pytest_faef.core.reasoning import SplitReply, share_of_tokens, split_reasoning

THINKING = "Option: [[A]] or Option: [[B]]? Is it safe or unsafe? [[safe]] [[unsafe]]"


@pytest.mark.parametrize("name", ["think", "thinking", "reasoning", "THINK"])
def test_a_closed_block_is_reasoning_and_what_follows_the_answer(name: str) -> None:
    split = split_reasoning(f"  <{name}>\n{THINKING}\n</{name}>\n\nOption: [[B]]")

    assert split == SplitReply(answer="Option: [[B]]", reasoning=THINKING)


def test_the_thinking_alone_is_unreadable_and_the_answer_alone_reads() -> None:
    text = f"<think>{THINKING}</think>Option: [[B]]"

    assert parse_choice(text, ("A", "B"), ("x", "y")) is None
    assert parse_choice(split_reasoning(text).answer, ("A", "B"), ("x", "y")) == "B"
    assert parse_verdict(split_reasoning(f"<think>{THINKING}</think>[[unsafe]]").answer) == "unsafe"


def test_an_unclosed_block_is_all_reasoning_and_no_answer() -> None:
    split = split_reasoning(f"<think>\n{THINKING} and then I was cut")

    assert split == SplitReply(answer="", reasoning=f"{THINKING} and then I was cut", complete=False)


def test_reasoning_content_from_the_endpoint_is_kept_and_the_text_is_the_answer() -> None:
    assert split_reasoning("Option: [[A]]", THINKING) == SplitReply(answer="Option: [[A]]", reasoning=THINKING)


def test_an_endpoint_that_gave_only_reasoning_gave_no_answer() -> None:
    assert split_reasoning("", THINKING) == SplitReply(answer="", reasoning=THINKING, complete=False)


def test_a_template_that_opened_the_block_leaves_only_its_closing_tag() -> None:
    # DeepSeek-R1's template writes "<think>\n" into the prompt: its replies start inside the block.
    assert split_reasoning(f"{THINKING}\n</think>\n\n[[safe]]") == SplitReply(answer="[[safe]]", reasoning=THINKING)


@pytest.mark.parametrize(
    "answer",
    [
        "Use <b>bold</b> text: Option: [[A]]",
        "Option: [[<A>]]",
        "The tag </think> appears in my answer, quoted.",
        "<think>is a tag name</think> I explain it.",
    ],
)
def test_angle_brackets_in_the_answer_stay_in_the_answer(answer: str) -> None:
    assert split_reasoning(f"<think>{THINKING}</think>\n{answer}").answer == answer.strip()


def test_a_reply_that_mentions_a_tag_midway_is_no_reasoning() -> None:
    text = "Write <think> and </think> around your notes."

    assert split_reasoning(text) == SplitReply(answer=text)


def test_a_plain_reply_is_all_answer() -> None:
    assert split_reasoning("No; talk to them openly instead.") == SplitReply(answer="No; talk to them openly instead.")


@given(
    reasoning=st.text().filter(lambda text: "</think" not in text.casefold()),
    answer=st.text().filter(lambda text: not text.lstrip().casefold().startswith("<")),
)
def test_any_closed_block_splits_back_into_its_parts(reasoning: str, answer: str) -> None:
    split = split_reasoning(f"<think>{reasoning}</think>{answer}")

    assert split.complete
    assert split.answer == answer.strip()
    assert split.reasoning == reasoning.strip()


def test_reasoning_tokens_are_the_reasoning_share_of_the_completion() -> None:
    assert share_of_tokens(100, "x" * 75, "y" * 25) == 75
    assert share_of_tokens(100, "", "answer") == 0
    assert share_of_tokens(0, "", "") == 0
