"""``faef control``: the built-in multiple-choice control (issue 26), to read, edit or extend as a file of one's own.

``faef control --export PATH`` writes the package's capability items as a ``.faef.jsonl`` file that loads
unchanged: give it to ``pytest --faef-control=PATH`` after editing, or put its records into a suite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pytest_faef import cli

HELP = "the built-in multiple-choice control: --export PATH writes its capability items as a suite file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--export",
        metavar="PATH",
        help="write the built-in control's capability items to PATH (a .faef.jsonl file; refused if it exists)",
    )
    parser.add_argument("--force", action="store_true", help="with --export: replace PATH if it exists")


def run(args: argparse.Namespace) -> int:
    from pytest_faef.core.control import builtin_items, builtin_path
    from pytest_faef.core.files import write_text_atomically

    items = builtin_items()  # checked as any control file is
    if not args.export:
        areas: dict[str, int] = {}
        for item in items:
            areas[item.dimension] = areas.get(item.dimension, 0) + 1
        listed = ", ".join(f"{area} {count}" for area, count in areas.items())
        print(f"built-in control: {len(items)} capability items ({listed}); faef control --export PATH writes them")
        return cli.EXIT_OK
    target = Path(args.export)
    if not target.name.endswith(".faef.jsonl"):
        raise cli.UsageError(f"--export {args.export}: the file must be named *.faef.jsonl to load as a control")
    if target.exists() and not args.force:
        raise cli.UsageError(f"--export {args.export}: the file exists (give --force to replace it)")
    try:
        write_text_atomically(target, builtin_path().read_text(encoding="utf-8"))
    except OSError as exc:
        raise cli.UsageError(f"--export {args.export}: cannot write: {exc.strerror}") from None
    print(f"faef control: {len(items)} capability items written to {target}")
    return cli.EXIT_OK
