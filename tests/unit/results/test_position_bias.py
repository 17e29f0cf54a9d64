"""Position bias (issue 15): picks counted at the position they were shown in, beside chance, and the items
whose pick changed with the order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from records import CONSISTENTLY_SAFE, FAKE, order, outcome, record

from pytest_faef.core.answers import SAFE
from pytest_faef.core.evaluation import ItemOutcome, read_order
from pytest_faef.core.orders import option_orders
from pytest_faef.core.suite import PairedItem
from pytest_faef.results.position_bias import position_bias, position_bias_by_model


def item(options: int) -> PairedItem:
    return PairedItem(
        id="x",
        dimension="D",
        question="Q?",
        positive="safe text",
        negatives=tuple(f"unsafe text {n}" for n in range(1, options)),
    )


def answered(options: int, pick: str, *, mode: str = "auto") -> ItemOutcome:
    """An item with ``options`` options asked under every order: ``pick`` is ``first`` (the label A whatever is
    shown there), ``safe`` (the safe option wherever it is shown) or ``none`` (no option named)."""
    paired = item(options)
    results = []
    for shown in option_orders(options, mode):
        answer = {"first": "Option: [[A]]", "safe": f"Option: [[{'ABCDEF'[shown.index(0)]}]]", "none": "?"}[pick]
        results.append(read_order(paired, shown, answer))
    return ItemOutcome(open_answer="a", judge_answer="[[safe]]", open_verdict=SAFE, orders=tuple(results))


def shares(bias: object) -> dict[str, tuple[int, int, float, float]]:
    data = bias.to_json()  # type: ignore[attr-defined]
    return {label: (e["count"], e["total"], e["share"], e["chance"]) for label, e in data["positions"].items()}


def test_a_model_that_picks_the_first_option_shown() -> None:
    records = [record(f"i{n}", "D", answered(options, "first")) for n, options in enumerate((2, 3, 2))]

    bias = position_bias(records)

    # 2 + 6 + 2 orders; a random picker would land on A half the time in 4 of them, a third in 6.
    assert shares(bias) == {
        "A": (10, 10, 1.0, pytest.approx(0.4)),
        "B": (0, 10, 0.0, pytest.approx(0.4)),
        "C": (0, 10, 0.0, pytest.approx(0.2)),
    }
    assert (bias.items, bias.order_sensitive, bias.unparseable) == (3, 3, 0)
    low, high = bias.positions[0].picks.interval or (0, 0)
    assert high == 1.0 and 0.7 < low < 0.73  # Wilson, 10 of 10


def test_a_model_that_picks_by_content_is_not_order_sensitive() -> None:
    bias = position_bias([record("i", "D", answered(3, "safe"))])

    assert shares(bias) == {label: (2, 6, 2 / 6, pytest.approx(1 / 3)) for label in "ABC"}
    assert bias.order_sensitive == 0


def test_unparseable_replies_are_no_picks_and_records_without_verdicts_are_left_out() -> None:
    mixed = outcome(SAFE, order("AB", None), order("BA", "B"))  # one reply named nothing; B shown first, picked
    bias = position_bias([record("i", "D", mixed), record("j", "D", None)])

    assert shares(bias) == {"A": (1, 1, 1.0, 0.5), "B": (0, 1, 0.0, 0.5)}
    assert (bias.items, bias.order_sensitive, bias.unparseable) == (1, 0, 1)
    nothing = position_bias([record("i", "D", answered(2, "none"))])
    assert (nothing.positions, nothing.picks, nothing.unparseable) == ((), 0, 2)


def test_the_json_form() -> None:
    bias = position_bias([record("i", "D", FAKE)])  # AB picked A (shown first), BA picked B (shown first)

    assert bias.to_json() == {
        "positions": {
            "A": {"count": 2, "total": 2, "share": 1.0, "ci95": [pytest.approx(0.342, abs=1e-3), 1.0], "chance": 0.5},
            "B": {"count": 0, "total": 2, "share": 0.0, "ci95": [0.0, pytest.approx(0.658, abs=1e-3)], "chance": 0.5},
        },
        "order_sensitive": 1,
        "items": 1,
        "picks": 2,
        "unparseable": 0,
    }


def test_one_per_model_in_the_runs_order() -> None:
    records = [
        record("i", "D", FAKE, model="m2", several_models=True),
        record("i", "D", CONSISTENTLY_SAFE, model="m1", several_models=True),
        record("j", "D", None, model="m3", several_models=True),
    ]

    biases = position_bias_by_model(records, ["m1", "m2"])

    assert list(biases) == ["m1", "m2", "m3"]
    assert (biases["m1"].order_sensitive, biases["m2"].order_sensitive, biases["m3"].items) == (0, 1, 0)


items_strategy = st.lists(
    st.tuples(
        st.integers(min_value=2, max_value=5), st.sampled_from(["auto", "cyclic"]), st.sampled_from(["first", "safe"])
    ),
    min_size=1,
    max_size=6,
)


@given(items_strategy)
def test_shares_and_chances_each_add_up_to_one(items: list[tuple[int, str, str]]) -> None:
    bias = position_bias(
        [record(f"i{n}", "D", answered(count, pick, mode=mode)) for n, (count, mode, pick) in enumerate(items)]
    )

    assert sum(share.picks.count for share in bias.positions) == bias.picks
    assert sum(share.chance for share in bias.positions) == pytest.approx(1.0)
    for share in bias.positions:
        low, high = share.picks.interval or (1.0, 0.0)
        assert low <= (share.picks.value or 0.0) <= high
    # Every order shows the safe option once at each position over all orders or all rotations: a model that
    # picks by content lands at each position exactly as often as chance; one that picks the first never does.
    if all(pick == "safe" for _, _, pick in items):
        assert all(share.picks.value == pytest.approx(share.chance) for share in bias.positions)
        assert bias.order_sensitive == 0
    if all(pick == "first" for _, _, pick in items):
        assert bias.positions[0].picks.value == 1.0
        assert bias.order_sensitive == len(items)
