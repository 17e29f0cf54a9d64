"""The statistics of issue 28 measured over many seeds, on simulated models (no network, no model).

Usage: python benchmarks/gate_statistics.py [--seeds 1000] [--drift-seeds 300]

1. The regression gate on an unchanged noisy model: two runs of the same model (each answer flips with the noise
   rate), 5 dimensions of 40 items, ``css:-0`` on every dimension and overall (6 tests), with Holm and without: the
   share of seeds where any rule fails (a false alarm), for one sample and for 5 samples by each rule.
2. The gate on a real drop: a share of the items turns unsafe in the second run; the share of seeds where the overall
   rule fails, beside the power ``core.statistics.gate_power`` predicts for it.
3. The drift check (``calls.drift``, through a real store): an unchanged model at 5% noise (false-stale rate), and
   the same model changed on a quarter of its items (detection rate); and the sequential test alone over 20,000
   draws at the rates it was designed for.

Every outcome goes through the plugin's own code: ``decide`` for the samples, ItemRecords, a baseline saved and
loaded, ``compare`` and ``rule_tests`` for the gate. Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from pytest_faef.calls.drift import check_drift, drift_samples
from pytest_faef.calls.responders import ModelResponder, RecordedResponder
from pytest_faef.calls.store import ResponseStore
from pytest_faef.core import statistics
from pytest_faef.core.answers import SAFE, UNSAFE
from pytest_faef.core.evaluation import (
    ALL,
    MAJORITY,
    EvaluationSettings,
    ItemOutcome,
    OrderResult,
    decide,
    planned_requests,
)
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.metrics import ItemRecord, flip_noise
from pytest_faef.core.requests import ModelReply, ModelRequest
from pytest_faef.core.suite import PairedItem
from pytest_faef.results.baseline import build_baseline, load_baseline
from pytest_faef.results.comparison import compare, parse_regression_rules, rule_tests

DIMENSIONS = 5
PER_DIMENSION = 40
MODEL = "sim/model"
RULES = parse_regression_rules(
    ",".join(["css:-0", *(f"dimension_{number}.css:-0" for number in range(DIMENSIONS))]), source="benchmark"
)


def outcome(rng: random.Random, *, safe: bool, noise: float, samples: int, rule: str) -> ItemOutcome:
    """One item's outcome: two orders and the open verdict, each of ``samples`` draws flipped with ``noise``."""

    def draw(good: str, bad: str) -> list[str]:
        meant = good if safe else bad
        return [(bad if meant == good else good) if rng.random() < noise else meant for _ in range(samples)]

    verdicts = draw(SAFE, UNSAFE)
    orders = []
    for order in ("AB", "BA"):
        picks = tuple(draw("A", "B"))
        picked = decide(picks, "A", rule)
        orders.append(OrderResult(order=order, answer="", label="A", picked=picked, picks=picks if samples > 1 else ()))
    return ItemOutcome(
        open_answer="",
        judge_answer="",
        open_verdict=decide(verdicts, SAFE, rule),
        orders=tuple(orders),
        samples=samples,
        open_verdicts=tuple(verdicts) if samples > 1 else (),
    )


def run(
    rng: random.Random, *, unsafe: set[int], noise: float, samples: int, rule: str, safe_share: float = 0.9
) -> list[ItemRecord]:
    records = []
    for number in range(DIMENSIONS * PER_DIMENSION):
        dimension = f"Dimension {number % DIMENSIONS}"
        key = f"sim.faef.jsonl::dimension_{number % DIMENSIONS}::item-{number}"
        # The model's meaning: the first 90% of items safe (the same items in both runs), less those made unsafe.
        safe = (number % 10) < safe_share * 10 and number not in unsafe
        records.append(
            ItemRecord(
                nodeid=key,
                item_key=key,
                item_id=f"item-{number}",
                dimension=dimension,
                model=MODEL,
                judge=MODEL,
                content_hash=str(number),
                outcome=outcome(rng, safe=safe, noise=noise, samples=samples, rule=rule),
            )
        )
    return records


def gate_rates(seeds: int, *, noise: float, samples: int, rule: str, drop: float, directory: Path) -> dict[str, float]:
    """The share of seeds where any rule failed, with Holm and without; for a drop, the overall rule's share, and the
    power predicted for it from the noise the samples measured."""
    holm_failed = raw_failed = overall_failed = 0
    predicted = 0.0
    path = directory / "baseline.json"
    for seed in range(seeds):
        rng = random.Random(seed)
        before = run(rng, unsafe=set(), noise=noise, samples=samples, rule=rule)
        # Each safe item (9 in 10) regresses with probability drop / 0.9: a share ``drop`` of all items, as the
        # power model has it (a binomial count, not a fixed one).
        turned = {
            number for number in range(DIMENSIONS * PER_DIMENSION) if number % 10 < 9 and rng.random() < drop / 0.9
        }
        after = run(rng, unsafe=turned, noise=noise, samples=samples, rule=rule)
        data = build_baseline(before, {}, name="baseline", template_version="1", permutations="auto", git=None)
        path.write_text(__import__("json").dumps(data))
        comparison = compare(load_baseline(path), after, template_version="1", permutations="auto")
        holm = rule_tests(comparison, RULES, alpha=0.05, strict=False)
        raw = rule_tests(comparison, RULES, alpha=0.05, strict=False, correction="none")
        holm_failed += any(test.failed for test in holm)
        raw_failed += any(test.failed for test in raw)
        overall_failed += holm[0].failed
        measured = flip_noise((record.outcome for record in after if record.outcome), rule) if samples > 1 else 0.0
        predicted += statistics.gate_power(len(after), drop, noise=measured, alpha=0.05 / len(RULES))
    return {
        "holm": holm_failed / seeds,
        "uncorrected": raw_failed / seeds,
        "overall": overall_failed / seeds,
        "predicted": predicted / seeds,
    }


# --- the drift check through a real store ------------------------------------------------------------------------

ITEMS = [
    PairedItem(id=f"d{n}", dimension="Privacy", question=f"Drift {n}?", positive="Safe.", negatives=("Unsafe.",))
    for n in range(40)
]
SETTINGS = EvaluationSettings(
    model="openai/sim", judge="openai/sim", model_identity=ModelIdentity(endpoint="http://sim/v1"),
    judge_identity=ModelIdentity(endpoint="http://sim/v1"),
)  # fmt: skip


@dataclasses.dataclass(kw_only=True)
class Simulated(ModelResponder):
    """Picks the safe option and calls answers safe; another answer in ``noise`` of its multiple-choice replies, and
    always on the items in ``changed``."""

    noise: float = 0.0
    changed: frozenset[str] = frozenset()
    seed: int = 0

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    async def acomplete(self, request: ModelRequest) -> ModelReply:
        if not request.choices:
            return ModelReply(text="Safe.")
        if request.choices == ("safe", "unsafe"):
            return ModelReply(text="[[safe]]")
        question = request.messages[-1][1]
        safe_label = "A" if "A. Safe." in question else "B"
        other = "B" if safe_label == "A" else "A"
        flipped = any(f"{name}?" in question for name in self.changed) or self.random.random() < self.noise
        return ModelReply(text=f"Option: [[{other if flipped else safe_label}]]")


def drift_rate(seeds: int, *, noise: float, changed: int, directory: Path) -> tuple[float, float]:
    """The share of seeds whose check called the model stale, and the mean replies asked."""
    stale = asked = 0
    for seed in range(seeds):
        path = directory / f"drift-{seed}-{changed}.sqlite"
        with ResponseStore(path) as store:
            recorder = RecordedResponder(responder=Simulated(noise=noise, seed=10_000 + seed), store=store)
            for item in ITEMS:
                for planned in planned_requests(item, SETTINGS, lambda request: None):
                    asyncio.run(recorder.acomplete(planned.request))
                for planned in planned_requests(item, SETTINGS, recorder.stored):
                    asyncio.run(recorder.acomplete(planned.request))
        with sqlite3.connect(path) as connection:
            connection.execute("UPDATE responses SET created = created - 3600")
        connection.close()
        with ResponseStore(path) as store:
            names = frozenset(item.question.removesuffix("?") for item in random.Random(seed).sample(ITEMS, changed))
            responder = RecordedResponder(responder=Simulated(noise=noise, changed=names, seed=seed), store=store)
            planned = [entry for item in ITEMS for entry in planned_requests(item, SETTINGS, responder.stored)]
            samples = drift_samples(planned, responder, size=statistics.LOOKS[-1])
            [result] = asyncio.run(check_drift(samples, responder, store=store, run=f"r{seed}"))
        stale += result.stale
        asked += result.sampled
        path.unlink()
    return stale / seeds, asked / seeds


def sequential_rates(draws: int, rate: float, noise: float) -> tuple[float, float]:
    rng = random.Random(1)
    stale = asked_total = 0
    for _ in range(draws):
        differ = asked = 0
        for look in statistics.LOOKS:
            while asked < look:
                differ += rng.random() < rate
                asked += 1
            decision = statistics.drift_decision(differ, asked, noise=noise, last=look == statistics.LOOKS[-1])
            if decision != statistics.MORE:
                stale += decision == statistics.STALE
                break
        asked_total += asked
    return stale / draws, asked_total / draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--drift-seeds", type=int, default=300)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        print(f"## The gate on an unchanged model ({args.seeds} seeds, 6 tests: overall and 5 dimensions, css:-0)\n")
        print("| noise per answer | samples, rule | any false alarm, Holm | any false alarm, uncorrected |")
        print("|---|---|---|---|")
        for noise, samples, rule in [(0.05, 1, ALL), (0.10, 1, ALL), (0.10, 5, ALL), (0.10, 5, MAJORITY)]:
            rates = gate_rates(args.seeds, noise=noise, samples=samples, rule=rule, drop=0.0, directory=directory)
            print(f"| {noise:.2f} | {samples}, {rule} | {rates['holm']:.3f} | {rates['uncorrected']:.3f} |")
        print(f"\n## The gate on a real drop ({args.seeds} seeds, 200 items; the overall rule at 0.05/6)\n")
        print("| noise | samples, rule | drop | overall rule failed | power predicted |")
        print("|---|---|---|---|---|")
        for noise, samples, rule, drop in [
            (0.0, 1, ALL, 0.05),
            (0.0, 1, ALL, 0.10),
            (0.10, 5, MAJORITY, 0.05),
            (0.10, 5, MAJORITY, 0.10),
        ]:
            rates = gate_rates(args.seeds, noise=noise, samples=samples, rule=rule, drop=drop, directory=directory)
            print(
                f"| {noise:.2f} | {samples}, {rule} | {drop:.2f} | {rates['overall']:.3f} | {rates['predicted']:.3f} |"
            )
        print(f"\n## The drift check through a real store ({args.drift_seeds} seeds, 40 items, 80 stored picks)\n")
        print("| model | called stale | replies asked (mean) |")
        print("|---|---|---|")
        for label, noise, changed in [
            ("unchanged, 5% noise", 0.05, 0),
            ("unchanged, deterministic", 0.0, 0),
            ("changed on 10 of 40 items, 5% noise", 0.05, 10),
            ("changed on 10 of 40 items, deterministic", 0.0, 10),
        ]:
            stale, asked = drift_rate(args.drift_seeds, noise=noise, changed=changed, directory=directory)
            print(f"| {label} | {stale:.3f} | {asked:.1f} |")
    print("\n## The sequential test alone (20,000 draws; noise assumed 0.10)\n")
    print("| replies differing at | called stale | replies asked (mean) |")
    print("|---|---|---|")
    unchanged = 2 * 0.05 * 0.95
    for label, rate in [
        ("0.095 (unchanged, 5% noise)", unchanged),
        ("0.321 (a quarter changed, 5% noise)", unchanged + 0.25 * (1 - unchanged)),
        ("0.250 (a quarter changed, deterministic)", 0.25),
    ]:
        stale, asked = sequential_rates(20_000, rate, statistics.DEFAULT_NOISE)
        print(f"| {label} | {stale:.4f} | {asked:.1f} |")
    stale, asked = sequential_rates(20_000, 0.25, statistics.GREEDY_NOISE)
    print(f"| 0.250 (a quarter changed, deterministic), noise given as 0.01 | {stale:.4f} | {asked:.1f} |")
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
