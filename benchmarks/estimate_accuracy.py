"""The estimate printed before a run, against what a hosted-style endpoint counted (issue 31).

Usage: python benchmarks/estimate_accuracy.py [--latency 0.01] [--runs plain,samples,perturb,both]

Copies the example suite's files into a scratch folder and runs them, cold, as ``openai/gpt-4o-mini`` (judging
itself, with the built-in control) against the loopback server in its own process, which counts ``usage`` as
OpenAI's API does for that model (``--tokens openai``: o200k_base and the chat format's overhead per message)
and answers as a model that ignores perturbations (``robust``: no variant flips, so no shrinking, whose
requests no estimate can know). Four runs: plain, ``--faef-samples=3``, ``--faef-perturb=4``, and both.

For each run it sets the header's ``faef estimate:`` lines (requests, prompt tokens low to high, cost low to
high; every line summed, model and judge) against the server's own counters (requests it answered, prompt and
completion tokens it reported) and the cost of those tokens at litellm's price. The prompt estimate's error is
taken against the middle of its range; the target is within 10%. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from request_throughput import ROOT, Server

from pytest_faef.calls import litellm_data

MODEL = "openai/gpt-4o-mini"
RUNS = {
    "plain": (),
    "samples": ("--faef-samples=3",),
    "perturb": ("--faef-perturb=4",),
    "both": ("--faef-samples=2", "--faef-perturb=4"),
}
_ESTIMATE = re.compile(
    r"faef estimate: (?P<target>.+?): (?P<requests>[\d,]+) requests, (?P<stored>[\d,]+) in the store; "
    r"(?:(?P<send_low>[\d,]+) to )?(?P<send>[\d,]+) to send: ~(?P<low>[\d,]+)(?: to (?P<high>[\d,]+))? prompt tokens, "
    r"\$(?P<cost_low>[\d.]+) to \$(?P<cost_high>[\d.]+)"
)


def _number(text: str | None) -> int:
    return int(text.replace(",", "")) if text else 0


def _range(low: int, high: int) -> str:
    return f"{high:,}" if low == high else f"{low:,} to {high:,}"


def measure(directory: Path, server: Server, name: str, args: tuple[str, ...]) -> dict[str, float]:
    server.reset()
    env = {**os.environ, "OPENAI_API_KEY": "sk-benchmark-0123456789abcdef", "OPENAI_API_BASE": server.url}
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly",
        "--tb=no", f"--faef-model={MODEL}", f"--faef-store={directory / (name + '.sqlite')}",
        "--faef-concurrency=32", "--faef-drift-check=0", *args,
    ]  # fmt: skip
    output = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, check=False).stdout
    lines = [match for line in output.splitlines() if (match := _ESTIMATE.search(line))]
    if not lines:
        raise SystemExit(f"{name}: no estimate line in pytest's output:\n{output[-3000:]}")
    stats = server.stats()
    low = sum(_number(line["low"]) for line in lines)
    high = sum(_number(line["high"] or line["low"]) for line in lines)
    cost = litellm_data.cost(MODEL, stats["prompt_tokens"], stats["completion_tokens"]) or 0.0
    result = {
        "requests_low": sum(_number(line["send_low"] or line["send"]) for line in lines),
        "requests_high": sum(_number(line["send"]) for line in lines),
        "answered": stats["successes"],
        "prompt_low": low,
        "prompt_high": high,
        "prompt_used": stats["prompt_tokens"],
        "prompt_error": stats["prompt_tokens"] / ((low + high) / 2) - 1,
        "cost_low": sum(float(line["cost_low"]) for line in lines),
        "cost_high": sum(float(line["cost_high"]) for line in lines),
        "cost_used": cost,
    }
    print(
        f"{name:8} requests {_range(result['requests_low'], result['requests_high'])} estimated, "
        f"{result['answered']:,} answered | "
        f"prompt tokens {low:,} to {high:,} estimated, {stats['prompt_tokens']:,} used "
        f"({result['prompt_error']:+.1%} from the middle) | cost ${result['cost_low']:.4f} to "
        f"${result['cost_high']:.4f} estimated, ${cost:.4f} used",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.01)
    parser.add_argument("--runs", default=",".join(RUNS))
    options = parser.parse_args()
    worst = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        suites = sorted((ROOT / "example_suite").glob("*.faef.*"))
        for suite in suites:
            shutil.copy(suite, directory / suite.name)
        # The example's own configuration (open answers of at most 64 tokens), but for its model.
        (directory / "pytest.ini").write_text("[pytest]\nfaef_open_max_tokens = 64\n", encoding="utf-8")
        server = Server(
            "--latency", str(options.latency), "--tokens", "openai", "--behaviour", "robust",
            *(argument for suite in suites for argument in ("--suite", str(directory / suite.name))),
        )  # fmt: skip
        try:
            for name in options.runs.split(","):
                result = measure(directory, server, name, RUNS[name])
                worst = max(worst, abs(result["prompt_error"]))
                if not result["requests_low"] <= result["answered"] <= result["requests_high"]:
                    print(f"{name}: the estimate's requests differ from the server's", flush=True)
                    worst = max(worst, 1.0)
        finally:
            server.close()
    print(f"largest prompt-token error: {worst:.1%} (target: within 10%)")
    return 0 if worst <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
