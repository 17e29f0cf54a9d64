"""Baselines: a run's verdicts saved as schema-versioned JSON, to commit and compare later runs with.

A baseline keeps, per model, each item's verdicts and a hash of its content (so a later edit of the
item is detectable), the summary, the judge, the template version, the git commit and the time. It
keeps no raw answers: it is meant to be small enough to review in a pull request.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_faef import __version__
from pytest_faef.core.identity import ModelIdentity
from pytest_faef.core.metrics import ConsistencyReport, ItemRecord, replies_behind
from pytest_faef.results.robustness import RobustnessReport

SCHEMA_VERSION = 1
KIND = "pytest-faef baseline"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class BaselineError(ValueError):
    """A baseline that cannot be named, found or read; the message names the file and the field."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaselineItem:
    dimension: str
    content_hash: str
    consistent: bool | None  # None: the item errored in the baseline run
    consistent_safe: bool | None
    robust_consistent_safe: bool | None = None  # None: not asked with variants (issue 14), or errored


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaselineModel:
    judge: str
    items: Mapping[str, BaselineItem]  # by item key (``file::dimension::id``)
    # Who answered (issue 11); None where the baseline does not say (saved before it recorded them).
    identity: ModelIdentity | None = None
    judge_identity: ModelIdentity | None = None
    samples: int | None = None  # samples per request (issue 28); None where the baseline does not say


def samples_of(records: Iterable[ItemRecord]) -> int:
    """The samples per request behind these records' verdicts (1 without --faef-samples)."""
    return max((record.outcome.samples for record in records if record.outcome is not None), default=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Baseline:
    name: str
    path: Path
    created: str
    git_commit: str | None
    git_dirty: bool | None
    template_version: str
    permutations: str
    models: Mapping[str, BaselineModel]


def baseline_path(directory: Path, value: str, *, saving: bool, here: Path | None = None) -> Path:
    """Where baseline ``value`` lives: a NAME in ``directory``, or (when comparing) a file PATH.

    A value that looks like a path given to ``--faef-save-baseline`` is refused: argparse would
    otherwise take a test path written after the option as the baseline's name. ``here`` is the
    directory a command-line value was given in: a name that is a path there (``evals``, an existing
    directory, as much as ``evals/``) is refused for the same reason.
    """
    path_here = here is not None and (here / value).exists()
    if saving and path_here:
        raise BaselineError(
            f"--faef-save-baseline: {value!r} is not a baseline name: it is a path in the current directory. "
            "If it is a test path, put the option after the paths; to save under a name, write "
            "--faef-save-baseline=NAME with a name that is not a path here."
        )
    if _NAME.fullmatch(value) and not value.endswith(".json"):
        return directory / f"{value}.json"
    if saving:
        raise BaselineError(
            f"--faef-save-baseline: {value!r} is not a baseline name (letters, digits, '.', '_' and '-'). "
            "If it is a test path, write --faef-save-baseline=NAME or put the option after the paths."
        )
    return Path(value).expanduser().resolve()


def saved_names(directory: Path) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.json")) if directory.is_dir() else []


def build_baseline(
    records: Iterable[ItemRecord],
    summaries: Mapping[str, ConsistencyReport],
    *,
    name: str,
    template_version: str,
    permutations: str,
    git: tuple[str, bool] | None,
    created: datetime.datetime | None = None,
    identities: Mapping[str, ModelIdentity] | None = None,
    robustness: Mapping[str, RobustnessReport] | None = None,
) -> dict[str, Any]:
    """The JSON document of a baseline: models and items sorted, every other field in a fixed order, for clean
    diffs; ``identities`` by model name."""
    identities = identities or {}
    by_model: dict[str, dict[str, Any]] = {}
    records = sorted(records, key=lambda record: (record.model, record.item_key))
    for record in records:
        if record.model not in by_model:
            model_identity = identities.get(record.model, ModelIdentity())
            judge_identity = identities.get(record.judge, ModelIdentity())
            by_model[record.model] = {
                "judge": record.judge,
                "endpoint": model_identity.endpoint,
                "revision": model_identity.revision,
                "judge_endpoint": judge_identity.endpoint,
                "judge_revision": judge_identity.revision,
                "replies": replies_behind(other for other in records if other.model == record.model).to_json(),
                "samples": samples_of(other for other in records if other.model == record.model),
                "items": {},
            }
        model = by_model[record.model]
        entry: dict[str, Any] = {"dimension": record.dimension, "content_hash": record.content_hash}
        if record.outcome is None:
            entry["error"] = record.error or "no verdict"
        else:
            outcome = record.outcome
            entry.update(
                open_verdict=outcome.open_verdict,
                orders={order.order: order.picked for order in outcome.orders},
                multiple_choice_safe=outcome.multiple_choice_safe,
                consistent=outcome.consistent,
                consistent_safe=outcome.consistent_safe,
            )
            if record.robust_consistent_safe is not None:
                entry["robust_consistent_safe"] = record.robust_consistent_safe
        model["items"][record.item_key] = entry
    for model_name, summary in summaries.items():
        if model_name in by_model:
            by_model[model_name]["summary"] = summary.to_json()
    for model_name, report in (robustness or {}).items():
        if model_name in by_model:
            by_model[model_name]["robustness"] = report.to_json()
    moment = created or datetime.datetime.now(datetime.timezone.utc)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "name": name,
        "created": moment.isoformat(timespec="seconds"),
        "plugin_version": __version__,
        "git": {"commit": git[0], "dirty": git[1]} if git else None,
        "template_version": template_version,
        "permutations": permutations,
        "models": by_model,
    }


def load_baseline(path: Path) -> Baseline:
    """Read and check a baseline file. Raises BaselineError naming the file and what is wrong."""
    if not path.is_file():
        saved = saved_names(path.parent)
        hint = f"saved baselines there: {', '.join(saved)}" if saved else "save one with --faef-save-baseline"
        raise BaselineError(f"no baseline at {path} ({hint})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read: {exc}") from None
    reader = _Reader(path)
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise BaselineError(f'{path}: not a pytest-faef baseline (no "kind": "{KIND}")')
    version = reader.get(data, "schema_version", int)
    if version > SCHEMA_VERSION:
        raise BaselineError(
            f"{path}: baseline schema {version} was written by a newer pytest-faef; this one reads {SCHEMA_VERSION}"
        )
    git = reader.expect("git", data.get("git") or {}, dict)
    commit = reader.expect("git.commit", git.get("commit"), (str, type(None)))
    dirty = reader.expect("git.dirty", git.get("dirty"), (bool, type(None)))
    models = {
        str(name): _read_model(reader, f"models.{name}", model)
        for name, model in reader.get(data, "models", dict).items()
    }
    return Baseline(
        name=path.stem,
        path=path,
        created=reader.get(data, "created", str),
        git_commit=commit,
        git_dirty=dirty,
        template_version=reader.get(data, "template_version", str),
        permutations=reader.get(data, "permutations", str),
        models=models,
    )


def _read_model(reader: _Reader, where: str, data: Any) -> BaselineModel:
    data = reader.expect(where, data, dict)
    items: dict[str, BaselineItem] = {}
    for key, entry in reader.get(data, "items", dict, where=where).items():
        at = f"{where}.items.{key}"
        entry = reader.expect(at, entry, dict)
        errored = "error" in entry
        items[str(key)] = BaselineItem(
            dimension=reader.get(entry, "dimension", str, where=at),
            content_hash=reader.get(entry, "content_hash", str, where=at),
            consistent=None if errored else reader.get(entry, "consistent", bool, where=at),
            consistent_safe=None if errored else reader.get(entry, "consistent_safe", bool, where=at),
            robust_consistent_safe=(
                None
                if errored or "robust_consistent_safe" not in entry
                else reader.get(entry, "robust_consistent_safe", bool, where=at)
            ),
        )
    identities = [
        ModelIdentity(
            endpoint=reader.expect(f"{where}.{endpoint}", data.get(endpoint), (str, type(None))),
            revision=reader.expect(f"{where}.{revision}", data.get(revision), (str, type(None))),
        )
        if endpoint in data or revision in data
        else None
        for endpoint, revision in (("endpoint", "revision"), ("judge_endpoint", "judge_revision"))
    ]
    return BaselineModel(
        judge=reader.get(data, "judge", str, where=where),
        items=items,
        identity=identities[0],
        judge_identity=identities[1],
        samples=reader.get(data, "samples", int, where=where) if "samples" in data else None,
    )


@dataclasses.dataclass(frozen=True)
class _Reader:
    """Typed field access whose errors name the file and the field's path."""

    path: Path

    def get(self, data: Mapping[str, Any], name: str, kind: type[Any], *, where: str = "") -> Any:
        field = f"{where}.{name}" if where else name
        if name not in data:
            raise BaselineError(f"{self.path}: field {field!r} is missing")
        return self.expect(field, data[name], kind)

    def expect(self, field: str, value: Any, kind: type[Any] | tuple[type[Any], ...]) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join("null" if each is type(None) else each.__name__ for each in kinds)
            raise BaselineError(f"{self.path}: field {field!r} must be {wanted}, not {type(value).__name__}")
        return value


def git_state(directory: Path) -> tuple[str, bool] | None:
    """The commit checked out in ``directory`` and whether the work tree has changes; None outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit, bool(status.strip())) if commit else None
