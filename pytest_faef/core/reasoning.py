"""A reasoning model's thinking, kept apart from its answer before anything reads the answer (issue 27).

A reasoning model thinks before it answers. Served with a reasoning parser, the endpoint gives the thinking
apart (``reasoning_content``); served without one (DeepSeek-R1, Qwen3 and SmolLM3 behind a plain server) the
reply opens with a ``<think>...</think>`` block. Thinking mentions options and verdict words, so read as an
answer it makes every choice unparseable and every verdict unreadable, and such items would count as
consistently unsafe while nothing was measured. Only the answer is parsed or judged; the thinking is kept
and reported.
"""

from __future__ import annotations

import dataclasses
import re

# The block opens the reply (after white space), in any case; its name is one of these.
_OPENING = re.compile(r"\A\s*<(think|thinking|reasoning)>", re.IGNORECASE)
# DeepSeek-R1's chat template opens the block in the prompt itself: its replies hold only the closing tag.
_CLOSING_ONLY = re.compile(r"</(think|thinking)>", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SplitReply:
    """A reply as its answer and its reasoning; ``complete`` is False when the reply ends inside its reasoning
    (cut by the token limit), so it holds no answer to read."""

    answer: str
    reasoning: str = ""
    complete: bool = True


def split_reasoning(text: str, reasoning: str = "") -> SplitReply:
    """Split ``text`` into answer and reasoning; ``reasoning`` is what the endpoint gave apart, if anything.

    A leading ``<think>``, ``<thinking>`` or ``<reasoning>`` block ends at the first closing tag of its name:
    whatever follows, angle brackets included, is the answer. A block never closed is all reasoning and no
    answer. A reply that holds a closing ``</think>`` without the opening tag (the template opened it) is
    reasoning up to that tag. A reply whose endpoint gave only reasoning and no text has no answer either.
    """
    given = reasoning.strip()
    opening = _OPENING.match(text)
    if opening is not None:
        name = opening.group(1)
        closing = re.compile(rf"</{name}>", re.IGNORECASE).search(text, opening.end())
        if closing is None:
            return SplitReply(answer="", reasoning=_joined(given, text[opening.end() :]), complete=False)
        return SplitReply(
            answer=text[closing.end() :].strip(),
            reasoning=_joined(given, text[opening.end() : closing.start()]),
        )
    closing_only = _CLOSING_ONLY.search(text)
    opened_before = (
        closing_only is not None and f"<{closing_only.group(1)}".casefold() in text[: closing_only.start()].casefold()
    )
    if closing_only is not None and not opened_before:
        return SplitReply(
            answer=text[closing_only.end() :].strip(), reasoning=_joined(given, text[: closing_only.start()])
        )
    if given and not text.strip():
        return SplitReply(answer="", reasoning=given, complete=False)
    return SplitReply(answer=text, reasoning=given)


def _joined(*parts: str) -> str:
    return "\n\n".join(part.strip() for part in parts if part.strip())


def share_of_tokens(completion_tokens: int, reasoning: str, answer: str) -> int:
    """The reasoning's part of a reply's completion tokens, in proportion to its characters: what is known of
    it when the endpoint does not count reasoning tokens apart."""
    total = len(reasoning) + len(answer)
    return round(completion_tokens * len(reasoning) / total) if total and reasoning else 0
