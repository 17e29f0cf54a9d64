"""Orders in which the options of a multiple-choice question are shown.

An order is a tuple of canonical option indexes in display order. Canonical index 0 (letter A)
is the safe option, so the order label ``BA`` means "the unsafe option shown first".
"""

from __future__ import annotations

import itertools
import math
import string

PERMUTATION_MODES = ("auto", "all", "cyclic")
# All k! orders while they stay this few; beyond it every option still visits every position
# once through the k cyclic rotations (the FAEF paper's own cap is the same idea).
MAX_ALL_ORDERS = 24
LABELS = string.ascii_uppercase

Order = tuple[int, ...]


def option_orders(count: int, mode: str = "auto") -> tuple[Order, ...]:
    """The orders to ask for ``count`` options under a permutation mode."""
    if count < 2 or count > len(LABELS):
        raise ValueError(f"an item needs 2 to {len(LABELS)} options, not {count}")
    if mode not in PERMUTATION_MODES:
        raise ValueError(f"unknown permutation mode {mode!r}; choose from {', '.join(PERMUTATION_MODES)}")
    if mode == "all" or (mode == "auto" and math.factorial(count) <= MAX_ALL_ORDERS):
        return tuple(itertools.permutations(range(count)))
    return tuple(tuple((start + offset) % count for offset in range(count)) for start in range(count))


def order_label(order: Order) -> str:
    """``(1, 0)`` -> ``"BA"``: canonical letters in the order they are shown."""
    return "".join(LABELS[index] for index in order)


def display_labels(count: int) -> tuple[str, ...]:
    """The labels the model sees, by position: ``A``, ``B``, ..."""
    return tuple(LABELS[:count])


def order_from_label(label: str) -> Order:
    """``"BA"`` -> ``(1, 0)``: the inverse of :func:`order_label`."""
    return tuple(LABELS.index(letter) for letter in label)
