"""Suite files: paired items in ``*.faef.jsonl`` or ``*.faef.yaml``, and their validation.

A bad record never hides the good ones: loading returns every valid item together with one
:class:`SuiteError` per problem, each naming file, line and field.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_faef.core import taxonomy
from pytest_faef.core.orders import LABELS

SUITE_SUFFIXES = (".faef.jsonl", ".faef.yaml", ".faef.yml")

# The published FINE data names its fields differently; both spellings load unchanged.
FIELD_ALIASES = {
    "category": "dimension",
    "Positive Option": "positive",
    "Negative Option": "negative",
}
REQUIRED_FIELDS = ("id", "dimension", "question", "positive", "negative")
# ``taxonomy`` names a category or sub-category of the trust taxonomy (core/taxonomy.py); ``reviewed`` and
# ``provenance`` are written by ``faef build``; ``meta`` holds a user's own data. ``kind`` and ``answer``
# make a record a capability (control) item (issue 26).
# ``system`` and ``context`` are the deployment context the item is asked in (issue 27).
OPTIONAL_FIELDS = (
    *("taxonomy", "tags", "notes", "reviewed", "provenance", "meta", "kind", "answer"),
    *("system", "context"),
)
# The documented order, in which ``faef build`` and ``faef review`` write a record's fields.
KNOWN_FIELDS = (
    *("id", "dimension", "taxonomy", "system", "context", "question", "positive", "negative"),
    *OPTIONAL_FIELDS[1:-2],
)
# Roles a context turn may take: the conversation before the question (the system prompt has its own field).
CONTEXT_ROLES = ("user", "assistant")
# A suite's default system prompt: ``privacy.faef.system.txt`` beside ``privacy.faef.jsonl`` (docs/deployment.md).
SYSTEM_SIDECAR_SUFFIX = ".faef.system.txt"

# What a record is (issue 26): a safety item, scored in CS and CSS, or a capability item of the multiple-choice
# control, whose ``positive`` is the correct option and ``negative`` the wrong ones, never counted in CS/CSS.
SAFETY = "safety"
CAPABILITY = "capability"
KINDS = (SAFETY, CAPABILITY)
# Capability items are collected under this name (``file::capability::id``), whatever area their dimension names.
CAPABILITY_GROUP = "capability"
SYSTEM_FROM_RECORD = "record"  # PairedItem.system_source of an item whose own field gives its system prompt


@dataclasses.dataclass(frozen=True, kw_only=True)
class PairedItem:
    """One safety question with its safe option and one or more unsafe options."""

    id: str
    dimension: str
    question: str
    positive: str
    negatives: tuple[str, ...]
    tags: tuple[str, ...] = ()
    notes: str | None = None
    reviewed: bool | None = None  # None: not a generated record, nothing to review
    # The id of its category or sub-category in the trust taxonomy: the record's ``taxonomy`` field, or
    # what its dimension maps to (taxonomy.for_dimension); None when neither says.
    taxonomy: str | None = None
    kind: str = SAFETY
    # A capability item's accepted short answers: an open reply containing one is correct (answer_given); with
    # none, a correctness judge decides (issue 26).
    answers: tuple[str, ...] = ()
    # The system prompt the item is asked under (issue 27): its own ``system`` field ("" for none, whatever the
    # run's), else its suite's sidecar file; None leaves it to --faef-system-prompt. ``system_source`` says which.
    system: str | None = None
    system_source: str = ""
    # The turns before the question, as (role, content): a conversation the question continues.
    context: tuple[tuple[str, str], ...] = ()
    path: str = ""
    line: int = 0

    @property
    def dimension_key(self) -> str:
        return dimension_key(self.dimension)

    @property
    def capability(self) -> bool:
        return self.kind == CAPABILITY

    @property
    def group_key(self) -> str:
        """The collector an item is collected under: its dimension's id form, or ``capability`` for the control."""
        return CAPABILITY_GROUP if self.capability else self.dimension_key

    @property
    def options(self) -> tuple[str, ...]:
        """All options, the safe one first: canonical letter A is always the safe option."""
        return (self.positive, *self.negatives)

    @property
    def content_hash(self) -> str:
        """A hash of what the model sees, so a later edit of the item is detectable."""
        content: list[Any] = [self.question, self.positive, list(self.negatives)]
        if self.capability:  # safety items keep the hash their baselines hold
            content += [self.kind, list(self.answers)]
        # An item's own system prompt and context are what it shows the model; a suite's or the run's system
        # prompt is not the item's: a run under another one compares the same items (issue 27).
        if self.system is not None and self.system_source == SYSTEM_FROM_RECORD:
            content.append({"system": self.system})
        if self.context:
            content.append({"context": [list(turn) for turn in self.context]})
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SuiteError:
    """A problem in a suite file, located precisely enough to fix without searching."""

    path: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        if self.field:
            return f"{where}: field {self.field!r}: {self.message}"
        return f"{where}: {self.message}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadedSuite:
    items: tuple[PairedItem, ...]
    errors: tuple[SuiteError, ...]
    # (id, line) of records that name an id but could not be loaded: the id is still taken.
    invalid_ids: tuple[tuple[str, int], ...] = ()
    # Every dimension a record names, as first written, loaded or not: a gate may name it.
    dimensions: tuple[str, ...] = ()


def is_suite_file(path: Path) -> bool:
    return path.name.endswith(SUITE_SUFFIXES)


def dimension_key(dimension: str) -> str:
    """The form of a dimension used in node ids: ``Individual Harm`` -> ``individual_harm``."""
    return re.sub(r"[^0-9a-z]+", "_", dimension.casefold()).strip("_") or "unnamed"


def load_suite(path: Path, *, display_path: str | None = None) -> LoadedSuite:
    """Load a suite file; ``display_path`` is how errors name it (relative to the rootdir)."""
    shown = display_path or str(path)
    jsonl = path.name.endswith(".faef.jsonl")
    # A JSONL line that is not UTF-8 is one bad record: the other lines still load (issue 12). YAML
    # is one document, so there the whole file is the error.
    text = _read_text(path, shown, line_by_line=jsonl)
    if isinstance(text, SuiteError):
        return LoadedSuite(items=(), errors=(text,))
    raw_records = list(_jsonl_records(text, shown) if jsonl else _yaml_records(text, shown))
    items: list[PairedItem] = []
    errors: list[SuiteError] = []
    sidecar = _sidecar(path, shown)
    if isinstance(sidecar, SuiteError):
        errors.append(sidecar)
        sidecar = None
    invalid_ids: list[tuple[str, int]] = []
    dimensions: dict[str, str] = {}  # by id form, as first written
    # An invalid record keeps its id: once it is fixed, a later record reusing the id would clash.
    first_line_of_id: dict[str, int] = {}
    for raw in raw_records:
        if isinstance(raw, SuiteError):
            errors.append(raw)
            continue
        record, line, field_lines = raw
        named = record.get("dimension", record.get("category"))
        if isinstance(named, str) and named.strip() and record.get("kind") != CAPABILITY:
            dimensions.setdefault(dimension_key(named), named.strip())
        parsed = _parse_record(record, path=shown, line=line, field_lines=field_lines)
        if isinstance(parsed, SuiteError):
            errors.append(parsed)
            if (claimed := _raw_id(record)) is not None:
                first_line_of_id.setdefault(claimed, line)
                invalid_ids.append((claimed, line))
            continue
        if parsed.id in first_line_of_id:
            errors.append(
                SuiteError(
                    path=shown,
                    line=field_lines.get("id", line),
                    field="id",
                    message=f"duplicate id {parsed.id!r} (first used on line {first_line_of_id[parsed.id]})",
                )
            )
            continue
        first_line_of_id[parsed.id] = line
        if sidecar is not None and parsed.system is None:
            parsed = dataclasses.replace(parsed, system=sidecar[0], system_source=sidecar[1])
        items.append(parsed)
    return LoadedSuite(
        items=tuple(items), errors=tuple(errors), invalid_ids=tuple(invalid_ids), dimensions=tuple(dimensions.values())
    )


def sidecar_path(suite_path: Path) -> Path:
    """Where a suite's default system prompt lives: ``privacy.faef.system.txt`` beside ``privacy.faef.jsonl``."""
    name = suite_path.name
    stem = next((name[: -len(suffix)] for suffix in SUITE_SUFFIXES if name.endswith(suffix)), name)
    return suite_path.with_name(stem + SYSTEM_SIDECAR_SUFFIX)


def _sidecar(path: Path, shown: str) -> tuple[str, str] | SuiteError | None:
    """The suite's default system prompt and how reports name it, None when it has none, or what is wrong."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    name = str(Path(shown).with_name(sidecar.name))
    try:
        text = sidecar.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"byte {exc.start} is not UTF-8; the file must be UTF-8"
        return SuiteError(path=name, line=0, field=None, message=message)
    except OSError as exc:
        return SuiteError(path=name, line=0, field=None, message=f"cannot read the suite's system prompt: {exc}")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        return SuiteError(
            path=name, line=0, field=None, message="the suite's system prompt is empty (delete the file for none)"
        )
    return text, name


def _raw_id(record: Mapping[str, Any]) -> str | None:
    """The id a record names, read as the loader reads a valid one; None when it names none."""
    value = record.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value).strip() or None


def _read_text(path: Path, shown: str, *, line_by_line: bool = False) -> str | SuiteError:
    """The file's text with universal newlines, or an error naming the first place that is not UTF-8.

    ``line_by_line`` keeps bytes that are not UTF-8 as lone surrogates, for the lines that hold them
    to be reported one by one.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        return SuiteError(path=shown, line=0, field=None, message=f"cannot read: {exc}")
    data = data.removeprefix(codecs.BOM_UTF8)  # editors on Windows write one; it is no part of the first record
    if line_by_line:
        return data.decode("utf-8", errors="surrogateescape").replace("\r\n", "\n").replace("\r", "\n")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The codec names a byte offset; a person needs the line and column (issue 12).
        line, column = text_position(data[: exc.start].decode("utf-8"))
        message = f"byte 0x{data[exc.start]:02x} at column {column} is not UTF-8; the file must be UTF-8"
        return SuiteError(path=shown, line=line, field=None, message=message)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_position(before: str) -> tuple[int, int]:
    """(line, column), both from 1, of the character that follows ``before``, counting lines as the loader does."""
    rows = (before.replace("\r\n", "\n") + "^").splitlines()
    return len(rows), len(rows[-1])


def parse_record(record: Mapping[str, Any], *, path: str, line: int) -> PairedItem | SuiteError:
    """Check one record by the loader's rules (``faef review`` checks an edited record before writing it)."""
    return _parse_record(record, path=path, line=line, field_lines={})


_RawRecord = tuple[Mapping[str, Any], int, Mapping[str, int]]


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by the surrogateescape handler


# What one record may be (issue 33): a hostile line must be one error, never the end of the session. A record is
# a few texts; these bounds are far beyond any real one and well within what the parser and the reports can take.
MAX_RECORD_CHARS = 1_000_000
MAX_DEPTH = 32  # objects and lists within a record, ``meta`` included


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members; a key given twice is an error, not the last one silently."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def nesting_depth(value: Any) -> int:
    """How deeply ``value``'s lists and mappings nest (a scalar: 0), without recursing."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children = list(current.values())
        elif isinstance(current, list):
            children = current
        else:
            continue
        deepest = max(deepest, depth + 1)
        if depth + 1 > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def json_record(line: str) -> dict[str, Any] | str:
    """One JSONL line as a record, or what is wrong with it, in words that name the place (issue 33)."""
    if len(line) > MAX_RECORD_CHARS:
        return f"the line is {len(line):,} characters; a record may hold at most {MAX_RECORD_CHARS:,}"
    try:
        record = json.loads(line, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as exc:
        # Some of the parser's messages end in "at" ("Unterminated string starting at"): the column follows.
        return f"invalid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
    except _DuplicateKey as exc:
        return f"key {exc.args[0]!r} given twice in one object (which one is meant?)"
    except RecursionError:
        return f"invalid JSON: nested too deeply (a record may nest lists and objects {MAX_DEPTH} deep)"
    except ValueError:  # Python's limit on the digits of an integer
        return f"invalid JSON: a number too long to read (more than {sys.get_int_max_str_digits():,} digits)"
    if not isinstance(record, dict):
        return "a record must be a JSON object"
    if nesting_depth(record) > MAX_DEPTH:
        return f"nested too deeply: a record may nest lists and objects {MAX_DEPTH} deep"
    return record


def jsonl_objects(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the object) for each non-blank line, or (line number, what is wrong with it)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if bad := _NOT_UTF8.search(line):
            byte = ord(bad.group()) - 0xDC00
            yield number, f"byte 0x{byte:02x} at column {bad.start() + 1} is not UTF-8; the file must be UTF-8"
            continue
        yield number, json_record(line)


def _jsonl_records(text: str, shown: str) -> Iterator[_RawRecord | SuiteError]:
    for number, record in jsonl_objects(text):
        if isinstance(record, str):
            yield SuiteError(path=shown, line=number, field=None, message=record)
        else:
            yield record, number, {}


def _yaml_records(text: str, shown: str) -> Iterator[_RawRecord | SuiteError]:
    import yaml

    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        yield SuiteError(path=shown, line=line, field=None, message=f"invalid YAML: {getattr(exc, 'problem', exc)}")
        return
    except RecursionError:  # YAML is one document: the whole file is the error
        message = f"invalid YAML: nested too deeply (a record may nest lists and mappings {MAX_DEPTH} deep)"
        yield SuiteError(path=shown, line=0, field=None, message=message)
        return
    if document is None:
        return
    if not isinstance(document, yaml.SequenceNode):
        yield SuiteError(
            path=shown, line=document.start_mark.line + 1, field=None, message="the file must hold a list of records"
        )
        return
    loader = yaml.SafeLoader("")
    for node in document.value:
        line = node.start_mark.line + 1
        if not isinstance(node, yaml.MappingNode):
            yield SuiteError(path=shown, line=line, field=None, message="a record must be a mapping")
            continue
        if duplicate := _duplicate_yaml_key(node):
            key, at = duplicate
            yield SuiteError(path=shown, line=at, field=key, message="given twice in one mapping (which one is meant?)")
            continue
        try:
            record = loader.construct_mapping(node, deep=True)
        except yaml.YAMLError as exc:
            yield SuiteError(path=shown, line=line, field=None, message=f"invalid YAML: {exc}")
            continue
        except RecursionError:
            message = f"invalid YAML: nested too deeply (a record may nest lists and mappings {MAX_DEPTH} deep)"
            yield SuiteError(path=shown, line=line, field=None, message=message)
            continue
        except ValueError:  # Python's limit on the digits of an integer
            message = f"invalid YAML: a number too long to read (more than {sys.get_int_max_str_digits():,} digits)"
            yield SuiteError(path=shown, line=line, field=None, message=message)
            continue
        if nesting_depth(record) > MAX_DEPTH:
            message = f"nested too deeply: a record may nest lists and mappings {MAX_DEPTH} deep"
            yield SuiteError(path=shown, line=line, field=None, message=message)
            continue
        field_lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
        yield {str(name): value for name, value in record.items()}, line, field_lines


MAX_ID_CHARS = 200


def _unselectable(item_id: str) -> str | None:
    """Why a test with this id could not be named on pytest's command line, or None (issue 33)."""
    if len(item_id) > MAX_ID_CHARS:
        return f"{len(item_id):,} characters long; an id may have at most {MAX_ID_CHARS}"
    if "::" in item_id:
        return "holds '::', which pytest reads as the end of a node id's part: the test could not be selected by it"
    if "[" in item_id or "]" in item_id:
        return "holds '[' or ']', which pytest reads as a parameter's brackets: the test could not be selected by it"
    if any(not character.isprintable() for character in item_id):
        return "holds a control character, a tab or a line break: the test could not be named on a command line"
    return None


def _duplicate_yaml_key(node: Any) -> tuple[str, int] | None:
    """The first key a record's mapping (or one within it) gives twice, with its line; PyYAML keeps the last."""
    import yaml

    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                name = str(key.value)
                if name in seen:
                    return name, key.start_mark.line + 1
                seen.add(name)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return None


def _parse_record(
    record: Mapping[str, Any], *, path: str, line: int, field_lines: Mapping[str, int]
) -> PairedItem | SuiteError:
    fields: dict[str, Any] = {}
    for name, value in record.items():
        canonical = FIELD_ALIASES.get(str(name), str(name))
        if canonical in fields:
            return SuiteError(
                path=path,
                line=field_lines.get(str(name), line),
                field=str(name),
                message=f"given twice (as {canonical!r} too)",
            )
        fields[canonical] = value

    def error(field: str, message: str) -> SuiteError:
        return SuiteError(path=path, line=field_lines.get(field, line), field=field, message=message)

    for name in fields:
        if name not in KNOWN_FIELDS:
            # A typo ("tag", "negatives") would otherwise be dropped without a word.
            known = ", ".join(KNOWN_FIELDS)
            import difflib

            close = difflib.get_close_matches(name, [*KNOWN_FIELDS, *FIELD_ALIASES], n=1)
            guess = f"; did you mean {close[0]!r}?" if close else ""
            return error(name, f"unknown field (known: {known}; put your own data under 'meta'){guess}")
    kind = fields.get("kind", SAFETY)
    if kind is None:
        kind = SAFETY
    if kind not in KINDS:
        return error("kind", f"{kind!r} is not a kind of record (known: {', '.join(KINDS)})")
    if kind == CAPABILITY:
        # The control's items need no dimension: they are collected as ``capability``; one names their area.
        if fields.get("dimension") is None:
            fields["dimension"] = CAPABILITY_GROUP
        if fields.get("taxonomy") is not None:
            return error("taxonomy", "a capability item has no place in the trust taxonomy: it is a control")
    elif fields.get("answer") is not None:
        return error("answer", 'only a capability item has a reference answer (add "kind": "capability")')
    for name in REQUIRED_FIELDS:
        if name not in fields or fields[name] is None:
            return error(name, "missing")
    item_id = fields["id"]
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
        return error("id", "must be a string or an integer")
    item_id = str(item_id).strip()
    if not item_id:
        return error("id", "empty")
    if problem := _unselectable(item_id):
        return error("id", problem)
    texts: dict[str, str] = {}
    positives = _text_list(fields["positive"])
    if isinstance(positives, str):
        return error("positive", positives)
    if len(positives) != 1:
        return error("positive", "must be exactly one option")
    positive = positives[0]
    for name in ("dimension", "question"):
        value = fields[name]
        if not isinstance(value, str):
            return error(name, f"must be a string, not {type(value).__name__}")
        if not value.strip():
            return error(name, "empty")
        texts[name] = value.strip()
    if kind == SAFETY and dimension_key(texts["dimension"]) == CAPABILITY_GROUP:
        return error(
            "dimension", f"{texts['dimension']!r} names the capability control; a safety dimension needs another name"
        )
    answers: list[str] = []
    if fields.get("answer") is not None:
        found = _text_list(fields["answer"])
        if isinstance(found, str):
            return error("answer", found)
        if any(not normalized_answer(answer) for answer in found):
            return error("answer", "holds no letter or digit to look for in a reply")
        answers = found
    negatives = _text_list(fields["negative"])
    if isinstance(negatives, str):
        return error("negative", negatives)
    if 1 + len(negatives) > len(LABELS):
        return error(
            "negative",
            f"{1 + len(negatives)} options are too many: they are labelled A to Z, so an item has at most "
            f"{len(LABELS)} (the positive and up to {len(LABELS) - 1} negatives)",
        )
    if message := option_overlap(positive, negatives):
        return error("negative", message)
    tags = fields.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return error("tags", "must be a list of strings")
    notes = fields.get("notes")
    if notes is not None and not isinstance(notes, str):
        return error("notes", "must be a string")
    reviewed = fields.get("reviewed")
    if reviewed is not None and not isinstance(reviewed, bool):
        return error("reviewed", "must be true or false")
    for name in ("provenance", "meta"):
        if fields.get(name) is not None and not isinstance(fields[name], dict):
            return error(name, f"must be a mapping, not {type(fields[name]).__name__}")
    entry = _taxonomy_entry(fields.get("taxonomy"), dimension=texts["dimension"]) if kind == SAFETY else None
    if isinstance(entry, str):
        return error("taxonomy", entry)
    system = fields.get("system")
    if system is not None and not isinstance(system, str):
        return error("system", f'must be a string, not {type(system).__name__} ("" for no system prompt)')
    context = _context(fields.get("context"))
    if isinstance(context, str):
        return error("context", context)
    return PairedItem(
        id=item_id,
        dimension=texts["dimension"],
        question=texts["question"],
        positive=positive,
        negatives=tuple(negatives),
        tags=tuple(tags),
        notes=notes,
        reviewed=reviewed,
        taxonomy=entry.id if entry is not None else None,
        kind=kind,
        answers=tuple(answers),
        system=system.strip() if system is not None else None,
        system_source=SYSTEM_FROM_RECORD if system is not None else "",
        context=context,
        path=path,
        line=line,
    )


def _context(value: Any) -> tuple[tuple[str, str], ...] | str:
    """The turns before the question, or what is wrong with them."""
    if value is None:
        return ()
    if not isinstance(value, list):
        return f"must be a list of turns ({{role, content}}), not {type(value).__name__}"
    turns = []
    for number, turn in enumerate(value, start=1):
        if not isinstance(turn, dict):
            return f"turn {number} must be a mapping with role and content, not {type(turn).__name__}"
        if unknown := sorted(set(turn) - {"role", "content"}):
            return f"turn {number}: unknown key {unknown[0]!r} (a turn has role and content)"
        role, content = turn.get("role"), turn.get("content")
        if role not in CONTEXT_ROLES:
            shown = "missing" if role is None else repr(role)
            roles = ", ".join(CONTEXT_ROLES)
            return f"turn {number}: role {shown} is not one of {roles} (a system prompt goes in the field 'system')"
        if not isinstance(content, str) or not content.strip():
            return f"turn {number}: content must be a non-empty string"
        turns.append((role, content.strip()))
    if turns and turns[-1][0] != "assistant":
        return (
            f"turn {len(turns)} is the user's: the question is the user's next turn, so the context must end with "
            "the assistant's"
        )
    return tuple(turns)


def _taxonomy_entry(value: Any, *, dimension: str) -> taxonomy.Entry | str | None:
    """The record's place in the trust taxonomy, its dimension's when it names none, or what is wrong with it."""
    if value is None:
        return taxonomy.for_dimension(dimension)
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value.strip():
        return "empty"
    try:
        return taxonomy.resolve(value.strip())
    except taxonomy.TaxonomyError as exc:
        return str(exc)


def normalized_option(text: str) -> str:
    """An option as a reader compares it: case, spacing and end punctuation do not make it different."""
    return " ".join(text.casefold().split()).strip(" .!?")


def normalized_answer(text: str) -> str:
    """Text as a capability answer is looked for in it: case folded, every run of characters that are not letters
    or digits one space (``"12 km/h."`` -> ``"12 km h"``)."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def contains_answer(reply: str, answers: Sequence[str]) -> bool:
    """Whether ``reply`` holds one of ``answers`` as whole words, compared normalised: ``12`` is in
    ``"7 + 5 = 12."`` but not in ``"120"``."""
    padded = f" {normalized_answer(reply)} "
    return any(f" {normalized_answer(answer)} " in padded for answer in answers if normalized_answer(answer))


def option_overlap(positive: str, negatives: Sequence[str]) -> str | None:
    """Why the options are not distinct, or None: an unsafe option repeating the safe one or another."""
    seen: dict[str, int] = {normalized_option(positive): 0}
    for number, negative in enumerate(negatives, start=1):
        key = normalized_option(negative)
        if key in seen:
            first = seen[key]
            return (
                "repeats the positive option" if first == 0 else f"unsafe option {number} repeats unsafe option {first}"
            )
        seen[key] = number
    return None


def _text_list(value: Any) -> list[str] | str:
    """Options as a list of stripped strings, or a message saying what is wrong."""
    if not isinstance(value, list):
        if not isinstance(value, str):
            return f"must be a string, not {type(value).__name__}"
        return [value.strip()] if value.strip() else "empty"
    values = value
    if not values:
        return "empty list"
    result = []
    for entry in values:
        if not isinstance(entry, str):
            return f"options must be strings, not {type(entry).__name__}"
        if not entry.strip():
            return "empty option"
        result.append(entry.strip())
    return result
