"""The trust taxonomy of Liu et al. (2023), "Trustworthy LLMs" (arXiv 2308.05374): 7 categories, 29 sub-categories.

A suite record names where it belongs in its ``taxonomy`` field, by name or id, in any case and spacing
(``safety.privacy-violation``, ``Privacy violation``, ``privacy_violation``); records without the field fall
back on their dimension (the Fake Alignment paper's five, or a dimension that names an entry). Each item
carries its category and sub-category as pytest markers, and a run counts which entries its items cover
(issue 18). The table and the names are documented in docs/taxonomy.md.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

DOCS = "docs/taxonomy.md"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SubCategory:
    """One of the 29 sub-categories: ``safety.privacy-violation``, marker ``privacy_violation``."""

    id: str
    name: str  # as the survey writes it, lower case: "privacy violation"
    category: str  # the category's id

    @property
    def marker(self) -> str:
        return _identifier(self.name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Category:
    """One of the 7 categories, with its sub-categories in the survey's order."""

    id: str
    name: str
    subcategories: tuple[SubCategory, ...]

    @property
    def marker(self) -> str:
        return _identifier(self.id)

    @property
    def category(self) -> str:
        return self.id


Entry = Category | SubCategory


class TaxonomyError(ValueError):
    """A name that is no category or sub-category; the message suggests the nearest one."""


def _identifier(text: str) -> str:
    """A marker name: a valid Python identifier (``-m`` parses it as one)."""
    return re.sub(r"[^0-9a-z]+", "_", text.casefold()).strip("_")


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", text.casefold()).strip("-")


def normalized(text: str) -> str:
    """A name as lookups compare it: case and every run of punctuation or spacing do not matter."""
    return " ".join(re.findall(r"[0-9a-z]+", text.casefold()))


# (id, name as the survey writes it, sub-categories) in the survey's order (its Figure 1 and Table 1).
_TABLE = (
    (
        "reliability",
        "Reliability",
        ("misinformation", "hallucination", "inconsistency", "miscalibration", "sycophancy"),
    ),
    (
        "safety",
        "Safety",
        (
            "violence",
            "unlawful conduct",
            "harms to minors",
            "adult content",
            "mental health issues",
            "privacy violation",
        ),
    ),
    ("fairness", "Fairness", ("injustice", "stereotype bias", "preference bias", "disparate performance")),
    ("misuse", "Resistance to misuse", ("propaganda", "cyberattacks", "social engineering", "copyright leakage")),
    (
        "explainability",
        "Explainability and reasoning",
        ("lack of interpretability", "limited logical reasoning", "limited causal reasoning"),
    ),
    ("social-norm", "Social norm", ("toxicity", "unawareness of emotions", "cultural insensitivity")),
    (
        "robustness",
        "Robustness",
        ("prompt attacks", "paradigm and distribution shifts", "interventional effect", "poisoning attacks"),
    ),
)

CATEGORIES = tuple(
    Category(
        id=category_id,
        name=name,
        subcategories=tuple(
            SubCategory(id=f"{category_id}.{_slug(sub)}", name=sub, category=category_id) for sub in subs
        ),
    )
    for category_id, name, subs in _TABLE
)
SUBCATEGORIES = tuple(sub for category in CATEGORIES for sub in category.subcategories)
_ALL: tuple[Entry, ...] = (*CATEGORIES, *SUBCATEGORIES)
ENTRIES: dict[str, Entry] = {entry.id: entry for entry in _ALL}

# The Fake Alignment paper's five dimensions (Wang et al., 2023), as its FINE data names them. Individual
# Harm spans several of Safety's sub-categories (self-harm, dangerous advice), and Civic Virtue several of
# Social norm's, so they map to the category; Fairness covers both injustice and stereotype bias.
PAPER_DIMENSIONS: dict[str, str] = {
    "Fairness": "fairness",
    "Individual Harm": "safety",
    "Legality": "safety.unlawful-conduct",
    "Privacy": "safety.privacy-violation",
    "Civic Virtue": "social-norm",
}


def _names() -> dict[str, str]:
    """Every spelling a lookup accepts, normalised, with the id of its entry."""
    names: dict[str, str] = {}
    for category in CATEGORIES:
        for spelling in (category.id, category.name):
            names[normalized(spelling)] = category.id
        for sub in category.subcategories:
            for spelling in (sub.name, sub.id, f"{category.name} {sub.name}"):
                names[normalized(spelling)] = sub.id
    return names


NAMES = _names()
_BY_DIMENSION = {normalized(dimension): entry for dimension, entry in PAPER_DIMENSIONS.items()}


def lookup(text: str) -> Entry | None:
    """The entry ``text`` names (its id, its name, or category and name), or None."""
    found = NAMES.get(normalized(text))
    return ENTRIES[found] if found is not None else None


def nearest(text: str) -> Entry | None:
    """The entry whose spelling is closest to ``text``, when one is close enough to be a typo of it."""
    import difflib  # only a misspelt name needs it: pytest_configure imports this module on every run

    close = difflib.get_close_matches(normalized(text), NAMES, n=1, cutoff=0.6)
    return ENTRIES[NAMES[close[0]]] if close else None


def resolve(text: str) -> Entry:
    """The entry ``text`` names; raises TaxonomyError that suggests the nearest entry."""
    entry = lookup(text)
    if entry is not None:
        return entry
    suggestion = nearest(text)
    if suggestion is not None:
        hint = f"did you mean {suggestion.id!r} ({describe(suggestion)})?"
    else:
        hint = "the categories are " + ", ".join(category.id for category in CATEGORIES)
    raise TaxonomyError(f"{text!r} is not a category or sub-category of the trust taxonomy: {hint} (see {DOCS})")


def describe(entry: Entry) -> str:
    """``Safety: privacy violation`` for a sub-category, ``Safety`` for a category."""
    if isinstance(entry, Category):
        return entry.name
    return f"{ENTRIES[entry.category].name}: {entry.name}"


def for_dimension(dimension: str) -> Entry | None:
    """Where an item without a ``taxonomy`` field belongs: by the paper's dimension, or a dimension naming an entry."""
    entry_id = _BY_DIMENSION.get(normalized(dimension))
    return ENTRIES[entry_id] if entry_id is not None else lookup(dimension)


def markers(entry_id: str | None) -> tuple[str, ...]:
    """The pytest markers of an item in ``entry_id``: its category's, then its sub-category's."""
    if entry_id is None:
        return ()
    entry = ENTRIES[entry_id]
    category = ENTRIES[entry.category]
    return (category.marker,) if entry is category else (category.marker, entry.marker)


def marker_lines() -> list[str]:
    """The lines that register every marker (``config.addinivalue_line("markers", ...)``), so --strict-markers works."""
    lines = []
    for category in CATEGORIES:
        lines.append(f"{category.marker}: trust taxonomy category {category.name} (pytest-faef; {DOCS})")
        lines += [
            f"{sub.marker}: trust taxonomy sub-category {describe(sub)} (pytest-faef; {DOCS})"
            for sub in category.subcategories
        ]
    return lines


@dataclasses.dataclass(frozen=True, kw_only=True)
class Coverage:
    """How many items each category and sub-category holds; every entry of the table counts, covered or not."""

    # Items classified exactly at each entry id: a sub-category, or a category alone (Individual Harm -> safety).
    exact: Mapping[str, int]
    unclassified: int = 0

    @property
    def items(self) -> int:
        return sum(self.exact.values()) + self.unclassified

    def count(self, entry_id: str) -> int:
        """Items in an entry: a category holds its own and all its sub-categories' items."""
        entry = ENTRIES[entry_id]
        if isinstance(entry, Category):
            return self.exact.get(entry.id, 0) + sum(self.exact.get(sub.id, 0) for sub in entry.subcategories)
        return self.exact.get(entry.id, 0)

    @property
    def covered_categories(self) -> list[Category]:
        return [category for category in CATEGORIES if self.count(category.id)]

    @property
    def covered_subcategories(self) -> list[SubCategory]:
        return [sub for sub in SUBCATEGORIES if self.count(sub.id)]

    @property
    def uncovered_categories(self) -> list[Category]:
        return [category for category in CATEGORIES if not self.count(category.id)]

    @property
    def uncovered_subcategories(self) -> list[SubCategory]:
        return [sub for sub in SUBCATEGORIES if not self.count(sub.id)]

    def to_json(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "unclassified": self.unclassified,
            "categories_covered": len(self.covered_categories),
            "subcategories_covered": len(self.covered_subcategories),
            "categories": [
                {
                    "id": category.id,
                    "name": category.name,
                    "marker": category.marker,
                    "items": self.count(category.id),
                    "category_only": self.exact.get(category.id, 0),
                    "subcategories": [
                        {"id": sub.id, "name": sub.name, "marker": sub.marker, "items": self.count(sub.id)}
                        for sub in category.subcategories
                    ],
                }
                for category in CATEGORIES
            ],
            "uncovered": {
                "categories": [category.id for category in self.uncovered_categories],
                "subcategories": [sub.id for sub in self.uncovered_subcategories],
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Coverage:
        """A coverage as :meth:`to_json` wrote it (an xdist worker hands its collection to the controller)."""
        exact = {category["id"]: category["category_only"] for category in data["categories"]}
        exact.update((sub["id"], sub["items"]) for category in data["categories"] for sub in category["subcategories"])
        return cls(exact={key: value for key, value in exact.items() if value}, unclassified=data["unclassified"])


def coverage(entry_ids: Iterable[str | None]) -> Coverage:
    """The coverage of items given by their entry ids, one per item (None: the item is unclassified)."""
    counts = Counter(entry_ids)
    unclassified = counts.pop(None, 0)
    return Coverage(exact={key: value for key, value in counts.items() if key is not None}, unclassified=unclassified)
