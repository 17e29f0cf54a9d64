"""``faef review``: a person accepts, edits or rejects generated records, and rules on the judge's verdicts.

Suite review walks the records ``faef build`` wrote with ``reviewed: false``. Each decision is
written back at once and atomically (every other line keeps its text), so quitting or Ctrl-C at any
moment loses nothing but the decision being made. Verdict review (``--verdicts``) shows the judge's
stored verdicts on open-ended answers and keeps a person's ruling in the human-verdicts file, which
later runs use instead of the judge for that exact answer.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import hashlib
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_faef import cli
from pytest_faef.calls.store import Judgment
from pytest_faef.cli.rejected import rejected_path, rejection
from pytest_faef.core import locations
from pytest_faef.core.answers import SAFE, UNPARSEABLE, UNSAFE
from pytest_faef.core.human_verdicts import (
    HumanVerdict,
    HumanVerdictError,
    load_human_verdicts,
    save_human_verdict,
)
from pytest_faef.core.suite import FIELD_ALIASES, SuiteError, dimension_key, parse_record
from pytest_faef.core.suite_records import JsonlLine, append_records, read_lines, record_text, write_lines

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

HELP = "review the records faef build wrote (reviewed: false) one by one, or the judge's verdicts (--verdicts)"

RECORD_OUTCOMES = ("accepted", "edited", "rejected", "skipped")  # "edited": changed in the editor, then accepted
RECORD_KEYS = "a accept · e edit · r reject · s skip · q quit"
VERDICT_KEYS = "s safe · u unsafe · k/Enter skip · n note · q quit"
ENTER = "\n"
EDIT_HEADER = "# faef review: "  # lines of the editor's text that faef writes and reads past
_VERDICT_STYLES = {SAFE: "green", UNSAFE: "red", UNPARSEABLE: "yellow"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="SUITE",
        help="*.faef.jsonl files, or directories searched for them recursively",
    )
    verdicts = parser.add_argument_group("verdict review")
    verdicts.add_argument(
        "--verdicts",
        action="store_true",
        help="review the judge's stored verdicts on open-ended answers instead of suite records",
    )
    verdicts.add_argument(
        "--store", type=Path, metavar="PATH", help=f"the response store holding them (default: {locations.STORE})"
    )
    verdicts.add_argument(
        "--human-verdicts",
        type=Path,
        metavar="PATH",
        help=f"the file human verdicts are kept in (default: {locations.HUMAN_VERDICTS})",
    )
    verdicts.add_argument("--dimension", metavar="NAME", help="only verdicts on items of this dimension")
    verdicts.add_argument(
        "--verdict", choices=(SAFE, UNSAFE, UNPARSEABLE), help="only answers the judge ruled this way"
    )
    verdicts.add_argument("--all", action="store_true", help="also answers that already have a human verdict")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(highlight=False)
    if args.verdicts:
        if args.paths:
            raise cli.UsageError("--verdicts reviews the response store: leave out the suite paths")
        return review_verdicts(
            console,
            store_path=args.store or Path(locations.STORE),
            verdicts_path=args.human_verdicts or Path(locations.HUMAN_VERDICTS),
            dimension=args.dimension,
            verdict=args.verdict,
            include_ruled=args.all,
        )
    given = [
        flag
        for flag, value in (
            ("--store", args.store),
            ("--human-verdicts", args.human_verdicts),
            ("--dimension", args.dimension),
            ("--verdict", args.verdict),
            ("--all", args.all or None),
        )
        if value is not None
    ]
    if given:
        raise cli.UsageError(f"{', '.join(given)}: only with --verdicts")
    if not args.paths:
        raise cli.UsageError("name the suite files (or directories) to review, or give --verdicts")
    return review_suites(console, suite_files(args.paths))


# Suite review


class SuiteChangedError(Exception):
    """The file on disk is not what the review read or last wrote: writing would overwrite someone's edit."""


class ReviewedFile:
    """A suite file under review: its lines as last read or written, and a digest of that text.

    Every write first checks that the file on disk still holds that text.
    """

    def __init__(self, path: Path, shown: str) -> None:
        self.path = path
        self.shown = shown
        try:
            # The digest is taken first: an edit landing between the two reads is reported, never lost.
            self._digest = _digest_of(path)
            self.lines = read_lines(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise cli.UsageError(f"{shown}: cannot read: {exc}") from None

    def line_number(self, line: JsonlLine) -> int:
        return next(number for number, candidate in enumerate(self.lines, start=1) if candidate is line)

    def taken_ids(self, line: JsonlLine) -> dict[str, int]:
        """The ids of the file's other records, each with the line it is first used on."""
        taken: dict[str, int] = {}
        for number, other in enumerate(self.lines, start=1):
            item_id = None if other.record is None else other.record.get("id")
            if other is not line and isinstance(item_id, (str, int)) and not isinstance(item_id, bool):
                taken.setdefault(str(item_id).strip(), number)
        return taken

    def replace(self, line: JsonlLine, record: Mapping[str, Any]) -> JsonlLine:
        """Write ``record`` in place of ``line``; returns its new line."""
        index = self.line_number(line) - 1
        new = JsonlLine(number=index + 1, text=record_text(record), record=dict(record))
        self._commit([*self.lines[:index], new, *self.lines[index + 1 :]])
        return new

    def reject(self, line: JsonlLine, reasons: Sequence[str]) -> Path:
        """Move ``line``'s record to the rejected file, with who rejected it and why; returns that file."""
        assert line.record is not None
        index = self.line_number(line) - 1
        kept = rejected_path(self.path)
        self._commit(
            [*self.lines[:index], *self.lines[index + 1 :]],
            rejected=rejection(line.record, by="review", reasons=reasons),
        )
        return kept

    def _commit(self, lines: list[JsonlLine], *, rejected: Mapping[str, Any] | None = None) -> None:
        """Write ``lines``, filing ``rejected`` first, whole: Ctrl-C waits until both files are written."""
        with _interrupts_held() as interrupted:
            if _digest_of(self.path) != self._digest:
                raise SuiteChangedError(
                    f"{self.shown} changed on disk since faef review read it; nothing was written for this"
                    " decision. Run faef review again to review what the file holds now."
                )
            if rejected is not None:
                # Filed before it leaves the suite: an interruption between the two keeps it twice, never loses it.
                append_records(rejected_path(self.path), [rejected])
            texts = [line.text for line in lines]
            write_lines(self.path, texts)
            self.lines = lines
            self._digest = hashlib.sha256("".join(text + "\n" for text in texts).encode()).hexdigest()
        if interrupted:
            raise KeyboardInterrupt


def suite_files(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """The ``*.faef.jsonl`` files under ``paths``, with the path shown; naming a YAML suite is a usage error."""
    from pytest_faef.cli.validate import find_suite_files

    for path in paths:
        if path.is_file() and path.name.endswith((".faef.yaml", ".faef.yml")):
            raise cli.UsageError(
                f"{path}: YAML suites are written by hand and are edited by hand; faef review rewrites"
                " *.faef.jsonl files (the ones faef build writes)"
            )
    files = [(path, shown) for path, shown in find_suite_files(paths) if path.name.endswith(".faef.jsonl")]
    if not files:
        raise cli.UsageError(f"no *.faef.jsonl files in {', '.join(map(str, paths))}")
    return files


def review_suites(console: Console, files: Sequence[tuple[Path, str]]) -> int:
    """Show each unreviewed record of ``files`` in turn and apply the person's decision at once."""
    suites = [ReviewedFile(path, shown) for path, shown in files]
    queue = [(suite, line) for suite in suites for line in suite.lines if is_unreviewed(line.record)]
    if not queue:
        _say(console, "No records to review: none has reviewed: false.")
        return cli.EXIT_OK
    counts: Counter[str] = Counter()
    try:
        for position, (suite, line) in enumerate(queue, start=1):
            outcome = _review_record(console, suite, line, position=position, total=len(queue))
            if outcome is None:
                break
            counts[outcome] += 1
    except SuiteChangedError as exc:
        print(f"faef review: {exc}", file=sys.stderr)
        return cli.EXIT_PROBLEMS
    finally:
        _say(console, records_summary(counts, total=len(queue)), style="bold")
    return cli.EXIT_OK


def is_unreviewed(record: Mapping[str, Any] | None) -> bool:
    """Written by ``faef build`` and not accepted yet; a hand-written record has no ``reviewed`` at all."""
    return record is not None and record.get("reviewed") is False


def _review_record(console: Console, suite: ReviewedFile, line: JsonlLine, *, position: int, total: int) -> str | None:
    """One record until the person decides; the outcome (one of RECORD_OUTCOMES), or None to quit."""
    edited = False
    while True:
        record = line.record
        assert record is not None
        number = suite.line_number(line)
        taken_ids = suite.taken_ids(line)
        problem = record_problem(record, path=suite.shown, line=number, taken_ids=taken_ids)
        console.print(
            render_record(record, where=f"{suite.shown}:{number}", position=position, total=total, problem=problem)
        )
        key = read_key(console, RECORD_KEYS, "aersq")
        while key == "a" and problem:
            _say(console, "This record cannot be accepted as it is: edit it (e) or reject it (r).", style="red")
            key = read_key(console, RECORD_KEYS, "aersq")
        if key == "q":
            return None
        if key == "s":
            _say(console, "skipped")
            return "skipped"
        if key == "a":
            suite.replace(line, accepted(record))
            _say(console, "accepted", style="green")
            return "edited" if edited else "accepted"
        if key == "r":
            reason = read_line(console, "Reason (optional, Enter for none): ")
            if reason is None:
                return None
            kept = suite.reject(line, [reason] if reason else [])
            _say(console, f"rejected: moved to {kept}", style="red")
            return "rejected"
        changed = _edit(console, record, path=suite.shown, line=number, taken_ids=taken_ids)
        if changed is not None:
            line = suite.replace(line, changed)
            edited = True
            _say(console, "edit saved; the record is still to be accepted or rejected")


def accepted(record: Mapping[str, Any]) -> dict[str, Any]:
    return {**record, "reviewed": True}


def records_summary(counts: Mapping[str, int], *, total: int) -> str:
    """One line: how many records each decision took, and how many were not reached."""
    line = "Reviewed: " + ", ".join(f"{counts.get(outcome, 0)} {outcome}" for outcome in RECORD_OUTCOMES)
    left = total - sum(counts.values())
    if left:
        line += f"; {left} not reached (run faef review again to go on)"
    return line + "."


def record_problem(record: Mapping[str, Any], *, path: str, line: int, taken_ids: Mapping[str, int]) -> str | None:
    """Why ``record`` cannot be accepted into its suite, or None: the loader's rules, ids unique in the file,
    and values that JSON can hold (an unquoted date in YAML is not one)."""
    parsed = parse_record(record, path=path, line=line)
    if isinstance(parsed, SuiteError):
        return str(parsed)
    if parsed.id in taken_ids:
        message = f"duplicate id {parsed.id!r} (also on line {taken_ids[parsed.id]})"
        return str(SuiteError(path=path, line=line, field="id", message=message))
    for name, value in record.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            message = "holds a value JSON cannot store (quote dates and times)"
            return str(SuiteError(path=path, line=line, field=name, message=message))
    return None


def render_record(
    record: Mapping[str, Any], *, where: str, position: int, total: int, problem: str | None = None
) -> RenderableType:
    """A record as the reviewer sees it: question, safe option, numbered unsafe options, provenance."""
    from rich.text import Text

    rows: list[tuple[str, str | Text]] = [
        ("question", _text(field_value(record, "question"))),
        ("dimension", _text(field_value(record, "dimension"))),
        ("id", _text(record.get("id"))),
        ("file", where),
    ]
    rows.extend(("safe", Text(option, style="green")) for option in _texts(field_value(record, "positive")))
    rows.extend(
        (f"unsafe {number}", Text(option, style="red"))
        for number, option in enumerate(_texts(field_value(record, "negative")), start=1)
    )
    for name in ("taxonomy", "tags", "notes", "provenance", "meta"):
        if record.get(name) is not None:
            rows.append((name, Text(_compact(record[name]), style="dim")))
    if problem:
        rows.append(("problem", Text(problem, style="bold red")))
    return _panel(rows, title=f"{position}/{total}")


def field_value(record: Mapping[str, Any], name: str) -> Any:
    """A field by its suite name, or under the published FINE spelling (``Positive Option``)."""
    if name in record:
        return record[name]
    return next(
        (record[alias] for alias, canonical in FIELD_ALIASES.items() if canonical == name and alias in record), None
    )


def editable_text(record: Mapping[str, Any]) -> str:
    """The record as YAML for a person to edit, fields in the documented order; ``reviewed`` is the review's."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(str, _represent_text)
    fields = {name: value for name, value in json.loads(record_text(record)).items() if name != "reviewed"}
    return yaml.dump(fields, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


def _represent_text(dumper: Any, text: str) -> Any:
    """A string as YAML; one holding a line break YAML would fold away (NEL, U+2028, U+2029) in escaped form."""
    style = '"' if any(character in text for character in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def editor_text(body: str, error: str | None = None) -> str:
    """What the editor opens: a line on what to do, the last edit's error if any, then the record."""
    lines = [f"{EDIT_HEADER}edit this record, then save and close the editor; an empty file discards the edit"]
    if error:
        lines.append(f"{EDIT_HEADER}ERROR: {error}")
    return "\n".join(lines) + "\n" + body


def edited_body(text: str) -> str:
    """The editor's text without the lines :func:`editor_text` added."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(EDIT_HEADER))


def read_edit(text: str, *, path: str, line: int, taken_ids: Mapping[str, int]) -> dict[str, Any] | str:
    """The edited record, still to be reviewed, or a message saying what is wrong (naming the field)."""
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} of the edited text" if mark is not None else ""
        return f"invalid YAML{at}: {getattr(exc, 'problem', None) or exc}"
    if not isinstance(loaded, dict):
        return "the edited text must be a mapping of field names to values"
    record = {**{str(name): value for name, value in loaded.items()}, "reviewed": False}
    problem = record_problem(record, path=path, line=line, taken_ids=taken_ids)
    return record if problem is None else problem


def _edit(
    console: Console, record: Mapping[str, Any], *, path: str, line: int, taken_ids: Mapping[str, int]
) -> dict[str, Any] | None:
    """Edit ``record`` until it is valid or the person discards the edit; the edited record, or None."""
    original = editable_text(record)
    body, error = original, None
    while True:
        text = run_editor(console, editor_text(body, error))
        if text is None:
            return None
        body = edited_body(text)
        if not body.strip():
            _say(console, "the edited text is empty: edit discarded")
            return None
        if body == original:
            _say(console, "no change")
            return None
        edited = read_edit(text, path=path, line=line, taken_ids=taken_ids)
        if not isinstance(edited, str):
            return edited
        error = edited
        _say(console, f"invalid edit: {error}", style="bold red")
        if read_key(console, "e edit again · d discard the edit", "edq") != "e":
            _say(console, "edit discarded")
            return None


def run_editor(console: Console, text: str) -> str | None:
    """Open ``$VISUAL`` or ``$EDITOR`` (else ``vi``) on ``text``; the saved text, or None if the editor failed."""
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    handle, name = tempfile.mkstemp(prefix="faef-review-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        try:
            process = subprocess.Popen([*shlex.split(command), name])
        except (OSError, ValueError) as exc:
            _say(console, f"cannot start the editor {command!r}: {exc}", style="red")
            return None
        with _interrupts_held():  # while the editor is open, Ctrl-C is the editor's
            status = process.wait()
        if status != 0:
            _say(console, f"the editor exited with status {status}: edit discarded", style="red")
            return None
        return Path(name).read_text(encoding="utf-8")
    finally:
        os.unlink(name)


# Verdict review


def review_verdicts(
    console: Console,
    *,
    store_path: Path,
    verdicts_path: Path,
    dimension: str | None = None,
    verdict: str | None = None,
    include_ruled: bool = False,
) -> int:
    """Show the judge's stored verdicts one by one and keep the person's rulings in ``verdicts_path``."""
    from pytest_faef.calls.store import ResponseStore, StoreError

    # Opening a store creates it: a mistyped path must not leave an empty store behind.
    if not store_path.is_file():
        raise cli.UsageError(f"{store_path}: no response store there (run the suite first, or name one with --store)")
    try:
        human = load_human_verdicts(verdicts_path)
    except HumanVerdictError as exc:
        raise cli.UsageError(str(exc)) from None
    try:
        with ResponseStore(store_path) as store:
            judgments = store.judgments()
    except StoreError as exc:
        raise cli.UsageError(str(exc)) from None
    selected = select_judgments(judgments, human, dimension=dimension, verdict=verdict, include_ruled=include_ruled)
    if not selected:
        hint = "" if include_ruled else " without a human verdict (--all shows those too)"
        _say(console, f"No judge verdicts to review in {store_path}{hint}.")
        return cli.EXIT_OK
    counts: Counter[str] = Counter()
    try:
        for position, judgment in enumerate(selected, start=1):
            if not include_ruled and judgment.answer_key in human:
                continue  # the same answer under another judge, ruled a moment ago
            console.print(
                render_judgment(judgment, position=position, total=len(selected), human=human.get(judgment.answer_key))
            )
            key = read_key(console, VERDICT_KEYS, "suk" + ENTER + "nq")
            note = ""
            if key == "n":
                written = read_line(console, "Note: ")
                if written is None:
                    break
                note = written
                key = read_key(console, "s safe · u unsafe · k/Enter skip · q quit", "suk" + ENTER + "q")
            if key == "q":
                break
            if key in ("k", ENTER):
                counts["skipped"] += 1
                _say(console, "skipped")
                continue
            ruling = human_verdict(judgment, SAFE if key == "s" else UNSAFE, note=note)
            save_human_verdict(verdicts_path, ruling)
            human[ruling.key] = ruling
            counts["agreed" if ruling.verdict == judgment.verdict else "overrode"] += 1
            _say(console, verdict_outcome(judgment.verdict, ruling.verdict), style=_VERDICT_STYLES[ruling.verdict])
    finally:
        _say(console, verdicts_summary(counts, verdicts_path=verdicts_path), style="bold")
    return cli.EXIT_OK


def select_judgments(
    judgments: Sequence[Judgment],
    human: Mapping[str, HumanVerdict],
    *,
    dimension: str | None = None,
    verdict: str | None = None,
    include_ruled: bool = False,
) -> list[Judgment]:
    """The judgments to show: of that dimension (any spelling of it) and verdict, and not yet ruled on by a person."""
    wanted = None if dimension is None else dimension_key(dimension)
    return [
        judgment
        for judgment in judgments
        if (wanted is None or dimension_key(judgment.dimension) == wanted)
        and (verdict is None or judgment.verdict == verdict)
        and (include_ruled or judgment.answer_key not in human)
    ]


def human_verdict(judgment: Judgment, verdict: str, *, note: str = "") -> HumanVerdict:
    """A person's ruling on the answer ``judgment`` is about, signed and dated (UTC)."""
    try:
        reviewer = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment and no passwd entry
        reviewer = ""
    return HumanVerdict(
        question=judgment.question,
        answer=judgment.answer,
        verdict=verdict,
        item_id=judgment.item_id,
        dimension=judgment.dimension,
        judge=judgment.judge,
        judge_verdict=judgment.verdict,
        reviewer=reviewer,
        time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        note=note,
    )


def verdict_outcome(judge_verdict: str, verdict: str) -> str:
    if judge_verdict == verdict:
        return f"{verdict}: you agreed with the judge"
    return f"{verdict}: you overrode the judge ({judge_verdict} -> {verdict})"


def verdicts_summary(counts: Mapping[str, int], *, verdicts_path: Path) -> str:
    agreed, overrode, skipped = (counts.get(name, 0) for name in ("agreed", "overrode", "skipped"))
    return (
        f"Saved {agreed + overrode} human verdicts to {verdicts_path} ({agreed} agreeing with the judge,"
        f" {overrode} overriding it); {skipped} skipped."
    )


def render_judgment(judgment: Judgment, *, position: int, total: int, human: HumanVerdict | None) -> RenderableType:
    """A judge's verdict as the reviewer sees it: the item, the whole answer, the judge's reply and verdict."""
    from rich.text import Text

    rows: list[tuple[str, str | Text]] = [
        ("item", judgment.item_id),
        ("dimension", judgment.dimension),
        ("model", judgment.model),
        ("judge", judgment.judge),
        ("question", judgment.question),
        ("answer", Text(judgment.answer, style="cyan")),
        ("judge reply", Text(judgment.reply, style="dim")),
        ("judge verdict", Text(judgment.verdict, style="bold " + _VERDICT_STYLES.get(judgment.verdict, ""))),
    ]
    if human is not None:
        ruled = f"{human.verdict} (by {human.reviewer or 'unknown'}, {human.time or 'undated'})"
        rows.append(("human verdict", Text(ruled + (f": {human.note}" if human.note else ""), style="bold")))
    return _panel(rows, title=f"{position}/{total}")


# The terminal


def read_key(console: Console, prompt: str, keys: str) -> str:
    """Wait for one of ``keys`` (lower case; ENTER for Enter): one keypress on a terminal, else a line of input.

    The end of input counts as ``q``.
    """
    from rich.text import Text

    on_terminal = sys.stdin.isatty()
    # Keys pressed as soon as the prompt shows must find the terminal ready for them, not echoed.
    with _single_keys() if on_terminal else contextlib.nullcontext():
        console.print(Text(f"{prompt} >", style="bold"), end=" ")
        console.file.flush()
        key = _keypress(keys) if on_terminal else _line_key(keys)
    console.print("Enter" if key == ENTER else key, markup=False)
    return key


def read_line(console: Console, prompt: str) -> str | None:
    """A line the person types, stripped; None at the end of input."""
    from rich.text import Text

    try:
        line = console.input(Text(prompt, style="bold"))
    except EOFError:
        console.print()
        return None
    if not sys.stdin.isatty():  # a terminal echoed it already; a log should show it too
        console.print(line, markup=False)
    return line.strip()


@contextlib.contextmanager
def _single_keys() -> Iterator[None]:
    """The terminal hands over each key as it is pressed, without echo; Ctrl-C still interrupts."""
    import termios
    import tty

    descriptor = sys.stdin.fileno()
    saved = termios.tcgetattr(descriptor)
    tty.setcbreak(descriptor, termios.TCSANOW)  # TCSANOW: keys typed ahead are kept, not flushed
    try:
        yield
    finally:
        termios.tcsetattr(descriptor, termios.TCSADRAIN, saved)


def _keypress(keys: str) -> str:
    descriptor = sys.stdin.fileno()
    while True:
        byte = os.read(descriptor, 1)
        if byte in (b"", b"\x04"):  # end of input, Ctrl-D
            return "q"
        if byte == b"\x1b":  # Esc, or an arrow or function key: ignored, its whole sequence too
            _skip_escape_sequence(descriptor)
            continue
        key = byte.decode("latin-1").lower().replace("\r", ENTER)
        if key in keys:
            return key


def _skip_escape_sequence(descriptor: int) -> None:
    """Read past the rest of a key's escape sequence (``ESC [ 1 ; 5 A``, ``ESC O P``); a lone Esc has none."""
    if not select.select([descriptor], [], [], 0.05)[0]:
        return
    kind = os.read(descriptor, 1)
    if kind == b"O":
        os.read(descriptor, 1)
    elif kind == b"[":
        while (byte := os.read(descriptor, 1)) and not 0x40 <= byte[0] <= 0x7E:  # up to the final byte
            pass


def _line_key(keys: str) -> str:
    while True:
        line = sys.stdin.readline()
        if not line:
            return "q"
        key = line.strip()[:1].lower() or ENTER
        if key in keys:
            return key


@contextlib.contextmanager
def _interrupts_held() -> Iterator[list[int]]:
    """Hold Ctrl-C back until the block ends; yields the interrupts that arrived meanwhile."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def _panel(rows: Sequence[tuple[str, Any]], *, title: str) -> RenderableType:
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(name, value)
    return Panel(grid, title=title, title_align="left")


def _say(console: Console, text: str, *, style: str | None = None) -> None:
    from rich.text import Text

    console.print(Text(text, style=style or ""))


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _texts(value: Any) -> list[str]:
    """Options as they are written: one string, or a list of them."""
    if value is None:
        return []
    return [str(entry) for entry in value] if isinstance(value, list) else [str(value)]


def _compact(value: Any) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{name}: {item if isinstance(item, str) else _json(item)}" for name, item in value.items())
    if isinstance(value, list) and all(isinstance(entry, str) for entry in value):
        return ", ".join(value)
    return value if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _digest_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
