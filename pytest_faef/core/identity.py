"""Which model answers a request: the endpoint it is sent to and the model's revision (issue 11).

A model name alone does not say who answers: the same ``openai/mock`` served at another address, a
new checkpoint behind the same vLLM endpoint, or a GGUF file rebuilt at the same path are other
models. The endpoint and the revision are part of every request's identity, so a reply stored for
one is never replayed for another.

The endpoint is the api base litellm would use, read here from the same environment variables in
the same order, without importing litellm; the plugin then passes it to litellm explicitly, so the
request goes exactly where its key says. Providers with a fixed endpoint have none. The revision is
given by the user (``--faef-revision MODEL=REV``) or, for ``faef-local/...`` GGUF files, a digest
of the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping

LOCAL_PROVIDER = "faef-local"

# Provider prefix -> the variables litellm reads its api base from, in litellm's order of precedence.
# Any other provider ``x`` is looked up as ``X_API_BASE`` then ``X_BASE_URL``, litellm's convention.
_ENDPOINT_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "text-completion-openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "azure": ("AZURE_API_BASE",),
    "azure_ai": ("AZURE_AI_API_BASE",),
    "anthropic": ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
    "hosted_vllm": ("HOSTED_VLLM_API_BASE",),
    "ollama": ("OLLAMA_API_BASE",),
    "ollama_chat": ("OLLAMA_API_BASE",),
    "openai_like": ("OPENAI_LIKE_API_BASE",),
    "together_ai": ("TOGETHER_AI_API_BASE",),
    "vertex_ai": ("VERTEXAI_API_BASE", "VERTEX_API_BASE"),
    "lm_studio": ("LM_STUDIO_API_BASE",),
}
# Model names without a provider prefix that litellm sends to a known provider.
_BARE_PREFIXES = (
    (("gpt-", "chatgpt-", "o1", "o3", "o4", "ft:gpt", "text-embedding", "davinci", "babbage"), "openai"),
    (("claude",), "anthropic"),
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelIdentity:
    """Where a model is served and which revision it is; ``None`` where there is nothing to tell."""

    endpoint: str | None = None
    revision: str | None = None

    def describe(self) -> str:
        """``at http://host:8000/v1, revision abc123`` (empty when neither is known)."""
        parts = []
        if self.endpoint:
            parts.append(f"at {self.endpoint}")
        if self.revision:
            parts.append(f"revision {self.revision}")
        return ", ".join(parts)


class RevisionError(ValueError):
    """A ``--faef-revision`` value that cannot be used; the message names it."""


def provider(model: str) -> str | None:
    """The litellm provider a model name goes to, where it can be told without litellm."""
    prefix, slash, _ = model.partition("/")
    if slash:
        return prefix
    for prefixes, name in _BARE_PREFIXES:
        if model.startswith(prefixes):
            return name
    return None


def endpoint(model: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The api base litellm would send ``model``'s requests to, from its environment variables.

    Credentials in the address (``user:password@``, a query string) are dropped: the endpoint is
    stored and reported, and keys must never be.
    """
    environ = os.environ if environ is None else environ
    name = provider(model)
    if name is None or name == LOCAL_PROVIDER:
        return None
    upper = name.upper().replace("-", "_")
    variables = _ENDPOINT_VARIABLES.get(name, (f"{upper}_API_BASE", f"{upper}_BASE_URL"))
    for variable in variables:
        value = environ.get(variable, "").strip()
        if value:
            return normalized_endpoint(value)
    return None


def normalized_endpoint(url: str) -> str:
    """``https://user:key@Host:8000/v1/?x=1`` -> ``https://host:8000/v1``: no credentials, no query."""
    parts = urllib.parse.urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        # Trailing spaces and slashes together: stripping one kind then the other left "0 /" as "0 ", which a
        # second normalisation changed again (found by hypothesis).
        return re.sub(r"[\s/]+$", "", url.strip())
    host = parts.hostname
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urllib.parse.urlunsplit((parts.scheme.lower(), f"{host}{port}", parts.path.rstrip("/"), "", ""))


def parse_revisions(values: list[str], *, source: str) -> dict[str, str]:
    """``MODEL=REV`` entries as a map from model to revision; a later entry for a model wins."""
    revisions: dict[str, str] = {}
    for text in values:
        model, equals, revision = text.partition("=")
        if not equals or not model.strip() or not revision.strip():
            raise RevisionError(f"{source}: {text!r} is not MODEL=REVISION (e.g. openai/my-model=3f2a9c1)")
        revisions[model.strip()] = revision.strip()
    return revisions


def resolve(
    model: str,
    *,
    revisions: Mapping[str, str],
    file_revision: Callable[[str], str | None],
    environ: Mapping[str, str] | None = None,
) -> ModelIdentity:
    """The identity of ``model``: its endpoint, and its revision as given, else as the file tells.

    ``file_revision`` digests a local model's file and engine (only ``faef-local/...`` models have one). Such a
    revision tells a rebuilt file apart, but not the machine: llama.cpp's answers also depend on the CPU and
    the thread count, so the drift check still samples a local model's stored replies (issue 31).
    """
    revision = revisions.get(model)
    if revision is None and provider(model) == LOCAL_PROVIDER:
        revision = file_revision(model)
    return ModelIdentity(endpoint=endpoint(model, environ), revision=revision)
