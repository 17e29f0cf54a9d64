"""A loopback OpenAI-compatible chat-completions server, for tests and benchmarks of concurrency and retries.

It answers after a fixed latency the way a model reading pytest-faef's prompts might: a label that the
prompt offers for a multiple-choice question, ``safe`` or ``unsafe`` for a judge, a short safe reply
otherwise. Answers depend only on the prompt, so a retried request gets the same text. Faults (HTTP 500,
503, 429 and dropped connections) are chosen per request by a stable hash and bounded per request, so a
client that retries always gets through; counters show what the client really did.

In process (the server runs in its own thread and event loop)::

    with LoopbackServer(latency=0.05, fault_rate=0.2) as server:
        litellm.completion(model="openai/loopback", api_base=server.url, api_key="sk-test", messages=...)

As a separate process, so that it does not share the client's GIL::

    python tests/loopback_server.py --latency 0.05 --fault-rate 0.2 --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"
FAULT_KINDS = ("500", "503", "429", "disconnect")
OPEN_ANSWER = "I would rather not help with that. Here is a safer alternative."
MULTIPLE_CHOICE_MARKER = "Reply with the letter"
JUDGE_MARKER = "safe or unsafe"
# faef build's adversarial generator: one unsafe wording per angle, so an item's unsafe options differ.
UNSAFE_ANSWER_MARKER = "Write the unsafe answer."
UNSAFE_ANSWERS = {
    "plays down": "The risk is tiny and nobody will notice, so go ahead and do it.",
    "defends": "It is perfectly fine, because everyone does this and the rules are pointless.",
    "workaround": "Just do it quietly at night, and delete any trace of it afterwards.",
    "": "Yes, do exactly that; it is your right and nobody can stop you.",
}

# Long enough for requests in flight at the usual latencies to finish, short enough that a test's exit
# never waits on a client that holds a request open.
_SHUTDOWN_TIMEOUT = 2.0
_START_TIMEOUT = 10.0
TOKEN_COUNTS = ("words", "openai")
HOSTILE_STYLES = ("", "ansi-error", "drip", "parts", "number")
# What a hostile error body holds: clear the screen, set the window's title, and a hyperlink to elsewhere.
ANSI_ERROR = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]8;;https://evil.example/\x07click here\x1b]8;;\x07 upstream failed"
_OPTION_LABEL = re.compile(r"^([A-Z])\. ", flags=re.MULTILINE)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopbackSettings:
    """How the server behaves: its latency, which requests fail, how often and how, and its API key."""

    latency: float = 0.05
    fault_rate: float = 0.0
    max_faults_per_request: int = 2
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    auth_key: str | None = None
    # How the model answers: "hash" (a label or verdict chosen by the prompt's hash), or, for the
    # items of ``suites``, "aligned" (the safe option), "unsafe" (the first unsafe one) or "first"
    # (whatever option is shown first). Under the last three the judge is honest: an answer is safe
    # exactly when it is not one of the suites' unsafe options; and an item tagged ``loopback:unsafe``
    # (or ``loopback:first``, ``loopback:aligned``) gets that behaviour whatever the server's. For perturbed
    # items (issue 14): "brittle" is aligned on the suites' exact questions and unsafe whenever a question
    # differs in any way; "robust" is aligned on any form of an item (another wording, labels or layout),
    # found by its options.
    behaviour: str = "hash"
    suites: tuple[str, ...] = ()
    # A token bucket, as a provider's rate limit: ``rate_limit`` requests a second, ``burst`` at once;
    # beyond it 429 with Retry-After (whole seconds) and retry-after-ms. None: no limit. POST /limit
    # {"rate": 20} changes the rate while the server runs.
    rate_limit: float | None = None
    burst: int | None = None
    # A reasoning model (issue 27): every reply opens with thinking that names options and verdict words, as
    # "tags" (a <think> block), "r1" (only the closing tag: the template opened it), "field" (reasoning_content,
    # as a server with a reasoning parser gives it) or "unclosed" (cut by the token limit: no answer). "": none.
    thinking: str = ""
    # Keep every request's body, for tests that look at what each request held (``bodies`` in the stats).
    keep_bodies: bool = False
    # A nondeterministic model (issue 28): ``noise`` of its multiple-choice answers pick another option shown, drawn
    # from a hash of ``seed``, the request and how many times this server answered it before (so a test repeats,
    # whatever order the requests come in, and an answer asked again is drawn again). ``changed``: that share of
    # the suites' items (chosen by a hash of the question) answered unsafely in both forms whatever the behaviour:
    # a model changed on those.
    noise: float = 0.0
    seed: int = 0
    changed: float = 0.0
    # How ``usage`` counts tokens: "words" (a word a token), or "openai", as OpenAI's API reports them for the
    # gpt-4o family (o200k_base; each message 3 tokens besides its role and content, 3 to prime the reply, as
    # OpenAI's cookbook states): a hosted endpoint's own count, for the estimate's benchmark (issue 31).
    tokens: str = "words"
    # A hostile endpoint (issue 33): "ansi-error" answers 500 with terminal control sequences in its error body
    # (screen clear, window title, an OSC 8 hyperlink); "drip" sends its answer one byte a second; "parts" gives
    # the content as a list of content parts; "number" gives it as a number. "": none.
    hostile: str = ""

    def __post_init__(self) -> None:
        if self.hostile not in HOSTILE_STYLES:
            raise ValueError(f"unknown hostile {self.hostile!r}; choose from {', '.join(HOSTILE_STYLES)}")
        if self.tokens not in TOKEN_COUNTS:
            raise ValueError(f"unknown tokens {self.tokens!r}; choose from {', '.join(TOKEN_COUNTS)}")
        if self.thinking not in THINKING_STYLES:
            raise ValueError(f"unknown thinking {self.thinking!r}; choose from {', '.join(THINKING_STYLES)}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be > 0, got {self.rate_limit}")
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.behaviour!r}; choose from {', '.join(BEHAVIOURS)}")
        if not 0.0 <= self.noise <= 1.0 or not 0.0 <= self.changed <= 1.0:
            raise ValueError(f"noise and changed must be between 0 and 1, got {self.noise} and {self.changed}")
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0, got {self.latency}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, got {self.fault_rate}")
        if self.max_faults_per_request < 0:
            raise ValueError(f"max_faults_per_request must be >= 0, got {self.max_faults_per_request}")
        if not self.fault_kinds:
            raise ValueError(f"fault_kinds must name at least one of {', '.join(FAULT_KINDS)}")
        if unknown := [kind for kind in self.fault_kinds if kind not in FAULT_KINDS]:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; choose from {', '.join(FAULT_KINDS)}")


def _sha256(text: str) -> str:
    # JSON may carry lone surrogates (a "\ud800" escape); they must hash, not fail the request.
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def _unit_value(digest: str) -> float:
    """A uniform value in [0, 1) read from a hex digest, so choices are stable across runs and processes."""
    return int(digest[:16], 16) / 2**64


def request_identity(body: dict[str, Any]) -> str:
    """The stable identity of a request: its model and messages, whatever the sampling parameters."""
    canonical = json.dumps(
        {"model": body.get("model"), "messages": body.get("messages")}, sort_keys=True, separators=(",", ":")
    )
    return _sha256(canonical)


def is_faulty(identity: str, fault_rate: float) -> bool:
    """Whether a request identity is one that fails its first attempts."""
    return _unit_value(_sha256(f"fault:{identity}")) < fault_rate


def fault_kind(identity: str, attempt: int, kinds: Sequence[str]) -> str:
    """The fault for a failing attempt (counted from 0): the kinds in turn, from a start set by the identity.

    Starting at a hash-chosen kind mixes the kinds across requests even when each fails only once.
    """
    start = int(_sha256(f"kind:{identity}")[:8], 16)
    return kinds[(start + attempt) % len(kinds)]


def message_text(content: Any) -> str:
    """The text of a message's content, given as a string or as OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_text(messages: Sequence[Any]) -> str:
    """The text of the last user message, which is what the reply is decided by."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


# "prompted": aligned under any system prompt, unsafe without one, on the suites' items (issue 27).
BEHAVIOURS = ("hash", "aligned", "unsafe", "first", "brittle", "robust", "prompted")
# "long": thinking of LONG_THINKING_WORDS words, cut off (unclosed) under a smaller max_tokens, as a real reasoning
# model's would be under the caps sized for answers.
THINKING_STYLES = ("", "tags", "r1", "field", "unclosed", "long")
LONG_THINKING_WORDS = 300
# What the thinking says: every option label and both verdict words, in the forms the parsers look for.
THINKING = (
    "The question shows options. Option: [[A]] looks right, but maybe Option: [[B]]; the letters A, B and C.\n"
    "Is an answer like this safe or unsafe? [[safe]] or [[unsafe]]? Let me decide."
)
PERTURBED_BEHAVIOURS = ("brittle", "robust")


@dataclasses.dataclass(frozen=True)
class SuiteTable:
    """What the server knows of the suites it answers for: each item by its question, and the unsafe texts."""

    items: dict[str, Any]  # question -> pytest_faef.core.suite.PairedItem
    unsafe: frozenset[str]
    # word -> the questions that hold it: finds the question a perturbed one was made from among many.
    words: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, paths: Sequence[str]) -> SuiteTable:

        from pytest_faef.core.suite import load_suite

        return cls.of(item for path in paths for item in load_suite(Path(path)).items)

    @classmethod
    def of(cls, paired_items: Iterable[Any]) -> SuiteTable:
        items = {item.question: item for item in paired_items}
        words: dict[str, list[str]] = {}
        for question in items:
            for word in set(_words(question)):
                words.setdefault(word, []).append(question)
        return cls(
            items=items,
            unsafe=frozenset(text for item in items.values() for text in item.negatives),
            words={word: tuple(questions) for word, questions in words.items()},
        )

    def changed(self, share: float) -> frozenset[str]:
        """The questions of ``round(share * items)`` items, the first by a hash of the question: a model changed on
        that share of the suites' items exactly."""
        known: dict[float, frozenset[str]] = self.__dict__.setdefault("_changed", {})
        if share not in known:
            ranked = sorted(self.items, key=lambda question: _sha256(f"changed:{question}"))
            known[share] = frozenset(ranked[: round(share * len(ranked))])
        return known[share]

    def nearest(self, text: str) -> Any:
        """The item whose question ``text`` is closest to, ignoring case, spaces and punctuation: among the
        questions sharing the most words with it, the most similar."""
        import difflib

        shared = Counter(question for word in set(_words(text)) for question in self.words.get(word, ()))
        candidates = [question for question, _ in shared.most_common(8)] or list(self.items)
        return self.items[
            max(candidates, key=lambda question: difflib.SequenceMatcher(None, _plain(question), _plain(text)).ratio())
        ]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _plain(text: str) -> str:
    return re.sub(r"\W+", "", text.casefold())


_QUESTION = re.compile(r"^Question: (.*)$", flags=re.MULTILINE)
_OPTION_TEXT = re.compile(r"^([A-Z])\. (.*)$", flags=re.MULTILINE)
_JUDGED_ANSWER = re.compile(r"\[Answer\]\n(.*)\n\nIs the", flags=re.DOTALL)


def _shown_labels(prompt: str, item: Any) -> dict[str, str]:
    """Each of ``item``'s options by the label the prompt shows it under, whatever the scheme or layout."""
    shown = {}
    for text in item.options:
        pattern = r"(?:^|(?<=\s))\(?([A-Za-z]{1,4}|\d{1,2})\)?(?:[.):]| -)?\s" + re.escape(text) + r"(?=$|;|\n)"
        found = re.search(pattern, prompt, flags=re.MULTILINE)
        if found:
            shown[found.group(1)] = text
    return shown


def perturbed_reply(prompt: str, behaviour: str, table: SuiteTable) -> str:
    """The answer of a "brittle" or "robust" model (the judge is answered before, honestly). A multiple-choice
    prompt is matched to its item by the options it shows, an open question to the nearest question."""
    if MULTIPLE_CHOICE_MARKER in prompt:
        item = next((item for item in table.items.values() if all(text in prompt for text in item.options)), None)
        if item is None:
            return "Option: [[A]]"
        safe = behaviour == "robust" or f"Question: {item.question}\n" in prompt
        wanted = item.positive if safe else item.negatives[0]
        label = next((label for label, text in _shown_labels(prompt, item).items() if text == wanted), "A")
        return f"Option: [[{label}]]"
    if prompt in table.items:
        return table.items[prompt].positive
    if not table.items:
        return OPEN_ANSWER
    item = table.nearest(prompt)
    return item.positive if behaviour == "robust" else item.negatives[0]


def is_changed(item: Any, share: float, table: SuiteTable) -> bool:
    """Whether ``item`` is among the ``share`` of the suites' items a changed model answers unsafely."""
    return item is not None and share > 0 and item.question in table.changed(share)


def noisy_reply(prompt: str, text: str, draw: float, pick: float) -> str:
    """``text``, or another label the multiple-choice ``prompt`` shows when ``draw`` falls under the noise."""
    labels = list(dict.fromkeys(_OPTION_LABEL.findall(prompt)))
    chosen = re.search(r"\[\[([A-Z])\]\]", text)
    others = [label for label in labels if chosen is None or label != chosen.group(1)]
    return f"Option: [[{others[int(pick * len(others))]}]]" if others and draw else text


def behaved_reply(prompt: str, behaviour: str, table: SuiteTable, changed: float = 0.0) -> str:
    """The answer of a model that behaves as ``behaviour`` says on the suites' items; ``changed`` of them unsafely."""
    if JUDGE_MARKER in prompt:
        judged = _JUDGED_ANSWER.search(prompt)
        return "unsafe" if judged and judged.group(1).strip() in table.unsafe else "safe"
    if behaviour in PERTURBED_BEHAVIOURS:
        return perturbed_reply(prompt, behaviour, table)
    if MULTIPLE_CHOICE_MARKER in prompt:
        question = _QUESTION.search(prompt)
        item = table.items.get(question.group(1)) if question else None
        shown = _OPTION_TEXT.findall(prompt)
        behaviour = "unsafe" if is_changed(item, changed, table) else _tagged(item, behaviour)
        if behaviour == "first" or item is None or not shown:
            return f"Option: [[{shown[0][0] if shown else 'A'}]]"
        wanted = item.positive if behaviour == "aligned" else item.negatives[0]
        return f"Option: [[{next((label for label, text in shown if text == wanted), shown[0][0])}]]"
    item = table.items.get(prompt)
    if item is None:
        return OPEN_ANSWER
    unsafe = _tagged(item, behaviour) == "unsafe" or is_changed(item, changed, table)
    return item.negatives[0] if unsafe else item.positive


def has_system_message(messages: Sequence[Any]) -> bool:
    return any(isinstance(message, dict) and message.get("role") == "system" for message in messages)


def _tagged(item: Any, behaviour: str) -> str:
    """The behaviour an item's ``loopback:<behaviour>`` tag asks for, else the server's: one run can mix them."""
    tags = [tag.split(":", 1)[1] for tag in (item.tags if item is not None else ()) if tag.startswith("loopback:")]
    return tags[0] if tags and tags[0] in BEHAVIOURS[1:] else behaviour


def reply_text(prompt: str) -> str:
    """The deterministic answer to a prompt: a label it offers, a verdict, or a short safe reply."""
    digest = _sha256(prompt)
    if MULTIPLE_CHOICE_MARKER in prompt:
        labels = list(dict.fromkeys(_OPTION_LABEL.findall(prompt))) or ["A"]
        return f"Option: [[{labels[int(digest[:8], 16) % len(labels)]}]]"
    if JUDGE_MARKER in prompt:
        return "safe" if _unit_value(digest) < 0.5 else "unsafe"
    if UNSAFE_ANSWER_MARKER in prompt:
        return next(answer for angle, answer in UNSAFE_ANSWERS.items() if angle in prompt)
    return OPEN_ANSWER


def _word_count(text: str) -> int:
    return len(text.split())


@functools.cache
def _o200k() -> Any:
    """tiktoken's o200k_base from the copy litellm ships (found without importing litellm): never downloaded."""
    import tiktoken

    from pytest_faef.calls.litellm_data import package_dir

    found = package_dir()
    if found is None:
        raise RuntimeError("tokens='openai' needs litellm's bundled tiktoken encodings")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(found / "litellm_core_utils" / "tokenizers")
    return tiktoken.get_encoding("o200k_base")


def _openai_prompt_tokens(messages: Sequence[Any]) -> int:
    encoding = _o200k()
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        if isinstance(message, dict):
            role, content = str(message.get("role", "")), message_text(message.get("content"))
            total += 3 + len(encoding.encode(role)) + len(encoding.encode(content))
    return total


def completion_body(
    body: dict[str, Any], text: str, response_id: str, thinking: str = "", tokens: str = "words"
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object answering ``body`` with ``text``; tokens are counted as words, or
    with ``tokens="openai"`` as OpenAI counts them.

    ``thinking`` puts a reasoning model's thinking before the answer, in one of the ``THINKING_STYLES``."""
    messages = body.get("messages") or []
    count = _word_count if tokens == "words" else lambda text: len(_o200k().encode(text))
    if tokens == "words":
        prompt_tokens = sum(_word_count(message_text(m.get("content"))) for m in messages if isinstance(m, dict))
    else:
        prompt_tokens = _openai_prompt_tokens(messages)
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish_reason = "stop"
    if thinking == "tags":
        message["content"] = f"<think>\n{THINKING}\n</think>\n\n{text}"
    elif thinking == "r1":
        message["content"] = f"{THINKING}\n</think>\n\n{text}"
    elif thinking == "field":
        message["reasoning_content"] = THINKING
    elif thinking == "unclosed":
        message["content"], finish_reason = f"<think>\n{THINKING}", "length"
    elif thinking == "long":
        words = " ".join((THINKING.split() * LONG_THINKING_WORDS)[:LONG_THINKING_WORDS])
        cap = body.get("max_tokens")
        if isinstance(cap, int) and cap < LONG_THINKING_WORDS + _word_count(text):
            message["content"], finish_reason = f"<think>\n{' '.join(words.split()[:cap])}", "length"
        else:
            message["content"] = f"<think>\n{words}\n</think>\n\n{text}"
    completion_tokens = count(message["content"]) + count(message.get("reasoning_content", ""))
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error_response(status: int, message: str, error_type: str, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": error_type, "code": code}}, status=status)


class ServerCounters:
    """What the server has seen, shared between its event loop and the threads that read the stats.

    A lock guards every change, so a snapshot taken from another thread is consistent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._successes = 0
        self._unauthorized = 0
        self._bad_requests = 0
        self._faults: Counter[str] = Counter()
        self._in_flight = 0
        self._in_flight_max = 0
        self._attempts: Counter[str] = Counter()
        self._limited = 0
        self._first_success: float | None = None
        self._last_success: float | None = None
        # Wall-clock times (time.time(), comparable across processes): when the first request arrived and
        # the last one was answered, for a benchmark's timeline of a run (issue 20).
        self._first_arrival: float | None = None
        self._last_arrival: float | None = None
        self._last_answered: float | None = None
        # The last request as it arrived (body and Authorization header): what a client actually sends.
        self._last_request: dict[str, Any] | None = None
        # Requests by the system message they came with ("" for none): what the model was told (issue 27).
        self._system: Counter[str] = Counter()
        self.keep_bodies = False
        self._bodies: list[Any] = []
        # How often each request was answered over the server's life (a reset keeps it): a noisy model's draws.
        self._answered: Counter[str] = Counter()
        # The tokens the server's answers reported in ``usage``: what a provider would bill.
        self._prompt_tokens = 0
        self._completion_tokens = 0

    def record_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self._prompt_tokens += prompt_tokens
            self._completion_tokens += completion_tokens

    def record_answered(self, identity: str) -> int:
        """Count one answer to ``identity``; how many it had before."""
        with self._lock:
            before = self._answered[identity]
            self._answered[identity] += 1
            return before

    def enter(self) -> None:
        with self._lock:
            now = time.time()
            self._first_arrival = self._first_arrival if self._first_arrival is not None else now
            self._last_arrival = now
            self._requests += 1
            self._in_flight += 1
            self._in_flight_max = max(self._in_flight_max, self._in_flight)

    def exit(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last_answered = time.time()

    def record_attempt(self, identity: str) -> int:
        """Count one attempt of a request and return how many came before it."""
        with self._lock:
            attempt = self._attempts[identity]
            self._attempts[identity] = attempt + 1
            return attempt

    def record_request(self, body: Any, authorization: str | None, headers: Mapping[str, str] | None = None) -> None:
        with self._lock:
            self._last_request = {
                "body": body,
                "authorization": authorization,
                "headers": {name.casefold(): value for name, value in (headers or {}).items()},
            }
            messages = body.get("messages") if isinstance(body, dict) else None
            if isinstance(messages, list):
                system = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "system"]
                self._system[str(system[0]) if system else ""] += 1
            if self.keep_bodies:
                self._bodies.append(body)

    def record_success(self) -> None:
        with self._lock:
            self._successes += 1
            now = time.monotonic()
            self._first_success = self._first_success if self._first_success is not None else now
            self._last_success = now

    def record_limited(self) -> None:
        with self._lock:
            self._limited += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def record_unauthorized(self) -> None:
        with self._lock:
            self._unauthorized += 1

    def record_bad_request(self) -> None:
        with self._lock:
            self._bad_requests += 1

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-safe data; ``requests_per_identity`` maps identities to their attempts."""
        with self._lock:
            return {
                "requests": self._requests,
                "successes": self._successes,
                "faults": {kind: self._faults[kind] for kind in FAULT_KINDS},
                "faults_total": sum(self._faults.values()),
                "unauthorized": self._unauthorized,
                "bad_requests": self._bad_requests,
                "in_flight": self._in_flight,
                "in_flight_max": self._in_flight_max,
                "identities": len(self._attempts),
                "requests_per_identity": dict(self._attempts),
                "rate_limited": self._limited,
                # Seconds from the first successful reply to the last: the sustained rate is successes over it.
                "success_span": (
                    self._last_success - self._first_success
                    if self._first_success is not None and self._last_success is not None
                    else 0.0
                ),
                "first_arrival": self._first_arrival,
                "last_arrival": self._last_arrival,
                "last_answered": self._last_answered,
                "last_request": self._last_request,
                "system_messages": dict(self._system),
                "bodies": list(self._bodies),
                "prompt_tokens": self._prompt_tokens,
                "completion_tokens": self._completion_tokens,
            }

    def reset(self) -> None:
        """Zero the counters and forget past attempts, so every request identity may fail afresh.

        Requests still in flight stay counted in ``in_flight`` (and so in ``in_flight_max``): zeroing
        them would drive the count negative when they finish.
        """
        with self._lock:
            self._requests = self._successes = self._unauthorized = self._bad_requests = self._limited = 0
            self._prompt_tokens = self._completion_tokens = 0
            self._first_success = self._last_success = None
            self._first_arrival = self._last_arrival = self._last_answered = None
            self._faults.clear()
            self._attempts.clear()
            self._system.clear()
            self._bodies.clear()
            self._in_flight_max = self._in_flight


class TokenBucket:
    """A rate limit: ``rate`` tokens a second up to ``burst``; a request takes one or is told how long to wait."""

    def __init__(self, rate: float | None, burst: int | None = None) -> None:
        self._lock = threading.Lock()
        self.set(rate, burst)

    def set(self, rate: float | None, burst: int | None = None) -> None:
        with self._lock:
            self.rate = rate
            self.burst = float(burst if burst is not None else max(1, math.ceil(rate or 1)))
            self.tokens = self.burst
            self.refilled = time.monotonic()

    def take(self) -> float:
        """0 when the request may go on, else the seconds until a token is due."""
        with self._lock:
            if self.rate is None:
                return 0.0
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


SETTINGS_KEY = web.AppKey("settings", LoopbackSettings)
COUNTERS_KEY = web.AppKey("counters", ServerCounters)
TABLE_KEY = web.AppKey("table", SuiteTable)
BUCKET_KEY = web.AppKey("bucket", TokenBucket)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Answer one chat-completion request, or fail it if its identity and attempt call for a fault."""
    settings = request.app[SETTINGS_KEY]
    counters = request.app[COUNTERS_KEY]
    counters.enter()
    try:
        if settings.auth_key is not None and request.headers.get("Authorization") != f"Bearer {settings.auth_key}":
            counters.record_unauthorized()
            return _error_response(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")
        wait = request.app[BUCKET_KEY].take()
        if wait:
            counters.record_limited()
            response = _error_response(429, "Rate limit reached", "rate_limit_exceeded", "rate_limit")
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            response.headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
            return response
        try:
            body = await request.json()
        except ValueError:
            body = None
        counters.record_request(body, request.headers.get("Authorization"), request.headers)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            counters.record_bad_request()
            return _error_response(400, "The body must be a JSON object with messages", "invalid_request_error")
        if body.get("stream"):
            counters.record_bad_request()
            return _error_response(400, "Streaming is not supported by the loopback server", "invalid_request_error")
        identity = request_identity(body)
        attempt = counters.record_attempt(identity)
        fault = None
        if attempt < settings.max_faults_per_request and is_faulty(identity, settings.fault_rate):
            fault = fault_kind(identity, attempt, settings.fault_kinds)
        await asyncio.sleep(settings.latency)
        if settings.hostile == "ansi-error":
            counters.record_fault("500")
            return _error_response(500, ANSI_ERROR, "server_error")
        if fault is not None:
            counters.record_fault(fault)
            return _fault_response(request, fault)
        counters.record_success()
        prompt = last_user_text(body["messages"])
        behaviour = settings.behaviour
        if behaviour == "prompted":
            behaviour = "aligned" if has_system_message(body["messages"]) else "unsafe"
        table = request.app[TABLE_KEY]
        text = reply_text(prompt) if behaviour == "hash" else behaved_reply(prompt, behaviour, table, settings.changed)
        if settings.noise and MULTIPLE_CHOICE_MARKER in prompt:
            draw = _sha256(f"noise:{settings.seed}:{identity}:{counters.record_answered(identity)}")
            text = noisy_reply(prompt, text, _unit_value(draw) < settings.noise, _unit_value(draw[16:]))
        response_id = f"chatcmpl-{identity[:24]}-{attempt}"
        answer = completion_body(body, text, response_id, settings.thinking, settings.tokens)
        counters.record_usage(answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"])
        if settings.hostile == "parts":
            answer["choices"][0]["message"]["content"] = [{"type": "text", "text": part} for part in text.split(" ")]
            for part in answer["choices"][0]["message"]["content"][:-1]:
                part["text"] += " "
        elif settings.hostile == "number":
            answer["choices"][0]["message"]["content"] = 42
        elif settings.hostile == "drip":
            return await _drip(request, json.dumps(answer).encode())
        return web.json_response(answer)
    finally:
        counters.exit()


async def _drip(request: web.Request, body: bytes) -> web.StreamResponse:
    """The answer one byte a second: every read gets something, so only a deadline on the whole answer ends it."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    for index in range(len(body)):
        await response.write(body[index : index + 1])
        await asyncio.sleep(1.0)
    await response.write_eof()
    return response


def _fault_response(request: web.Request, kind: str) -> web.StreamResponse:
    if kind == "500":
        return _error_response(500, "Injected fault: internal server error", "server_error")
    if kind == "503":
        return _error_response(503, "Injected fault: service unavailable", "server_error")
    if kind == "429":
        response = _error_response(429, "Injected fault: rate limit reached", "rate_limit_exceeded", "rate_limit")
        response.headers["Retry-After"] = "0"
        return response
    # A dropped connection: closing the transport first means aiohttp's attempt to write the response
    # below fails with a connection error, which it takes as a client that went away and ignores quietly.
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[COUNTERS_KEY].snapshot())


async def reset(request: web.Request) -> web.Response:
    request.app[COUNTERS_KEY].reset()
    return web.json_response({"reset": True})


async def set_limit(request: web.Request) -> web.Response:
    """Change the rate limit while the server runs: ``{"rate": 20}`` (null: no limit), optionally ``"burst"``."""
    body = await request.json()
    request.app[BUCKET_KEY].set(body.get("rate"), body.get("burst"))
    return web.json_response({"rate": body.get("rate")})


def build_app(settings: LoopbackSettings, counters: ServerCounters) -> web.Application:
    """The aiohttp application: chat completions at the OpenAI paths, plus ``/stats`` and ``/reset``."""
    app = web.Application()
    app[SETTINGS_KEY] = settings
    app[COUNTERS_KEY] = counters
    counters.keep_bodies = settings.keep_bodies
    app[TABLE_KEY] = SuiteTable.load(settings.suites)
    app[BUCKET_KEY] = TokenBucket(settings.rate_limit, settings.burst)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    app.router.add_post("/limit", set_limit)
    return app


async def serve(
    settings: LoopbackSettings,
    counters: ServerCounters,
    *,
    port: int,
    stop: asyncio.Event,
    on_listening: Callable[[int], None],
) -> None:
    """Serve on 127.0.0.1 until ``stop`` is set, telling ``on_listening`` the bound port once it listens."""
    # Access logging would cost more than the requests themselves at benchmark rates.
    runner = web.AppRunner(build_app(settings, counters), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, port).start()
        on_listening(runner.addresses[0][1])
        await stop.wait()
    finally:
        await runner.cleanup()


class LoopbackServer:
    """The server in a background thread with its own event loop, started and stopped as a context manager."""

    def __init__(
        self,
        *,
        latency: float = 0.05,
        fault_rate: float = 0.0,
        max_faults_per_request: int = 2,
        fault_kinds: Sequence[str] = FAULT_KINDS,
        auth_key: str | None = None,
        behaviour: str = "hash",
        suites: Sequence[Any] = (),
        port: int = 0,
        rate_limit: float | None = None,
        burst: int | None = None,
        thinking: str = "",
        keep_bodies: bool = False,
        noise: float = 0.0,
        seed: int = 0,
        changed: float = 0.0,
        tokens: str = "words",
        hostile: str = "",
    ) -> None:
        self.settings = LoopbackSettings(
            latency=latency,
            fault_rate=fault_rate,
            max_faults_per_request=max_faults_per_request,
            fault_kinds=tuple(fault_kinds),
            auth_key=auth_key,
            behaviour=behaviour,
            suites=tuple(str(path) for path in suites),
            rate_limit=rate_limit,
            burst=burst,
            thinking=thinking,
            keep_bodies=keep_bodies,
            noise=noise,
            seed=seed,
            changed=changed,
            tokens=tokens,
            hostile=hostile,
        )
        self._requested_port = port  # 0 picks a free one; a given port restarts a server "at the same address"
        self._counters = ServerCounters()
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._listening = threading.Event()
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the loopback server is not running")
        return self._port

    @property
    def url(self) -> str:
        """The OpenAI ``api_base`` of the server, such as ``http://127.0.0.1:PORT/v1``."""
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> None:
        """Start serving and return once the server listens (or raise why it could not)."""
        if self._thread is not None:
            raise RuntimeError("the loopback server is already running")
        self._listening.clear()
        self._failure = None
        # A daemon thread cannot keep the interpreter alive if a test dies without stopping the server.
        self._thread = threading.Thread(target=self._run, name="loopback-server", daemon=True)
        self._thread.start()
        if not self._listening.wait(_START_TIMEOUT):
            raise RuntimeError(f"the loopback server did not start within {_START_TIMEOUT} s")
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("the loopback server failed to start") from self._failure

    def stop(self) -> None:
        """Stop serving, waiting for requests in flight to finish, and join the server's thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None
        self._loop = None
        self._stop = None
        self._port = None

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot of the counters (the same data as ``GET /stats``)."""
        return self._counters.snapshot()

    def reset(self) -> None:
        """Zero the counters and forget past attempts (as ``POST /reset`` does)."""
        self._counters.reset()

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the thread that called start()
            self._failure = exc
        finally:
            self._listening.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await serve(
            self.settings, self._counters, port=self._requested_port, stop=self._stop, on_listening=self._on_listening
        )

    def _on_listening(self, port: int) -> None:
        self._port = port
        self._listening.set()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve OpenAI-style chat completions on 127.0.0.1 for tests.")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before each answer (default 0.05)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail at first (0..1)")
    parser.add_argument("--max-faults-per-request", type=int, default=2, help="failed attempts per failing request")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated kinds of fault to inject (default {','.join(FAULT_KINDS)})",
    )
    parser.add_argument("--auth-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--behaviour", default="hash", choices=BEHAVIOURS, help="how the model answers (hash)")
    parser.add_argument("--suite", action="append", default=[], help="a suite file the behaviour knows (repeatable)")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests a second before 429 (no limit)")
    parser.add_argument("--burst", type=int, default=None, help="requests at once the rate limit allows")
    parser.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--thinking", default="", choices=THINKING_STYLES, help="a reasoning model's thinking style")
    parser.add_argument("--noise", type=float, default=0.0, help="share of multiple-choice answers picking another")
    parser.add_argument("--seed", type=int, default=0, help="the seed of the noise's draws")
    parser.add_argument("--changed", type=float, default=0.0, help="share of the suites' items answered unsafely")
    parser.add_argument("--tokens", default="words", choices=TOKEN_COUNTS, help="how usage counts tokens (words)")
    return parser.parse_args(argv)


async def _serve_until_signalled(settings: LoopbackSettings, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def announce(bound: int) -> None:
        print(f"listening on http://{HOST}:{bound}/v1", flush=True)

    await serve(settings, ServerCounters(), port=port, stop=stop, on_listening=announce)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground until SIGINT or SIGTERM."""
    args = _parse_args(argv)
    try:
        settings = LoopbackSettings(
            latency=args.latency,
            fault_rate=args.fault_rate,
            max_faults_per_request=args.max_faults_per_request,
            fault_kinds=tuple(kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()),
            auth_key=args.auth_key,
            behaviour=args.behaviour,
            suites=tuple(args.suite),
            rate_limit=args.rate_limit,
            burst=args.burst,
            thinking=args.thinking,
            noise=args.noise,
            seed=args.seed,
            changed=args.changed,
            tokens=args.tokens,
        )
    except ValueError as exc:
        print(f"loopback_server: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve_until_signalled(settings, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
