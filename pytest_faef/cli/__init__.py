"""The ``faef`` command: build paired suites, review them and judge verdicts, validate suite files, merge the
reports of a sharded run, export the built-in multiple-choice control. Imports the core, calls and results; never
pytest's face.

Each subcommand lives in its own module with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> exit status``; modules import nothing heavy at the top, so ``faef --help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = {
    "build": "pytest_faef.cli.build",
    "review": "pytest_faef.cli.review",
    "validate": "pytest_faef.cli.validate",
    "merge": "pytest_faef.cli.merge",
    "control": "pytest_faef.cli.control",
}

EXIT_OK = 0
EXIT_PROBLEMS = 1  # the command ran and found problems: invalid records, rejected options
EXIT_USAGE = 2  # bad arguments or unreadable input: nothing was done
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Input the command cannot work with; the message names the file, line and field where it can."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="faef",
        description="Build, review and validate FAEF paired suites, and merge the reports of sharded runs "
        "(pytest-faef). Run suites with pytest.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        subparser = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except UsageError as exc:
        print(f"faef {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"faef {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status
