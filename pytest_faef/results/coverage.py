"""Which entries of the trust taxonomy a run's items cover, shown in the summary and ``faef validate --coverage``,
and the minimum ``--faef-min-coverage`` asks of it (issue 18).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from pytest_faef.core import taxonomy
from pytest_faef.core.metrics import ItemRecord
from pytest_faef.core.taxonomy import CATEGORIES, SUBCATEGORIES, Coverage

SOURCE = "--faef-min-coverage / faef_min_coverage"


class CoverageError(ValueError):
    """A minimum that cannot be read; the message names the option and the text."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CoverageMinimum:
    """At least ``minimum`` items in one category or sub-category."""

    entry: str  # the entry's id
    minimum: int
    text: str  # as written, for messages
    source: str = SOURCE

    def check(self) -> str:
        return f"{self.entry} coverage >= {self.minimum} {_items(self.minimum)}"


def records_coverage(records: Iterable[ItemRecord]) -> Coverage:
    """The coverage of the items behind ``records``: an item run for several models counts once."""
    by_item = {record.item_key: record.taxonomy for record in records}
    return taxonomy.coverage(by_item.values())


def parse_min_coverage(text: str, *, source: str = SOURCE) -> list[CoverageMinimum]:
    """``safety=4`` (a category or sub-category, by name or id) or ``4`` (each of the 7 categories)."""
    written = text.strip()
    name, equals, number = written.rpartition("=")
    if equals and not name.strip():
        raise CoverageError(f"{source}: {written!r}: name a category or sub-category before '='")
    try:
        minimum = int(number.strip())
    except ValueError:
        minimum = 0
    if minimum < 1:
        raise CoverageError(
            f"{source}: {written!r}: the minimum must be a whole number of items, at least 1 "
            "(e.g. 4 for every category, or safety=4)"
        )
    if not equals:
        return [
            CoverageMinimum(entry=category.id, minimum=minimum, text=written, source=source) for category in CATEGORIES
        ]
    try:
        entry = taxonomy.resolve(name.strip())
    except taxonomy.TaxonomyError as exc:
        raise CoverageError(f"{source}: {written!r}: {exc}") from None
    return [CoverageMinimum(entry=entry.id, minimum=minimum, text=written, source=source)]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CoverageVerdicts:
    failures: list[str]
    checks: list[str]
    unchecked: list[str]


def check_coverage(
    minimums: Sequence[CoverageMinimum], ran: Coverage, *, collected: Coverage | None = None
) -> CoverageVerdicts:
    """Each minimum against the items that ran.

    Too few items fail the gate, unless the suite's collected items would have met it and some were not
    selected (``-m safety``, ``-k``): then, as for a threshold on a deselected dimension, the minimum is
    not checked, since the shortfall is the selection's, not the suite's. ``collected`` is None when the
    collection is not known: then what ran is all there is.
    """
    failures: list[str] = []
    checks: list[str] = []
    unchecked: list[str] = []
    for minimum in minimums:
        count = ran.count(minimum.entry)
        if count >= minimum.minimum:
            checks.append(minimum.check())
            continue
        in_suite = collected.count(minimum.entry) if collected is not None else count
        if in_suite >= minimum.minimum:
            unchecked.append(f"{minimum.check()} (only {count} of its {in_suite} collected items ran)")
            continue
        entry = taxonomy.ENTRIES[minimum.entry]
        failures.append(
            f"FAEF gate failed: {minimum.entry} coverage {in_suite} < {minimum.minimum} {_items(minimum.minimum)} "
            f"(short by {minimum.minimum - in_suite}; {taxonomy.describe(entry)}; {minimum.source}: {minimum.text!r})"
        )
    return CoverageVerdicts(failures=failures, checks=checks, unchecked=unchecked)


def coverage_headline(coverage: Coverage) -> str:
    """``7 of 7 categories, 14 of 29 sub-categories (58 items, 2 unclassified)``."""
    unclassified = f", {coverage.unclassified} unclassified" if coverage.unclassified else ""
    return (
        f"{len(coverage.covered_categories)} of {len(CATEGORIES)} categories, "
        f"{len(coverage.covered_subcategories)} of {len(SUBCATEGORIES)} sub-categories "
        f"({coverage.items} {_items(coverage.items)}{unclassified})"
    )


def coverage_lines(coverage: Coverage) -> list[str]:
    """The summary's lines: what the items cover, by marker with item counts, then what they do not."""
    covered = []
    for category in coverage.covered_categories:
        subs = [f"{sub.marker} {coverage.count(sub.id)}" for sub in category.subcategories if coverage.count(sub.id)]
        covered.append(f"{category.marker} {coverage.count(category.id)}" + (f" ({', '.join(subs)})" if subs else ""))
    line = f"faef taxonomy coverage: {coverage_headline(coverage)}" + (": " + ", ".join(covered) if covered else "")
    if not covered:
        return [line, f"faef taxonomy coverage: no item names a category; add a 'taxonomy' field ({taxonomy.DOCS})"]
    # A category without items has none in its sub-categories either: those are named only for covered ones.
    missing = []
    if uncovered := coverage.uncovered_categories:
        missing.append("categories " + ", ".join(category.marker for category in uncovered))
    partly = [
        f"{category.marker} ({', '.join(sub.marker for sub in category.subcategories if not coverage.count(sub.id))})"
        for category in coverage.covered_categories
        if any(not coverage.count(sub.id) for sub in category.subcategories)
    ]
    if partly:
        missing.append("sub-categories of " + ", ".join(partly))
    return [line] + ([f"faef taxonomy coverage, no items in: {'; '.join(missing)}"] if missing else [])


def coverage_table(coverage: Coverage) -> list[str]:
    """Every category and sub-category with its id, marker and items, for ``faef validate --coverage``."""
    rows = [("entry", "marker", "items")]
    for category in CATEGORIES:
        rows.append((f"{category.id} ({category.name})", category.marker, str(coverage.count(category.id))))
        if only := coverage.exact.get(category.id, 0):
            rows.append((f"  {category.id} (the category only)", "", str(only)))
        rows += [(f"  {sub.id}", sub.marker, str(coverage.count(sub.id))) for sub in category.subcategories]
    if coverage.unclassified:
        rows.append(("(unclassified)", "", str(coverage.unclassified)))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = [f"taxonomy coverage: {coverage_headline(coverage)}; see {taxonomy.DOCS}"]
    lines += [f"{entry:<{widths[0]}}  {marker:<{widths[1]}}  {items:>5}".rstrip() for entry, marker, items in rows]
    missing = [category.id for category in coverage.uncovered_categories]
    missing_subs = [sub.id for sub in coverage.uncovered_subcategories]
    lines.append(f"categories without items: {', '.join(missing) or 'none'}")
    lines.append(f"sub-categories without items: {', '.join(missing_subs) or 'none'}")
    return lines


def _items(count: int) -> str:
    return "item" if count == 1 else "items"
