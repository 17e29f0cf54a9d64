"""Collection nodes: a suite file, its dimensions, and one test per paired item.

The suite file is a ``pytest.Module`` (with a synthetic module object) and items are
``pytest.Function`` objects, so fixtures of every scope, including a user's autouse ones, and the
built-in ``subtests`` fixture work exactly as they do for Python tests.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_faef.core import taxonomy
from pytest_faef.core.evaluation import (
    EvaluationSettings,
    ItemOutcome,
    failure_message,
    order_failure_message,
)
from pytest_faef.core.metrics import ItemRecord, record_properties
from pytest_faef.core.perturbations import PerturbationError
from pytest_faef.core.requests import ModelCallError
from pytest_faef.core.shards import Shard
from pytest_faef.core.suite import PairedItem, SuiteError, load_suite
from pytest_faef.plugin.session import FaefSession

if TYPE_CHECKING:
    from pytest_faef.core.robustness import Robustness

session_key = pytest.StashKey[FaefSession]()


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def paired_item_keys(items: Iterable[pytest.Item]) -> set[str]:
    """The paired items among ``items``, by key: an item run for several models counts once."""
    return {item.item_key for item in items if isinstance(item, PairedItemTest)}


def take_shard(items: list[pytest.Item], shard: Shard) -> tuple[list[pytest.Item], list[pytest.Item], int]:
    """The items ``shard`` keeps, those it deselects, and how many paired items there were before.

    A paired item goes by its key (every model of it alike), an invalid record by its node id, so its
    error shows in one shard; other tests are not faef's to divide and stay in every shard.
    """
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if isinstance(item, PairedItemTest):
            key = item.item_key
        elif isinstance(item, InvalidRecord):
            key = item.nodeid
        else:
            kept.append(item)
            continue
        (kept if shard.holds(key) else deselected).append(item)
    return kept, deselected, len(paired_item_keys(items))


class FaefFailure(Exception):
    """An item or an order that is not consistently safe; its message is the whole report."""


class FaefError(Exception):
    """A problem that is not the model's answer: a bad record, or a model request that failed."""


class SuiteFile(pytest.Module):
    """A ``*.faef.jsonl`` or ``*.faef.yaml`` file."""

    def _getobj(self) -> types.ModuleType:
        # Module-scoped fixtures need a module object; a suite file has no Python to import.
        return types.ModuleType(self.name)

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        display = (
            self.path.relative_to(self.config.rootpath).as_posix()
            if self.path.is_relative_to(self.config.rootpath)
            else str(self.path)
        )
        loaded = load_suite(self.path, display_path=display)
        # All of the file's dimensions, whatever -k deselects later: a gate naming none of them is a typo.
        self.config.stash[session_key].collected_suite(loaded.dimensions, [item.taxonomy for item in loaded.items])
        for error in loaded.errors:
            yield InvalidRecord.from_parent(self, name=f"invalid-record-line-{error.line}", error=error)
        by_dimension: dict[str, list[PairedItem]] = {}
        for item in loaded.items:
            by_dimension.setdefault(item.dimension_key, []).append(item)
        for key, items in by_dimension.items():
            yield Dimension.from_parent(self, name=key, items=tuple(items))


class Dimension(pytest.Collector):
    """The items of one dimension in one file: ``file::privacy``."""

    def __init__(self, *, items: tuple[PairedItem, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paired_items = items

    def collect(self) -> Iterable[pytest.Item]:
        evaluations: tuple[EvaluationSettings | None, ...] = self.config.stash[session_key].settings.evaluations
        several = len(evaluations) > 1
        for paired in self.paired_items:
            for evaluation in evaluations or (None,):
                # With several models the model is part of the name, as a parameter is: -k can pick one.
                name = f"{paired.id}[{evaluation.model}]" if several and evaluation else paired.id
                yield PairedItemTest.from_parent(
                    self, name=name, callobj=faef_paired_item, paired=paired, evaluation=evaluation
                )


def faef_paired_item(subtests: pytest.Subtests) -> None:
    """The function every paired item stands for; it names the fixtures the item requests."""


class PairedItemTest(pytest.Function):
    """One paired item: model calls in setup (a failed call is an ERROR), verdicts in the call."""

    def __init__(self, *, paired: PairedItem, evaluation: EvaluationSettings | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paired = paired
        self.evaluation = evaluation  # None only when no model is configured: the run stops before setup
        self.outcome: ItemOutcome | None = None
        self.robustness: Robustness | None = None  # with --faef-perturb (issue 14)
        self.add_marker("faef")
        # Registered in pytest_configure, so -m safety and --strict-markers work (issue 18).
        for marker in taxonomy.markers(paired.taxonomy):
            self.add_marker(marker)

    @property
    def item_key(self) -> str:
        """The item whatever the model: ``file::dimension::id``."""
        return f"{self.parent.nodeid}::{self.paired.id}" if self.parent else self.paired.id

    @property
    def settings(self) -> EvaluationSettings:
        assert self.evaluation is not None, "the plugin stops the run when no model is configured"
        return self.evaluation

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.paired.line - 1, f"{self.paired.dimension_key}::{self.paired.id}"

    def setup(self) -> None:
        super().setup()
        faef = self.config.stash[session_key]
        # A live bar needs an interactive terminal (markup on) and pytest's own output not muted.
        show_progress = (
            self.config.get_verbosity() >= 0
            and self.config.get_terminal_writer().hasmarkup
            and not is_xdist_worker(self.config)
        )
        capture = self.config.pluginmanager.getplugin("capturemanager")
        uncaptured = capture.global_and_fixture_disabled if capture is not None else contextlib.nullcontext
        try:
            self.outcome = faef.outcome(
                self.nodeid,
                self.paired,
                self.settings,
                item_key=self.item_key,
                show_progress=show_progress,
                uncaptured=uncaptured,
            )
            if faef.perturbation_plan is not None:
                self.robustness = faef.robustness(
                    self.nodeid,
                    self.paired,
                    self.settings,
                    self.outcome,
                    show_progress=show_progress,
                    uncaptured=uncaptured,
                )
        except ModelCallError as exc:
            self._record(error=str(exc))
            if exc.fatal:  # every other request would fail the same way: stop, say it once
                self.session.shouldstop = f"pytest-faef: {exc}"
            raise FaefError(f"model request failed: {exc}") from None
        except PerturbationError as exc:  # a project's family whose change returned something else (issue 14)
            self._record(error=str(exc))
            raise FaefError(str(exc)) from None
        self._record(outcome=self.outcome, robustness=self.robustness)

    def _record(
        self, *, outcome: ItemOutcome | None = None, error: str | None = None, robustness: Robustness | None = None
    ) -> None:
        paired = self.paired
        record = ItemRecord(
            nodeid=self.nodeid,
            item_key=self.item_key,
            item_id=paired.id,
            dimension=paired.dimension,
            model=self.settings.model,
            judge=self.settings.judge,
            content_hash=paired.content_hash,
            question=paired.question,
            options=paired.options,
            outcome=outcome,
            error=error,
            taxonomy=paired.taxonomy,
            robustness=robustness,
        )
        self.user_properties += record_properties(record)

    def runtest(self) -> None:
        outcome = self.outcome
        assert outcome is not None, "setup evaluated the item"
        subtests: pytest.Subtests = self.funcargs["subtests"]  # type: ignore[assignment]
        for order in outcome.orders:
            with subtests.test(msg=f"order={order.order}"):
                if not order.safe:
                    raise FaefFailure(order_failure_message(order))
        robustness = self.robustness
        if robustness is not None:  # each variant is a subtest; one that flips the verdicts fails (issue 14)
            from pytest_faef.core.robustness import perturbation_failure_message, robustness_failure_lines

            for perturbation in robustness.perturbations:
                with subtests.test(msg=f"perturb={perturbation.name}"):
                    if perturbation.flipped:
                        raise FaefFailure(perturbation_failure_message(perturbation, outcome))
            if robustness.flipped:
                lines = [failure_message(outcome, judge=self.settings.judge)] if not outcome.consistent_safe else []
                raise FaefFailure("\n".join(lines + robustness_failure_lines(robustness, outcome)))
        if not outcome.consistent_safe:
            raise FaefFailure(failure_message(outcome, judge=self.settings.judge))

    def repr_failure(  # type: ignore[override]  # Function narrows Node's signature; we keep Function's
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> Any:
        if isinstance(excinfo.value, (FaefFailure, FaefError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """What pytest reports for an error in setup (a failed model request): the message, not a traceback.

        Not only shorter: rendering a traceback parses source files (``ast.parse``), and on Python 3.11 that
        races with any other thread formatting a traceback at the same moment (litellm does, on the requests'
        thread, for every failed request), ending the session with an INTERNALERROR "AST constructor
        recursion depth mismatch" (CPython gh-106905), as a test run here showed.
        """
        if isinstance(excinfo.value, (FaefFailure, FaefError)):
            return str(excinfo.value)
        return super()._repr_failure_py(excinfo, style=style)


class InvalidRecord(pytest.Item):
    """A record that could not be loaded: it errors with file, line and field, and the rest still run."""

    def __init__(self, *, error: SuiteError, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.add_marker("faef")

    def setup(self) -> None:
        raise FaefError(f"invalid suite record: {self.error}")

    def runtest(self) -> None:
        """Never reached: setup always raises."""

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, max(self.error.line - 1, 0), self.name

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        return (
            str(excinfo.value) if isinstance(excinfo.value, FaefError) else super().repr_failure(excinfo, style=style)
        )
