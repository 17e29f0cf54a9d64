"""Which model answers: endpoints read as litellm reads them, revisions given or digested (issue 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_faef.calls import local_model
from pytest_faef.core.identity import (
    ModelIdentity,
    RevisionError,
    endpoint,
    normalized_endpoint,
    parse_revisions,
    provider,
    resolve,
)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/gpt-4o-mini", "openai"),
        ("gpt-4o-mini", "openai"),
        ("o3-mini", "openai"),
        ("claude-3-5-haiku-latest", "anthropic"),
        ("hosted_vllm/my-model", "hosted_vllm"),
        ("faef-local/smollm2", "faef-local"),
        ("mystery-model", None),
    ],
)
def test_the_provider_is_read_from_the_name_as_litellm_reads_it(model: str, expected: str | None) -> None:
    assert provider(model) == expected


def test_openai_models_take_openai_base_url_before_openai_api_base_as_litellm_does() -> None:
    environ = {"OPENAI_API_BASE": "http://b:1/v1", "OPENAI_BASE_URL": "http://a:1/v1"}
    assert endpoint("openai/mock", environ) == "http://a:1/v1"
    assert endpoint("gpt-4o", {"OPENAI_API_BASE": "http://b:1/v1"}) == "http://b:1/v1"


def test_other_providers_use_their_own_variables_or_litellms_convention() -> None:
    environ = {
        "HOSTED_VLLM_API_BASE": "http://vllm:8000/v1",
        "OLLAMA_API_BASE": "http://ollama:11434",
        "OPENROUTER_API_BASE": "https://router.example/api/v1",
        "OPENAI_API_BASE": "http://not-for-them/v1",
    }
    assert endpoint("hosted_vllm/m", environ) == "http://vllm:8000/v1"
    assert endpoint("ollama_chat/llama3", environ) == "http://ollama:11434"
    assert endpoint("openrouter/x", environ) == "https://router.example/api/v1"


def test_a_provider_with_a_fixed_endpoint_and_a_local_model_have_none() -> None:
    assert endpoint("anthropic/claude-3-5-haiku-latest", {"OPENAI_API_BASE": "http://x/v1"}) is None
    assert endpoint("faef-local/smollm2", {"FAEF_LOCAL_API_BASE": "http://x"}) is None
    assert endpoint("mystery-model", {"OPENAI_API_BASE": "http://x/v1"}) is None


def test_credentials_in_an_endpoint_never_reach_the_key_or_the_reports() -> None:
    assert normalized_endpoint("HTTPS://user:sk-secret@Example.COM:8443/v1/?api-key=sk-secret#x") == (
        "https://example.com:8443/v1"
    )
    assert normalized_endpoint("http://[::1]:8000/v1/") == "http://[::1]:8000/v1"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_normalizing_an_endpoint_twice_changes_nothing_more(url: str) -> None:
    once = normalized_endpoint(url)
    assert normalized_endpoint(once) == once


def test_revisions_are_model_equals_revision_and_a_later_one_wins() -> None:
    assert parse_revisions(["openai/m=abc", "judge/j = 1.2 ", "openai/m=def"], source="src") == {
        "openai/m": "def",
        "judge/j": "1.2",
    }
    for bad in ("openai/m", "=abc", "openai/m="):
        with pytest.raises(RevisionError, match=f"src: {bad!r} is not MODEL=REVISION"):
            parse_revisions([bad], source="src")


def test_a_given_revision_wins_over_a_files_digest() -> None:
    digested = []

    def digest(model: str) -> str:
        digested.append(model)
        return "gguf-0000"

    assert resolve("faef-local/x.gguf", revisions={}, file_revision=digest, environ={}) == ModelIdentity(
        revision="gguf-0000"
    )
    assert resolve("faef-local/x.gguf", revisions={"faef-local/x.gguf": "v2"}, file_revision=digest, environ={}) == (
        ModelIdentity(revision="v2")
    )
    assert resolve("openai/m", revisions={}, file_revision=digest, environ={"OPENAI_API_BASE": "http://h/v1"}) == (
        ModelIdentity(endpoint="http://h/v1")
    )
    assert digested == ["faef-local/x.gguf"]  # only local models have a file


def test_a_gguf_files_revision_changes_with_its_content_at_the_same_path_and_size(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(100))
    first = local_model.file_revision(f"faef-local/{path}")
    assert first is not None and first.startswith("gguf-")
    assert local_model.file_revision(f"faef-local/{path}") == first

    rebuilt(path, b"GGUF" + bytes(99) + b"\x01")

    assert local_model.file_revision(f"faef-local/{path}") not in (None, first)


def test_a_large_gguf_file_is_sampled_yet_a_change_in_its_tensors_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "big.gguf"
    size = 8 << 20
    data = bytearray(size)
    path.write_bytes(data)
    before = local_model.file_revision(f"faef-local/{path}")
    # One of the evenly spaced samples: (size - 2 MiB) / 17 past the head.
    step = (size - 2 * (1 << 20)) // 17
    data[(1 << 20) + 5 * step + 10] = 1
    rebuilt(path, bytes(data))

    assert local_model.file_revision(f"faef-local/{path}") != before


def rebuilt(path: Path, content: bytes) -> None:
    """Write ``content`` as a build a second later would: the digest is cached by size and modification time."""
    modified = path.stat().st_mtime_ns
    path.write_bytes(content)
    os.utime(path, ns=(modified + 10**9, modified + 10**9))


def test_a_missing_file_has_no_revision(tmp_path: Path) -> None:
    assert local_model.file_revision(f"faef-local/{tmp_path / 'absent.gguf'}") is None


def test_the_revision_names_the_build_that_computes_the_logits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds of llama.cpp (another CPU's instruction set, faked here) give two revisions of the same file, so
    a store recorded on one is not replayed on the other as if it were this machine's (issue 32); one build gives
    one revision. Threads count as well: they are shared out among xdist workers."""
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(100))
    model = f"faef-local/{path}"
    monkeypatch.setattr(local_model, "_system_info", lambda: "CPU : AVX2 = 1 | AVX512 = 1 |")
    here = local_model.file_revision(model)
    assert here == local_model.file_revision(model)
    assert here is not None and "+build-" in here

    monkeypatch.setattr(local_model, "_system_info", lambda: "CPU : AVX2 = 1 | AVX512 = 0 |")
    elsewhere = local_model.file_revision(model)
    assert elsewhere not in (None, here)
    assert elsewhere.split("+build-")[0] == here.split("+build-")[0]  # the same file and release

    threads = local_model.thread_count() + 1  # another count than this process's (xdist shares the cores out)
    monkeypatch.setattr(local_model, "thread_count", lambda: threads)
    assert local_model.file_revision(model) != elsewhere


def test_the_real_build_settings_name_the_cpu_features_and_the_threads() -> None:
    pytest.importorskip("llama_cpp")
    settings = local_model.build_settings()
    assert "threads=" in settings and "batch=512" in settings
    assert "=" in settings.split("|")[0]  # llama.cpp's own list of features
