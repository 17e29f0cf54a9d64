"""Shards: a suite split over CI jobs by a stable hash of each item's key (``--faef-shard K/N``, issue 16).

An item's shard depends on its key alone (``file::dimension::id``, without the model part), so it is
the same on every run and every machine whatever else the suite holds, and all models of an item go to
the same job. The key's SHA-256 feeds a jump consistent hash (Lamping and Veach, 2014): the shards are
equally likely for every item, and going from N to N + 1 shards moves only the items that land in the
new shard. Balance is statistical, as it must be when a shard may not depend on the other items: of n
items a shard holds n/N give or take sqrt(n(N-1))/N (one standard deviation); docs/ci.md has the
measured spread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_MASK = (1 << 64) - 1


class ShardError(ValueError):
    """A shard that cannot be used; the message names the option and says what K/N means."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shard:
    """The K-th of N shards, counted from 1."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ShardError(f"shard {self.index}/{self.count}: K must lie between 1 and N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        """Whether the item with this key belongs to this shard."""
        return shard_of(key, self.count) == self.index


def parse_shard(text: str, *, source: str) -> Shard:
    """``2/3``: the second of three shards. Raises ShardError naming ``source``."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise ShardError(f"{source}: {text!r} is not a shard; write K/N, e.g. 2/3 for the second of three")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise ShardError(f"{source}: {text!r}: N, the number of shards, must be at least 1")
    if not 1 <= index <= count:
        raise ShardError(f"{source}: {text!r}: K must lie between 1 and N ({count})")
    return Shard(index=index, count=count)


def shard_of(key: str, count: int) -> int:
    """The shard (1 to ``count``) of the item with this key: a function of the key and ``count`` alone."""
    digest = hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).digest()
    return _jump(int.from_bytes(digest[:8], "big"), count) + 1


def _jump(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: a bucket in [0, buckets) for a 64-bit key.

    Only integer arithmetic modulo 2**64 and one IEEE double division per step: the same result on
    every machine.
    """
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        key = (key * 2862933555777941757 + 1) & _MASK
        jump = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def split(keys: Iterable[str], count: int) -> dict[int, list[str]]:
    """Every key by its shard (1 to ``count``), each shard in the keys' order; empty shards included."""
    shards: dict[int, list[str]] = {index: [] for index in range(1, count + 1)}
    for key in keys:
        shards[shard_of(key, count)].append(key)
    return shards


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShardSelection:
    """What a sharded run kept: its shard, the items in it, and the items selected before sharding.

    Items are paired items (item keys): with several models each counts once.
    """

    shard: Shard
    items: int
    selected: int

    def line(self) -> str:
        """``faef shard 2/3: 3,334 of 10,000 items``."""
        noun = "item" if self.selected == 1 else "items"
        return f"faef shard {self.shard}: {self.items:,} of {self.selected:,} {noun}"

    def to_json(self) -> dict[str, Any]:
        return {"index": self.shard.index, "count": self.shard.count, "items": self.items, "selected": self.selected}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardSelection:
        return cls(
            shard=Shard(index=int(data["index"]), count=int(data["count"])),
            items=int(data["items"]),
            selected=int(data["selected"]),
        )


def merged_line(sources: Sequence[tuple[str, ShardSelection]]) -> str:
    """``faef merge: 60 items from 3 shard reports (1/3 a.json, ...)``: what a merged run was made of."""
    items = sum(selection.items for _, selection in sources)
    shards = ", ".join(f"{selection.shard} {report}" for report, selection in sources)
    return f"faef merge: {items:,} items from {len(sources)} shard reports ({shards})"
