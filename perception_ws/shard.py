"""``--shard K/N``: one of N disjoint parts of a job, so N machines (any scheduler) can share it.

Item ``i`` (a frame for ``perception label``, a scene for ``perception sim generate``) belongs to shard
``(i % N) + 1``: the shards are disjoint, together complete, and each one's items are known without
talking to the others. Standard library only (the CLI imports it).
"""

from __future__ import annotations

from dataclasses import dataclass

from perception_ws.errors import PerceptionError


@dataclass(frozen=True)
class Shard:
    """Items ``i`` with ``i % count == index - 1`` (``index`` counts from 1, as ``--shard K/N`` does)."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise PerceptionError(f"--shard {self.index}/{self.count}: expected K/N with 1 <= K <= N")

    def indices(self, total: int) -> list[int]:
        """This shard's item indices out of ``total`` items."""
        return list(range(self.index - 1, total, self.count))

    @property
    def whole(self) -> bool:
        """True for ``1/1``: the whole job, as if no shard were given."""
        return self.count == 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


#: the whole job (``--shard 1/1``), the default.
WHOLE = Shard()


def parse_shard(text: str) -> Shard:
    """``"K/N"`` -> :class:`Shard`; a PerceptionError names what is wrong."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise PerceptionError(f"--shard {text!r}: expected K/N, e.g. 1/4 (whole numbers, 1 <= K <= N)")
    return Shard(int(index), int(count))
