"""``faef build``: turn a file of open-ended safety questions into a paired suite.

Each question gets a safe option from ``--positive-model`` and unsafe options from
``--negative-model``; options that fail the checks are asked again, and records that still fail
are kept apart with the reasons. Replies go to the same response store the plugin uses, so an
interrupted build run again sends only the requests it had not finished, and records already in
the output (perhaps reviewed by hand since) are never touched.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import hashlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_faef import cli
from pytest_faef.calls.replay import TRANSPORTS
from pytest_faef.cli.generation import (
    BUILD_TEMPLATE_VERSION,
    GeneratedOptions,
    GeneratorSettings,
    OptionChecks,
    generate_options,
)
from pytest_faef.cli.rejected import rejected_path, rejection
from pytest_faef.core import identity, locations, taxonomy
from pytest_faef.core.suite import jsonl_objects, load_suite
from pytest_faef.core.suite_records import append_records, read_lines, record_text, write_lines

HELP = "generate a paired suite (*.faef.jsonl) from open-ended questions with generator models"
INPUT_FIELDS = ("id", "question", "dimension", "category", "taxonomy", "tags", "notes", "meta")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Question:
    """One input question; ``extra`` holds the input's other fields, kept under the record's ``meta``."""

    id: str
    dimension: str
    question: str
    source: str  # file:line
    tags: tuple[str, ...] = ()
    notes: str | None = None
    taxonomy: str | None = None  # the id of the trust-taxonomy entry the input names, written to the record
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """What became of one question: a record to write, a rejection, or a failed request."""

    key: str  # the record's id
    source: str
    record: dict[str, Any] | None = None
    problems: tuple[str, ...] = ()
    error: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, nargs="?", help="questions: .jsonl or .csv with question and dimension")
    parser.add_argument("-o", "--output", type=Path, help="the suite to write (*.faef.jsonl)")
    parser.add_argument(
        "--from-suite",
        type=Path,
        metavar="SUITE",
        help="add unsafe options to the items of this suite until each has --negatives (output: the suite itself)",
    )
    parser.add_argument("--positive-model", help="litellm model that writes the safe option")
    parser.add_argument("--negative-model", required=True, help="litellm model that writes the unsafe options")
    parser.add_argument("--negatives", type=int, default=1, help="unsafe options per item (default: 1)")
    parser.add_argument(
        "--attempts", type=int, default=3, help="tries per option before the record is rejected (default: 3)"
    )
    parser.add_argument("--temperature", type=float, default=0.7, help="generators' sampling temperature (0.7)")
    parser.add_argument("--max-tokens", type=int, default=300, help="token cap per generated option (300)")
    checks = parser.add_argument_group("option checks")
    defaults = OptionChecks()
    checks.add_argument("--min-words", type=int, default=defaults.min_words, help="shortest option, in words (3)")
    checks.add_argument("--max-chars", type=int, default=defaults.max_chars, help="longest option (800 characters)")
    checks.add_argument(
        "--max-length-ratio",
        type=float,
        default=defaults.max_length_ratio,
        help="an unsafe option may be at most this many times longer or shorter than the safe one (3)",
    )
    checks.add_argument(
        "--max-similarity",
        type=float,
        default=defaults.max_similarity,
        help="options this similar (0-1, difflib ratio) count as the same answer (0.8)",
    )
    requests = parser.add_argument_group("requests (as in the plugin)")
    requests.add_argument(
        "--store", type=Path, default=Path(locations.STORE), help=f"response store ({locations.STORE})"
    )
    requests.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        metavar="auto|N",
        help="requests in flight per endpoint: auto (found by itself, as in the plugin; the default) or a number",
    )
    requests.add_argument("--max-retries", type=int, default=3, help="retries of a failed request (3)")
    requests.add_argument("--timeout", type=float, default=120.0, help="seconds per request (120)")
    requests.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="auto",
        help="auto: OpenAI-compatible endpoints of your own by the plugin's own HTTP client, the rest through "
        "litellm (the default); litellm: everything through litellm",
    )


def run(args: argparse.Namespace) -> int:
    settings, checks = _settings(args)
    if args.from_suite is not None:
        if args.input is not None:
            raise cli.UsageError("give either an input file of questions or --from-suite SUITE, not both")
        return _add_negatives(args, settings, checks)
    if args.input is None or args.output is None:
        raise cli.UsageError("give an input file of questions and -o OUTPUT.faef.jsonl (or --from-suite SUITE)")
    if settings.positive_model == "":
        raise cli.UsageError("--positive-model is required to build from questions")
    output: Path = args.output
    if not output.name.endswith(".faef.jsonl"):
        raise cli.UsageError(f"{output}: the output must end in .faef.jsonl, or pytest will not collect it")
    questions, input_errors = read_questions(args.input)
    for error in input_errors:
        print(error, file=sys.stderr)
    done = _existing_ids(output)
    rejects = rejected_path(output)
    first_seeds = _seeds_after_rejection(rejects)
    pending = [question for question in questions if question.id not in done]

    async def build_one(question: Question, responder: Any) -> Outcome:
        generated = await generate_options(
            question.question, settings, responder, checks=checks, first_seed=first_seeds.get(question.id, 0)
        )
        return _question_outcome(question, generated, settings)

    outcomes = _run_requests(
        args, settings, [(question.id, question.source, question) for question in pending], build_one
    )
    built = [outcome.record for outcome in outcomes if outcome.record is not None and not outcome.problems]
    if built:
        append_records(output, built)
    rejected = [outcome for outcome in outcomes if outcome.problems]
    _update_rejects(rejects, outcomes)
    failed = len(outcomes) - len(built) - len(rejected)
    print(
        f"faef build: {len(questions)} questions: {len(built)} built, {len(rejected)} rejected, {failed} failed, "
        f"{len(questions) - len(pending)} already in {output}"
    )
    _print_problems(outcomes, rejects=rejects)
    return cli.EXIT_PROBLEMS if input_errors or rejected or failed else cli.EXIT_OK


def _concurrency(text: str) -> int | None:
    """``auto`` (None) or a number at least 1, for --concurrency."""
    if text == "auto":
        return None
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither auto nor a number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return number


def _settings(args: argparse.Namespace) -> tuple[GeneratorSettings, OptionChecks]:
    for name in ("negatives", "attempts", "max_tokens", "min_words", "max_chars"):
        if getattr(args, name) < 1:
            raise cli.UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_retries < 0:
        raise cli.UsageError("--max-retries must be at least 0")
    if args.max_length_ratio < 1:
        raise cli.UsageError("--max-length-ratio must be at least 1")
    if not 0 < args.max_similarity <= 1:
        raise cli.UsageError("--max-similarity must lie in (0, 1]")
    from pytest_faef.calls.local_model import file_revision

    models = [model for model in (args.positive_model, args.negative_model) if model]
    settings = GeneratorSettings(
        identities={model: identity.resolve(model, revisions={}, file_revision=file_revision) for model in models},
        positive_model=args.positive_model or "",
        negative_model=args.negative_model,
        negatives=args.negatives,
        attempts=args.attempts,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
    )
    checks = OptionChecks(
        min_words=args.min_words,
        max_chars=args.max_chars,
        max_length_ratio=args.max_length_ratio,
        max_similarity=args.max_similarity,
    )
    return settings, checks


def read_questions(path: Path) -> tuple[list[Question], list[str]]:
    """The questions in a .jsonl or .csv file, and one message per bad record (file, line, field)."""
    if path.suffix not in (".jsonl", ".csv"):
        raise cli.UsageError(f"{path}: questions must be in a .jsonl or .csv file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise cli.UsageError(f"{path}: cannot read: {exc}") from None
    rows = _csv_rows(text) if path.suffix == ".csv" else jsonl_objects(text)
    questions: list[Question] = []
    errors: list[str] = []
    first_source: dict[str, str] = {}
    for line, row in rows:
        where = f"{path}:{line}"
        if isinstance(row, str):
            errors.append(f"{where}: {row}")
            continue
        parsed = _question(row, where)
        if isinstance(parsed, str):
            errors.append(parsed)
            continue
        if parsed.id in first_source:
            field = "id" if "id" in row else "question"
            errors.append(f"{where}: field {field!r}: the same id {parsed.id!r} as {first_source[parsed.id]}")
            continue
        first_source[parsed.id] = where
        questions.append(parsed)
    return questions, errors


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        return
    line = 1  # the header
    for row in reader:
        start, line = line + 1, reader.line_num
        if None in row:  # more cells than the header names
            cells = len(row[None]) + len(reader.fieldnames)
            yield start, f"{cells} cells, but the header names {len(reader.fieldnames)}"
            continue
        # An empty cell is an absent field, except where the field is required (it is then empty).
        yield start, {name: value for name, value in row.items() if value or name in ("question", "dimension")}


def _question(row: Mapping[str, Any], where: str) -> Question | str:
    def error(field: str, message: str) -> str:
        return f"{where}: field {field!r}: {message}"

    if "dimension" in row and "category" in row:
        return error("category", "given as well as 'dimension'")
    dimension_field = "category" if "category" in row else "dimension"
    texts = {}
    for name in ("question", dimension_field):
        value = row.get(name)
        if value is None:
            return error(name, "missing" if name == "question" else "missing (or 'category')")
        if not isinstance(value, str):
            return error(name, f"must be a string, not {type(value).__name__}")
        if not value.strip():
            return error(name, "empty")
        texts[name] = " ".join(value.split())
    raw_id = row.get("id")
    if raw_id is None:
        # Stable across edits of other lines: a question keeps its id wherever it moves.
        item_id = "q-" + hashlib.sha256(texts["question"].encode()).hexdigest()[:10]
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
        return error("id", "must be a non-empty string or an integer")
    else:
        item_id = str(raw_id).strip()
    tags = row.get("tags", [])
    if isinstance(tags, str):  # a CSV cell: tags separated by commas or semicolons
        tags = [tag.strip() for tag in tags.replace(";", ",").split(",") if tag.strip()]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return error("tags", "must be a list of strings")
    notes = row.get("notes")
    if notes is not None and not isinstance(notes, str):
        return error("notes", "must be a string")
    entry = None
    if (named := row.get("taxonomy")) is not None:
        if not isinstance(named, str):
            return error("taxonomy", f"must be a string, not {type(named).__name__}")
        try:
            entry = taxonomy.resolve(named.strip())
        except taxonomy.TaxonomyError as exc:
            return error("taxonomy", str(exc))
    meta = row.get("meta", {})
    if not isinstance(meta, dict):
        return error("meta", "must be a mapping")
    extra = {**meta, **{name: value for name, value in row.items() if name not in INPUT_FIELDS}}
    return Question(
        id=item_id,
        dimension=texts[dimension_field],
        question=texts["question"],
        source=where,
        tags=tuple(tags),
        notes=notes,
        taxonomy=entry.id if entry is not None else None,
        extra=extra,
    )


def _question_outcome(question: Question, generated: GeneratedOptions, settings: GeneratorSettings) -> Outcome:
    record: dict[str, Any] = {
        "id": question.id,
        "dimension": question.dimension,
        **({"taxonomy": question.taxonomy} if question.taxonomy is not None else {}),
        "question": question.question,
        "positive": generated.positive,
        "negative": list(generated.negatives),
    }
    if question.tags:
        record["tags"] = list(question.tags)
    if question.notes is not None:
        record["notes"] = question.notes
    record["reviewed"] = False
    record["provenance"] = {
        "positive_model": settings.positive_model,
        "negative_model": settings.negative_model,
        "template_version": BUILD_TEMPLATE_VERSION,
        "attempts": generated.attempts,
        "source": question.source,
    }
    if question.extra:
        record["meta"] = dict(question.extra)
    return Outcome(key=question.id, source=question.source, record=record, problems=generated.problems)


Job = tuple[str, str, Any]  # (record id, where it comes from, what the work function gets)
Work = Callable[[Any, Any], Any]  # async (payload, responder) -> Outcome


def _run_requests(
    args: argparse.Namespace, settings: GeneratorSettings, jobs: Sequence[Job], work: Work
) -> list[Outcome]:
    """Run ``work`` for every job on one event loop, through the store, with retries and a progress bar."""
    if not jobs:
        return []
    from pytest_faef.calls.responders import ModelResponder, RecordedResponder, missing_credentials
    from pytest_faef.calls.store import ResponseStore, StoreError
    from pytest_faef.core.requests import ModelCallError, Target

    # A missing key would fail every request: say so before the first (issue 12).
    for model, served in settings.identities.items():
        if lacking := missing_credentials(Target(model=model, endpoint=served.endpoint)):
            raise cli.UsageError(f"{model} needs {' and '.join(lacking)}, which is not set")

    try:
        store = ResponseStore(args.store)
    except StoreError as exc:
        raise cli.UsageError(str(exc)) from None
    responder = RecordedResponder(
        responder=ModelResponder(max_retries=args.max_retries, timeout=args.timeout, transport=args.transport),
        store=store,
        concurrency=args.concurrency,
    )

    async def one(key: str, source: str, payload: Any) -> Outcome:
        try:
            outcome: Outcome = await work(payload, responder)
        except ModelCallError as exc:
            return Outcome(key=key, source=source, error=str(exc))
        return outcome

    async def everything() -> list[Outcome]:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        tasks = [asyncio.ensure_future(one(*job)) for job in jobs]
        columns = (TextColumn("faef build"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
        console = Console(stderr=True)
        with Progress(
            *columns, TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal
        ) as progress:
            bar = progress.add_task("", total=len(tasks))
            for finished in asyncio.as_completed(tasks):
                await finished
                stats = responder.stats
                progress.update(bar, advance=1, description=f"{stats.sent} sent, {stats.cache_hits} from the store")
        await responder.aclose()
        return [task.result() for task in tasks]

    try:
        return asyncio.run(everything())
    except KeyboardInterrupt:
        print(
            f"faef build: interrupted; every reply received is in {args.store}: "
            "run the same command again to go on without asking for them twice",
            file=sys.stderr,
        )
        raise
    finally:
        store.close()


def _existing_ids(output: Path) -> set[str]:
    """Ids already in the output: those records are kept as they are (they may have been reviewed)."""
    return {record_id for line in read_lines(output) if (record_id := _record_id(line.record)) is not None}


def _seeds_after_rejection(rejects: Path) -> dict[str, int]:
    """For each rejected record, the first seed not tried yet: a new build asks for new texts."""
    seeds = {}
    for line in read_lines(rejects):
        record = line.record
        record_id = _record_id(record)
        if record is None or record_id is None:
            continue
        rejected = record.get("rejected") or {}
        provenance = record.get("provenance") or {}
        seeds[record_id] = max(int(rejected.get("attempts", 0)), int(provenance.get("attempts", 0)))
    return seeds


def _update_rejects(rejects: Path, outcomes: Sequence[Outcome]) -> None:
    """Keep the rejected records of this build beside the output, and drop those that are now built.

    A record this build decided again (built, or rejected anew) replaces its old line; one whose
    request failed keeps it.
    """
    settled = {outcome.key for outcome in outcomes if outcome.error is None}
    kept = [line.text for line in read_lines(rejects) if _record_id(line.record) not in settled]
    new = [
        record_text(
            rejection(
                outcome.record,
                by="build",
                reasons=outcome.problems,
                attempts=int(outcome.record["provenance"]["attempts"]),
            )
        )
        for outcome in outcomes
        if outcome.problems and outcome.record is not None
    ]
    if kept or new:
        write_lines(rejects, [*kept, *new])
    elif rejects.exists():
        rejects.unlink()


def _record_id(record: Mapping[str, Any] | None) -> str | None:
    return str(record["id"]).strip() if record and "id" in record else None


def _print_problems(outcomes: Sequence[Outcome], *, rejects: Path | None) -> None:
    rejected = [outcome for outcome in outcomes if outcome.problems]
    if rejected:
        where = f"kept in {rejects}; " if rejects is not None else ""
        print(f"rejected ({where}run the same command again to ask for new options):")
        for outcome in rejected:
            print(f"  {outcome.key} ({outcome.source}):")
            for problem in outcome.problems:
                print(f"    - {problem}")
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if failed:
        print("failed (a model request failed for good; run again to retry):")
        for outcome in failed:
            print(f"  {outcome.key} ({outcome.source}): {outcome.error}")


def _add_negatives(args: argparse.Namespace, settings: GeneratorSettings, checks: OptionChecks) -> int:
    suite: Path = args.from_suite
    output: Path = args.output or suite
    if not output.name.endswith(".faef.jsonl"):
        raise cli.UsageError(f"{output}: the output must be a .faef.jsonl file (give one with -o)")
    loaded = load_suite(suite)
    if loaded.errors:
        for error in loaded.errors:
            print(error, file=sys.stderr)
        raise cli.UsageError(f"{suite}: fix the {len(loaded.errors)} invalid record(s) first (see faef validate)")
    lines = _suite_records(suite)
    raw = {record_id: record for record_id, _, record in lines if record_id is not None and record is not None}
    by_id = {item.id: item for item in loaded.items}
    # A capability item's wrong options are not unsafe ones: the control is left as it is (issue 26).
    control = sum(item.capability for item in loaded.items)
    safety = [item for item in loaded.items if not item.capability]
    short = [item for item in safety if len(item.negatives) < settings.negatives]

    async def extend(item_id: str, responder: Any) -> Outcome:
        item = by_id[item_id]
        generated = await generate_options(
            item.question,
            settings,
            responder,
            checks=checks,
            positive=item.positive,
            existing_negatives=item.negatives,
        )
        record = _extended(raw[item_id], generated, settings, added=settings.negatives - len(item.negatives))
        return Outcome(key=item_id, source=f"{suite}:{item.line}", record=record, problems=generated.problems)

    outcomes = _run_requests(args, settings, [(item.id, f"{suite}:{item.line}", item.id) for item in short], extend)
    extended = {outcome.key: outcome.record for outcome in outcomes if outcome.record and not outcome.problems}
    texts = [record_text(extended[record_id]) if record_id in extended else text for record_id, text, _ in lines]
    if extended or output != suite:
        write_lines(output, texts)
    rejected = sum(bool(outcome.problems) for outcome in outcomes)
    failed = sum(outcome.error is not None for outcome in outcomes)
    print(
        f"faef build: {len(safety)} items in {suite}: {len(extended)} given more unsafe options "
        f"(written to {output}), {rejected} rejected, {failed} failed, "
        f"{len(safety) - len(short)} already had {settings.negatives}"
        + (f"; {control} capability {'item' if control == 1 else 'items'} left as they are" if control else "")
    )
    _print_problems(outcomes, rejects=None)
    if rejected:
        print("  (rejected items are unchanged; raise --attempts to ask for more texts: earlier ones are stored)")
    return cli.EXIT_PROBLEMS if rejected or failed else cli.EXIT_OK


def _extended(
    record: Mapping[str, Any], generated: GeneratedOptions, settings: GeneratorSettings, *, added: int
) -> dict[str, Any]:
    updated = dict(record)
    # Keep the record's own spelling of the field (the published FINE data says "Negative Option").
    field = "Negative Option" if "Negative Option" in updated else "negative"
    updated[field] = list(generated.negatives)
    updated["reviewed"] = False  # new text: someone should read it
    provenance = dict(updated.get("provenance") or {})
    provenance.update(
        negative_model=settings.negative_model,
        template_version=BUILD_TEMPLATE_VERSION,
        attempts=generated.attempts,
        added_negatives=added,
    )
    updated["provenance"] = provenance
    return updated


def _suite_records(suite: Path) -> list[tuple[str | None, str, dict[str, Any] | None]]:
    """(id, the line to write back unless extended, the record as written: every field in the file's own
    spelling) for each line of a JSONL suite, or each record of a YAML one."""
    if suite.name.endswith(".faef.jsonl"):
        return [(_record_id(line.record), line.text, line.record) for line in read_lines(suite)]
    import yaml

    records = yaml.safe_load(suite.read_text(encoding="utf-8")) or []
    return [(_record_id(record), record_text(record), record) for record in records]
