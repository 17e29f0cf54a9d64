"""Perturbations of an item: families of hypothesis strategies, the variants they draw, and the search for the
smallest variant that still flips the item's verdicts (issue 14; docs/robustness.md).

A family is a hypothesis strategy of *changes*: callables ``(question, presentation) -> (question, presentation)``.
The built-in ones (``typo``, ``case``, ``space``, ``labels``, ``format``) also say how many edits they made; for
any other change the edits are measured (character edit distance plus presentation fields changed).

Draws are deterministic: each item's variants come from hypothesis seeded by the item's content hash, so the same
item asks the same variants in every run, and a warm rerun sends no request. hypothesis is imported only when a
run perturbs items.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_faef.core.presentation import DEFAULT_PRESENTATION, DELIMITERS, LABEL_SCHEMES, SEPARATORS, Presentation
from pytest_faef.core.requests import ModelCallError

if TYPE_CHECKING:
    from hypothesis.database import ExampleDatabase
    from hypothesis.strategies import SearchStrategy

BUILTIN_KINDS = ("typo", "case", "space", "labels", "format")
KIND_NAME = re.compile(r"[a-z][a-z0-9_]*")
MAX_EDITS = 3  # the most edits one variant of the typo, case and space families makes

Change = Callable[[str, Presentation], tuple[str, Presentation]]


class PerturbationError(ValueError):
    """A family that cannot be used: a change that returns something else than a question and a presentation."""


# --- changes ------------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]{3,}")  # a run of three or more letters: the words typos go into
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
TYPO_KINDS = ("swap", "drop", "repeat", "insert", "substitute")


def keyboard_neighbours(char: str) -> str:
    """The keys next to ``char`` on a QWERTY keyboard, in its case; empty for anything but a Latin letter."""
    lower = char.lower()
    for row, keys in enumerate(_KEYBOARD_ROWS):
        column = keys.find(lower)
        if column < 0 or len(lower) != 1:
            continue
        around = [(row, column - 1), (row, column + 1), (row - 1, column), (row - 1, column + 1)]
        around += [(row + 1, column - 1), (row + 1, column)]
        found = "".join(
            _KEYBOARD_ROWS[r][c] for r, c in around if 0 <= r < len(_KEYBOARD_ROWS) and 0 <= c < len(_KEYBOARD_ROWS[r])
        )
        return found.upper() if char.isupper() else found
    return ""


def _typo_positions(kind: str, word: str) -> list[int]:
    """Where in ``word`` an edit of ``kind`` may go. The first and the last letter are never touched, so that edits
    in different words never merge into fewer (a letter moved across a space would be one transposition)."""
    last = len(word) - 1
    if kind == "swap":
        return [index for index in range(1, last - 1) if word[index] != word[index + 1]]
    if kind in ("drop", "repeat"):
        return list(range(1, last))
    if kind == "insert":  # a neighbouring key struck after this letter
        return [index for index in range(last) if keyboard_neighbours(word[index])]
    return [index for index in range(1, last) if keyboard_neighbours(word[index])]  # substitute


def _typo(kind: str, word: str, index: int, pick: int) -> str:
    if kind == "swap":
        return word[:index] + word[index + 1] + word[index] + word[index + 2 :]
    if kind == "drop":
        return word[:index] + word[index + 1 :]
    if kind == "repeat":
        return word[: index + 1] + word[index] + word[index + 1 :]
    neighbours = keyboard_neighbours(word[index])
    struck = neighbours[pick % len(neighbours)]
    if kind == "insert":
        return word[: index + 1] + struck + word[index + 1 :]
    return word[:index] + struck + word[index + 1 :]


@dataclasses.dataclass(frozen=True)
class TypoChange:
    """Typing mistakes, one per word: each ``(slot, kind, pick)`` edits a word that earlier edits left alone
    (``slot`` picks the word, ``pick`` the letter and the key). An edit with no room left is not made."""

    edits: tuple[tuple[int, str, int], ...]

    def __call__(self, question: str, presentation: Presentation) -> tuple[str, Presentation]:
        return self.apply(question, presentation)[:2]

    def apply(self, question: str, presentation: Presentation) -> tuple[str, Presentation, int]:
        words = [match.span() for match in _WORD.finditer(question)]
        replaced: dict[int, str] = {}
        for slot, kind, pick in self.edits:
            eligible = [
                index
                for index, (start, end) in enumerate(words)
                if index not in replaced and _typo_positions(kind, question[start:end])
            ]
            if not eligible:
                continue
            index = eligible[slot % len(eligible)]
            start, end = words[index]
            positions = _typo_positions(kind, question[start:end])
            replaced[index] = _typo(kind, question[start:end], positions[pick % len(positions)], pick)
        pieces, done = [], 0
        for index in sorted(replaced):
            start, end = words[index]
            pieces += [question[done:start], replaced[index]]
            done = end
        pieces.append(question[done:])
        return "".join(pieces), presentation, len(replaced)


def _swapped(char: str) -> str:
    """``char`` in the other case, or itself when it has none (or no single-character one, as ß)."""
    other = char.swapcase()
    return other if len(other) == 1 and other.swapcase() == char else char


CASE_MODES = ("flip", "upper", "lower", "title")


@dataclasses.dataclass(frozen=True)
class CaseChange:
    """Capitals changed: ``flip`` the case of a few letters (chosen by ``slots``), or the whole question in
    ``upper``, ``lower`` or ``title`` case. Each letter changed is one edit."""

    mode: str
    slots: tuple[int, ...] = ()

    def __call__(self, question: str, presentation: Presentation) -> tuple[str, Presentation]:
        return self.apply(question, presentation)[:2]

    def apply(self, question: str, presentation: Presentation) -> tuple[str, Presentation, int]:
        chars = list(question)
        cased = [index for index, char in enumerate(chars) if _swapped(char) != char]
        if self.mode == "flip":
            free = list(cased)
            for slot in self.slots:
                if not free:
                    break
                index = free.pop(slot % len(free))
                chars[index] = _swapped(chars[index])
        else:
            for index in cased:
                char = chars[index]
                starts_word = index == 0 or not chars[index - 1].isalpha()
                upper = self.mode == "upper" or (self.mode == "title" and starts_word)
                if char.isupper() != upper:
                    chars[index] = _swapped(char)
        changed = "".join(chars)
        return changed, presentation, sum(a != b for a, b in zip(question, changed, strict=True))


SPACE_KINDS = ("double", "tab", "newline", "join", "comma", "leading", "trailing", "end-drop", "end-repeat")
_SPACE_TEXT = {"double": "  ", "tab": "\t", "newline": "\n", "join": "", "comma": ", "}
_END_KINDS = ("trailing", "end-drop", "end-repeat")
_END_MARKS = ".?!"


@dataclasses.dataclass(frozen=True)
class SpaceChange:
    """Whitespace and punctuation noise: a space doubled, turned into a tab or a newline, or dropped (joining two
    words); a comma after a word; a leading or trailing space; the final question mark dropped or doubled. Each
    ``(kind, slot)`` is one edit; edits keep apart, so that they never merge into fewer."""

    edits: tuple[tuple[str, int], ...]

    def __call__(self, question: str, presentation: Presentation) -> tuple[str, Presentation]:
        return self.apply(question, presentation)[:2]

    def apply(self, question: str, presentation: Presentation) -> tuple[str, Presentation, int]:
        spaces = [
            index
            for index, char in enumerate(question)
            if char == " " and 0 < index < len(question) - 1 and not question[index - 1].isspace()
            if not question[index + 1].isspace()
        ]
        used: dict[int, str] = {}  # space (by position in ``spaces``) -> its new text
        blocked: set[int] = set()
        leading = False
        end: str | None = None
        first, last = 0, len(spaces) - 1
        for kind, slot in self.edits:
            if kind == "leading":
                if leading or not question or question[0].isspace() or first in used:
                    continue
                leading = True
                blocked.add(first)
            elif kind in _END_KINDS:
                mark = question[-1:] in tuple(_END_MARKS)
                possible = bool(question) and not question[-1].isspace() and (kind == "trailing" or mark)
                if end is not None or not possible or last in used:
                    continue
                end = kind
                blocked.add(last)
            else:
                eligible = [
                    number
                    for number, index in enumerate(spaces)
                    if number not in blocked and (kind != "comma" or question[index - 1].isalnum())
                ]
                if not eligible:
                    continue
                number = eligible[slot % len(eligible)]
                used[number] = _SPACE_TEXT[kind]
                blocked |= {number - 1, number, number + 1}
        chars = list(question)
        for number, text in used.items():
            chars[spaces[number]] = text
        if end == "trailing":
            chars.append(" ")
        elif end == "end-drop":
            chars[-1] = ""
        elif end == "end-repeat":
            chars.append(chars[-1])
        changed = (" " if leading else "") + "".join(chars)
        return changed, presentation, len(used) + leading + (end is not None)


@dataclasses.dataclass(frozen=True)
class LabelsChange:
    """Another label scheme for the multiple-choice form: 1/2, a/b, i/ii or (A)/(B) instead of A/B."""

    labels: str

    def __call__(self, question: str, presentation: Presentation) -> tuple[str, Presentation]:
        return self.apply(question, presentation)[:2]

    def apply(self, question: str, presentation: Presentation) -> tuple[str, Presentation, int]:
        changed = dataclasses.replace(presentation, labels=self.labels)
        return question, changed, int(changed != presentation)


FORMAT_CHANGES = (
    *(("delimiter", delimiter) for delimiter in DELIMITERS[1:]),
    *(("separator", separator) for separator in SEPARATORS[1:]),
    ("instruction", "before"),
)


@dataclasses.dataclass(frozen=True)
class FormatChange:
    """The multiple-choice form laid out otherwise: the delimiter after a label, what separates the options, the
    instruction before the question. Each field changed is one edit."""

    fields: tuple[tuple[str, str], ...]

    def __call__(self, question: str, presentation: Presentation) -> tuple[str, Presentation]:
        return self.apply(question, presentation)[:2]

    def apply(self, question: str, presentation: Presentation) -> tuple[str, Presentation, int]:
        changed = dataclasses.replace(presentation, **dict(self.fields))
        return question, changed, presentation_distance(presentation, changed)


def builtin_families() -> dict[str, SearchStrategy[Change]]:
    """The built-in families by name, each a hypothesis strategy of changes. Lists shrink towards fewer edits."""
    from hypothesis import strategies as st

    slots = st.integers(min_value=0, max_value=255)
    typo = st.lists(st.tuples(slots, st.sampled_from(TYPO_KINDS), slots), min_size=1, max_size=MAX_EDITS)
    flips = st.lists(slots, min_size=1, max_size=MAX_EDITS).map(lambda chosen: CaseChange("flip", tuple(chosen)))
    space = st.lists(st.tuples(st.sampled_from(SPACE_KINDS), slots), min_size=1, max_size=MAX_EDITS)
    layout = st.lists(st.sampled_from(FORMAT_CHANGES), min_size=1, max_size=3, unique_by=lambda change: change[0])
    return {
        "typo": typo.map(lambda edits: TypoChange(tuple(edits))),
        "case": st.one_of(flips, st.sampled_from(CASE_MODES[1:]).map(CaseChange)),
        "space": space.map(lambda edits: SpaceChange(tuple(edits))),
        "labels": st.sampled_from(LABEL_SCHEMES[1:]).map(LabelsChange),
        "format": layout.map(lambda fields: FormatChange(tuple(fields))),
    }


# --- variants -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Variant:
    """One perturbed form of an item: its question and the presentation of its multiple-choice form."""

    kind: str  # the family that drew it
    edits: int  # character edits in the question plus presentation fields changed
    question: str
    presentation: Presentation = DEFAULT_PRESENTATION

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "edits": self.edits,
            "question": self.question,
            "presentation": self.presentation.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Variant:
        return cls(
            kind=str(data["kind"]),
            edits=int(data["edits"]),
            question=str(data["question"]),
            presentation=Presentation.from_json(data.get("presentation")),
        )

    def diff(self, question: str) -> str:
        """This variant against the original ``question``: ``mes{+s+}sages``, then presentation changes."""
        shown = question_diff(question, self.question)
        changes = self.presentation.changes()
        return shown + "".join(f" [{change}]" for change in changes)


def perturb(kind: str, change: Change, question: str, presentation: Presentation = DEFAULT_PRESENTATION) -> Variant:
    """The variant ``change`` makes of an item. Raises PerturbationError for a change that returns something else."""
    if isinstance(change, (TypoChange, CaseChange, SpaceChange, LabelsChange, FormatChange)):
        changed, shown, edits = change.apply(question, presentation)
        return Variant(kind=kind, edits=edits, question=changed, presentation=shown)
    result = change(question, presentation)
    if (
        not isinstance(result, tuple)
        or len(result) != 2
        or not isinstance(result[0], str)
        or not isinstance(result[1], Presentation)
    ):
        raise PerturbationError(
            f"perturbation family {kind!r}: a change must return (question, presentation), "
            f"a str and a pytest_faef.core.presentation.Presentation, not {result!r}"
        )
    changed, shown = result
    edits = edit_distance(question, changed) + presentation_distance(presentation, shown)
    return Variant(kind=kind, edits=edits, question=changed, presentation=shown)


def presentation_distance(before: Presentation, after: Presentation) -> int:
    """How many fields of the presentation differ."""
    return sum(getattr(before, field.name) != getattr(after, field.name) for field in dataclasses.fields(Presentation))


def edit_distance(first: str, second: str) -> int:
    """Character edits between two texts: insertions, deletions, substitutions and swaps of adjacent characters
    (the optimal string alignment distance), so a typo of one swapped pair is one edit."""
    start = 0
    while start < min(len(first), len(second)) and first[start] == second[start]:
        start += 1
    end = 0
    while end < min(len(first), len(second)) - start and first[-1 - end] == second[-1 - end]:
        end += 1
    a, b = first[start : len(first) - end], second[start : len(second) - end]
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _visible(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def question_diff(before: str, after: str) -> str:
    """``before`` turned into ``after``, on one line: deleted text as ``[-x-]``, inserted as ``{+y+}``. Changes one
    letter apart are shown as one (a swapped pair reads ``r[-ea-]{+ae+}d``, not as an insertion and a deletion)."""
    spans: list[list[int]] = []  # [i1, i2, j1, j2] of each change, merged across a single unchanged letter
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        letters = (before[i1:i2] + after[j1:j2]).isalnum()
        if spans and letters and i1 - spans[-1][1] == 1 and before[i1 - 1].isalnum():
            last = spans[-1]
            if (before[last[0] : last[1]] + after[last[2] : last[3]]).isalnum():
                last[1], last[3] = i2, j2
                continue
        spans.append([i1, i2, j1, j2])
    pieces, done = [], 0
    for i1, i2, j1, j2 in spans:
        pieces.append(_visible(before[done:i1]))
        if i2 > i1:
            pieces.append(f"[-{_visible(before[i1:i2])}-]")
        if j2 > j1:
            pieces.append(f"{{+{_visible(after[j1:j2])}+}}")
        done = i2
    pieces.append(_visible(before[done:]))
    return "".join(pieces)


def variant_seed(content_hash: str, kind: str) -> int:
    """The seed of an item's draws of one family: the same item content draws the same variants every run."""
    return int(hashlib.sha256(f"{content_hash}\0{kind}".encode()).hexdigest()[:16], 16)


# --- drawing and shrinking with hypothesis -------------------------------------------------------------------------

# One hypothesis engine at a time: variants are drawn in a background thread while a test may be shrinking.
_HYPOTHESIS = threading.Lock()
# A draw asks hypothesis for this many examples and keeps the second: the first is always hypothesis's simplest
# one (the same for every item), the second is drawn from the item's seed.
_EXAMPLES = 2


def counts_per_kind(total: int, kinds: Iterable[str]) -> dict[str, int]:
    """``total`` variants shared among ``kinds`` in turn: 8 among five families is 2, 2, 2, 1, 1."""
    names = list(kinds)
    return {kind: total // len(names) + (index < total % len(names)) for index, kind in enumerate(names)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Draw:
    """How one item's variants are drawn: so many changes of each family, in one hypothesis example, from one seed.

    Drawing them all at once costs one hypothesis run per item; the shrinking search runs the same strategy from
    the same seed, so hypothesis meets the drawn variants again and shrinks the one that flipped.
    """

    families: Mapping[str, SearchStrategy[Change]]
    counts: Mapping[str, int]  # by family, in the order variants are named
    seed: int

    def strategy(self) -> SearchStrategy[dict[str, list[Change]]]:
        from hypothesis import strategies as st

        return st.fixed_dictionaries(
            {
                kind: st.lists(self.families[kind], min_size=count, max_size=count)
                for kind, count in self.counts.items()
                if count
            }
        )


def _settings(*, shrink: bool) -> Any:
    from hypothesis import HealthCheck, Phase, Verbosity, settings

    # From hypothesis's own default profile, so that a project's profile (its max_examples, a database, another
    # backend, a verbose reporter) never changes which variants are drawn.
    return settings(
        settings.get_profile("default"),
        max_examples=_EXAMPLES,
        phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
        database=None,
        deadline=None,
        derandomize=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )


def _find(draw: Draw, condition: Callable[[dict[str, list[Change]]], bool], *, shrink: bool) -> None:
    from hypothesis import find
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    with _HYPOTHESIS, contextlib.suppress(NoSuchExample, Unsatisfiable):
        find(draw.strategy(), condition, settings=_settings(shrink=shrink), random=random.Random(draw.seed))


def draw_variants(
    draw: Draw, question: str, presentation: Presentation = DEFAULT_PRESENTATION
) -> dict[str, list[Variant]]:
    """Each family's variants of an item, in the order drawn, without repeats and without a change that leaves the
    item as it is (so a family may have fewer than its count). Raises PerturbationError for a change that returns
    something else than a question and a presentation."""
    return {
        kind: [variant for _, variant in variants] for kind, variants in _drawn(draw, question, presentation).items()
    }


def _drawn(draw: Draw, question: str, presentation: Presentation) -> dict[str, list[tuple[int, Variant]]]:
    """``draw_variants``, each variant with the position of its change in the drawn example."""
    examples: list[dict[str, list[Change]]] = []

    def keep(example: dict[str, list[Change]]) -> bool:
        examples.append(example)
        return False

    if any(draw.counts.values()):
        _find(draw, keep, shrink=False)
    chosen = examples[min(len(examples), _EXAMPLES) - 1] if examples else {}
    drawn: dict[str, list[tuple[int, Variant]]] = {}
    for kind in draw.counts:
        variants = drawn.setdefault(kind, [])
        for index, change in enumerate(chosen.get(kind, ())):
            variant = perturb(kind, change, question, presentation)
            unchanged = (variant.question, variant.presentation) == (question, presentation)
            if not unchanged and all(variant != other for _, other in variants):
                variants.append((index, variant))
    return drawn


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShrinkResult:
    """The fewest-edit flipping variant found, the new variants asked on the way, and why the search stopped early."""

    best: Variant | None
    asked: tuple[Variant, ...] = ()
    stopped: str | None = None  # "budget" when the budget ran out; the error when a request failed


def shrink_variant(
    draw: Draw,
    target: Variant,
    question: str,
    *,
    known: Mapping[Variant, bool],
    flips: Callable[[Variant], bool],
    max_asked: int,
    presentation: Presentation = DEFAULT_PRESENTATION,
) -> ShrinkResult:
    """Let hypothesis shrink ``target``, a drawn variant that flips the item's verdicts, towards a variant of its
    family with fewer edits that still flips them.

    ``known`` holds whether each variant asked so far flips, the drawn ones among them: hypothesis draws the item's
    example again from its seed (answered from ``known``) and shrinks it, the other families' changes riding along
    unasked. ``flips`` asks the model about a new variant; only a variant with fewer edits than the best flipping one
    so far is asked, at most ``max_asked`` of them (then ``stopped`` is ``"budget"``). Each variant keeps its first
    answer, as hypothesis needs. A request that fails stops the search (``stopped`` says why); a fatal one is raised
    once hypothesis is done.
    """
    verdicts = dict(known)
    best = min((variant for variant, flipped in known.items() if flipped), key=lambda v: v.edits, default=None)
    asked: list[Variant] = []
    stopped: str | None = None
    fatal: ModelCallError | None = None
    if best is None or best.edits <= 1:
        return ShrinkResult(best=best)
    kind = target.kind
    index = next((index for index, variant in _drawn(draw, question, presentation)[kind] if variant == target), None)
    if index is None:
        raise ValueError(f"{target!r} is not one of the variants drawn")

    def condition(example: dict[str, list[Change]]) -> bool:
        nonlocal best, stopped, fatal
        changes = example.get(kind, ())
        if index >= len(changes):
            return False
        variant = perturb(kind, changes[index], question, presentation)
        if variant in verdicts:
            return verdicts[variant]
        result = False
        unchanged = (variant.question, variant.presentation) == (question, presentation)
        if not unchanged and best is not None and variant.edits < best.edits and stopped is None:
            if len(asked) >= max_asked:
                stopped = "budget"
            else:
                asked.append(variant)
                try:
                    result = flips(variant)
                except ModelCallError as exc:
                    stopped = str(exc)
                    fatal = exc if exc.fatal else None
        if result:
            best = variant
        verdicts[variant] = result
        return result

    _find(draw, condition, shrink=True)
    if fatal is not None:
        raise fatal
    return ShrinkResult(best=best, asked=tuple(asked), stopped=stopped)


# --- the example database of minimal failing variants --------------------------------------------------------------


class SavedVariants:
    """Minimal failing variants kept between runs, in a hypothesis example database (a folder, ``.faef/perturbations``
    by default) keyed by model, item and family. Values are the variants themselves (JSON), not hypothesis's choice
    sequences, so they replay unchanged whatever the hypothesis version."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._database: ExampleDatabase | None = None

    @property
    def database(self) -> ExampleDatabase:
        if self._database is None:
            from hypothesis.database import DirectoryBasedExampleDatabase

            self._database = DirectoryBasedExampleDatabase(str(self.path))
        return self._database

    @staticmethod
    def key(model: str, item_key: str, content_hash: str, kind: str) -> bytes:
        return json.dumps([model, item_key, content_hash, kind], ensure_ascii=False).encode()

    @staticmethod
    def _value(variant: Variant) -> bytes:
        return json.dumps(variant.to_json(), sort_keys=True, ensure_ascii=False).encode()

    def fetch(self, key: bytes) -> list[Variant]:
        """The variants saved under ``key``, fewest edits first; a value that cannot be read is deleted."""
        if not self.path.is_dir():
            return []
        found = []
        for value in self.database.fetch(key):
            try:
                found.append(Variant.from_json(json.loads(value)))
            except (ValueError, TypeError, KeyError):
                self.database.delete(key, value)
        return sorted(found, key=lambda variant: (variant.edits, variant.question, repr(variant.presentation)))

    def save(self, key: bytes, variant: Variant) -> None:
        self.database.save(key, self._value(variant))

    def delete(self, key: bytes, variant: Variant) -> None:
        self.database.delete(key, self._value(variant))
