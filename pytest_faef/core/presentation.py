"""How the multiple-choice form shows its options: the label scheme, what follows a label, what separates the
options, and where the instruction stands (issue 14).

The default presentation renders exactly the prompt pytest-faef has always sent, so replies stored before it
existed keep their keys; the robustness check (docs/robustness.md) asks the same item under other presentations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pytest_faef.core.orders import LABELS

# What the model names: A, B ... | a, b ... | 1, 2 ... | i, ii ... | A, B ... shown as (A), (B) ...
LABEL_SCHEMES = ("upper", "lower", "digits", "roman", "parenthesised")
DELIMITERS = (". ", ") ", ": ", " - ")  # between a label and its option's text
SEPARATORS = ("\n", "\n\n", "; ")  # between one option and the next
INSTRUCTION_POSITIONS = ("after", "before")  # the reply instruction after the options, or before the question

_SHOWN = {". ": "'.'", ") ": "')'", ": ": "':'", " - ": "'-'", "\n\n": "a blank line", "; ": "';'"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Presentation:
    """The look of a multiple-choice prompt; the default one is the prompt of template version 1, unchanged."""

    labels: str = "upper"
    delimiter: str = ". "
    separator: str = "\n"
    instruction: str = "after"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("labels", LABEL_SCHEMES),
            ("delimiter", DELIMITERS),
            ("separator", SEPARATORS),
            ("instruction", INSTRUCTION_POSITIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"presentation {name} {getattr(self, name)!r} is not one of {allowed!r}")

    def labels_for(self, count: int) -> tuple[str, ...]:
        """The labels the model names, by position: ``A, B`` (also for ``(A)``), ``a, b``, ``1, 2`` or ``i, ii``."""
        if self.labels == "lower":
            return tuple(LABELS[:count].lower())
        if self.labels == "digits":
            return tuple(str(number) for number in range(1, count + 1))
        if self.labels == "roman":
            return tuple(roman(number) for number in range(1, count + 1))
        return tuple(LABELS[:count])

    def options_text(self, labels: Sequence[str], texts: Sequence[str]) -> str:
        """The options as the prompt shows them, e.g. ``A. text`` one per line."""
        lines = [
            f"({label}) {text}" if self.labels == "parenthesised" else f"{label}{self.delimiter}{text}"
            for label, text in zip(labels, texts, strict=True)
        ]
        return self.separator.join(lines)

    def arrange(self, template: str) -> str:
        """The template with its instruction paragraph moved before everything else when ``instruction`` is
        ``before``. The instruction is the last paragraph that holds neither ``$question`` nor ``$options``; a
        template without one is left as it is."""
        if self.instruction == "after":
            return template
        paragraphs = template.split("\n\n")
        candidates = [
            index
            for index, paragraph in enumerate(paragraphs)
            if "$question" not in paragraph and "$options" not in paragraph and paragraph.strip()
        ]
        if not candidates or candidates[-1] == 0:
            return template
        moved = paragraphs.pop(candidates[-1])
        return "\n\n".join([moved, *paragraphs])

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_PRESENTATION

    def changes(self) -> tuple[str, ...]:
        """What differs from the default presentation, in words: ``labels 1, 2``, ``delimiter ')'`` ..."""
        described = []
        if self.labels != DEFAULT_PRESENTATION.labels:
            shown = self.labels_for(2)
            form = ("({}), ({})" if self.labels == "parenthesised" else "{}, {}").format(*shown)
            described.append(f"labels {form}")
        if self.delimiter != DEFAULT_PRESENTATION.delimiter:
            described.append(f"delimiter {_SHOWN[self.delimiter]}")
        if self.separator != DEFAULT_PRESENTATION.separator:
            described.append(f"options separated by {_SHOWN[self.separator]}")
        if self.instruction != DEFAULT_PRESENTATION.instruction:
            described.append("instruction before the question")
        return tuple(described)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Presentation:
        return cls(**data) if data else DEFAULT_PRESENTATION


DEFAULT_PRESENTATION = Presentation()

_ROMAN: tuple[tuple[int, str], ...] = ((1000, "m"), (900, "cm"), (500, "d"), (400, "cd"), (100, "c"), (90, "xc"))
_ROMAN += ((50, "l"), (40, "xl"), (10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i"))


def roman(number: int) -> str:
    """``4`` -> ``iv``: lower-case roman numerals, as option lists number them."""
    if number < 1:
        raise ValueError(f"roman numerals start at 1, not {number}")
    digits = []
    for value, letters in _ROMAN:
        while number >= value:
            digits.append(letters)
            number -= value
    return "".join(digits)
