"""Shards (issue 16): a stable hash of the item key, disjoint and covering, the same whatever else the suite holds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_faef.core.shards import Shard, ShardError, ShardSelection, _jump, parse_shard, shard_of, split

SOURCE = "--faef-shard / faef_shard"
KEYS = st.lists(st.text(min_size=1, max_size=40), max_size=60, unique=True)
COUNTS = st.integers(min_value=1, max_value=12)


@pytest.mark.parametrize(("text", "index", "count"), [("2/3", 2, 3), (" 1 / 1 ", 1, 1), ("8/8", 8, 8)])
def test_a_shard_is_k_of_n(text: str, index: int, count: int) -> None:
    shard = parse_shard(text, source=SOURCE)

    assert (shard.index, shard.count, str(shard)) == (index, count, f"{index}/{count}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3", "'3' is not a shard; write K/N, e.g. 2/3 for the second of three"),
        ("a/b", "'a/b' is not a shard"),
        ("-1/3", "'-1/3' is not a shard"),
        ("0/3", "'0/3': K must lie between 1 and N (3)"),
        ("4/3", "'4/3': K must lie between 1 and N (3)"),
        ("1/0", "'1/0': N, the number of shards, must be at least 1"),
    ],
)
def test_a_bad_shard_names_the_option_and_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ShardError) as error:
        parse_shard(text, source=SOURCE)

    assert str(error.value).startswith(f"{SOURCE}: {message}")


def test_the_jump_hash_is_lamping_and_veachs() -> None:
    # The reference implementation's published values (Go's jump package tests them too): another
    # machine, Python or release computing anything else would move items between shards.
    assert [_jump(1, 1), _jump(42, 57), _jump(0xDEAD10CC, 1), _jump(0xDEAD10CC, 666), _jump(256, 1024)] == [
        0,
        43,
        0,
        361,
        520,
    ]


def test_an_items_shard_never_changes() -> None:
    # Pinned: the same item must land in the same shard on every run, machine and release.
    keys = [f"evals/privacy.faef.jsonl::privacy::priv-{number:02d}" for number in range(1, 9)]

    assert [shard_of(key, 3) for key in keys] == [3, 1, 3, 2, 2, 2, 2, 2]


@given(keys=KEYS, count=COUNTS)
def test_shards_are_disjoint_and_cover_every_item(keys: list[str], count: int) -> None:
    shards = split(keys, count)

    assert sorted(shards) == list(range(1, count + 1))
    assert sorted(key for members in shards.values() for key in members) == sorted(keys)
    for index, members in shards.items():
        assert all(Shard(index=index, count=count).holds(key) for key in members)
        assert not any(
            Shard(index=other, count=count).holds(key) for key in members for other in shards if other != index
        )


@given(keys=KEYS, others=KEYS, count=COUNTS)
def test_an_items_shard_does_not_depend_on_the_rest_of_the_suite(
    keys: list[str], others: list[str], count: int
) -> None:
    alone = {key: index for index, members in split(keys, count).items() for key in members}
    among = {key: index for index, members in split([*others, *keys], count).items() for key in members}

    assert all(among[key] == alone[key] for key in keys)


@given(keys=KEYS, count=COUNTS)
def test_one_more_shard_moves_items_only_into_the_new_shard(keys: list[str], count: int) -> None:
    for key in keys:
        assert shard_of(key, count + 1) in (shard_of(key, count), count + 1)


def test_ten_thousand_items_over_eight_shards_are_balanced_within_the_binomial_spread() -> None:
    keys = [f"evals/suite-{number % 7}.faef.jsonl::dimension_{number % 10}::item-{number}" for number in range(10_000)]

    sizes = [len(members) for members in split(keys, 8).values()]

    # 1,250 each, give or take 33 (one standard deviation of a binomial count): allow four and a half.
    assert sum(sizes) == 10_000
    assert all(abs(size - 1_250) <= 150 for size in sizes), sizes


def test_a_selection_says_how_many_items_its_shard_kept() -> None:
    selection = ShardSelection(shard=Shard(index=2, count=3), items=3_334, selected=10_000)

    assert selection.line() == "faef shard 2/3: 3,334 of 10,000 items"
    assert ShardSelection.from_json(selection.to_json()) == selection
    assert selection.to_json() == {"index": 2, "count": 3, "items": 3_334, "selected": 10_000}
