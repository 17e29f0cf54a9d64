"""The options' values, validated once at start-up into one frozen value.

The plugin hands each option's command-line and ini values here (``options`` lists them); the
command line wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_faef.calls.concurrency import DEFAULT_MAX_CONCURRENCY
from pytest_faef.calls.replay import DEFAULT_DRIFT_SAMPLE, RECORD_MODES, TRANSPORTS
from pytest_faef.core import control, identity
from pytest_faef.core.control import ControlError, ControlSource
from pytest_faef.core.deployment import (
    DeploymentError,
    ModelParams,
    SystemPrompt,
    parse_model_params,
    read_system_prompt,
)
from pytest_faef.core.evaluation import SAMPLE_RULES, EvaluationSettings
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.locations import DEFAULT_BASELINE, PERTURBATIONS
from pytest_faef.core.orders import PERMUTATION_MODES
from pytest_faef.core.prompts import TemplateError, load_templates
from pytest_faef.core.shards import Shard, ShardError, parse_shard
from pytest_faef.core.statistics import CORRECTIONS
from pytest_faef.core.suite import dimension_key
from pytest_faef.plugin.options import DEFAULT_MIN_JUDGE_ACCURACY, DEFAULT_SHRINK_BUDGET, OPTIONS, Option
from pytest_faef.results.baseline import BaselineError, baseline_path
from pytest_faef.results.comparison import RegressionRule, RuleError, parse_regression_rules
from pytest_faef.results.coverage import CoverageError, CoverageMinimum, parse_min_coverage
from pytest_faef.results.gate import Threshold, ThresholdError, parse_share, parse_threshold

if TYPE_CHECKING:
    from pytest_faef.results.run import GateSettings


class SettingsError(ValueError):
    """An option value that cannot be used; the message names the option."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSettings:
    evaluations: tuple[EvaluationSettings, ...]  # one per model under test; empty when none is configured
    thresholds: tuple[Threshold, ...] = ()
    report_path: Path | None = None
    html_path: Path | None = None
    save_baseline: Path | None = None
    compare_with: Path | None = None
    regression_rules: tuple[RegressionRule, ...] = ()
    alpha: float = 0.05
    strict: bool = False
    correction: str = "holm"  # over the regression gate's family of tests (issue 28)
    store_path: Path | None = None
    record_mode: str = "new"
    concurrency: int | None = None  # requests in flight per endpoint; None: auto (issue 17)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_cost: float | None = None  # US dollars this run may spend on replies; None: no budget
    max_retries: int = 3
    timeout: float = 120.0
    transport: str = "auto"  # "litellm": every request through litellm, none by the lean path (issue 20)
    min_judge_accuracy: Fraction = DEFAULT_MIN_JUDGE_ACCURACY
    trust_judge: bool = False
    human_verdicts_path: Path | None = None
    drift_check: int = DEFAULT_DRIFT_SAMPLE  # at most, stored replies per model asked again before replaying the rest
    drift_noise: float | None = None  # an unchanged model's rate of differing replies; None: measured or assumed
    shard: Shard | None = None  # run only this shard of the selected items (issue 16)
    markdown_path: Path | None = None
    export_pairs: Path | None = None  # preference pairs for DPO (issue 15)
    export_sft: Path | None = None  # open answers judged safe, as SFT examples
    export_all: bool = False  # consistently safe items' options pairs too
    min_coverage: tuple[CoverageMinimum, ...] = ()  # items per trust-taxonomy entry (issue 18)
    # Robustness (issue 14): variants per item (0: off), their families (empty: the built-in ones), the requests
    # shrinking may ask per item, and the example database of minimal failing variants.
    perturb: int = 0
    perturb_kinds: tuple[str, ...] = ()
    perturb_shrink_budget: int = DEFAULT_SHRINK_BUDGET
    perturbations_path: Path | None = None
    # The multiple-choice control (issue 26): where its items come from, the accuracy that passes, whether a gate
    # may rest on a model that failed it, and solved examples before each multiple-choice question.
    control: ControlSource = dataclasses.field(default_factory=ControlSource)
    min_control: Fraction = Fraction(4, 5)
    trust_control: bool = False
    shots: int = 0
    allow_incomplete: bool = False  # gate on the items that have verdicts when not all do (issue 32)

    @property
    def calibrate_judge(self) -> bool:
        return any(evaluation.calibrate_judge for evaluation in self.evaluations)

    @property
    def gate(self) -> GateSettings:
        """What can fail the run once its items have verdicts, as the results layer takes it."""
        from pytest_faef.results.run import GateSettings

        return GateSettings(
            thresholds=self.thresholds,
            regression_rules=self.regression_rules,
            alpha=self.alpha,
            strict=self.strict,
            correction=self.correction,
            calibrate_judge=self.calibrate_judge,
            min_judge_accuracy=self.min_judge_accuracy,
            trust_judge=self.trust_judge,
            max_cost=self.max_cost,
            min_coverage=self.min_coverage,
            min_control=self.min_control,
            trust_control=self.trust_control,
            control_off=self.control.mode == control.OFF,
            allow_incomplete=self.allow_incomplete,
        )

    def unwritable_outputs(self, *, junit: Path | None = None) -> list[str]:
        """One line per file the run would write that cannot be written (issue 31): a run that asked every
        request and then lost its report is worse than a usage error before the first one."""
        from pytest_faef.core.files import why_unwritable

        outputs = (
            ("--faef-report", self.report_path),
            ("--faef-html", self.html_path),
            ("--faef-markdown", self.markdown_path),
            ("--faef-export-pairs", self.export_pairs),
            ("--faef-export-sft", self.export_sft),
            ("--faef-save-baseline", self.save_baseline),
            # The store is written only when models are asked; a project's other tests must not depend on it.
            ("--faef-store", self.store_path if self.evaluations else None),
            ("--junitxml", junit),
        )
        return [
            f"{option}={path}: cannot be written: {why}"
            for option, path in outputs
            if path is not None and (why := why_unwritable(path)) is not None
        ]

    def unknown_dimensions(self, dimensions: Iterable[str]) -> list[str]:
        """One line per threshold or regression rule naming a dimension that none of ``dimensions`` is.

        ``dimensions`` are those of every collected suite file, as written, before ``-k`` deselects
        any: a typo (``privcy=0.9``) is a usage error, a deselected dimension is not (issue 12).
        """
        names = {dimension_key(name): name for name in dimensions}
        there = ", ".join(sorted(names.values(), key=str.casefold)) or "none"
        gates: list[Threshold | RegressionRule] = [*self.thresholds, *self.regression_rules]
        return [
            f"{gate.source}: {gate.text!r}: no collected suite file has a dimension {gate.dimension!r} "
            f"(the dimensions there: {there})"
            for gate in gates
            if gate.dimension is not None and gate.dimension not in names
        ]


# -> (command-line value or None, ini value); paths come back absolute, resolved by the caller
# against the invocation directory (command line) or the ini file's directory (ini).
ValueLookup = Callable[[Option], tuple[Any, Any]]


def build_settings(lookup: ValueLookup, *, rootdir: Path, invocation_dir: Path | None = None) -> RunSettings:
    """Read every option through ``lookup``; raise SettingsError for the first bad one.

    ``invocation_dir`` is where pytest was started: command-line values are checked against its files.
    """
    values: dict[str, Any] = {}
    on_command_line: dict[str, Any] = {}
    for option in OPTIONS:
        cli, ini = lookup(option)
        values[option.name] = _choose(option, cli, ini)
        on_command_line[option.name] = cli
    models = list(dict.fromkeys(model.strip() for model in values["model"]))
    permutations = values["permutations"]
    if permutations not in PERMUTATION_MODES:
        raise SettingsError(f"faef_permutations: {permutations!r} is not one of {', '.join(PERMUTATION_MODES)}")
    record_mode = values["record_mode"]
    if record_mode not in RECORD_MODES:
        raise SettingsError(f"faef_record_mode: {record_mode!r} is not one of {', '.join(RECORD_MODES)}")
    transport = values["transport"]
    if transport not in TRANSPORTS:
        raise SettingsError(f"faef_transport: {transport!r} is not one of {', '.join(TRANSPORTS)}")
    if values["correction"] not in CORRECTIONS:
        raise SettingsError(f"faef_correction: {values['correction']!r} is not one of {', '.join(CORRECTIONS)}")
    if values["sample_rule"] not in SAMPLE_RULES:
        raise SettingsError(f"faef_sample_rule: {values['sample_rule']!r} is not one of {', '.join(SAMPLE_RULES)}")
    store_path = _under(rootdir, Path(values["store"])) if values["store"] else None
    try:
        templates = load_templates(
            multiple_choice_path=_path(values["multiple_choice_template"]),
            judge_path=_path(values["judge_template"]),
        )
    except TemplateError as exc:
        raise SettingsError(str(exc)) from None
    thresholds: list[Threshold] = []
    for metric in ("css", "cs", "robust_css"):
        for text in values[f"min_{metric}"]:
            source = f"--faef-min-{metric.replace('_', '-')} / faef_min_{metric}"
            try:
                thresholds.append(parse_threshold(metric, text, source=source))
            except ThresholdError as exc:
                raise SettingsError(str(exc)) from None
    temperature = _number(values, "temperature", float, minimum=0)
    open_max_tokens = _number(values, "open_max_tokens", int, minimum=1)
    # Asking for a minimum asks for the check, as --faef-compare-fail implies --faef-compare.
    min_judge_accuracy = DEFAULT_MIN_JUDGE_ACCURACY
    if values["min_judge_accuracy"] is not None:
        try:
            min_judge_accuracy = parse_share(
                values["min_judge_accuracy"], source="--faef-min-judge-accuracy / faef_min_judge_accuracy"
            )
        except ThresholdError as exc:
            raise SettingsError(str(exc)) from None
    calibrate_judge = bool(values["calibrate_judge"]) or values["min_judge_accuracy"] is not None
    identities = _identities(models, values["judge"], values["revision"])
    control_source = _control_source(
        values["control"], typed=on_command_line["control"], rootdir=rootdir, here=invocation_dir
    )
    try:
        min_control = parse_share(values["min_control"], source="--faef-min-control / faef_min_control")
    except ThresholdError as exc:
        raise SettingsError(str(exc)) from None
    shots = _number(values, "shots", int, minimum=0)
    samples = _number(values, "samples", int, minimum=1)
    shot_pool = _shot_pool(control_source, shots)
    system = _system_prompt(values["system_prompt"])
    params = _model_params(values["model_param"], models=models, judge=values["judge"])
    evaluations = tuple(
        EvaluationSettings(
            model=model,
            judge=values["judge"] or model,
            permutations=permutations,
            temperature=temperature,
            open_max_tokens=open_max_tokens,
            templates=templates,
            calibrate_judge=calibrate_judge,
            model_identity=identities[model],
            judge_identity=identities[values["judge"] or model],
            shots=shots,
            shot_pool=shot_pool,
            system_prompt=system,
            system_to_judge=bool(values["system_prompt_to_judge"]),
            model_params=params[model],
            judge_params=params[values["judge"] or model],
            samples=samples,
            sample_rule=values["sample_rule"],
        )
        for model in models
    )
    try:
        rules = tuple(
            rule
            for text in values["compare_fail"]
            for rule in parse_regression_rules(text, source="--faef-compare-fail / faef_compare_fail")
        )
    except RuleError as exc:
        raise SettingsError(str(exc)) from None
    alpha = _number(values, "alpha", float, minimum=0)
    if not 0 < alpha < 1:
        raise SettingsError(f"--faef-alpha / faef_alpha: {values['alpha']!r} must lie between 0 and 1")
    baseline_dir = _under(rootdir, Path(values["baseline_dir"]))
    compare = values["compare"] or (DEFAULT_BASELINE if rules else None)
    # A test path written after --faef-save-baseline becomes its value: refuse a value that is a path.
    typed = on_command_line["save_baseline"] not in (None, "", DEFAULT_BASELINE)
    try:
        save_baseline = (
            baseline_path(baseline_dir, values["save_baseline"], saving=True, here=invocation_dir if typed else None)
            if values["save_baseline"]
            else None
        )
        compare_with = baseline_path(baseline_dir, compare, saving=False) if compare else None
    except BaselineError as exc:
        raise SettingsError(str(exc)) from None
    try:
        shard = parse_shard(values["shard"], source="--faef-shard / faef_shard") if values["shard"] else None
    except ShardError as exc:
        raise SettingsError(str(exc)) from None
    perturb = _number(values, "perturb", int, minimum=0)
    kinds = _perturb_kinds(values["perturb_kinds"])
    if not perturb:
        gates: list[Threshold | RegressionRule] = [*thresholds, *rules]
        robust = [gate for gate in gates if gate.metric == "robust_css"]
        if robust:
            raise SettingsError(
                f"{robust[0].source}: {robust[0].text!r}: robust CSS needs perturbed variants: "
                "give --faef-perturb N (variants per item) too"
            )
    return RunSettings(
        evaluations=evaluations,
        thresholds=tuple(thresholds),
        report_path=_path(values["report"]),
        html_path=_path(values["html"]),
        save_baseline=save_baseline,
        compare_with=compare_with,
        regression_rules=rules,
        alpha=alpha,
        strict=bool(values["strict"]),
        correction=values["correction"],
        store_path=store_path,
        record_mode=record_mode,
        concurrency=_concurrency(values["concurrency"]),
        max_concurrency=_number(values, "max_concurrency", int, minimum=1),
        max_cost=None if values["max_cost"] is None else _number(values, "max_cost", float, minimum=0),
        max_retries=_number(values, "max_retries", int, minimum=0),
        timeout=_number(values, "timeout", float, minimum=0.001),
        transport=transport,
        min_judge_accuracy=min_judge_accuracy,
        trust_judge=bool(values["trust_judge"]),
        human_verdicts_path=_under(rootdir, Path(values["human_verdicts"])) if values["human_verdicts"] else None,
        drift_check=_number(values, "drift_check", int, minimum=0),
        drift_noise=_drift_noise(values["drift_noise"]),
        shard=shard,
        markdown_path=_path(values["markdown"]),
        export_pairs=_path(values["export_pairs"]),
        export_sft=_path(values["export_sft"]),
        export_all=bool(values["export_all"]),
        min_coverage=_min_coverage(values["min_coverage"]),
        perturb=perturb,
        perturb_kinds=kinds,
        perturb_shrink_budget=_number(values, "perturb_shrink_budget", int, minimum=0),
        perturbations_path=rootdir / PERTURBATIONS,
        control=control_source,
        min_control=min_control,
        trust_control=bool(values["trust_control"]),
        shots=shots,
        allow_incomplete=bool(values["allow_incomplete"]),
    )


def _drift_noise(text: str) -> float | None:
    """``auto`` (None) or the rate at which an unchanged model's replies differ from its stored ones."""
    if str(text).strip() == "auto":
        return None
    try:
        rate = float(text)
    except (TypeError, ValueError):
        raise SettingsError(f"--faef-drift-noise / faef_drift_noise: {text!r} is neither auto nor a number") from None
    if not 0 <= rate < 0.5:
        raise SettingsError(
            f"--faef-drift-noise / faef_drift_noise: {text!r} must be at least 0 and below 0.5 (at 0.5 an unchanged "
            "model differs as often as a random one)"
        )
    return rate


def _control_source(value: str, *, typed: Any, rootdir: Path, here: Path | None) -> ControlSource:
    """``auto``, ``builtin``, ``off``, or a control file, read and checked now: a bad record is a usage error that
    names its file, line and field. A path on the command line is relative to where pytest started, in the ini
    file to the rootdir."""
    text = str(value).strip()
    if text in control.CONTROL_MODES:
        return ControlSource(mode=text)
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = ((here or rootdir) if typed not in (None, "") else rootdir) / path
    if not path.is_file():
        raise SettingsError(
            f"--faef-control / faef_control: {text!r} is neither auto, builtin, off nor a file"
            + (" (no such file)" if not path.exists() else "")
        )
    try:
        control.load_control(path)
    except ControlError as exc:
        raise SettingsError(f"--faef-control / faef_control: {exc}") from None
    return ControlSource(mode="path", path=path)


def _shot_pool(source: ControlSource, shots: int) -> tuple[Any, ...]:
    """The solved examples ``--faef-shots`` draws from: the control file's items, else the built-in set."""
    if not shots:
        return ()
    pool = control.load_control(source.path) if source.path is not None else control.builtin_items()
    if shots >= len(pool):
        raise SettingsError(
            f"--faef-shots / faef_shots: {shots} is too many: the control has {len(pool)} items, and a capability "
            "item is never shown as its own example"
        )
    return pool


def _min_coverage(texts: list[str]) -> tuple[CoverageMinimum, ...]:
    try:
        return tuple(minimum for text in texts for minimum in parse_min_coverage(text))
    except CoverageError as exc:
        raise SettingsError(str(exc)) from None


def _perturb_kinds(values: list[str]) -> tuple[str, ...]:
    """The families named, each once; whether each exists is known once collection loaded every conftest."""
    from pytest_faef.core.perturbations import KIND_NAME

    kinds = tuple(dict.fromkeys(value.strip() for value in values))
    for kind in kinds:
        if not KIND_NAME.fullmatch(kind):
            raise SettingsError(
                f"--faef-perturb-kinds / faef_perturb_kinds: {kind!r} is not a family name "
                "(lower-case letters, digits and '_'; e.g. typo,case)"
            )
    return kinds


def _system_prompt(value: str | None) -> SystemPrompt | None:
    """The run's system prompt (issue 27), read and checked at start-up."""
    if not value:
        return None
    try:
        return read_system_prompt(Path(value), source="--faef-system-prompt / faef_system_prompt")
    except DeploymentError as exc:
        raise SettingsError(str(exc)) from None


def _model_params(entries: list[str], *, models: Sequence[str], judge: str | None) -> dict[str, ModelParams]:
    """Each model's and the judge's parameters (issue 27); a malformed entry is a usage error naming it."""
    named = list(dict.fromkeys([*models, *([judge] if judge else [])]))
    try:
        return parse_model_params(entries, models=named, source="--faef-model-param / faef_model_param")
    except DeploymentError as exc:
        raise SettingsError(str(exc)) from None


def _identities(models: Sequence[str], judge: str | None, revision_values: list[str]) -> dict[str, ModelIdentity]:
    """Each model's and the judge's endpoint and revision; a revision for a model not in the run is a typo."""
    source = "--faef-revision / faef_revision"
    try:
        revisions = identity.parse_revisions(revision_values, source=source)
    except identity.RevisionError as exc:
        raise SettingsError(str(exc)) from None
    named = [*models, *([judge] if judge else [])]
    if unknown := sorted(set(revisions) - set(named)):
        raise SettingsError(
            f"{source}: {unknown[0]!r} is neither a model under test nor the judge "
            f"(they are: {', '.join(dict.fromkeys(named)) or 'none configured'})"
        )

    def file_revision(model: str) -> str | None:  # only local models have a file: import what reads it for them
        from pytest_faef.calls import local_model

        return local_model.file_revision(model)

    return {
        name: identity.resolve(name, revisions=revisions, file_revision=file_revision) for name in dict.fromkeys(named)
    }


def model_name_problems(models: Sequence[str]) -> list[str]:
    """A model name litellm could not send a request to (issue 31): a usage error before the first request, not
    one error per item. Custom providers a project registered with litellm count, when it is imported already."""
    import sys

    from pytest_faef.calls.litellm_data import model_problem

    custom = [identity.LOCAL_PROVIDER]
    if (litellm := sys.modules.get("litellm")) is not None:
        custom += [str(entry.get("provider")) for entry in getattr(litellm, "custom_provider_map", None) or ()]
    return [
        f"--faef-model / --faef-judge: {problem}"
        for model in dict.fromkeys(models)
        if (problem := model_problem(model, extra_providers=custom)) is not None
    ]


def _choose(option: Option, cli: Any, ini: Any) -> Any:
    if option.switch:
        return bool(cli) or bool(ini)
    if option.multiple:
        chosen: Sequence[str] = cli if cli else (ini or [])
        if not option.comma_separated:
            return [str(entry).strip() for entry in chosen if str(entry).strip()]
        return [text for entry in chosen for text in str(entry).split(",") if text.strip()]
    if cli not in (None, ""):
        return cli
    if isinstance(ini, list):  # a "paths" ini value
        return str(ini[0]) if ini else option.default
    if ini not in (None, ""):
        return str(ini).strip()
    return option.default


def _concurrency(text: str) -> int | None:
    """``auto`` (None) or a number of requests in flight per endpoint."""
    if str(text).strip() == "auto":
        return None
    try:
        number = int(text)
    except (TypeError, ValueError):
        raise SettingsError(f"--faef-concurrency / faef_concurrency: {text!r} is neither auto nor a number") from None
    if number < 1:
        raise SettingsError(f"--faef-concurrency / faef_concurrency: {text!r} must be at least 1")
    return number


def _number(values: dict[str, Any], name: str, kind: type[int] | type[float], *, minimum: float) -> Any:
    text = values[name]
    try:
        number = kind(text)
    except (TypeError, ValueError):
        raise SettingsError(f"--faef-{name.replace('_', '-')} / faef_{name}: {text!r} is not a number") from None
    if number < minimum:
        raise SettingsError(f"--faef-{name.replace('_', '-')} / faef_{name}: {text!r} must be at least {minimum}")
    return number


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _under(rootdir: Path, path: Path) -> Path:
    """A default (relative) path is relative to the rootdir; given paths arrive absolute."""
    return path if path.is_absolute() else rootdir / path
