"""The JSON report: every item's verdicts and raw answers, plus the summary. Schema in docs/report.md."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from pytest_faef import __version__
from pytest_faef.core.evaluation import EvaluationSettings, verdict_meaning, verdict_pair
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.ledger import RequestLedger
from pytest_faef.core.metrics import (
    ConsistencyReport,
    ItemRecord,
    ModelUsage,
    replies_behind,
    system_prompts_used,
    usage_by_model,
)
from pytest_faef.core.shards import ShardSelection
from pytest_faef.results.calibration import JudgeCalibration
from pytest_faef.results.comparison import Comparison
from pytest_faef.results.control import ControlDiagnosis
from pytest_faef.results.coverage import records_coverage
from pytest_faef.results.position_bias import PositionBias
from pytest_faef.results.robustness import RobustnessReport

# 3 (issue 26): capability items among ``items`` (``kind``), ``control`` per model, ``open_only`` beside a
# ``fake_alignment`` that is null when the control withheld the label, ``run.control``.
SCHEMA_VERSION = 3


def build_report(
    records: Iterable[ItemRecord],
    summaries: Mapping[str, ConsistencyReport],
    evaluations: Sequence[EvaluationSettings],
    *,
    gate_failures: list[str],
    gate_checks: Sequence[str] = (),
    gate_unchecked: Sequence[str] = (),
    comparison: Comparison | None = None,
    calibrations: Sequence[JudgeCalibration] | None = None,
    min_judge_accuracy: Fraction | None = None,
    trust_judge: bool = False,
    record_mode: str = "new",
    drift: Sequence[str] = (),
    shard: ShardSelection | None = None,
    merged_from: Sequence[Mapping[str, Any]] = (),
    position_bias: Mapping[str, PositionBias] | None = None,
    robustness: Mapping[str, RobustnessReport] | None = None,
    controls: Mapping[str, ControlDiagnosis] | None = None,
    open_only_labels: Mapping[str, str] | None = None,
    control: str = "auto",
    min_control: Fraction | None = None,
    trust_control: bool = False,
    invalid_records: Sequence[str] = (),
    selected: int | None = None,
    not_run: Sequence[tuple[str, str]] = (),
    requests: RequestLedger | None = None,
    interrupted: str | None = None,
    gate_tests: Sequence[Mapping[str, Any]] = (),
    correction: Mapping[str, Any] | None = None,
    power: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The whole report. ``calibrations`` is None when the judge was not calibrated (``calibration: null``);
    with calibrations, ``min_judge_accuracy`` is the minimum they were gated on.

    ``drift`` holds the lines that say where replies came from beyond each model's counts: drift
    checks, and a replay-only record mode. ``position_bias`` holds each model's picks by displayed position.
    """
    records = list(records)
    run: dict[str, Any] = {"plugin_version": __version__, "models": [settings.model for settings in evaluations]}
    if evaluations:
        first = evaluations[0]
        run.update(
            judge=None if first.self_judged else first.judge,
            permutations=first.permutations,
            temperature=first.temperature,
            template_version=first.templates.version,
        )
    run.update(
        record_mode=record_mode,
        provenance=list(drift),
        control=control,
        min_control=float(min_control) if min_control is not None else None,
        trust_control=trust_control,
    )
    # What faef merge needs to check and rebuild a run from its shards' reports (issue 16).
    run.update(
        shard=shard.to_json() if shard is not None else None,
        merged_from=[dict(source) for source in merged_from],
        evaluations=[evaluation_json(settings) for settings in evaluations],
    )
    by_model = {settings.model: settings for settings in evaluations}
    models = [
        {
            **_model_json(model, by_model.get(model), summary, [record for record in records if record.model == model]),
            **_position_bias_json(position_bias, model),
        }
        for model, summary in summaries.items()
    ]
    for entry in models:  # with --faef-perturb (issue 14)
        if robustness and entry["model"] in robustness:
            entry["robustness"] = robustness[entry["model"]].to_json()
        diagnosis = (controls or {}).get(entry["model"])
        entry["control"] = diagnosis.to_json() if diagnosis is not None else None
        entry["open_only_label"] = (open_only_labels or {}).get(entry["model"])
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run,
        "models": models,
        "interrupted": interrupted,  # why the session ended early (Ctrl-C, -x), or null (issue 33)
        "gate": {
            "passed": not gate_failures,
            # Some selected item has no verdict: whatever was gated, the run is not whole (issue 33).
            "incomplete": bool(not_run),
            "failures": gate_failures,
            "checks": list(gate_checks),
            "unchecked": list(gate_unchecked),
            # The regression gate's tests as one family (issue 28): each with its raw and adjusted p-value.
            "correction": dict(correction) if correction is not None else None,
            "tests": [dict(test) for test in gate_tests],
            "power": [dict(entry) for entry in power],
        },
        "comparison": comparison.to_json() if comparison is not None else None,
        "calibration": _calibration_json(calibrations, min_judge_accuracy, trusted=trust_judge),
        "coverage": records_coverage(record for record in records if not record.capability).to_json(),
        "invalid_records": list(invalid_records),
        "selected": selected,
        "complete": not not_run,  # every selected item ended with a verdict of its own (issue 32)
        "not_run": [{"nodeid": nodeid, "reason": reason} for nodeid, reason in not_run],
        # Every attempt sent, by model and kind (issue 32): null for a run that did not count them (merged reports
        # of an older version).
        "requests": requests.to_json() if requests is not None else None,
        "items": [
            item_json(record, open_only=(open_only_labels or {}).get(record.model))
            for record in sorted(records, key=lambda r: r.nodeid)
        ],
    }


def evaluation_json(settings: EvaluationSettings) -> dict[str, Any]:
    """How one model was asked and judged: every setting that decides its requests, and who answered."""
    return {
        "model": settings.model,
        "judge": settings.judge,
        "permutations": settings.permutations,
        "temperature": settings.temperature,
        "open_max_tokens": settings.open_max_tokens,
        "choice_max_tokens": settings.choice_max_tokens,
        "judge_max_tokens": settings.judge_max_tokens,
        "template_version": settings.templates.version,
        "calibrate_judge": settings.calibrate_judge,
        "shots": settings.shots,
        "samples": settings.samples,
        "sample_rule": settings.sample_rule,
        "system_prompt": settings.system_prompt.describe() if settings.system_prompt is not None else None,
        "system_prompt_to_judge": settings.system_to_judge,
        "model_params": settings.model_params.describe(),
        "judge_params": settings.judge_params.describe(),
        "endpoint": settings.model_identity.endpoint,
        "revision": settings.model_identity.revision,
        "judge_endpoint": settings.judge_identity.endpoint,
        "judge_revision": settings.judge_identity.revision,
    }


def _calibration_json(
    calibrations: Sequence[JudgeCalibration] | None, minimum: Fraction | None, *, trusted: bool
) -> list[dict[str, Any]] | None:
    if calibrations is None:
        return None
    if minimum is None:
        raise ValueError("a calibrated judge's report needs the minimum it was gated on")
    return [
        {
            **calibration.to_json(),
            "minimum": float(minimum),
            "passed": not calibration.overall.below(minimum),
            "trusted_anyway": trusted,
        }
        for calibration in calibrations
    ]


def _position_bias_json(position_bias: Mapping[str, PositionBias] | None, model: str) -> dict[str, Any]:
    """``position_bias`` of one model's entry (issue 15); absent when the caller computed none."""
    if position_bias is None:
        return {}
    bias = position_bias.get(model)
    return {"position_bias": bias.to_json() if bias is not None else None}


def _model_json(
    model: str, settings: EvaluationSettings | None, summary: ConsistencyReport, records: Sequence[ItemRecord]
) -> dict[str, Any]:
    judge = settings.judge if settings is not None else model
    identity = settings.model_identity if settings is not None else ModelIdentity()
    judge_identity = settings.judge_identity if settings is not None else ModelIdentity()
    return {
        "model": model,
        "judge": judge,
        "self_judged": judge == model,
        "endpoint": identity.endpoint,
        "revision": identity.revision,
        "judge_endpoint": judge_identity.endpoint,
        "judge_revision": judge_identity.revision,
        "replies": replies_behind(records).to_json(),
        "deployment": deployment_json(settings, records),
        "summary": summary.to_json(),
    }


def deployment_json(settings: EvaluationSettings | None, records: Sequence[ItemRecord]) -> dict[str, Any]:
    """The context a model was asked in (issue 27): the run's system prompt, every system prompt its items were
    asked under with how many items each (by source and digest, never the text), the context turns, both sides'
    parameters, and the tokens its replies spent reasoning."""
    model = records[0].model if records else None
    reasoning = usage_by_model(records).get(model, ModelUsage()).reasoning_tokens if model is not None else 0
    return {
        "system_prompt": settings.system_prompt.describe() if settings and settings.system_prompt else None,
        "system_prompt_to_judge": settings.system_to_judge if settings is not None else False,
        "system_prompts": [{**use.described, "items": use.items} for use in system_prompts_used(records)],
        "items_without_system_prompt": sum(record.system_prompt is None for record in records),
        "items_with_context": sum(record.context_turns > 0 for record in records),
        "params": settings.model_params.describe() if settings is not None else {},
        "judge_params": settings.judge_params.describe() if settings is not None else {},
        "reasoning_tokens": reasoning,
    }


def item_json(record: ItemRecord, *, open_only: str | None = None) -> dict[str, Any]:
    """One item's record and what its verdicts mean; ``open_only`` is what its model's control calls an item safe
    only in the open form (issue 26)."""
    data = record.to_json()
    outcome = record.outcome
    if outcome is None:
        return data
    labels: dict[str, Any] = {"capability": record.capability}
    if open_only is not None:
        labels["open_only"] = open_only
    if record.capability:
        data["verdicts"] = {
            "open_correct": outcome.open_correct,
            "multiple_choice_correct": outcome.multiple_choice_correct,
            "meaning": verdict_meaning(outcome, **labels),
            "pair": verdict_pair(outcome, **labels),
        }
    else:
        data["verdicts"] = {
            "open_safe": outcome.open_safe,
            "multiple_choice_safe": outcome.multiple_choice_safe,
            "consistent": outcome.consistent,
            "consistent_safe": outcome.consistent_safe,
            "meaning": verdict_meaning(outcome, **labels),
            "pair": verdict_pair(outcome, **labels),
        }
    return data
