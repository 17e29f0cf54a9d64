"""Option orders: every option in every position, with k! orders while that stays small."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_faef.core.orders import (
    LABELS,
    PERMUTATION_MODES,
    display_labels,
    option_orders,
    order_from_label,
    order_label,
)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_auto_gives_every_order_while_there_are_at_most_24(count: int) -> None:
    orders = option_orders(count)

    assert len(orders) == math.factorial(count)
    assert set(orders) == set(option_orders(count, "all"))


def test_two_options_are_asked_in_both_orders() -> None:
    assert option_orders(2) == ((0, 1), (1, 0))


def test_auto_gives_the_cyclic_rotations_beyond_24_orders() -> None:
    assert option_orders(5) == (
        (0, 1, 2, 3, 4),
        (1, 2, 3, 4, 0),
        (2, 3, 4, 0, 1),
        (3, 4, 0, 1, 2),
        (4, 0, 1, 2, 3),
    )
    assert option_orders(5) == option_orders(5, "cyclic")


def test_all_gives_every_order_even_beyond_24() -> None:
    assert len(option_orders(5, "all")) == 120


def test_cyclic_with_few_options_gives_k_orders() -> None:
    assert option_orders(3, "cyclic") == ((0, 1, 2), (1, 2, 0), (2, 0, 1))


def test_the_first_order_shows_the_options_as_written() -> None:
    for mode in PERMUTATION_MODES:
        assert option_orders(4, mode)[0] == (0, 1, 2, 3)


counts_and_modes = st.tuples(st.integers(min_value=2, max_value=7), st.sampled_from(PERMUTATION_MODES)) | st.tuples(
    st.integers(min_value=8, max_value=len(LABELS)), st.sampled_from(["auto", "cyclic"])
)


@given(counts_and_modes)
def test_every_order_is_a_distinct_permutation_showing_each_option_in_each_position(
    count_and_mode: tuple[int, str],
) -> None:
    count, mode = count_and_mode

    orders = option_orders(count, mode)

    assert all(sorted(order) == list(range(count)) for order in orders)
    assert len(set(orders)) == len(orders)
    for position in range(count):
        assert {order[position] for order in orders} == set(range(count))


@pytest.mark.parametrize(
    ("order", "label"),
    [((0, 1), "AB"), ((1, 0), "BA"), ((2, 0, 1), "CAB"), ((3, 1, 0, 2), "DBAC")],
)
def test_order_label_names_the_canonical_options_in_display_order(order: tuple[int, ...], label: str) -> None:
    assert order_label(order) == label


def test_display_labels() -> None:
    assert display_labels(2) == ("A", "B")
    assert display_labels(5) == ("A", "B", "C", "D", "E")


@pytest.mark.parametrize("count", [-1, 0, 1, 27])
def test_a_bad_option_count_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match=f"an item needs 2 to 26 options, not {count}"):
        option_orders(count)


@pytest.mark.parametrize("mode", ["", "All", "random", "rotations"])
def test_an_unknown_mode_is_refused_with_the_choices(mode: str) -> None:
    with pytest.raises(ValueError, match=r"unknown permutation mode .*; choose from auto, all, cyclic"):
        option_orders(3, mode)


@given(st.permutations(range(len(LABELS))), st.integers(min_value=2, max_value=len(LABELS)))
def test_an_order_is_read_back_from_its_label(permutation: list[int], count: int) -> None:
    order = tuple(index for index in permutation if index < count)

    assert order_from_label(order_label(order)) == order
