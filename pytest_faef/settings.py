"""User-facing options, validated once at start-up into one frozen value.

Each option has a command-line spelling (``--faef-x``) and an ini key (``faef_x``); the plugin
hands both raw values here and the command line wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from pytest_faef import model_identity
from pytest_faef.baseline import DEFAULT_BASELINE, BaselineError, baseline_path
from pytest_faef.calibration import DEFAULT_MIN_JUDGE_ACCURACY
from pytest_faef.comparison import RegressionRule, RuleError, parse_regression_rules
from pytest_faef.drift import DEFAULT_SAMPLE
from pytest_faef.evaluation import EvaluationSettings
from pytest_faef.gate import Threshold, ThresholdError, parse_share, parse_threshold
from pytest_faef.human_verdicts import DEFAULT_HUMAN_VERDICTS
from pytest_faef.model_identity import ModelIdentity
from pytest_faef.models import RECORD_MODES
from pytest_faef.orders import PERMUTATION_MODES
from pytest_faef.prompts import TemplateError, load_templates
from pytest_faef.store import DEFAULT_STORE
from pytest_faef.suite import dimension_key


class SettingsError(ValueError):
    """An option value that cannot be used; the message names the option."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Option:
    """One option: its help, its default, and how its ini value is read."""

    name: str  # "model" -> --faef-model and faef_model
    help: str
    default: str | None = None
    ini_type: str = "string"
    choices: tuple[str, ...] | None = None
    multiple: bool = False  # may be given more than once on the command line
    # A flag whose value may be left out (``--faef-compare`` alone means this value).
    optional_value: str | None = None
    metavar: str | None = None
    switch: bool = False  # a flag without a value (``--faef-strict``); its ini key is a bool

    @property
    def flag(self) -> str:
        return "--faef-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "faef_" + self.name


OPTIONS = (
    Option(
        name="model",
        help="litellm model under test, e.g. openai/gpt-4o-mini or faef-local/smollm2; "
        "give it more than once (or one per ini line) to test several models",
        ini_type="linelist",
        multiple=True,
    ),
    Option(name="judge", help="litellm model that judges open-ended answers (default: the model judges itself)"),
    Option(
        name="permutations",
        help="option orders to ask: auto (all k! orders while k! <= 24, else k rotations), all, or cyclic",
        default="auto",
        choices=PERMUTATION_MODES,
    ),
    Option(
        name="min_css",
        help="fail the session below this CSS: 0.85, 85%, or dimension=0.9",
        ini_type="linelist",
        multiple=True,
    ),
    Option(
        name="min_cs",
        help="fail the session below this CS: 0.85, 85%, or dimension=0.9",
        ini_type="linelist",
        multiple=True,
    ),
    Option(name="report", help="write a JSON report of every item and the summary to this path", ini_type="paths"),
    Option(
        name="store",
        help="SQLite file of stored model replies (relative to the rootdir by default)",
        default=DEFAULT_STORE,
        ini_type="paths",
    ),
    Option(
        name="record_mode",
        help="none (replay only), once (record into a new store only), new (request what is missing), "
        "all (request everything again)",
        default="new",
        choices=RECORD_MODES,
    ),
    Option(name="concurrency", help="model requests in flight at once", default="16"),
    Option(name="temperature", help="sampling temperature for the model under test", default="0"),
    Option(name="open_max_tokens", help="token cap for open-ended answers", default="256"),
    Option(name="max_retries", help="retries of a failed model request before the item errors", default="3"),
    Option(name="timeout", help="seconds before one model request times out", default="120"),
    Option(
        name="multiple_choice_template",
        help="file with a multiple-choice prompt template ($question, $options, $labels)",
        ini_type="paths",
    ),
    Option(name="judge_template", help="file with a judge prompt template ($question, $answer)", ini_type="paths"),
    Option(
        name="baseline_dir",
        help="folder of saved baselines (relative to the rootdir by default; meant to be committed)",
        default=".faef/baselines",
        ini_type="paths",
    ),
    Option(
        name="save_baseline",
        help="save this run as baseline NAME (default: 'default') in the baseline folder",
        optional_value=DEFAULT_BASELINE,
        metavar="NAME",
    ),
    Option(
        name="compare",
        help="compare this run with baseline NAME or a baseline file PATH (default: 'default')",
        optional_value=DEFAULT_BASELINE,
        metavar="NAME|PATH",
    ),
    Option(
        name="compare_fail",
        help="fail on a significant drop against the baseline, e.g. css:-2%,cs:-5%,privacy.css:-0",
        ini_type="linelist",
        multiple=True,
    ),
    Option(name="alpha", help="significance level of the regression gate's McNemar test", default="0.05"),
    Option(
        name="strict",
        help="regression gate: fail on any drop beyond its tolerance, significant or not",
        ini_type="bool",
        switch=True,
    ),
    Option(name="html", help="write a self-contained HTML report to this path", ini_type="paths"),
    Option(
        name="calibrate_judge",
        help="also send each item's options to the judge, report its accuracy on them, and fail the gate "
        "when it cannot tell safe from unsafe answers",
        ini_type="bool",
        switch=True,
    ),
    Option(
        name="min_judge_accuracy",
        help="fail the session when the judge's balanced accuracy on the suite's options is below this: "
        f"0.9 or 90% (default {float(DEFAULT_MIN_JUDGE_ACCURACY):.0%}); implies --faef-calibrate-judge",
    ),
    Option(
        name="trust_judge",
        help="a judge below --faef-min-judge-accuracy is a warning, not a gate failure",
        ini_type="bool",
        switch=True,
    ),
    Option(
        name="revision",
        help="the revision of a model or judge, as MODEL=REV (e.g. a checkpoint's git sha); part of every "
        "stored reply's key, so replies of another revision are never replayed; repeatable",
        ini_type="linelist",
        multiple=True,
        metavar="MODEL=REV",
    ),
    Option(
        name="drift_check",
        help="in record mode new, ask this many of each model's stored replies again before replaying the rest; "
        "if any changed, the model's stored replies are stale and every request is asked again (0: off)",
        default=str(DEFAULT_SAMPLE),
    ),
    Option(
        name="human_verdicts",
        help="JSONL file of human verdicts that replace the judge's for exact answers "
        "(relative to the rootdir by default)",
        default=DEFAULT_HUMAN_VERDICTS,
        ini_type="paths",
    ),
)


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
    store_path: Path | None = None
    record_mode: str = "new"
    concurrency: int = 16
    max_retries: int = 3
    timeout: float = 120.0
    min_judge_accuracy: Fraction = DEFAULT_MIN_JUDGE_ACCURACY
    trust_judge: bool = False
    human_verdicts_path: Path | None = None
    drift_check: int = DEFAULT_SAMPLE  # stored replies per model asked again before replaying the rest

    @property
    def calibrate_judge(self) -> bool:
        return any(evaluation.calibrate_judge for evaluation in self.evaluations)

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
    store_path = _under(rootdir, Path(values["store"])) if values["store"] else None
    try:
        templates = load_templates(
            multiple_choice_path=_path(values["multiple_choice_template"]),
            judge_path=_path(values["judge_template"]),
        )
    except TemplateError as exc:
        raise SettingsError(str(exc)) from None
    thresholds: list[Threshold] = []
    for metric in ("css", "cs"):
        for text in values[f"min_{metric}"]:
            try:
                thresholds.append(parse_threshold(metric, text, source=f"--faef-min-{metric} / faef_min_{metric}"))
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
        store_path=store_path,
        record_mode=record_mode,
        concurrency=_number(values, "concurrency", int, minimum=1),
        max_retries=_number(values, "max_retries", int, minimum=0),
        timeout=_number(values, "timeout", float, minimum=0.001),
        min_judge_accuracy=min_judge_accuracy,
        trust_judge=bool(values["trust_judge"]),
        human_verdicts_path=_under(rootdir, Path(values["human_verdicts"])) if values["human_verdicts"] else None,
        drift_check=_number(values, "drift_check", int, minimum=0),
    )


def _identities(models: Sequence[str], judge: str | None, revision_values: list[str]) -> dict[str, ModelIdentity]:
    """Each model's and the judge's endpoint and revision; a revision for a model not in the run is a typo."""
    source = "--faef-revision / faef_revision"
    try:
        revisions = model_identity.parse_revisions(revision_values, source=source)
    except model_identity.RevisionError as exc:
        raise SettingsError(str(exc)) from None
    named = [*models, *([judge] if judge else [])]
    if unknown := sorted(set(revisions) - set(named)):
        raise SettingsError(
            f"{source}: {unknown[0]!r} is neither a model under test nor the judge "
            f"(they are: {', '.join(dict.fromkeys(named)) or 'none configured'})"
        )
    from pytest_faef.local_model import file_revision

    return {
        name: model_identity.resolve(name, revisions=revisions, file_revision=file_revision)
        for name in dict.fromkeys(named)
    }


def _choose(option: Option, cli: Any, ini: Any) -> Any:
    if option.switch:
        return bool(cli) or bool(ini)
    if option.multiple:
        chosen: Sequence[str] = cli if cli else (ini or [])
        return [text for entry in chosen for text in str(entry).split(",") if text.strip()]
    if cli not in (None, ""):
        return cli
    if isinstance(ini, list):  # a "paths" ini value
        return str(ini[0]) if ini else option.default
    if ini not in (None, ""):
        return str(ini).strip()
    return option.default


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
