"""Robustness of one item to perturbations: which variants it is asked, what each answered, which flipped its
verdicts, and the smallest variant that did (issue 14; docs/robustness.md).

A variant is the item with a perturbed question (or multiple-choice presentation), asked in both formats: the open
question (judged) and the multiple-choice form under the k cyclic rotations of its options, which bounds the cost
to k orders where the item itself may ask k! of them. A variant *flips* when its verdict pair (open safe?,
multiple choice safe?) differs from the unperturbed item's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytest_faef.core.answers import SAFE, UNSAFE
from pytest_faef.core.evaluation import (
    EvaluationSettings,
    HumanVerdictLookup,
    ItemOutcome,
    OrderResult,
    PlannedRequest,
    evaluate_item,
    planned_requests,
    unplanned_follow_ups,
)
from pytest_faef.core.orders import option_orders
from pytest_faef.core.perturbations import (
    Draw,
    SavedVariants,
    ShrinkResult,
    Variant,
    counts_per_kind,
    draw_variants,
    shrink_variant,
    variant_seed,
)
from pytest_faef.core.presentation import Presentation
from pytest_faef.core.requests import ModelReply, ModelRequest, Responder
from pytest_faef.core.suite import PairedItem

DRAWN = "drawn"  # drawn by hypothesis from the item's seed
SAVED = "saved"  # a minimal failing variant of an earlier run, replayed from the example database
SHRUNK = "shrunk"  # found by shrinking a flipped variant
VARIANT_PERMUTATIONS = "cyclic"  # variants ask the k rotations of the options, not all k! orders


@dataclasses.dataclass(frozen=True, kw_only=True)
class PerturbationPlan:
    """What a run perturbs: how many variants per item, of which families, and how much shrinking may ask."""

    count: int
    kinds: tuple[str, ...]
    families: Mapping[str, Any]  # kind -> hypothesis strategy of changes
    shrink_budget: int  # requests per item
    saved: SavedVariants | None = None
    # Each item's drawn variants, by its content hash, drawn once: the estimate draws them before the run, and the run
    # asks those (issue 31). Filled from the main thread and the draws' thread; a race draws twice, the same.
    _drawn: dict[str, dict[str, list[Variant]]] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def draw(self, item: PairedItem) -> Draw:
        """The item's draw: seeded by its content hash, so the same content draws the same variants every run."""
        return Draw(
            families=self.families,
            counts=counts_per_kind(self.count, self.kinds),
            seed=variant_seed(item.content_hash, ",".join(self.kinds)),
        )

    def saved_key(self, item: PairedItem, model: str, kind: str) -> bytes:
        """Where the item's minimal failing variants of ``kind`` are saved for ``model``: its file and id, and its
        content hash, so an edited item starts afresh."""
        return SavedVariants.key(model, f"{item.path}::{item.id}", item.content_hash, kind)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlannedVariant:
    name: str  # ``typo-3``: the subtest's name, ``[perturb=typo-3]``
    origin: str  # DRAWN, SAVED or SHRUNK
    variant: Variant


def planned_variants(item: PairedItem, model: str, plan: PerturbationPlan) -> list[PlannedVariant]:
    """The variants to ask of ``item``: the saved minimal failing ones first, then the drawn ones, family by family.
    Reads the example database and runs hypothesis (about 30 ms an item, once per item in a plan): call it off the
    event loop."""
    drawn = plan._drawn.get(item.content_hash)
    if drawn is None:
        drawn = plan._drawn[item.content_hash] = draw_variants(plan.draw(item), item.question)
    planned: list[PlannedVariant] = []
    for kind in plan.kinds:
        saved = plan.saved.fetch(plan.saved_key(item, model, kind)) if plan.saved is not None else []
        planned += [
            PlannedVariant(name=f"{kind}-saved" + (f"-{number}" if len(saved) > 1 else ""), origin=SAVED, variant=v)
            for number, v in enumerate(saved, start=1)
        ]
        fresh = [variant for variant in drawn.get(kind, ()) if variant not in saved]
        planned += [
            PlannedVariant(name=f"{kind}-{number}", origin=DRAWN, variant=variant)
            for number, variant in enumerate(fresh, start=1)
        ]
    return planned


def variant_request_count(item: PairedItem, samples: int = 1) -> int:
    """The requests one variant asks: its open answer, the judge, and each rotation of the options, each as many
    times as --faef-samples says (issue 28)."""
    return samples * (2 + len(option_orders(len(item.options), VARIANT_PERMUTATIONS)))


def variant_settings(settings: EvaluationSettings) -> EvaluationSettings:
    """A variant is asked under the rotations of its options, and never calibrates the judge."""
    return dataclasses.replace(settings, permutations=VARIANT_PERMUTATIONS, calibrate_judge=False)


def variant_requests(
    item: PairedItem,
    variant: Variant,
    settings: EvaluationSettings,
    stored: Callable[[ModelRequest], ModelReply | None],
) -> tuple[list[PlannedRequest], list[ModelRequest]]:
    """A variant's requests as far as they are known before it is asked, and the judge's on its open answers not
    stored yet (as :func:`planned_requests` and :func:`unplanned_follow_ups` give them of an item): the estimate's."""
    perturbed, asked = dataclasses.replace(item, question=variant.question), variant_settings(settings)
    return (
        planned_requests(perturbed, asked, stored, variant.presentation),
        unplanned_follow_ups(perturbed, asked, stored),
    )


async def evaluate_variant(
    item: PairedItem,
    variant: Variant,
    settings: EvaluationSettings,
    responder: Responder,
    *,
    human_verdict: HumanVerdictLookup | None = None,
) -> ItemOutcome:
    """Ask the perturbed item in both formats, as the item itself is asked (the store, the judge, human verdicts)."""
    return await evaluate_item(
        dataclasses.replace(item, question=variant.question),
        variant_settings(settings),
        responder,
        human_verdict=human_verdict,
        presentation=variant.presentation,
    )


def verdict_pair(outcome: ItemOutcome) -> tuple[bool, bool]:
    return outcome.open_safe, outcome.multiple_choice_safe


def flipped(original: ItemOutcome, outcome: ItemOutcome) -> bool:
    """Whether a variant's verdict pair differs from the unperturbed item's, in either direction."""
    return verdict_pair(original) != verdict_pair(outcome)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Perturbation:
    """One variant asked: what it was, what the model answered, and whether it flipped the item's verdicts."""

    name: str
    origin: str
    kind: str
    edits: int
    question: str
    presentation: Presentation
    open_verdict: str
    multiple_choice_safe: bool
    flipped: bool
    open_answer: str = ""
    judge_answer: str = ""
    judged_by: str = "judge"
    orders: tuple[OrderResult, ...] = ()
    diff: str = ""  # against the item's question (and presentation)

    @property
    def open_safe(self) -> bool:
        return self.open_verdict == SAFE

    @property
    def variant(self) -> Variant:
        return Variant(kind=self.kind, edits=self.edits, question=self.question, presentation=self.presentation)

    @classmethod
    def of(
        cls, name: str, origin: str, variant: Variant, outcome: ItemOutcome, original: ItemOutcome, question: str
    ) -> Perturbation:
        return cls(
            name=name,
            origin=origin,
            kind=variant.kind,
            edits=variant.edits,
            question=variant.question,
            presentation=variant.presentation,
            open_verdict=outcome.open_verdict,
            multiple_choice_safe=outcome.multiple_choice_safe,
            flipped=flipped(original, outcome),
            open_answer=outcome.open_answer,
            judge_answer=outcome.judge_answer,
            judged_by=outcome.judged_by,
            orders=outcome.orders,
            diff=variant.diff(question),
        )

    def pair(self) -> str:
        """``open: unsafe, multiple choice: unsafe``."""
        open_text = SAFE if self.open_safe else (UNSAFE if self.open_verdict == UNSAFE else "unparseable (not safe)")
        return f"open: {open_text}, multiple choice: {SAFE if self.multiple_choice_safe else UNSAFE}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "kind": self.kind,
            "edits": self.edits,
            "question": self.question,
            "presentation": self.presentation.to_json(),
            "diff": self.diff,
            "verdicts": {
                "open": self.open_verdict,
                "multiple_choice": SAFE if self.multiple_choice_safe else UNSAFE,
                "orders": {order.order: order.picked for order in self.orders},
            },
            "flipped": self.flipped,
            "open_answer": self.open_answer,
            "judge_answer": self.judge_answer,
            "judged_by": self.judged_by,
            "orders": [dataclasses.asdict(order) for order in self.orders],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Perturbation:
        verdicts = data["verdicts"]
        return cls(
            name=data["name"],
            origin=data["origin"],
            kind=data["kind"],
            edits=data["edits"],
            question=data["question"],
            presentation=Presentation.from_json(data.get("presentation")),
            diff=data.get("diff", ""),
            open_verdict=verdicts["open"],
            multiple_choice_safe=verdicts["multiple_choice"] == SAFE,
            flipped=data["flipped"],
            open_answer=data.get("open_answer", ""),
            judge_answer=data.get("judge_answer", ""),
            judged_by=data.get("judged_by", "judge"),
            orders=tuple(OrderResult(**order) for order in data.get("orders", ())),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Robustness:
    """An item's variants and their verdicts, and the minimal one that flipped (None when none did)."""

    kinds: tuple[str, ...]
    perturbations: tuple[Perturbation, ...]
    minimal: Perturbation | None = None
    shrink_asked: int = 0  # new variants asked while shrinking
    shrink_requests: int = 0  # the requests they took (what --faef-perturb-shrink-budget bounds)
    shrink_stopped: str | None = None  # "budget", or the error that stopped shrinking early
    usage: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # every variant's requests

    @property
    def flipped(self) -> bool:
        return any(perturbation.flipped for perturbation in self.perturbations)

    def flipped_in(self, kind: str) -> bool:
        return any(perturbation.flipped for perturbation in self.perturbations if perturbation.kind == kind)

    def asked_in(self, kind: str) -> int:
        return sum(perturbation.kind == kind for perturbation in self.perturbations)

    def to_json(self) -> dict[str, Any]:
        """The keys an item's record (and the JSON report) gains: ``perturbations``, ``minimal``, ``robustness``."""
        minimal = None
        if self.minimal is not None:
            entry = self.minimal.to_json()
            minimal = {
                key: entry[key] for key in ("name", "origin", "kind", "edits", "question", "presentation", "diff")
            }
            minimal["verdicts"] = {key: entry["verdicts"][key] for key in ("open", "multiple_choice")}
        return {
            "perturbations": [perturbation.to_json() for perturbation in self.perturbations],
            "minimal": minimal,
            "robustness": {
                "kinds": list(self.kinds),
                "flipped": self.flipped,
                "shrink": {
                    "asked": self.shrink_asked,
                    "requests": self.shrink_requests,
                    "stopped": self.shrink_stopped,
                },
                "usage": self.usage,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Robustness:
        perturbations = tuple(Perturbation.from_json(entry) for entry in data["perturbations"])
        about = data.get("robustness") or {}
        minimal_data = data.get("minimal")
        minimal = None
        if minimal_data:
            # The minimal variant is one of the perturbations asked; its answers are kept there.
            minimal = next(
                (p for p in perturbations if p.name == minimal_data["name"]),
                None,
            )
        shrink = about.get("shrink") or {}
        return cls(
            kinds=tuple(about.get("kinds", ())),
            perturbations=perturbations,
            minimal=minimal,
            shrink_asked=int(shrink.get("asked", 0)),
            shrink_requests=int(shrink.get("requests", 0)),
            shrink_stopped=shrink.get("stopped"),
            usage=about.get("usage", {}),
        )


def assess(
    item: PairedItem,
    original: ItemOutcome,
    asked: Sequence[tuple[PlannedVariant, ItemOutcome]],
    *,
    plan: PerturbationPlan,
    ask: Callable[[Variant], ItemOutcome],
) -> Robustness:
    """The item's robustness from its variants' outcomes; a flip with more than one edit is shrunk first.

    The fewest-edit flipped variant (a saved one first among equals) is the minimal one. When it has more than one
    edit and was drawn, hypothesis shrinks it (``shrink_variant``), asking new variants through ``ask`` (the same
    responder and store as every request) within the plan's budget; a smaller flipping variant found is the minimal
    one, and is asked as a subtest of its own (``typo-minimal``). Raises a fatal ModelCallError from shrinking.
    """
    perturbations = [
        Perturbation.of(planned.name, planned.origin, planned.variant, outcome, original, item.question)
        for planned, outcome in asked
    ]
    usages = [outcome.usage for _, outcome in asked]
    minimal = _fewest_edits(perturbations)
    result = ShrinkResult(best=None)
    if minimal is not None and minimal.edits > 1 and minimal.origin == DRAWN:
        answers: dict[Variant, ItemOutcome] = {}

        def flips(variant: Variant) -> bool:
            answers[variant] = ask(variant)
            return flipped(original, answers[variant])

        cost = variant_request_count(item, original.samples)
        result = shrink_variant(
            plan.draw(item),
            minimal.variant,
            item.question,
            known={p.variant: p.flipped for p in perturbations if p.kind == minimal.kind},
            flips=flips,
            max_asked=plan.shrink_budget // cost,
        )
        usages += [answers[variant].usage for variant in result.asked]
        if result.best is not None and result.best in answers:
            found = Perturbation.of(
                f"{minimal.kind}-minimal", SHRUNK, result.best, answers[result.best], original, item.question
            )
            perturbations.append(found)
            minimal = found
    return Robustness(
        kinds=plan.kinds,
        perturbations=tuple(perturbations),
        minimal=minimal,
        shrink_asked=len(result.asked),
        shrink_requests=len(result.asked) * variant_request_count(item, original.samples),
        shrink_stopped=result.stopped,
        usage=merge_usage(usages),
    )


def _fewest_edits(perturbations: Iterable[Perturbation]) -> Perturbation | None:
    return min((p for p in perturbations if p.flipped), key=lambda p: p.edits, default=None)


def remember(plan: PerturbationPlan, item: PairedItem, model: str, robustness: Robustness) -> None:
    """Keep the example database current: a saved variant that no longer flips is forgotten (the fix is proven), a
    new minimal failing variant is saved, to be asked first next run."""
    if plan.saved is None:
        return
    for perturbation in robustness.perturbations:
        if perturbation.origin == SAVED and not perturbation.flipped:
            plan.saved.delete(plan.saved_key(item, model, perturbation.kind), perturbation.variant)
    minimal = robustness.minimal
    if minimal is not None and minimal.origin != SAVED:
        plan.saved.save(plan.saved_key(item, model, minimal.kind), minimal.variant)


def merge_usage(usages: Iterable[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Per-model usage (``evaluation.usage_by_model``'s form) added up over several outcomes."""
    merged: dict[str, dict[str, float]] = {}
    for usage in usages:
        for model, counts in usage.items():
            total = merged.setdefault(model, {})
            for name, value in counts.items():
                if name == "first_recorded":
                    total[name] = min(total.get(name, value), value)
                elif name == "last_recorded":
                    total[name] = max(total.get(name, value), value)
                else:
                    total[name] = total.get(name, 0) + value
    return merged


def perturbation_failure_message(perturbation: Perturbation, original: ItemOutcome) -> str:
    """A flipped variant's subtest failure: what changed and how the verdicts moved."""
    edits = f"{perturbation.edits} edit{'' if perturbation.edits == 1 else 's'}"
    lines = [
        f"perturb={perturbation.name} ({perturbation.kind}, {edits}) flipped the verdicts: "
        f"{perturbation.pair()} (unperturbed: {_original_pair(original)})",
        f"  question: {perturbation.diff}",
    ]
    return "\n".join(lines)


def robustness_failure_lines(robustness: Robustness, original: ItemOutcome) -> list[str]:
    """The lines an item's failure adds when a variant flipped: how many, and the minimal one as a diff."""
    minimal = robustness.minimal
    if minimal is None:
        return []
    flips = [p for p in robustness.perturbations if p.flipped]
    by_kind = ", ".join(
        f"{kind} {sum(p.kind == kind for p in flips)}/{robustness.asked_in(kind)}"
        for kind in robustness.kinds
        if robustness.asked_in(kind)
    )
    edits = f"{minimal.edits} edit{'' if minimal.edits == 1 else 's'}"
    lines = [
        f"robustness: {len(flips)} of {len(robustness.perturbations)} variants flipped the verdicts ({by_kind})",
        f"  minimal failing variant: {minimal.name} ({minimal.kind}, {edits}): {minimal.diff}",
        f"    {minimal.pair()} (unperturbed: {_original_pair(original)})",
    ]
    if robustness.shrink_stopped == "budget":
        lines.append(f"  shrinking stopped at --faef-perturb-shrink-budget ({robustness.shrink_requests} requests)")
    elif robustness.shrink_stopped:
        lines.append(f"  shrinking stopped: a request failed: {robustness.shrink_stopped}")
    return lines


def _original_pair(outcome: ItemOutcome) -> str:
    return (
        f"open: {SAFE if outcome.open_safe else 'not safe'}, "
        f"multiple choice: {SAFE if outcome.multiple_choice_safe else UNSAFE}"
    )
