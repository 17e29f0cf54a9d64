"""Shard reports back into one run (``faef merge``, issue 16).

Each shard's JSON report holds every item's full record and, since issue 16, its shard and the
settings of each model it ran (``run.shard``, ``run.evaluations``). Merging checks that the reports
are the N shards of one run, each once and complete, then hands their records to the same code that
ends a plugin run (:mod:`pytest_faef.results.run`): the scores, the calibration, the usage, the gate
and the reports are those of an unsharded run of the same items.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_faef.core.deployment import ModelParams, SystemPrompt
from pytest_faef.core.evaluation import EvaluationSettings
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.ledger import RequestLedger
from pytest_faef.core.metrics import ItemRecord
from pytest_faef.core.prompts import PromptTemplates
from pytest_faef.core.requests import counted
from pytest_faef.core.shards import Shard, ShardError, ShardSelection, shard_of
from pytest_faef.results.report import SCHEMA_VERSION
from pytest_faef.results.run import RunDescription, ShardSource

MIXED = "mixed"  # the record mode of a merged run whose shards ran in different modes


class MergeError(ValueError):
    """Reports that cannot be merged; one line per problem, each naming the files."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShardReport:
    """What merging needs of one shard's report."""

    path: str  # as given on the command line, for messages
    selection: ShardSelection
    evaluations: tuple[EvaluationSettings, ...]
    record_mode: str
    provenance: tuple[str, ...]
    records: tuple[ItemRecord, ...]
    control: str = "auto"  # where the shard's control items came from (issue 26)
    requests: RequestLedger | None = None  # what the shard sent (issue 32); None in a report without it

    @property
    def item_keys(self) -> set[str]:
        """The shard's safety items: every shard asks the whole control, so its items are in none alone."""
        return {record.item_key for record in self.records if not record.capability}


def load_shard_report(path: Path, *, shown: str | None = None) -> ShardReport:
    """Read one report; raises MergeError naming the file and the field when it is not a usable report.

    A report of a run without ``--faef-shard`` is shard 1/1 of that run.
    """
    name = shown or str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MergeError(f"{name}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MergeError(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    return shard_report(data, name)


def shard_report(data: Any, name: str) -> ShardReport:
    """One report's parsed JSON as merging needs it; ``name`` is how messages name the report."""
    if not isinstance(data, dict) or "schema_version" not in data:
        raise MergeError(f"{name}: not a pytest-faef JSON report (no schema_version)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise MergeError(
            f"{name}: report schema {data['schema_version']!r}; faef merge reads schema {SCHEMA_VERSION} reports"
        )
    field = _Fields(name)
    run = field.get(data, "run", dict)
    if "shard" not in run or "evaluations" not in run:
        raise MergeError(
            f"{name}: field 'run.shard' is missing: the report was written by a pytest-faef that did not record "
            "shards; run that shard again"
        )
    evaluations = tuple(
        _evaluation(field, f"run.evaluations[{index}]", entry)
        for index, entry in enumerate(field.get(run, "evaluations", list, where="run"))
    )
    records = []
    for index, entry in enumerate(field.get(data, "items", list)):
        where = f"items[{index}]"
        try:
            records.append(ItemRecord.from_json(field.expect(where, entry, dict)))
        except KeyError as exc:
            raise MergeError(f"{name}: field '{where}.{exc.args[0]}' is missing") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise MergeError(f"{name}: {where}: not an item record: {exc}") from None
    shard = run["shard"]
    if shard is None:
        keys = len({record.item_key for record in records if not record.capability})
        selection = ShardSelection(shard=Shard(index=1, count=1), items=keys, selected=keys)
    else:
        shard = field.expect("run.shard", shard, dict)
        try:
            selection = ShardSelection.from_json(shard)
        except KeyError as exc:
            raise MergeError(f"{name}: field 'run.shard.{exc.args[0]}' is missing") from None
        except (TypeError, ValueError, ShardError) as exc:
            raise MergeError(f"{name}: run.shard: {exc}") from None
    return ShardReport(
        path=name,
        selection=selection,
        evaluations=evaluations,
        record_mode=str(run.get("record_mode", "new")),
        provenance=tuple(str(line) for line in field.get(run, "provenance", list, where="run")),
        records=tuple(records),
        control=str(run.get("control", "auto")),
        requests=_requests(field, data.get("requests")),
    )


def _requests(field: _Fields, data: Any) -> RequestLedger | None:
    """A shard's ledger of requests, or None when its report has none."""
    if data is None:
        return None
    try:
        return RequestLedger.from_json(field.expect("requests", data, dict))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MergeError(f"{field.name}: requests: not a ledger of requests: {exc}") from None


def merge_shards(reports: Sequence[ShardReport]) -> tuple[list[ItemRecord], RunDescription]:
    """The records of the whole run, and its description; raises MergeError listing every problem.

    The reports must be shards 1 to N of the same N, each once, hold disjoint items that belong to
    their shards, have selected the same items before sharding, be complete, and come from the same
    models, judges, templates, option orders, sampling settings, endpoints and revisions.
    """
    if not reports:
        raise MergeError("no report to merge")
    problems = _shard_problems(reports) or _item_problems(reports)
    problems += _setting_problems(reports)
    if problems:
        raise MergeError("\n".join(problems))
    ordered = sorted(reports, key=lambda report: report.selection.shard.index)
    # Every shard asked the whole control (issue 26): the first shard's records of it speak for the run.
    chosen: dict[str, ItemRecord] = {}
    for record in (record for report in ordered for record in report.records):
        chosen.setdefault(record.nodeid, record)
    records = sorted(chosen.values(), key=lambda record: record.nodeid)
    modes = {report.record_mode for report in ordered}
    count = ordered[0].selection.shard.count
    run = RunDescription(
        evaluations=ordered[0].evaluations,
        record_mode=modes.pop() if len(modes) == 1 else MIXED,
        provenance=tuple(
            f"shard {report.selection.shard}: {line}" if count > 1 else line
            for report in ordered
            for line in report.provenance
        ),
        merged_from=tuple(ShardSource(report=report.path, selection=report.selection) for report in ordered),
        control=ordered[0].control,
        requests=(
            None
            if any(report.requests is None for report in ordered)
            else RequestLedger.merged(report.requests for report in ordered if report.requests is not None)
        ),
    )
    return records, run


def _shard_problems(reports: Sequence[ShardReport]) -> list[str]:
    """The reports are not shards 1 to N of one N, each once."""
    counts = {report.selection.shard.count for report in reports}
    if len(counts) > 1:
        return [
            "the reports split their runs differently: "
            + ", ".join(f"{report.path} is shard {report.selection.shard}" for report in reports)
        ]
    count = counts.pop()
    problems = []
    by_index: dict[int, list[str]] = {}
    for report in reports:
        by_index.setdefault(report.selection.shard.index, []).append(report.path)
    for index, paths in sorted(by_index.items()):
        if len(paths) > 1:
            every = "both" if len(paths) == 2 else "all"
            problems.append(
                f"shards overlap: {', '.join(paths[:-1])} and {paths[-1]} are {every} shard {index}/{count}"
            )
    if missing := [index for index in range(1, count + 1) if index not in by_index]:
        given = ", ".join(f"{index}/{count} {paths[0]}" for index, paths in sorted(by_index.items()))
        shards = ", ".join(f"{index}/{count}" for index in missing)
        problems.append(f"missing {'shard' if len(missing) == 1 else 'shards'} {shards} (given: {given})")
    return problems


def _item_problems(reports: Sequence[ShardReport]) -> list[str]:
    """Items in two reports, items in the wrong shard, shards that selected differently or ran incompletely."""
    problems = []
    holders: dict[str, list[str]] = {}
    for report in reports:
        for record in report.records:
            if not record.capability:
                holders.setdefault(record.nodeid, []).append(report.path)
    shared = Counter(" and ".join(paths) for paths in holders.values() if len(paths) > 1)
    for pair, count in shared.items():
        example = next(nodeid for nodeid, paths in holders.items() if " and ".join(paths) == pair)
        problems.append(f"shards overlap: {pair} both hold {counted(count, 'test')}, e.g. {example}")
    for report in reports:
        shard = report.selection.shard
        strays = sorted(key for key in report.item_keys if not shard.holds(key))
        if strays:
            problems.append(
                f"{report.path} (shard {shard}) holds {counted(len(strays), 'item')} of other shards, e.g. "
                f"{strays[0]} (shard {shard_of(strays[0], shard.count)}/{shard.count}); item keys are node ids "
                "relative to the rootdir, so every shard must run from the same one"
            )
    selected = {report.selection.selected for report in reports}
    if len(selected) > 1:
        problems.append(
            "the shards selected different items before sharding (another suite, or other -k / -m options): "
            + ", ".join(f"{report.path} {report.selection.selected:,}" for report in reports)
        )
    for report in reports:
        ran, held = len(report.item_keys), report.selection.items
        if ran != held:
            problems.append(
                f"{report.path}: shard {report.selection.shard} held {counted(held, 'item')} but its report has "
                f"{ran:,}: the run was cut short (an interrupt, -x, a crash); run the shard again"
            )
    return problems


def _setting_problems(reports: Sequence[ShardReport]) -> list[str]:
    """Reports whose runs asked other models, or asked them otherwise."""
    aspects: list[tuple[str, Callable[[EvaluationSettings], str]]] = [
        ("judges", lambda settings: f"{settings.model} judged by {settings.judge}"),
        ("prompt templates", lambda settings: f"template version {settings.templates.version}"),
        ("option orders", lambda settings: f"permutations {settings.permutations}"),
        (
            "sampling settings",
            lambda settings: (
                f"temperature {settings.temperature}, token caps {settings.open_max_tokens}/"
                f"{settings.choice_max_tokens}/{settings.judge_max_tokens}"
            ),
        ),
        ("judge calibration", lambda settings: "calibrated" if settings.calibrate_judge else "not calibrated"),
        ("few-shot settings", lambda settings: f"{settings.shots} shots"),
        ("samples", lambda settings: f"{settings.samples} per request, rule {settings.sample_rule}"),
        (
            "system prompts",
            lambda settings: (
                (
                    f"{settings.system_prompt.source} (sha256 {settings.system_prompt.sha256[:12]})"
                    if settings.system_prompt is not None
                    else "none"
                )
                + (", the judge too" if settings.system_to_judge else "")
            ),
        ),
        (
            "model parameters",
            lambda settings: (
                f"model {settings.model_params.describe() or 'defaults'}, "
                f"judge {settings.judge_params.describe() or 'defaults'}"
            ),
        ),
        (
            "endpoints or revisions",
            lambda settings: (
                f"{settings.model} {settings.model_identity.describe() or 'at its default endpoint'}, "
                f"{settings.judge} {settings.judge_identity.describe() or 'at its default endpoint'}"
            ),
        ),
    ]
    problems = _differing(reports, "models", lambda settings: settings.model)
    for aspect, describe in aspects:
        problems += _differing(reports, aspect, describe)
    return problems


def _differing(reports: Sequence[ShardReport], aspect: str, describe: Callable[[EvaluationSettings], str]) -> list[str]:
    """One line when the reports differ in ``aspect``: each description with the reports that have it."""
    by_value: dict[str, list[str]] = {}
    for report in reports:
        value = "; ".join(dict.fromkeys(describe(settings) for settings in report.evaluations)) or "none"
        by_value.setdefault(value, []).append(report.path)
    if len(by_value) < 2:
        return []
    return [
        f"the reports come from different {aspect}: "
        + " | ".join(f"{', '.join(paths)}: {value}" for value, paths in by_value.items())
    ]


def _evaluation(field: _Fields, where: str, entry: Any) -> EvaluationSettings:
    entry = field.expect(where, entry, dict)
    model = field.get(entry, "model", str, where=where)
    optional = (str, type(None))
    return EvaluationSettings(
        model=model,
        judge=field.get(entry, "judge", str, where=where),
        permutations=field.get(entry, "permutations", str, where=where),
        temperature=float(field.get(entry, "temperature", (int, float), where=where)),
        open_max_tokens=field.get(entry, "open_max_tokens", int, where=where),
        choice_max_tokens=field.get(entry, "choice_max_tokens", int, where=where),
        judge_max_tokens=field.get(entry, "judge_max_tokens", int, where=where),
        # The results need the templates' version only; the texts stay with the shards' configuration.
        templates=PromptTemplates(version=field.get(entry, "template_version", str, where=where)),
        calibrate_judge=field.get(entry, "calibrate_judge", bool, where=where),
        shots=int(entry.get("shots", 0)),
        samples=int(entry.get("samples", 1)),
        sample_rule=str(entry.get("sample_rule", "all")),
        # The deployment context (issue 27), as the report names it: digests and parameters, never texts.
        system_prompt=SystemPrompt.described(entry["system_prompt"]) if entry.get("system_prompt") else None,
        system_to_judge=bool(entry.get("system_prompt_to_judge", False)),
        model_params=ModelParams.described(entry.get("model_params") or {}),
        judge_params=ModelParams.described(entry.get("judge_params") or {}),
        model_identity=ModelIdentity(
            endpoint=field.get(entry, "endpoint", optional, where=where),
            revision=field.get(entry, "revision", optional, where=where),
        ),
        judge_identity=ModelIdentity(
            endpoint=field.get(entry, "judge_endpoint", optional, where=where),
            revision=field.get(entry, "judge_revision", optional, where=where),
        ),
    )


@dataclasses.dataclass(frozen=True)
class _Fields:
    """Typed field access whose errors name the report and the field's path."""

    name: str

    def get(
        self, data: Mapping[str, Any], key: str, kind: type[Any] | tuple[type[Any], ...], *, where: str = ""
    ) -> Any:
        field = f"{where}.{key}" if where else key
        if key not in data:
            raise MergeError(f"{self.name}: field {field!r} is missing")
        return self.expect(field, data[key], kind)

    def expect(self, field: str, value: Any, kind: type[Any] | tuple[type[Any], ...]) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join("null" if each is type(None) else each.__name__ for each in kinds)
            raise MergeError(f"{self.name}: field {field!r} must be {wanted}, not {type(value).__name__}")
        return value
