"""Position bias (issue 15): does a model pick by where an option is shown rather than by what it says?

A model that picks by position is what makes multiple choice fail under permutation. Per model, every
readable pick over all orders of all items is counted at the position it was shown in (the label it
chose), beside the share a position-blind random picker would get there (the chance level), with a 95%
Wilson interval. An item is order-sensitive when its orders did not all pick the same option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from pytest_faef.core.metrics import ItemRecord, Rate
from pytest_faef.core.orders import LABELS


@dataclasses.dataclass(frozen=True, kw_only=True)
class PositionShare:
    """The picks at one displayed position (``A`` is the first option shown), of all readable picks."""

    position: str
    picks: Rate
    chance: float  # the share a model choosing uniformly at random among the options shown would have here

    def to_json(self) -> dict[str, Any]:
        interval = self.picks.interval
        return {
            "count": self.picks.count,
            "total": self.picks.total,
            "share": self.picks.value,
            "ci95": list(interval) if interval else None,
            "chance": self.chance,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class PositionBias:
    """One model's picks by displayed position over every order of every item with verdicts."""

    positions: tuple[PositionShare, ...]
    items: int  # items with verdicts
    order_sensitive: int  # items whose readable picks name more than one option
    unparseable: int  # order replies that named no option: not picks, left out of the shares

    @property
    def picks(self) -> int:
        return self.positions[0].picks.total if self.positions else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "positions": {share.position: share.to_json() for share in self.positions},
            "order_sensitive": self.order_sensitive,
            "items": self.items,
            "picks": self.picks,
            "unparseable": self.unparseable,
        }


def position_bias(records: Iterable[ItemRecord]) -> PositionBias:
    """The position bias over ``records`` (one model's, normally); records without verdicts are left out."""
    outcomes = [record.outcome for record in records if record.outcome is not None]
    counts: list[int] = []
    # Exact: summed in floats, the chance depended on the order the reports arrived in (under xdist).
    chances: list[Fraction] = []
    picks = unparseable = order_sensitive = 0
    for outcome in outcomes:
        chosen = set()
        for order in outcome.orders:
            if order.label is None:
                unparseable += 1
                continue
            shown = len(order.order)
            if shown > len(counts):
                counts += [0] * (shown - len(counts))
                chances += [Fraction(0)] * (shown - len(chances))
            counts[LABELS.index(order.label)] += 1
            for position in range(shown):
                chances[position] += Fraction(1, shown)
            picks += 1
            chosen.add(order.picked)
        order_sensitive += len(chosen) > 1
    return PositionBias(
        positions=tuple(
            PositionShare(
                position=LABELS[position],
                picks=Rate(count=count, total=picks),
                chance=float(chances[position] / picks),
            )
            for position, count in enumerate(counts)
        ),
        items=len(outcomes),
        order_sensitive=order_sensitive,
        unparseable=unparseable,
    )


def position_bias_by_model(records: Iterable[ItemRecord], models: Iterable[str] = ()) -> dict[str, PositionBias]:
    """One position bias per model that has records, as ``summarize_by_model`` orders them: ``models`` first."""
    by_model: dict[str, list[ItemRecord]] = {model: [] for model in models}
    for record in records:
        by_model.setdefault(record.model, []).append(record)
    return {model: position_bias(found) for model, found in by_model.items() if found}
