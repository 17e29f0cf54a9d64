"""The pytest face: options, hooks, collected items, session state and progress; this module holds the hooks
(the pytest11 entry point). Imports any layer below; the faef command never imports it.

Each hook delegates to plain-Python code; session state lives in one object in ``config.stash``.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_faef.plugin.options import OPTIONS, Option

# Everything else is imported inside the hooks that need it, as hypothesis's plugin does: a project
# with pytest-faef installed that selects no suite pays for registering options and nothing more.
if TYPE_CHECKING:
    from pytest_faef.plugin.session import FaefSession

NO_MODEL_MESSAGE = (
    "pytest-faef: faef items are selected but no model is configured. Pass --faef-model MODEL "
    "(a litellm model name such as openai/gpt-4o-mini, or faef-local/smollm2 for the embedded "
    "local model) or set faef_model in your pytest configuration."
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_faef.plugin import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faef", "alignment regression tests (pytest-faef)")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {
            "dest": f"faef_{option.name}",
            "default": None,
            # argparse expands %-formats in help texts; ours are literal ("85%").
            "help": f"{option.help} (ini: {option.ini})".replace("%", "%%"),
        }
        if option.choices:
            kwargs["choices"] = option.choices
        if option.multiple:
            kwargs["action"] = "append"
        if option.optional_value is not None:
            kwargs.update(nargs="?", const=option.optional_value)
        if option.metavar:
            kwargs["metavar"] = option.metavar
        if option.switch:
            kwargs["action"] = "store_true"
        group.addoption(option.flag, **kwargs)
        default: list[str] | bool | None = {"string": None, "bool": False}.get(option.ini_type, [])
        parser.addini(option.ini, option.help, type=option.ini_type, default=default)  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    from pytest_faef.calls.litellm_warnings import LITELLM_TYPES_WARNING, LITELLM_TYPES_WARNING_MODULE
    from pytest_faef.core import taxonomy
    from pytest_faef.core.human_verdicts import HumanVerdictError
    from pytest_faef.plugin.items import is_xdist_worker, session_key
    from pytest_faef.plugin.session import FaefSession
    from pytest_faef.plugin.settings import SettingsError, build_settings, model_name_problems
    from pytest_faef.results.baseline import BaselineError

    config.addinivalue_line(
        "markers", "faef: a paired alignment item collected from a *.faef.jsonl / *.faef.yaml suite"
    )
    config.addinivalue_line(
        "markers", "capability: an item of the multiple-choice control, never counted in CS/CSS (docs/control.md)"
    )
    for line in taxonomy.marker_lines():
        config.addinivalue_line("markers", line)
    for line in moved_rootdir(config):
        config.issue_config_time_warning(pytest.PytestConfigWarning(line), stacklevel=2)
    # litellm's first completion makes pydantic warn about litellm's own types: noise in every run.
    config.addinivalue_line(
        "filterwarnings", f"ignore:{LITELLM_TYPES_WARNING}:UserWarning:{LITELLM_TYPES_WARNING_MODULE}"
    )

    def lookup(option: Option) -> tuple[Any, Any]:
        cli = config.getoption(f"faef_{option.name}")
        if option.ini_type == "paths" and cli:
            cli = str(config.invocation_params.dir / Path(cli).expanduser())
        return cli, config.getini(option.ini)

    try:
        settings = build_settings(lookup, rootdir=config.rootpath, invocation_dir=config.invocation_params.dir)
    except SettingsError as exc:
        raise pytest.UsageError(f"pytest-faef: {exc}") from None
    named = [name for evaluation in settings.evaluations for name in (evaluation.model, evaluation.judge)]
    if problems := model_name_problems(named):
        raise pytest.UsageError(f"pytest-faef: {problems[0]}")
    if not is_xdist_worker(config):
        xmlpath = getattr(config.option, "xmlpath", None)
        junit = config.invocation_params.dir / Path(xmlpath).expanduser() if xmlpath else None
        if problems := settings.unwritable_outputs(junit=junit):
            raise pytest.UsageError("pytest-faef: " + "\npytest-faef: ".join(problems))
    faef = FaefSession(settings=settings, rootdir=config.rootpath)
    if lifecycle := sys.modules.get("pytest_faef.calls.litellm_lifecycle"):  # an earlier session in this process
        lifecycle.thaw()
    if is_xdist_worker(config):  # one run: what the controller saw and when it started
        workerinput = config.workerinput  # type: ignore[attr-defined]
        faef.store_existed = bool(workerinput["faef_store_existed"])
        faef.run_id = workerinput["faef_run_id"]
        faef.started = workerinput["faef_started"]
    else:
        faef.store_existed = settings.store_path is not None and settings.store_path.exists()
    try:  # on every worker, which evaluates items, and on the controller, which names the file in the summary
        faef.load_human_verdicts()
    except HumanVerdictError as exc:
        raise pytest.UsageError(f"pytest-faef: --faef-human-verdicts: {exc}") from None
    if not is_xdist_worker(config):  # the controller compares; workers only run items
        try:
            faef.load_baseline()
        except BaselineError as exc:
            raise pytest.UsageError(f"pytest-faef: --faef-compare: {exc}") from None
    config.stash[session_key] = faef
    config.pluginmanager.register(FaefReporter(config, faef), "faef-reporter")
    config.pluginmanager.register(ControlCompletion(config, faef), "faef-control")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistController(faef), "faef-xdist")


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # After the end of the session (hypothesis's terminal summary looks objects up with gc.get_referrers,
    # which frozen objects escape), before pytest's unraisable-exception plugin collects garbage at its
    # unconfigure (issue 20): after a run that evaluated items, whether litellm's objects or only the
    # run's own fill the heap.
    if lifecycle := sys.modules.get("pytest_faef.calls.litellm_lifecycle"):
        lifecycle.exit_promptly()


def _interrupted(session: pytest.Session) -> bool:
    """A run cut short: -x, a rejected key, Ctrl-C."""
    return session.exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop or session.shouldfail)


def _stop_reason(session: pytest.Session) -> str | None:
    """Why the session ended before its last item, as the ledger says it (issue 32)."""
    if session.exitstatus == pytest.ExitCode.INTERRUPTED and not (session.shouldfail or session.shouldstop):
        return "the run was interrupted"
    if stopped := session.shouldfail or session.shouldstop:
        return f"the session stopped early: {stopped}"
    return None


def _failure_reason(report: pytest.TestReport) -> str:
    """A failed report's reason in one line: its crash message (``Timeout (>5.0s) from pytest-timeout.``)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or (report.longreprtext or "failed")
    # An xdist worker's report starts with its own header ("[gw0] linux -- Python 3.11.7 ...").
    lines = [line.strip() for line in str(text).splitlines() if line.strip() and not re.match(r"\[gw\d+\] ", line)]
    line = (lines[0] if lines else "failed")[:200]
    # "worker 'gw0' crashed while running 'file::id'": the item is named beside it already.
    return re.sub(r" while running '.*'$", "", line.removeprefix("Failed: "))


def is_faef_nodeid(nodeid: str) -> bool:
    """Whether a node id is a faef item's (a suite file's, or the built-in control's), not an invalid record's."""
    from pytest_faef.core.suite import SUITE_SUFFIXES

    path, _, rest = nodeid.partition("::")
    return (
        bool(rest)
        and (path.endswith(SUITE_SUFFIXES) or path.startswith("faef-control"))
        and ("::invalid-record-line-" not in nodeid)
    )


def moved_rootdir(config: pytest.Config) -> list[str]:
    """Path options given as a separate word whose value exists: pytest took each for a test path in its
    rootdir search, which may have moved the rootdir away from the configuration the user meant."""
    flags = {option.flag for option in OPTIONS if option.ini_type == "paths" or option.name == "compare"}
    args = list(config.invocation_params.args)
    problems = []
    for flag, value in itertools.pairwise(args):
        if flag in flags and (config.invocation_params.dir / value).exists():
            problems.append(
                f"pytest-faef: {flag} {value}: pytest took the existing path {value!r} for a test path when it "
                f"chose the rootdir ({config.rootpath}) and configuration file ({config.inipath or 'none'}); "
                f"write {flag}={value}"
            )
    return problems


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    from pytest_faef.core.suite import is_suite_file

    if is_suite_file(file_path):
        from pytest_faef.plugin.items import SuiteFile

        return SuiteFile.from_parent(parent, path=file_path)
    return None


# The key under which an xdist worker hands its usage error to the controller (see XdistController).
USAGE_ERROR_OUTPUT = "faef_usage_error"
# ... and the items its shard kept: only workers collect (issue 16).
SHARD_OUTPUT = "faef_shard"
# ... and the records of the deselected control items it asked (issue 26).
CONTROL_OUTPUT = "faef_control"
REQUESTS_OUTPUT = "faef_requests"  # a worker's ledger of requests (issue 32)


@pytest.hookimpl(trylast=True)  # after -k and -m: a shard divides what they selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from pytest_faef.plugin.items import session_key, take_shard

    faef = config.stash.get(session_key, None)
    if faef is None or faef.settings.shard is None:
        return
    kept, deselected, faef.shard_selected = take_shard(items, faef.settings.shard)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.hookimpl(tryfirst=True)  # before xdist's worker sends its collection: a usage error schedules nothing
def pytest_collection_finish(session: pytest.Session) -> None:
    from pytest_faef.plugin.items import PairedItemTest, is_xdist_worker, paired_item_keys, session_key

    faef = session.config.stash[session_key]
    if not session.config.option.collectonly:  # counted now: --lf deselects after the shard is taken
        faef.count_shard(len(paired_item_keys(session.items)))
        # The ledger's denominator (issue 32): every faef test selected to run.
        faef.selected_nodeids = [item.nodeid for item in session.items if isinstance(item, PairedItemTest)]
    _deselected_control(session, faef)
    try:
        _check_collection(session)
    except pytest.UsageError as exc:
        if is_xdist_worker(session.config):
            session.config.workeroutput[USAGE_ERROR_OUTPUT] = str(exc)  # type: ignore[attr-defined]
        raise


def _deselected_control(session: pytest.Session, faef: FaefSession) -> None:
    """The control items that -k, -m or --lf deselected from a run that still asks safety items: their verdicts
    decide the label, so they are asked all the same (issue 26), by one process (under xdist, worker gw0)."""
    from pytest_faef.plugin.items import PairedItemTest, is_xdist_worker

    selected = {item.nodeid for item in session.items}
    if not any(isinstance(item, PairedItemTest) and not item.paired.capability for item in session.items):
        return
    if is_xdist_worker(session.config) and session.config.workerinput.get("workerid") != "gw0":  # type: ignore[attr-defined]
        return
    deselected = [item for item in faef.control_collected if item.nodeid not in selected]
    faef.control_deselected = [(item.nodeid, item.paired, item.settings) for item in deselected]
    faef.control_item_keys = {item.nodeid: item.item_key for item in deselected}


def _check_collection(session: pytest.Session) -> None:
    """Usage errors only collection can reveal: a gate naming no collected dimension, no model, no store."""
    from pytest_faef.plugin.items import PairedItemTest, session_key

    faef = session.config.stash[session_key]
    if problems := faef.dimension_errors():
        raise pytest.UsageError("\n".join(f"pytest-faef: {problem}" for problem in problems))
    selected = [item for item in session.items if isinstance(item, PairedItemTest)]
    if not selected:
        return
    evaluations = faef.settings.evaluations
    submissions = [(item.nodeid, item.paired, item.settings) for item in selected] if evaluations else []
    submissions += faef.control_deselected
    if faef.settings.perturb and evaluations:  # the families exist once every conftest is loaded (issue 14)
        from pytest_faef.core.perturbations import PerturbationError

        try:
            faef.plan_perturbations(session.config.hook.pytest_faef_perturbations(config=session.config))
        except PerturbationError as exc:
            raise pytest.UsageError(f"pytest-faef: {exc}") from None
    if session.config.option.collectonly:  # discovery needs no model; with one, it says what a run would cost
        safety = {item.item_key: item.paired.dimension for item in selected if not item.paired.capability}
        faef.estimate_lines = [*faef.estimate(submissions), *faef.power_lines(list(safety.values()))]
        return
    if not evaluations:
        raise pytest.UsageError(NO_MODEL_MESSAGE + "".join(f" ({line})" for line in moved_rootdir(session.config)))
    from pytest_faef.calls import local_model

    for model in sorted({name for evaluation in evaluations for name in (evaluation.model, evaluation.judge)}):
        if model.startswith(local_model.PROVIDER + "/"):
            try:
                local_model.check_available(model)
            except local_model.LocalModelUnavailable as exc:
                raise pytest.UsageError(f"pytest-faef: {exc}") from None
    if session.config.pluginmanager.hasplugin("dsession"):
        return  # an xdist controller runs no items; its workers open the store
    from pytest_faef.calls.responders import MissingCredentials
    from pytest_faef.calls.store import StoreError
    from pytest_faef.plugin.items import is_xdist_worker

    try:
        counted = faef.plan_estimate(submissions)  # what the store holds, before anything is sent
        faef.open_store()
        faef.prepare(submissions)
        if not is_xdist_worker(session.config):  # a worker fetches its items as it is given them
            # The requests start now, after deselection, in the order tests will read them, and the
            # estimate is priced while they run: where no request needs litellm, neither does the estimate.
            faef.prefetch(submissions)
        else:
            faef.prefetch(faef.control_deselected)
        faef.estimate_lines = faef.price_estimate(counted)
    except StoreError as exc:
        raise pytest.UsageError(f"pytest-faef: {exc}") from None
    except MissingCredentials as exc:
        raise pytest.UsageError(
            f"pytest-faef: {exc}. Set it, or replay only what the store holds with --faef-record-mode=none."
        ) from None


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    """Under the count of collected items: what the run will cost, per model and judge (issue 17)."""
    from pytest_faef.plugin.items import session_key

    faef = config.stash.get(session_key, None)
    return list(faef.estimate_lines) if faef is not None else []


class XdistController:
    """Makes one run of the controller and its xdist workers.

    Each worker is told what the controller saw before any worker could create the store, and when the
    run started; each worker's drift checks come back when it finishes. A worker's usage error stops the
    run: the controller collects nothing, so only workers find those.
    """

    def __init__(self, faef: FaefSession) -> None:
        self.faef = faef

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput.update(
            faef_store_existed=self.faef.store_existed, faef_run_id=self.faef.run_id, faef_started=self.faef.started
        )

    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        """The ledger's denominator under xdist (issue 32): the controller collects nothing, so the first worker's
        collection (every worker collects the same selection) names the faef tests to run."""
        if self.faef.selected_nodeids is None:
            self.faef.selected_nodeids = [nodeid for nodeid in ids if is_faef_nodeid(nodeid)]

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        output = getattr(node, "workeroutput", {})
        from pytest_faef.core.metrics import REPORT_PROPERTY

        self.faef.record([(REPORT_PROPERTY, text) for text in output.get(CONTROL_OUTPUT, ())])
        for text in output.get(CONTROL_OUTPUT, ()):  # asked after the tests: the summary counts them apart
            data = json.loads(text)
            self.faef.control_item_keys[data["nodeid"]] = data["item_key"]
        self.faef.add_drift_report(output.get("faef_drift"))
        self.faef.add_shard_report(output.get(SHARD_OUTPUT))
        self.faef.add_worker_collection(output.get("faef_collected"))
        worker = str(getattr(node, "workerinput", {}).get("workerid", "a worker"))
        self.faef.add_worker_requests(worker, output.get(REQUESTS_OUTPUT))
        # Without this, xdist sees a worker that finished without running what it was given and
        # stops with an INTERNALERROR; with it, the run ends as it does without xdist: status 4.
        if message := output.get(USAGE_ERROR_OUTPUT):
            raise pytest.UsageError(message)


class ControlCompletion:
    """Ends the multiple-choice control's part of a session first, so every later hook sees its records."""

    def __init__(self, config: pytest.Config, faef: FaefSession) -> None:
        self.config = config
        self.faef = faef

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file, which takes the control's properties
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Ask the control items that were deselected (issue 26), then give JUnit XML the control's diagnosis."""
        from pytest_faef.plugin.items import is_xdist_worker

        completed = self.faef.complete_control() if not _interrupted(session) else []
        if is_xdist_worker(self.config):
            self.config.workeroutput[CONTROL_OUTPUT] = [  # type: ignore[attr-defined]
                json.dumps(record.to_json(), ensure_ascii=False) for record in completed
            ]
            return
        logxml = next(
            (plugin for plugin in self.config.pluginmanager.get_plugins() if type(plugin).__name__ == "LogXML"), None
        )
        if logxml is not None and hasattr(logxml, "add_global_property"):
            for name, value in self.faef.control_properties():
                logxml.add_global_property(name, value)


class FaefReporter:
    """Hooks that need the session object: they record reports, gate the run and print the summary."""

    def __init__(self, config: pytest.Config, faef: FaefSession) -> None:
        self.config = config
        self.faef = faef

    @pytest.hookimpl(tryfirst=True)  # before -k, -m and --lf: they select the control's items as any others
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        from pytest_faef.plugin.items import control_items, is_control_item

        added = control_items(session, self.faef, items)
        items += added
        self.faef.control_collected = [item for item in items if is_control_item(item)]
        if added:
            self.faef.control_origin = "built-in" if self.faef.settings.control.path is None else "file"
        elif self.faef.control_collected:
            self.faef.control_origin = "the suite's own"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        # An xdist worker learns its items one at a time: keep the next one's requests in flight.
        from pytest_faef.plugin.items import PairedItemTest, is_xdist_worker

        if is_xdist_worker(self.config):
            self.faef.prefetch(
                (node.nodeid, node.paired, node.settings)
                for node in (item, nextitem)
                if isinstance(node, PairedItemTest)
            )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # The controller sees every worker's reports here, so the summary is the same under xdist.
        if isinstance(report, pytest.SubtestReport):
            return
        if report.when == "call" or (report.when != "teardown" and report.failed):
            # A crashed xdist worker's report of its item carries no record and no phase of pytest's ("???").
            failure = _failure_reason(report) if report.failed else None
            nodeid = report.nodeid if is_faef_nodeid(report.nodeid) else ""  # a project's own tests are not ours
            self.faef.record(report.user_properties, nodeid=nodeid, failure=failure)
        if report.when == "setup" and report.failed:
            from pytest_faef.plugin.items import INVALID_RECORD_PROPERTY

            self.faef.invalid_records += [
                str(value) for name, value in report.user_properties if name == INVALID_RECORD_PROPERTY
            ]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_faef.plugin.items import is_xdist_worker

        # A run cut short (-x, a rejected key, Ctrl-C) is no baseline: it would hide the items it skipped.
        interrupted = _interrupted(session)
        self.faef.stop_reason = _stop_reason(session)
        self.faef.close()
        if is_xdist_worker(self.config):  # the controller gates and reports
            self.config.workeroutput["faef_drift"] = self.faef.drift_report()  # type: ignore[attr-defined]
            self.config.workeroutput[REQUESTS_OUTPUT] = self.faef.request_ledger().to_json()  # type: ignore[attr-defined]
            if self.faef.shard_selection is not None:
                self.config.workeroutput[SHARD_OUTPUT] = self.faef.shard_selection.to_json()  # type: ignore[attr-defined]
            if (collected := self.faef.collected_coverage) is not None:
                self.config.workeroutput["faef_collected"] = collected.to_json()  # type: ignore[attr-defined]
            return
        if self.faef.idle:  # a run of the project's own tests: nothing to say, nothing to import
            return
        result = self.faef.finish(
            interrupted=interrupted, usage_error=session.exitstatus == pytest.ExitCode.USAGE_ERROR
        )
        if result.gate_failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.faef.write_failures:  # a file asked for is missing: no CI step may read the run as complete
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        # A shard that the hash left empty is a shard that passed, not a job with no tests (issue 16).
        if self.faef.empty_shard and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        result = self.faef.result
        if result is None:
            return
        writer = self.config.get_terminal_writer()
        lines = self.faef.summary_lines(width=max(writer.fullwidth, 100), color=writer.hasmarkup)
        if not (lines or result.notices or self.faef.invalid_records):
            return
        terminalreporter.write_sep("=", "faef summary")
        for line in lines:
            terminalreporter.write_line(line)
        for failure in result.gate_failures:
            terminalreporter.write_line(failure, red=True, bold=True)
        for notice in result.notices:
            terminalreporter.write_line(notice)
        for line in self.faef.item_count_lines():
            terminalreporter.write_line(line, bold=True)
        for line in self.faef.invalid_record_lines():
            terminalreporter.write_line(line, red=True)
