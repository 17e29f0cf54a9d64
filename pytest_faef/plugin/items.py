"""Collection nodes: a suite file, its dimensions, and one test per paired item.

The suite file is a ``pytest.Module`` (with a synthetic module object) and items are
``pytest.Function`` objects, so fixtures of every scope, including a user's autouse ones, and the
built-in ``subtests`` fixture work exactly as they do for Python tests.
"""

from __future__ import annotations

import contextlib
import json
import types
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_faef.core import taxonomy
from pytest_faef.core.evaluation import (
    EvaluationSettings,
    ItemOutcome,
    failure_message,
    order_failure_message,
)
from pytest_faef.core.metrics import PENDING_PROPERTY, record_properties
from pytest_faef.core.perturbations import PerturbationError
from pytest_faef.core.requests import ModelCallError
from pytest_faef.core.shards import Shard
from pytest_faef.core.suite import PairedItem, SuiteError, load_suite
from pytest_faef.plugin.session import FaefSession, item_record

if TYPE_CHECKING:
    from pytest_faef.core.robustness import Robustness

session_key = pytest.StashKey[FaefSession]()
INVALID_RECORD_PROPERTY = "faef.invalid_record"  # the user property of an invalid record's report


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def has_markup(config: pytest.Config) -> bool:
    """Whether pytest writes to an interactive terminal; False without its terminal reporter (``-p no:terminal``,
    an embedding that removed it), which no hook of this plugin may assume (issue 32)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    return reporter is not None and bool(config.get_terminal_writer().hasmarkup)


def paired_item_keys(items: Iterable[pytest.Item]) -> set[str]:
    """The safety items among ``items``, by key: an item run for several models counts once."""
    return {item.item_key for item in items if isinstance(item, PairedItemTest) and not item.paired.capability}


def is_control_item(item: pytest.Item) -> bool:
    return isinstance(item, PairedItemTest) and item.paired.capability


def control_items(session: pytest.Session, faef: FaefSession, items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """The control's items to add to a run's collection (issue 26): the built-in set or the control file, for a run
    that collected safety items; none with the control off, or when ``auto`` finds capability items of the suite's
    own, or when the control file is among the files collected."""
    from pytest_faef.core import control

    source = faef.settings.control
    faef_items = [item for item in items if isinstance(item, PairedItemTest)]
    if source.mode == control.OFF or all(item.paired.capability for item in faef_items):
        return []
    if source.mode == control.AUTO and any(item.paired.capability for item in faef_items):
        return []
    path = source.path or control.builtin_path()
    if any(item.path == path for item in faef_items):
        return []
    if source.path is not None and path.is_relative_to(session.config.rootpath):
        nodeid = path.relative_to(session.config.rootpath).as_posix()
    else:
        nodeid = "faef-control" if source.path is None else f"faef-control/{path.name}"
    node = ControlFile.from_parent(session, path=path, nodeid=nodeid)
    # As collection proper does it, so that collection reports (the terminal's count, xdist's) include them.
    return list(session.genitems(node))


def take_shard(items: list[pytest.Item], shard: Shard) -> tuple[list[pytest.Item], list[pytest.Item], int]:
    """The items ``shard`` keeps, those it deselects, and how many paired items there were before.

    A paired item goes by its key (every model of it alike), an invalid record by its node id, so its
    error shows in one shard; other tests are not faef's to divide and stay in every shard.
    """
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if is_control_item(item):  # every shard asks the whole control: each gates its own models (issue 26)
            kept.append(item)
            continue
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

    counts_as_suite = True  # its dimensions and taxonomy count for the gate's checks and coverage

    def _getobj(self) -> types.ModuleType:
        # Module-scoped fixtures need a module object; a suite file has no Python to import.
        return types.ModuleType(self.name)

    def _display_path(self) -> str:
        """How errors name the file: relative to the rootdir when under it."""
        if self.path.is_relative_to(self.config.rootpath):
            return self.path.relative_to(self.config.rootpath).as_posix()
        return str(self.path)

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        loaded = load_suite(self.path, display_path=self._display_path())
        if self.counts_as_suite:
            # All of the file's dimensions, whatever -k deselects later: a gate naming none of them is a typo.
            self.config.stash[session_key].collected_suite(
                loaded.dimensions, [item.taxonomy for item in loaded.items if not item.capability]
            )
        if not loaded.items and not loaded.errors and self.counts_as_suite:
            # An empty file is no error (faef review may have rejected every record), but not silence (issue 33).
            self.warn(
                pytest.PytestCollectionWarning(f"{self._display_path()} holds no records: nothing to run from it")
            )
        for error in loaded.errors:
            yield InvalidRecord.from_parent(self, name=f"invalid-record-line-{error.line}", error=error)
        by_dimension: dict[str, list[PairedItem]] = {}
        for item in loaded.items:
            by_dimension.setdefault(item.group_key, []).append(item)
        for key, items in by_dimension.items():
            yield Dimension.from_parent(self, name=key, items=tuple(items))


class ControlFile(SuiteFile):
    """The control's own file (built in, or ``--faef-control=PATH``), added to a run's collection (issue 26)."""

    counts_as_suite = False

    def _display_path(self) -> str:
        return "faef-control (built in)" if self.nodeid == "faef-control" else str(self.path)


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
        if paired.capability:
            self.add_marker("capability")
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
            self.config.get_verbosity() >= 0 and has_markup(self.config) and not is_xdist_worker(self.config)
        )
        pending = item_record(self.nodeid, self.paired, self.settings, item_key=self.item_key)
        self.user_properties.append((PENDING_PROPERTY, json.dumps(pending.to_json(), ensure_ascii=False)))
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
            if faef.perturbation_plan is not None and not self.paired.capability:
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
        record = item_record(
            self.nodeid,
            self.paired,
            self.settings,
            item_key=self.item_key,
            outcome=outcome,
            error=error,
            robustness=robustness,
        )
        # The item's own record replaces the identity it carried meanwhile (which JUnit XML would show twice).
        self.user_properties[:] = [entry for entry in self.user_properties if entry[0] != PENDING_PROPERTY]
        self.user_properties += record_properties(record)

    def runtest(self) -> None:
        outcome = self.outcome
        assert outcome is not None, "setup evaluated the item"
        if self.paired.capability:
            # A control item answered wrongly is a finding about the model's multiple-choice reading, which the
            # summary's control line and the gate act on: it shows as xfailed, and never fails the run by itself.
            if not (outcome.open_correct and outcome.multiple_choice_correct):
                pytest.xfail(
                    "control item (counted in the multiple-choice control, not a failure): "
                    + failure_message(outcome, judge=self.settings.judge, capability=True)
                )
            return
        subtests: pytest.Subtests = self.funcargs["subtests"]  # type: ignore[assignment]
        for order in outcome.orders:
            # Under -x or --maxfail pytest lets a failed subtest's exception out of the test once the session must
            # stop: the item would end with that order's message, its verdict pair unsaid and its other orders
            # unreported. Every order is reported, and the item's verdict after them (issue 32).
            with contextlib.suppress(FaefFailure), subtests.test(msg=f"order={order.order}"):
                if not order.safe:
                    raise FaefFailure(order_failure_message(order))
        robustness = self.robustness
        if robustness is not None:  # each variant is a subtest; one that flips the verdicts fails (issue 14)
            from pytest_faef.core.robustness import perturbation_failure_message, robustness_failure_lines

            for perturbation in robustness.perturbations:
                with contextlib.suppress(FaefFailure), subtests.test(msg=f"perturb={perturbation.name}"):
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
        # On the report, so that the summary lists it whole, under xdist too (the short summary cuts it to a line).
        self.user_properties.append((INVALID_RECORD_PROPERTY, str(self.error)))
        raise FaefError(f"invalid suite record: {self.error}")

    def runtest(self) -> None:
        """Never reached: setup always raises."""

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, max(self.error.line - 1, 0), self.name

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        return (
            str(excinfo.value) if isinstance(excinfo.value, FaefError) else super().repr_failure(excinfo, style=style)
        )

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """What pytest reports for the error in setup: the one line naming file, line and field, under every --tb,
        not hundreds of lines of pytest's own frames (issue 31)."""
        if isinstance(excinfo.value, FaefError):
            return str(excinfo.value)
        return super()._repr_failure_py(excinfo, style=style)
