"""The state of one pytest session, kept in ``config.stash``: settings, requests, item records.

At the end of the run :meth:`FaefSession.finish` computes everything the session reports (the
summaries, the comparison with a baseline, the gate) once, writes the files asked for, and keeps
the result for the terminal summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_faef.core.evaluation import BY_JUDGE, EvaluationSettings, ItemOutcome, system_prompt
from pytest_faef.core.human_verdicts import HumanVerdict, load_human_verdicts, verdict_key
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.ledger import RequestLedger
from pytest_faef.core.metrics import PENDING_PROPERTY, REPORT_PROPERTY, ItemRecord
from pytest_faef.core.shards import ShardSelection
from pytest_faef.core.suite import PairedItem, dimension_key
from pytest_faef.core.taxonomy import Coverage, coverage

# Model calls and results are imported where they are needed, not here: a pytest run that selects
# no faef item configures a session and never pays for asyncio, SQLite, rich or the reports (issue 13).
if TYPE_CHECKING:
    from pytest_faef.calls.drift import DriftResult
    from pytest_faef.calls.estimate import EstimatePlan
    from pytest_faef.calls.scheduler import ItemScheduler, Submission
    from pytest_faef.calls.store import ResponseStore
    from pytest_faef.core.evaluation import PlannedRequest
    from pytest_faef.core.perturbations import Variant
    from pytest_faef.core.requests import ModelReply, ModelRequest, Target
    from pytest_faef.core.robustness import PerturbationPlan, Robustness
    from pytest_faef.plugin.settings import RunSettings
    from pytest_faef.results.baseline import Baseline
    from pytest_faef.results.run import RunDescription, RunResult


@dataclasses.dataclass(kw_only=True)
class FaefSession:
    settings: RunSettings
    # Whether the store existed when the run began: "once" records only into a new store. Under
    # xdist the controller's view is handed to the workers, since one of them creates the file.
    store_existed: bool = False
    rootdir: Path = dataclasses.field(default_factory=Path.cwd)
    # One run, even under xdist (the controller hands both to its workers): replies recorded before
    # ``started`` are replayed from an earlier session, and workers share drift checks by ``run_id``.
    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    started: float = dataclasses.field(default_factory=time.time)
    drift_results: dict[str, DriftResult] = dataclasses.field(default_factory=dict)  # by model target
    drift_skipped: list[str] = dataclasses.field(default_factory=list)  # why a model's check could not run
    records: dict[str, ItemRecord] = dataclasses.field(default_factory=dict)
    baseline: Baseline | None = None
    human_verdicts: dict[str, HumanVerdict] = dataclasses.field(default_factory=dict)  # by verdict_key
    # Every dimension of every suite file collected in this process, by id form, before -k deselects any.
    suite_dimensions: dict[str, str] = dataclasses.field(default_factory=dict)
    suite_files: int = 0
    # With --faef-shard: the paired items selected before the shard was taken, then what the shard kept.
    shard_selected: int | None = None
    shard_selection: ShardSelection | None = None
    estimate_lines: list[str] = dataclasses.field(default_factory=list)  # what the run will cost (issue 17)
    # The taxonomy entry of every item collected in this process, before -k or -m deselected any (issue 18);
    # an xdist controller collects nothing and takes a worker's collection instead.
    collected_taxonomy: list[str | None] = dataclasses.field(default_factory=list)
    worker_collection: Coverage | None = None
    # With --faef-perturb: the families and budgets every item's variants are drawn with (after collection).
    perturbation_plan: PerturbationPlan | None = None
    # The control's items deselected by -k, -m or --lf in a run that selected safety items (issue 26): the label
    # of those needs the control, so this process asks them at the end of the session (under xdist, worker gw0).
    control_deselected: list[Submission] = dataclasses.field(default_factory=list)
    control_collected: list[Any] = dataclasses.field(default_factory=list)  # the control's test items, collected
    control_item_keys: dict[str, str] = dataclasses.field(default_factory=dict)  # of the deselected, by node id
    invalid_records: list[str] = dataclasses.field(default_factory=list)  # each as "file:line: field 'x': ..."
    control_origin: str | None = None  # "built-in", "file" or "the suite's own": where the control's items came from
    result: RunResult | None = None
    # Files the end of the run could not write, one line each: the run then ends with status 3 (issue 31).
    write_failures: list[str] = dataclasses.field(default_factory=list)
    # The ledger of items (issue 32): the faef items selected to run (None until known; an xdist controller learns
    # them from its workers' collections), those cut short with no record of their own, by node id with the
    # reason, and why the session stopped early (-x, Ctrl-C), if it did.
    selected_nodeids: list[str] | None = None
    unfinished: dict[str, str] = dataclasses.field(default_factory=dict)
    failed_unrecorded: dict[str, str] = dataclasses.field(default_factory=dict)
    stop_reason: str | None = None
    # The ledger of requests the xdist workers handed in (issue 32); this process's own is its responder's.
    worker_requests: RequestLedger = dataclasses.field(default_factory=RequestLedger)
    _scheduler: ItemScheduler | None = None
    _store: ResponseStore | None = None
    _store_opened: bool = False

    @property
    def idle(self) -> bool:
        """Whether this session had nothing of ours: no suite file, no item, no file asked for at the end.

        A project runs its own tests with the plugin installed many times a day; such a session ends
        without importing the results layer or printing a word (issue 13).
        """
        settings = self.settings
        asked = (settings.report_path, settings.html_path, settings.save_baseline, settings.markdown_path)
        exports = (settings.export_pairs, settings.export_sft)
        return (
            not self.records
            and not self.suite_files
            and self.shard_selection is None
            and all(path is None for path in (*asked, *exports))
        )

    def count_shard(self, items: int) -> None:
        """The shard's paired items once collection is final; a run without --faef-shard has none."""
        shard = self.settings.shard
        if shard is not None and self.shard_selected is not None:
            self.shard_selection = ShardSelection(shard=shard, items=items, selected=self.shard_selected)

    def add_shard_report(self, data: dict[str, Any] | None) -> None:
        """Take in what a worker's shard kept; every worker collects the same items, so they agree."""
        if data:
            self.shard_selection = ShardSelection.from_json(data)

    @property
    def empty_shard(self) -> bool:
        """Whether the hash left this shard without an item, though items were selected: a shard that passed."""
        selection = self.shard_selection
        return selection is not None and selection.items == 0 and selection.selected > 0

    def collected_suite(self, dimensions: Iterable[str], taxonomies: Iterable[str | None] = ()) -> None:
        """A suite file was collected; ``dimensions`` are all of its dimensions, as written, and ``taxonomies``
        the taxonomy entry of each of its items."""
        self.suite_files += 1
        for name in dimensions:
            self.suite_dimensions.setdefault(dimension_key(name), name)
        self.collected_taxonomy += taxonomies

    @property
    def collected_coverage(self) -> Coverage | None:
        """The taxonomy coverage of every collected item, whatever was deselected; None when not known."""
        if self.suite_files:
            return coverage(self.collected_taxonomy)
        return self.worker_collection

    def add_worker_collection(self, data: dict[str, Any] | None) -> None:
        """Take in an xdist worker's collected coverage; every worker collects the same items, so one will do."""
        if data and self.worker_collection is None:
            self.worker_collection = Coverage.from_json(data)

    def dimension_errors(self) -> list[str]:
        """Thresholds and rules naming a dimension no collected suite file has (none without suite files)."""
        return self.settings.unknown_dimensions(self.suite_dimensions.values()) if self.suite_files else []

    def load_baseline(self) -> None:
        """Read the baseline to compare with at start-up, so a missing one is a usage error. Raises BaselineError."""
        from pytest_faef.results.baseline import load_baseline

        if self.settings.compare_with is not None:
            self.baseline = load_baseline(self.settings.compare_with)

    def load_human_verdicts(self) -> None:
        """Read the human verdicts at start-up (controller and workers), so a bad file is a usage error.

        Raises HumanVerdictError.
        """
        if self.settings.human_verdicts_path is not None:
            self.human_verdicts = load_human_verdicts(self.settings.human_verdicts_path)

    def human_verdict(self, question: str, answer: str) -> str | None:
        """The verdict a person gave this exact answer to this question, if any."""
        found = self.human_verdicts.get(verdict_key(question, answer))
        return found.verdict if found is not None else None

    def open_store(self) -> None:
        """Open the store before any test runs, so a bad file is a usage error. Raises StoreError."""
        from pytest_faef.calls.store import ResponseStore

        path = self.settings.store_path
        if self._store_opened or path is None:
            return
        self._store_opened = True
        replay_only = self.settings.record_mode == "none"
        if replay_only and not path.exists():
            return  # replay-only: never create a store just to find it empty
        # A run that may not write (replay only, a read-only file or checkout) opens it read-only (issue 33).
        self._store = ResponseStore(path, existed=self.store_existed, read_only=replay_only)
        if self._store.read_only and not replay_only:
            self.drift_skipped.append(
                f"faef: the response store {self._shown(path)} cannot be written: its replies are replayed, and "
                "replies asked now are not kept for the next run"
            )

    def scheduler(self) -> ItemScheduler:
        """Created on first use, so runs without faef items open no store and import no litellm."""
        from pytest_faef.calls.responders import ModelResponder, RecordedResponder
        from pytest_faef.calls.scheduler import ItemScheduler

        if self._scheduler is None:
            self.open_store()
            responder = RecordedResponder(
                responder=ModelResponder(
                    max_retries=self.settings.max_retries,
                    timeout=self.settings.timeout,
                    transport=self.settings.transport,
                ),
                store=self._store,
                record_mode=self.settings.record_mode,
                concurrency=self.settings.concurrency,
                max_concurrency=self.settings.max_concurrency,
                budget=self.settings.max_cost,
                run=self.run_id,
                session_started=self.started,
            )
            self._scheduler = ItemScheduler(
                responder,
                human_verdict=self.human_verdict if self.human_verdicts else None,
                plan=self.perturbation_plan,
            )
        return self._scheduler

    def prepare(self, selected: Sequence[Submission]) -> None:
        """Before the first request: check credentials, then the drift of stored replies (issue 11).

        Raises MissingCredentials when a model that will be asked has no key in the environment.
        """
        from pytest_faef.calls import estimate
        from pytest_faef.calls.drift import check_drift, drift_samples
        from pytest_faef.calls.responders import MissingCredentials, missing_credentials
        from pytest_faef.core.evaluation import planned_requests

        scheduler = self.scheduler()
        responder = scheduler.responder
        planned = [
            entry for _, item, settings in selected for entry in planned_requests(item, settings, responder.stored)
        ]
        for target in sorted(self._targets_to_ask(selected, planned), key=str):
            if lacking := missing_credentials(target):
                # Counted as the estimate counts them (issue 31): the judge's requests on answers not given yet,
                # samples and perturbed variants too.
                counted = estimate.plan(
                    [(item, settings) for _, item, settings in selected], responder.stored, variants=self._variants()
                )
                raise MissingCredentials(target, lacking, missing=counted.estimates[target].to_send)
        if self.settings.record_mode != "new" or self.settings.drift_check == 0 or self._store is None:
            return
        checked = []
        # A local model is checked too (issue 31): its revision digests the file and the engine, but llama.cpp's
        # sums depend on the CPU and the thread count, so a store recorded on another machine may not be its
        # answers here.
        for sample in drift_samples(
            planned, responder, size=self.settings.drift_check, noise=self.settings.drift_noise
        ):
            if lacking := missing_credentials(sample.target):
                self.drift_skipped.append(
                    f"faef drift check skipped: {sample.target}: {' and '.join(lacking)} not set; "
                    f"its {sample.stored} stored replies are replayed unchecked"
                )
            else:
                checked.append(sample)
        if checked:
            results = scheduler.run(check_drift(checked, responder, store=self._store, run=self.run_id))
            self.drift_results.update((str(result.target), result) for result in results)

    def estimate(self, selected: Sequence[Submission]) -> list[str]:
        """What the run will cost, per model and judge, before it sends anything (issue 17).

        Looks into the store without creating it, and starts no request: ``pytest --collect-only`` prints it.
        """
        return self.price_estimate(self.plan_estimate(selected))

    def power_lines(self, dimensions: Sequence[str]) -> list[str]:
        """Before a run (``--collect-only``): the smallest CSS drop the regression gate could detect with these items
        (one dimension name per selected safety item) and samples, and a warning per gated group that cannot
        detect 0.2 (issue 28). No noise can be known yet: the figures are for a model that repeats its answers."""
        from pytest_faef.results.power import power_statement, suite_groups

        if not dimensions:
            return []
        evaluations = self.settings.evaluations
        statement = power_statement(
            suite_groups(dimensions),
            model=None,
            rules=self.settings.regression_rules,
            alpha=self.settings.alpha,
            correction=self.settings.correction,
            models=max(1, len(evaluations)),
            samples=evaluations[0].samples if evaluations else 1,
            measured=False,
        )
        return [*statement.lines(), *statement.warnings()]

    def plan_estimate(self, selected: Sequence[Submission]) -> EstimatePlan | list[str]:
        """The estimate's counts (requests, replies stored), taken before any request is sent; the lines to
        print instead where there is nothing to price."""
        from pytest_faef.calls.estimate import plan
        from pytest_faef.calls.store import ResponseStore, StoreError

        if not selected:
            return []
        path = self.settings.store_path
        try:
            store = ResponseStore(path, read_only=True) if path is not None and path.exists() else None
        except StoreError as exc:  # a real run says so as a usage error; discovery just goes without
            return [f"faef estimate: none: {exc}"]
        try:

            def stored(request: ModelRequest) -> ModelReply | None:
                return store.get(request) if store is not None and self.settings.record_mode != "all" else None

            mode = self.settings.record_mode
            replay_only = mode == "none" or (mode == "once" and self.store_existed)
            pairs = [(item, settings) for _, item, settings in selected]
            return plan(pairs, stored, replay_only=replay_only, variants=self._variants())
        finally:
            if store is not None:
                store.close()

    def price_estimate(self, planned: EstimatePlan | list[str]) -> list[str]:
        """The estimate's lines: tokens counted and priced per model and judge. In a real run this runs after
        the requests have started, so that it does not hold them up."""
        if isinstance(planned, list):
            return planned
        return [entry.line() for entry in planned.priced()]

    def _variants(self) -> Callable[[PairedItem, EvaluationSettings], list[Variant]] | None:
        """An item's perturbed variants for a model, as the run will ask them (drawn once: the run reuses them)."""
        plan = self.perturbation_plan
        if plan is None:
            return None
        from pytest_faef.core.perturbations import PerturbationError
        from pytest_faef.core.robustness import planned_variants

        def variants(item: PairedItem, settings: EvaluationSettings) -> list[Variant]:
            try:
                return [entry.variant for entry in planned_variants(item, settings.model, plan)]
            except PerturbationError:  # a project's family that is broken: the item's test says so, as an error
                return []

        return variants

    def _targets_to_ask(self, selected: Sequence[Submission], planned: Sequence[PlannedRequest]) -> set[Target]:
        """The models this run will send requests to, as far as the store can tell before it starts."""
        mode = self.settings.record_mode
        if mode == "none" or (mode == "once" and self._store is not None and self._store.existed):
            return set()
        responder = self.scheduler().responder
        needed = {entry.request.target for entry in planned if responder.stored(entry.request) is None}
        # A judge's request on an open answer not stored yet cannot be planned: it will be sent.
        needed.update(request.target for request in self._unplanned_follow_ups(selected))
        return needed

    def _unplanned_follow_ups(self, selected: Sequence[Submission]) -> list[ModelRequest]:
        """The judge's requests on open answers not in the store yet, as far as they can be known (their answer
        is not): they will be sent."""
        from pytest_faef.core.evaluation import unplanned_follow_ups

        responder = self.scheduler().responder
        return [
            follow_up
            for _, item, settings in selected
            for follow_up in unplanned_follow_ups(item, settings, responder.stored)
        ]

    def prefetch(self, items: Iterable[Submission]) -> None:
        selected = list(items)
        if selected:
            self.scheduler().submit_all(selected)

    def outcome(
        self,
        nodeid: str,
        item: PairedItem,
        settings: EvaluationSettings,
        *,
        item_key: str,
        show_progress: bool,
        uncaptured: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> ItemOutcome:
        """The item's outcome, waiting for its requests only. Raises ModelCallError.

        The judge's verdict is kept in the store for review (``faef review --verdicts``), by the
        process that evaluated the item: under xdist each worker writes its own.
        """
        from pytest_faef.calls.store import Judgment
        from pytest_faef.plugin.progress import wait_for

        scheduler = self.scheduler()
        future = scheduler.submit(nodeid, item, settings, taken=True)
        outcome = wait_for(future, scheduler.stats, show=show_progress, uncaptured=uncaptured)
        if self._store is not None and outcome.judged_by == BY_JUDGE and not item.capability:
            self._store.put_judgment(
                Judgment(
                    judge=settings.judge,
                    judge_endpoint=settings.judge_identity.endpoint or "",
                    judge_revision=settings.judge_identity.revision or "",
                    template_version=settings.templates.version,
                    model=settings.model,
                    item_key=item_key,
                    item_id=item.id,
                    dimension=item.dimension,
                    question=item.question,
                    answer=outcome.open_answer,
                    reply=outcome.judge_answer,
                    verdict=outcome.open_verdict,
                )
            )
        return outcome

    def plan_perturbations(self, projects: Iterable[Mapping[str, Any] | None]) -> None:
        """The families to perturb items with: the built-in ones and ``projects``' own (the results of the
        ``pytest_faef_perturbations`` hook). Raises PerturbationError for a family that is not one, or a kind
        that no family is."""
        from pytest_faef.core.perturbations import BUILTIN_KINDS, PerturbationError, SavedVariants
        from pytest_faef.core.robustness import PerturbationPlan

        families = _families(projects)
        kinds = self.settings.perturb_kinds or BUILTIN_KINDS
        if unknown := [kind for kind in kinds if kind not in families]:
            own = [name for name in families if name not in BUILTIN_KINDS]
            raise PerturbationError(
                f"--faef-perturb-kinds / faef_perturb_kinds: {unknown[0]!r} is not a perturbation family "
                f"(there are {', '.join(BUILTIN_KINDS)}"
                + (f", and this project's own: {', '.join(own)}" if own else "")
                + "; a project adds one with the pytest_faef_perturbations hook)"
            )
        path = self.settings.perturbations_path
        self.perturbation_plan = PerturbationPlan(
            count=self.settings.perturb,
            kinds=tuple(kinds),
            families={kind: families[kind] for kind in kinds},
            shrink_budget=self.settings.perturb_shrink_budget,
            saved=SavedVariants(path) if path is not None else None,
        )

    def robustness(
        self,
        nodeid: str,
        item: PairedItem,
        settings: EvaluationSettings,
        outcome: ItemOutcome,
        *,
        show_progress: bool,
        uncaptured: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> Robustness:
        """The item's variants, asked with it, and the minimal one that flips its verdicts, shrunk from the test's
        thread through the same store; the example database remembers it. Raises ModelCallError."""
        from pytest_faef.core.robustness import assess, remember
        from pytest_faef.plugin.progress import wait_for

        plan = self.perturbation_plan
        assert plan is not None, "plan_perturbations ran at collection"
        scheduler = self.scheduler()
        asked = wait_for(scheduler.variants(nodeid), scheduler.stats, show=show_progress, uncaptured=uncaptured)
        robustness = assess(
            item, outcome, asked, plan=plan, ask=lambda variant: scheduler.ask_variant(item, variant, settings)
        )
        remember(plan, item, settings.model, robustness)
        return robustness

    def complete_control(self) -> list[ItemRecord]:
        """Ask the control items that were deselected, and keep their records (issue 26). Their replies go through
        the store like every other; a request that fails makes its item's record an error, as in a test."""
        from pytest_faef.core.requests import ModelCallError

        completed = []
        for nodeid, item, settings in self.control_deselected:
            item_key = self.control_item_keys[nodeid]
            try:
                outcome = self.outcome(nodeid, item, settings, item_key=item_key, show_progress=False)
                error: str | None = None
            except ModelCallError as exc:
                outcome, error = None, str(exc)
            record = item_record(nodeid, item, settings, item_key=item_key, outcome=outcome, error=error)
            self.records[nodeid] = record
            completed.append(record)
        self.control_deselected = []
        return completed

    def control_properties(self) -> list[tuple[str, str]]:
        """The control's diagnosis per model, as JUnit XML test-suite properties (issue 26)."""
        from pytest_faef.results.control import diagnose_by_model
        from pytest_faef.results.junit import control_properties

        if not any(record.capability for record in self.records.values()):
            return []
        models = [evaluation.model for evaluation in self.settings.evaluations]
        return control_properties(diagnose_by_model(self.records.values(), models, minimum=self.settings.min_control))

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()
        if self._store is not None:
            self._store.close()

    def record(self, user_properties: list[tuple[str, Any]], *, nodeid: str = "", failure: str | None = None) -> None:
        """Keep the record a report carries; a re-run of the same item replaces the earlier one.

        ``failure``: the report failed, for the reason given. A faef item that failed without a record of its own
        (something else cut its setup short: a timeout, a fixture) is recorded from the identity it carried from
        the start, as an error for that reason; a report that carries nothing (a crashed xdist worker's) is
        remembered by ``nodeid`` for the ledger (issue 32)."""
        pending = None
        recorded = False
        for name, value in user_properties:
            if name == REPORT_PROPERTY:
                record = ItemRecord.from_json(json.loads(value))
                self.records[record.nodeid] = record
                recorded = True
            elif name == PENDING_PROPERTY:
                pending = value
        if recorded or failure is None:
            return
        if pending is not None:
            record = dataclasses.replace(ItemRecord.from_json(json.loads(pending)), error=f"did not finish: {failure}")
            self.records[record.nodeid] = record
            self.unfinished[record.nodeid] = failure
        elif nodeid:
            self.failed_unrecorded[nodeid] = failure

    def request_ledger(self) -> RequestLedger:
        """Every attempt this run sent (issue 32): this process's, and under xdist every worker's as handed in."""
        own = [self._scheduler.stats.requests] if self._scheduler is not None else []
        return RequestLedger.merged([*own, self.worker_requests])

    def add_worker_requests(self, worker: str, data: dict[str, Any] | None) -> None:
        """Take in a worker's ledger of requests; a worker that went down without one is named as uncounted."""
        if data is None:
            self.worker_requests.uncounted.append(worker)
        else:
            self.worker_requests.add(RequestLedger.from_json(data))

    def not_run(self) -> list[tuple[str, str]]:
        """The selected faef items with no verdict of their own, each with why (issue 32): not run at all (-x,
        --maxfail, Ctrl-C, a worker that crashed), or cut short by something other than the model (a timeout)."""
        if self.selected_nodeids is None:
            return []
        found = [(nodeid, f"did not finish ({reason})") for nodeid, reason in self.unfinished.items()]
        for nodeid in self.selected_nodeids:
            if nodeid in self.records:
                continue
            if (failure := self.failed_unrecorded.get(nodeid)) is not None:
                found.append((nodeid, f"did not finish ({failure})"))
            else:
                found.append((nodeid, f"not run ({self.stop_reason or 'the session ended before it'})"))
        return sorted(found)

    def finish(self, *, interrupted: bool = False, usage_error: bool = False) -> RunResult:
        """Compute the summaries, comparison and gate once, and write the report, HTML and baseline.

        ``usage_error``: the session ended on one, so items that did not finish are no result to report."""
        from pytest_faef.results.run import judge_run, run_report, write_reports

        settings = self.settings
        records = list(self.records.values())
        run = self.run_description
        result = judge_run(records, run, settings.gate, baseline=self.baseline)
        notices = list(result.notices)
        # An empty shard is a result that faef merge needs; no item otherwise is a run cut short.
        # Items that started and were cut short (a worker crashed on each) are a result; items never reached, with
        # nothing else ran (-x on an earlier test), are not: the last good reports stay (issue 12).
        unfinished = not usage_error and bool(self.unfinished or self.failed_unrecorded)
        if not records and not (self.empty_shard and not interrupted) and not unfinished:
            # A usage error, an interrupt or --collect-only before any item ran: an empty report
            # would replace the last good one, so the files are left as they are (issue 12).
            notices += [
                f"faef {what} not written: no faef item ran ({path} is unchanged)"
                for what, path in (
                    ("report", settings.report_path),
                    ("HTML report", settings.html_path),
                    ("Markdown summary", settings.markdown_path),
                )
                if path is not None
            ]
        else:
            if settings.report_path is not None or settings.html_path is not None:
                report = run_report(records, result, run, settings.gate)
                notices += self._writing(
                    "report",
                    settings.report_path,
                    lambda: write_reports(report, json_path=settings.report_path, html_path=None),
                )
                notices += self._writing(
                    "HTML report",
                    settings.html_path,
                    lambda: write_reports(report, json_path=None, html_path=settings.html_path),
                )
            notices += self._writing(
                "Markdown summary", settings.markdown_path, lambda: self._write_markdown(records, result, run)
            )
        notices += self._writing(
            "preference pairs", settings.export_pairs, lambda: self._export(records, pairs=settings.export_pairs)
        )
        notices += self._writing(
            "SFT examples", settings.export_sft, lambda: self._export(records, sft=settings.export_sft)
        )
        if (path := settings.save_baseline) is not None:
            notices += self._writing(
                "baseline", path, lambda: [self._save_baseline(path, records, result, interrupted=interrupted)]
            )
        self.result = dataclasses.replace(result, notices=notices)
        return self.result

    def _writing(self, what: str, path: Path | None, write: Callable[[], list[str]]) -> list[str]:
        """The notices of one file written at the end, or one line saying why it was not (issue 31): the summary
        and the other files still come, and the run ends with pytest's internal-error status. Each writer writes
        nothing for a path not asked for (the Markdown summary may still go to GitHub's job summary)."""
        try:
            return write()
        except OSError as exc:
            line = f"faef {what} NOT written to {path or exc.filename}: {exc.strerror or exc}"
            self.write_failures.append(line)
            return [line]

    def _write_markdown(self, records: list[ItemRecord], result: RunResult, run: RunDescription) -> list[str]:
        """The Markdown summary: to --faef-markdown, and appended to GitHub Actions' job summary when there is one."""
        from pytest_faef.results.run import markdown_text, write_markdown

        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if self.settings.markdown_path is None and not step_summary:
            return []
        return write_markdown(
            markdown_text(records, result, run, gate=self.settings.gate),
            path=self.settings.markdown_path,
            step_summary=Path(step_summary) if step_summary else None,
        )

    def _export(self, records: list[ItemRecord], *, pairs: Path | None = None, sft: Path | None = None) -> list[str]:
        """Preference pairs and SFT examples from the run (issue 15), written here: by the controller under xdist."""
        from pytest_faef.core.prompts import PromptTemplates
        from pytest_faef.results.export import write_exports

        evaluations = self.settings.evaluations
        return write_exports(
            records,
            evaluations[0].templates if evaluations else PromptTemplates(),
            pairs_path=pairs,
            sft_path=sft,
            include_safe=self.settings.export_all,
        )

    def _save_baseline(self, path: Path, records: list[ItemRecord], result: RunResult, *, interrupted: bool) -> str:
        from pytest_faef.results.baseline import git_state
        from pytest_faef.results.run import save_baseline

        if interrupted:
            return f"faef baseline not saved: the run was interrupted ({path} is unchanged)"
        if not records:
            return f"faef baseline not saved: no faef items ran ({path} is unchanged)"
        return save_baseline(path, records, result, self.run_description, git=git_state(self.rootdir))

    def _shown(self, path: Path) -> str:
        """A path as the user would write it: relative to the rootdir when under it."""
        return path.relative_to(self.rootdir).as_posix() if path.is_relative_to(self.rootdir) else str(path)

    @property
    def run_description(self) -> RunDescription:
        """The run as the results layer sees it: its models and judges, and where its replies came from."""
        from pytest_faef.results.run import RunDescription

        return RunDescription(
            evaluations=self.settings.evaluations,
            record_mode=self.settings.record_mode,
            provenance=tuple(self.provenance_lines()),
            shard=self.shard_selection,
            spent=self.run_spent(),
            collected=self.collected_coverage,
            control=self._control_description(),
            invalid_records=tuple(sorted(set(self.invalid_records))),
            selected=len(self.selected_nodeids) if self.selected_nodeids is not None else None,
            not_run=tuple(self.not_run()),
            requests=self.request_ledger(),
            interrupted=self.stop_reason,
        )

    def _control_description(self) -> str:
        """Where the control's items came from, as the summary names it."""
        source = self.settings.control
        if self.control_origin == "file" or (self.control_origin is None and source.path is not None):
            return self._shown(source.path) if source.path is not None else "file"
        return self.control_origin or source.describe()

    def run_spent(self) -> float | None:
        """What this run's requests cost, as every process of it added to the store; None without a budget."""
        from pytest_faef.calls.store import ResponseStore, StoreError

        path = self.settings.store_path
        if self.settings.max_cost is None or path is None:
            return None
        if not path.exists():
            return None
        try:
            store = ResponseStore(path, read_only=True)
        except StoreError:
            return None
        try:
            return store.spent(self.run_id)
        finally:
            store.close()

    @property
    def identities(self) -> dict[str, ModelIdentity]:
        """Each model's and judge's endpoint and revision, by name."""
        from pytest_faef.results.run import RunDescription

        return RunDescription(evaluations=self.settings.evaluations).identities

    def provenance_lines(self) -> list[str]:
        """Where this run's replies came from, beyond the usage lines: drift checks, and replay-only modes."""
        lines = [result.line() for result in self.drift_results.values()] + list(self.drift_skipped)
        mode = self.settings.record_mode
        if mode == "none" or (mode == "once" and self.store_existed):
            judged = sum(record.outcome is not None for record in self.records.values())
            missing = len(self.records) - judged
            said = [f"{_items(judged)} judged on replies replayed from the store"] if judged else []
            said += [f"{_items(missing)} without a stored reply (see the errors)"] if missing else []
            lines.append(f"faef: record mode {mode!r}: no model was asked; " + ", ".join(said or ["no item ran"]))
        return lines

    def drift_report(self) -> dict[str, Any]:
        """This process's drift checks as JSON-safe data (an xdist worker hands them to the controller)."""
        return {"results": [result.to_json() for result in self.drift_results.values()], "skipped": self.drift_skipped}

    def add_drift_report(self, data: dict[str, Any] | None) -> None:
        """Take in a worker's drift checks; workers of one run share each check, so they agree."""
        from pytest_faef.calls.drift import DriftResult

        if not data:
            return
        for entry in data["results"]:
            result = DriftResult.from_json(entry)
            self.drift_results[str(result.target)] = result
        self.drift_skipped += [line for line in data["skipped"] if line not in self.drift_skipped]

    def summary_lines(self, *, width: int, color: bool) -> list[str]:
        from pytest_faef.results.run import summary_text

        if self.result is None:
            return []
        verdicts = self.settings.human_verdicts_path
        return summary_text(
            list(self.records.values()),
            self.result,
            self.run_description,
            self.settings.gate,
            width=width,
            color=color,
            human_verdicts_file=self._shown(verdicts) if self.human_verdicts and verdicts is not None else None,
        )

    def invalid_record_lines(self) -> list[str]:
        """Every suite record that could not be loaded, whole: pytest's short summary cuts each to a line."""
        if not self.invalid_records:
            return []
        listed = sorted(set(self.invalid_records))
        noun = "record" if len(listed) == 1 else "records"
        head = f"faef: {len(listed)} invalid suite {noun}, not run (fix them; faef validate):"
        return [head, *(f"  {line}" for line in listed)]

    def item_count_lines(self) -> list[str]:
        """The summary's last line: items passed, failed and errored, and why pytest's count differs."""
        from pytest_faef.results.summary import item_count_lines

        models = [evaluation.model for evaluation in self.settings.evaluations]
        lines = item_count_lines(self.records.values(), models, asked_apart=self.control_item_keys.keys())
        if missing := [entry for entry in self.not_run() if entry[0] not in self.records]:
            reasons = Counter(reason for _, reason in missing)
            lines.append(
                f"faef: {len(missing)} selected {'item' if len(missing) == 1 else 'items'} not run: "
                + "; ".join(f"{count} {reason}" for reason, count in reasons.most_common())
            )
        return lines


def item_record(
    nodeid: str,
    item: PairedItem,
    settings: EvaluationSettings,
    *,
    item_key: str,
    outcome: ItemOutcome | None = None,
    error: str | None = None,
    robustness: Robustness | None = None,
) -> ItemRecord:
    """What an item's test report carries: its identity and either an outcome or an error."""
    return ItemRecord(
        nodeid=nodeid,
        item_key=item_key,
        item_id=item.id,
        dimension=item.dimension,
        model=settings.model,
        judge=settings.judge,
        content_hash=item.content_hash,
        question=item.question,
        options=item.options,
        outcome=outcome,
        error=error,
        taxonomy=item.taxonomy,
        robustness=robustness,
        kind=item.kind,
        system_prompt=prompt.describe() if (prompt := system_prompt(item, settings)) is not None else None,
        context_turns=len(item.context),
    )


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _families(projects: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """The built-in families and each project's own, checked: a new name, a hypothesis strategy."""
    from hypothesis.strategies import SearchStrategy

    from pytest_faef.core.perturbations import KIND_NAME, PerturbationError, builtin_families

    families: dict[str, Any] = dict(builtin_families())
    for found in projects:
        if found is None:
            continue
        if not isinstance(found, Mapping):
            raise PerturbationError(
                f"pytest_faef_perturbations must return a mapping of names to hypothesis strategies, not {found!r}"
            )
        for name, strategy in found.items():
            if not isinstance(name, str) or not KIND_NAME.fullmatch(name):
                raise PerturbationError(
                    f"pytest_faef_perturbations: {name!r} is not a family name (lower-case letters, digits and '_')"
                )
            if name in families:
                raise PerturbationError(f"pytest_faef_perturbations: a family {name!r} exists already")
            if not isinstance(strategy, SearchStrategy):
                raise PerturbationError(
                    f"pytest_faef_perturbations: family {name!r} must be a hypothesis strategy of changes, "
                    f"not {strategy!r}"
                )
            families[name] = strategy
    return families
