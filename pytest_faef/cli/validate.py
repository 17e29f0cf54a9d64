"""``faef validate``: check suite files without running a model, with an exit status for CI.

Each file is checked by :func:`pytest_faef.suite.load_suite`; this module adds what needs every file
at once (an id used in two files), on request refuses records that nobody has reviewed yet, and on
request shows which entries of the trust taxonomy the suite covers (issue 18).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from pytest_faef import cli
from pytest_faef.core import taxonomy
from pytest_faef.core.suite import SUITE_SUFFIXES, PairedItem, SuiteError, is_suite_file, load_suite
from pytest_faef.core.taxonomy import Coverage

HELP = "check suite files without running models: schema, duplicate ids across files, review state"

# Directories that hold tools' copies of files, not a user's suites; hidden ones are skipped too.
SKIPPED_DIRECTORIES = frozenset({".tox", "node_modules", "venv", ".venv", "__pycache__", "build", "dist"})

FORMATS = ("text", "json")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Validation:
    """What checking a set of suite files found; ``items`` counts the records pytest would run."""

    files: tuple[str, ...]
    items: int
    errors: tuple[SuiteError, ...]
    unreviewed: int
    coverage: Coverage = dataclasses.field(default_factory=lambda: Coverage(exact={}))  # of the loaded items
    capability: int = 0  # of ``items``, those of the multiple-choice control (issue 26): in no coverage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        default=["."],
        metavar="PATH",
        help="suite files, or directories searched for them recursively (default: the current directory)",
    )
    parser.add_argument(
        "--require-reviewed",
        action="store_true",
        help="report records written by faef build and not yet accepted (reviewed: false) as errors",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text: one line per error and a summary (default); json: one JSON document",
    )
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="also show which categories and sub-categories of the trust taxonomy the items cover, with item "
        "counts, and which have none",
    )


def run(args: argparse.Namespace) -> int:
    paths = [Path(path) for path in args.paths]
    validation = validate(paths, require_reviewed=args.require_reviewed)
    if args.format == "json":
        print(json.dumps(validation_json(validation, coverage=args.coverage), indent=2))
    else:
        print("\n".join(validation_lines(validation, coverage=args.coverage)))
    return cli.EXIT_PROBLEMS if validation.errors else cli.EXIT_OK


def validate(paths: Sequence[Path], *, require_reviewed: bool = False) -> Validation:
    """Check the suite files named by ``paths``; raises :class:`cli.UsageError` for an unusable path."""
    files = find_suite_files(paths)
    if not files:
        # Usually a wrong path or a misspelt suffix: CI must not pass because nothing was checked.
        return Validation(files=(), items=0, errors=tuple(map(_no_suite_files, paths)), unreviewed=0)
    items = 0
    unreviewed = capability = 0
    entries: list[str | None] = []
    errors: list[SuiteError] = []
    first_use: dict[str, tuple[str, int]] = {}  # id -> (file, line), whether that record loaded or not
    for path, shown in files:
        loaded = load_suite(path, display_path=shown)
        items += len(loaded.items)
        entries += [item.taxonomy for item in loaded.items if not item.capability]
        capability += sum(item.capability for item in loaded.items)
        file_errors = list(loaded.errors)
        # The loader reports repeats within a file; an invalid record's id is taken all the same.
        claims: list[tuple[int, str, PairedItem | None]] = [(item.line, item.id, item) for item in loaded.items]
        claims += [(line, item_id, None) for item_id, line in loaded.invalid_ids]
        for line, item_id, item in sorted(claims, key=lambda claim: claim[0]):
            other = first_use.setdefault(item_id, (shown, line))
            if item is None:
                continue
            if other[0] != shown:
                file_errors.append(_error(item, "id", f"duplicate id {item_id!r} (also in {other[0]}:{other[1]})"))
            if item.reviewed is False:
                unreviewed += 1
                if require_reviewed:
                    file_errors.append(_error(item, "reviewed", f"not reviewed yet (run faef review {shown})"))
        errors.extend(sorted(file_errors, key=lambda error: error.line))
    return Validation(
        files=tuple(shown for _, shown in files),
        items=items,
        errors=tuple(errors),
        unreviewed=unreviewed,
        coverage=taxonomy.coverage(entries),
        capability=capability,
    )


def find_suite_files(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """Every suite file under ``paths``, once, with the path errors show, sorted by that path.

    The order does not depend on the order of the arguments, so which of two files holding the same
    id is reported is stable: the one that sorts later.
    """
    found: dict[Path, tuple[Path, str]] = {}
    for path in paths:
        if path.is_dir():
            candidates = list(_walk(path))
        elif not path.exists():
            raise cli.UsageError(f"{path}: no such file or directory")
        elif is_suite_file(path):
            candidates = [path]
        else:
            raise cli.UsageError(f"{path}: not a suite file (the name must end in {_suffixes()})")
        for candidate in candidates:
            found.setdefault(candidate.resolve(), (candidate, display_path(candidate)))
    return sorted(found.values(), key=lambda file: Path(file[1]).parts)


def display_path(path: Path) -> str:
    """``path`` relative to the current directory where it lies below it, else as given."""
    cwd = Path.cwd()
    for candidate in (Path(os.path.abspath(path)), path.resolve()):
        try:
            return str(candidate.relative_to(cwd))
        except ValueError:
            continue
    return str(path)


def validation_lines(validation: Validation, *, coverage: bool = False) -> list[str]:
    """The text report: one line per error, the taxonomy coverage when asked for, then a summary line."""
    from pytest_faef.results.coverage import coverage_table

    shown = coverage_table(validation.coverage) if coverage else []
    return [*map(str, validation.errors), *shown, summary_line(validation)]


def summary_line(validation: Validation) -> str:
    line = ", ".join(
        [
            _count(len(validation.files), "file"),
            _count(validation.items, "item")
            + (f" ({validation.capability} of the multiple-choice control)" if validation.capability else ""),
            _count(len(validation.errors), "error"),
        ]
    )
    if validation.unreviewed:
        line += f"; {_count(validation.unreviewed, 'item')} not reviewed yet (run faef review)"
    return line


def validation_json(validation: Validation, *, coverage: bool = False) -> dict[str, object]:
    data: dict[str, object] = {
        "files": list(validation.files),
        "items": validation.items,
        "capability_items": validation.capability,
        "errors": [dataclasses.asdict(error) for error in validation.errors],
        "unreviewed": validation.unreviewed,
    }
    if coverage:
        data["coverage"] = validation.coverage.to_json()
    return data


def _walk(directory: Path) -> Iterator[Path]:
    def refuse(exc: OSError) -> None:
        unreadable = Path(exc.filename) if exc.filename else directory
        raise cli.UsageError(f"{display_path(unreadable)}: cannot read directory: {exc.strerror}")

    # Symbolic links to directories are not followed: they would visit files twice or loop.
    for root, directories, names in os.walk(directory, onerror=refuse):
        directories[:] = sorted(
            name for name in directories if not name.startswith(".") and name not in SKIPPED_DIRECTORIES
        )
        yield from (Path(root, name) for name in names if is_suite_file(Path(name)))


def _no_suite_files(path: Path) -> SuiteError:
    return SuiteError(
        path=display_path(path), line=0, field=None, message=f"no suite files found (names ending in {_suffixes()})"
    )


def _error(item: PairedItem, field: str, message: str) -> SuiteError:
    return SuiteError(path=item.path, line=item.line, field=field, message=message)


def _suffixes() -> str:
    return ", ".join(SUITE_SUFFIXES[:-1]) + " or " + SUITE_SUFFIXES[-1]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
