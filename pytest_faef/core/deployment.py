"""The context a model is deployed in (issue 27): its system prompt, earlier turns, and its parameters.

A model in production never answers a bare question: it runs under a system prompt, often after earlier
turns of a conversation, with set sampling parameters. Every one of these decides its replies, so each is
part of a request's identity: a reply given under one system prompt is never replayed for another.

System prompts come from three places, the most specific winning: an item's ``system`` field, the suite's
sidecar file (``NAME.faef.system.txt`` beside ``NAME.faef.jsonl``), and ``--faef-system-prompt=PATH``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The token cap of every request to a model given ``reasoning_effort`` and no ``max_tokens``: a reasoning model
# thinks before it answers, and the caps sized for answers (16 tokens for a choice) would cut it off mid-thought.
REASONING_MAX_TOKENS = 8192
# Wildcard model in ``--faef-model-param``: the parameter applies to every model of the run, the judge too.
ANY_MODEL = "*"
HEADER_PREFIX = "extra_headers."


class DeploymentError(ValueError):
    """A system prompt file or a model parameter that cannot be used; the message names it."""


def digest(text: str) -> str:
    """The SHA-256 of a text, by which requests, the store and reports name a system prompt or a context."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def context_text(context: Sequence[tuple[str, str]]) -> str:
    """A context's canonical JSON: what its digest is taken of, and how the store keeps it."""
    return json.dumps([list(turn) for turn in context], ensure_ascii=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SystemPrompt:
    """A system prompt and where it was read from (a file, or ``path:line`` of the item that gives it)."""

    text: str
    source: str
    # Computed from the text; given only where the text is not known (a run rebuilt from reports, faef merge).
    sha256: str = ""
    characters: int = -1

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", digest(self.text))
        if self.characters < 0:
            object.__setattr__(self, "characters", len(self.text))

    def describe(self) -> dict[str, Any]:
        """How reports name it: its source and digest, never its text (which may be long or confidential)."""
        return {"source": self.source, "sha256": self.sha256, "characters": self.characters}

    @classmethod
    def described(cls, data: Mapping[str, Any]) -> SystemPrompt:
        """The prompt a report describes, without its text."""
        return cls(text="", source=str(data["source"]), sha256=str(data["sha256"]), characters=int(data["characters"]))


def read_system_prompt(path: Path, *, source: str) -> SystemPrompt:
    """A system prompt file: UTF-8 text, not empty. ``source`` names the option or file that points to it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeploymentError(f"{source}: {path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DeploymentError(f"{source}: {path}: byte {exc.start} is not UTF-8; the file must be UTF-8") from None
    except OSError as exc:
        raise DeploymentError(f"{source}: {path}: cannot read: {exc.strerror}") from None
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise DeploymentError(f"{source}: {path}: the system prompt is empty")
    return SystemPrompt(text=text, source=str(path))


def judge_question(question: str, context: Sequence[tuple[str, str]]) -> str:
    """The question as the judge reads it: after the conversation that led to it, when there was one, since an
    answer's safety may depend on it (a jailbreak built over several turns)."""
    if not context:
        return question
    turns = "\n".join(f"{role}: {' '.join(content.split())}" for role, content in context)
    return f"(asked after this conversation)\n{turns}\nuser: {question}"


# Model parameters (``--faef-model-param MODEL:KEY=VALUE``): what each may hold. A number range, a choice of
# words, or a kind; ``extra_headers.NAME`` sends an HTTP header and is no part of the identity.
_FLOAT_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "min_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
    "repeat_penalty": (0.0, 10.0),
}
_INT_MINIMUMS = {"max_tokens": 1, "top_k": 1, "seed": 0}
_WORDS = {"reasoning_effort": ("none", "minimal", "low", "medium", "high")}
KNOWN_PARAMS = (*_FLOAT_RANGES, *_INT_MINIMUMS, *_WORDS, "stop")
# Parameters that are fields of a request of their own (its temperature, token cap, seed); the others travel as
# ``ModelRequest.params``.
_REQUEST_FIELDS = ("temperature", "max_tokens", "seed")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelParams:
    """One model's parameters: those that are request fields, the rest (part of the identity), and headers."""

    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    extra: tuple[tuple[str, Any], ...] = ()  # sorted by name: part of every request's key
    headers: tuple[tuple[str, str], ...] = ()  # sent, never part of the key, never written anywhere

    @property
    def reasoning(self) -> bool:
        """The model is told how hard to reason: its default token caps make room for thinking."""
        return any(name == "reasoning_effort" and value != "none" for name, value in self.extra)

    def cap(self, default: int) -> int:
        """The token cap of a request whose default is ``default``: the model's own, else room to reason."""
        if self.max_tokens is not None:
            return self.max_tokens
        return max(default, REASONING_MAX_TOKENS) if self.reasoning else default

    def describe(self) -> dict[str, Any]:
        """What reports say of them: every value but the headers', which may hold credentials (names only)."""
        values: dict[str, Any] = {
            name: value
            for name, value in (("temperature", self.temperature), ("max_tokens", self.max_tokens), ("seed", self.seed))
            if value is not None
        }
        values.update(self.extra)
        if self.headers:
            values["extra_headers"] = sorted(name for name, _ in self.headers)
        return values

    @classmethod
    def described(cls, data: Mapping[str, Any]) -> ModelParams:
        """The parameters a report describes (headers by name only: their values were never written)."""
        values = {key: value for key, value in data.items() if key != "extra_headers"}
        values.update({HEADER_PREFIX + name: "" for name in data.get("extra_headers", ())})
        return _model_params(values)


def parse_model_params(entries: Sequence[str], *, models: Sequence[str], source: str) -> dict[str, ModelParams]:
    """``MODEL:KEY=VALUE`` entries as each model's parameters; ``*:KEY=VALUE`` applies to every model.

    The model is what precedes the last colon before ``=`` (``ollama/llama3:8b:temperature=0.5`` names
    ``ollama/llama3:8b``). A value is read as JSON when it is JSON (``0.5``, ``["\\n\\n"]``), else as text.
    A later entry for the same model and key wins; a model's own entry wins over ``*``'s.
    """
    by_model: dict[str, dict[str, Any]] = {}
    for text in entries:
        head, equals, raw = text.partition("=")
        model, colon, key = head.strip().rpartition(":")
        model, key = model.strip(), key.strip()
        if not equals or not colon or not model or not key:
            raise DeploymentError(
                f"{source}: {text!r} is not MODEL:KEY=VALUE (e.g. openai/gpt-4o-mini:temperature=0.7, or "
                f"*:max_tokens=4096 for every model)"
            )
        if model != ANY_MODEL and model not in models:
            close = difflib.get_close_matches(model, models, n=1)
            guess = f"; did you mean {close[0]!r}?" if close else ""
            raise DeploymentError(
                f"{source}: {text!r}: {model!r} is neither a model under test nor the judge "
                f"(they are: {', '.join(models) or 'none configured'}; * names them all){guess}"
            )
        by_model.setdefault(model, {})[key] = _param_value(key, raw.strip(), text=text, source=source)
    shared = by_model.pop(ANY_MODEL, {})
    return {model: _model_params({**shared, **by_model.get(model, {})}) for model in models}


def _param_value(key: str, raw: str, *, text: str, source: str) -> Any:
    def bad(message: str) -> DeploymentError:
        return DeploymentError(f"{source}: {text!r}: {key} {message}")

    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    if key.startswith(HEADER_PREFIX):
        name = key[len(HEADER_PREFIX) :]
        if not name or any(character in name for character in " :\t"):
            raise bad("names no HTTP header (write extra_headers.X-Header-Name=value)")
        if not raw:
            raise bad("is empty")
        return raw  # a header is text, whatever it looks like
    if key not in KNOWN_PARAMS:
        close = difflib.get_close_matches(key, [*KNOWN_PARAMS, HEADER_PREFIX + "NAME"], n=1)
        guess = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(KNOWN_PARAMS)
        raise DeploymentError(
            f"{source}: {text!r}: unknown parameter {key!r} (known: {known}, and extra_headers.NAME){guess}"
        )
    if key in _FLOAT_RANGES:
        low, high = _FLOAT_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(f"must be a number, not {raw!r}")
        if not low <= value <= high:
            raise bad(f"must lie between {low:g} and {high:g}, not {raw}")
        return float(value)
    if key in _INT_MINIMUMS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"must be a whole number, not {raw!r}")
        if value < _INT_MINIMUMS[key]:
            raise bad(f"must be at least {_INT_MINIMUMS[key]}, not {raw}")
        return value
    if key in _WORDS:
        if value not in _WORDS[key]:
            raise bad(f"must be one of {', '.join(_WORDS[key])}, not {raw!r}")
        return value
    # stop: one text or a list of texts
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(entry, str) and entry for entry in value):
        return value
    raise bad(f'must be a text or a JSON list of texts, not {raw!r} (e.g. stop=["\\n\\n"])')


def _model_params(values: Mapping[str, Any]) -> ModelParams:
    headers = tuple(
        sorted((key[len(HEADER_PREFIX) :], value) for key, value in values.items() if key.startswith(HEADER_PREFIX))
    )
    extra = tuple(
        sorted(
            (key, value)
            for key, value in values.items()
            if key not in _REQUEST_FIELDS and not key.startswith(HEADER_PREFIX)
        )
    )
    return ModelParams(
        temperature=values.get("temperature"),
        max_tokens=values.get("max_tokens"),
        seed=values.get("seed"),
        extra=extra,
        headers=headers,
    )
