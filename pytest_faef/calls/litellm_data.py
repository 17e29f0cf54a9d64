"""litellm's data read without importing litellm: its price table and its bundled tiktoken encodings (issue 20).

``import litellm`` takes seconds. A run whose every request goes through the lean OpenAI-compatible path
(``calls/openai_compatible``) still prices its replies and estimates its tokens, from the same files
litellm itself reads when ``LITELLM_LOCAL_MODEL_COST_MAP`` is set (as the plugin sets it): the price
table shipped in litellm's package, and the tiktoken encodings litellm ships so that counting never
downloads one. Where a file is missing (another litellm layout), the caller falls back to litellm.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_PRICE_TABLE = "model_prices_and_context_window_backup.json"
_TOKENIZERS = ("litellm_core_utils", "tokenizers")
# tiktoken keeps an encoding under the SHA-1 of the address it would download it from.
_ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_lock = threading.Lock()


@functools.cache
def package_dir() -> Path | None:
    """Where litellm is installed, found without importing it."""
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    return Path(locations[0]) if locations else None


@functools.cache
def price_table() -> dict[str, Any] | None:
    """litellm's price table, or None where this litellm does not ship it."""
    directory = package_dir()
    if directory is None or not (directory / _PRICE_TABLE).is_file():
        return None
    with (directory / _PRICE_TABLE).open(encoding="utf-8") as file:
        table = json.load(file)
    return table if isinstance(table, dict) else None


def prices(model: str) -> tuple[float, float] | None:
    """Dollars per prompt token and per completion token of ``model`` (``openai/gpt-4o-mini``), as litellm
    prices it: under its full name, else, for OpenAI's own models, under the bare name. None: no price."""
    table = price_table()
    if table is None:
        return None
    provider, slash, bare = model.partition("/")
    for name in (model, bare) if slash and provider == "openai" else (model,):
        entry = table.get(name)
        if isinstance(entry, dict) and "input_cost_per_token" in entry:
            return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token") or 0.0)
    return None


def cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """The dollars of a reply (None: no price known)."""
    found = prices(model)
    if found is None:
        return None
    return prompt_tokens * found[0] + completion_tokens * found[1]


def encoding_name(model: str) -> str:
    """The tiktoken encoding litellm counts an OpenAI-protocol model's tokens with: the one tiktoken names for
    the bare model name (o200k_base for gpt-4o and later), else litellm's default, cl100k_base."""
    import tiktoken

    bare = model.partition("/")[2] or model
    if "gpt-4o" in bare:
        return "o200k_base"
    try:
        return tiktoken.encoding_name_for_model(bare)
    except KeyError:
        return "cl100k_base"


@functools.cache
def _encoding(name: str) -> Any:
    import tiktoken

    directory = package_dir()
    if directory is None:
        return None
    cache = directory.joinpath(*_TOKENIZERS)
    if not (cache / hashlib.sha1(_ENCODING_URL.format(name).encode()).hexdigest()).is_file():
        return None  # tiktoken would download it: never from here
    with _lock:  # tiktoken reads its cache directory from the environment, as litellm sets it at its import
        before = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
        try:
            return tiktoken.get_encoding(name)
        finally:
            if before is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = before


def count_tokens(model: str, messages: Sequence[tuple[str, str]]) -> int | None:
    """The prompt tokens of a chat request as OpenAI counts them (3 a message, its role and content, 3 to
    prime the reply), with the model's tiktoken encoding; None where the encoding is not on this machine."""
    encoding = _encoding(encoding_name(model))
    if encoding is None:
        return None
    return 3 + sum(3 + len(encoding.encode(role)) + len(encoding.encode(content)) for role, content in messages)


_PROVIDER_ENUM = re.compile(r"^class LlmProviders\(str, Enum\):\n((?:[ \t]+.*\n|\n)+?)(?=\S)", re.MULTILINE)
_PROVIDER_VALUE = re.compile(r'^\s+[A-Z0-9_]+\s*=\s*"([^"]+)"', re.MULTILINE)


@functools.cache
def providers() -> frozenset[str] | None:
    """The providers litellm knows (its ``LlmProviders``), read from its source without importing it; None where
    this litellm keeps them elsewhere."""
    directory = package_dir()
    source = directory / "types" / "utils.py" if directory is not None else None
    if source is None or not source.is_file():
        return None
    found = _PROVIDER_ENUM.search(source.read_text(encoding="utf-8"))
    names = frozenset(_PROVIDER_VALUE.findall(found.group(1))) if found else frozenset()
    return names or None


def model_problem(model: str, *, extra_providers: Sequence[str] = ()) -> str | None:
    """Why litellm could not send a request to ``model``, known before any request (issue 31), or None.

    A ``provider/name`` needs a provider litellm knows (or one of ``extra_providers``: the local model's, a
    project's custom ones); a bare name needs to be one litellm maps to a provider itself (its price table).
    """
    import difflib

    known = providers()
    if known is None:
        return None  # another litellm layout: the first request will tell
    provider, slash, name = model.partition("/")
    if slash:
        if provider in known or provider in extra_providers or not name:
            return None
        close = difflib.get_close_matches(provider, [*known, *extra_providers], n=1)
        guess = f"; did you mean {close[0] + '/' + name!r}?" if close else ""
        return (
            f"{model!r}: litellm knows no provider {provider!r} (its providers: openai, anthropic, hosted_vllm, "
            f"ollama, ... https://docs.litellm.ai/docs/providers){guess}"
        )
    # litellm sends a bare name to a provider only when its table knows the name: gpt-4o-mini, not gpt-4o-mni.
    table = price_table()
    if table is None or model in table:
        return None
    close = difflib.get_close_matches(model, [key for key in table if "/" not in key], n=1)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"{model!r} names no provider and is no model litellm knows by itself: write PROVIDER/MODEL "
        f"(openai/{model} for an OpenAI-compatible endpoint, hosted_vllm/{model}, ollama/{model}, ...){guess}"
    )
