"""The approximate-time pairing policy on hand-made stamp sequences, and on random regular streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_ws.errors import PerceptionError
from perception_ws.sync import ApproximateTimeSync

MS = 1_000_000  # nanoseconds per millisecond


def feed(sync: ApproximateTimeSync[str], arrivals: list[tuple[int, int]]) -> list[tuple[str, ...]]:
    """Add (input, stamp in ms) in arrival order; each message is named like 'a40' (input letter, stamp)."""
    out: list[tuple[str, ...]] = []
    for index, stamp_ms in arrivals:
        out += sync.add(index, stamp_ms * MS, f"{'abc'[index]}{stamp_ms}")
    return out


def test_equal_stamps_pair_at_once() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(2, slop_s=0.01)
    assert feed(sync, [(0, 0), (1, 0)]) == [("a0", "b0")]
    assert feed(sync, [(1, 100), (0, 100), (0, 200), (1, 200)]) == [("a100", "b100"), ("a200", "b200")]
    assert sync.dropped == [0, 0]
    assert sync.emitted == 3


def test_the_closest_match_wins_and_the_loser_is_dropped() -> None:
    # a0 and a40 both lie within the slop of b38; a40 is closer, so a0 is dropped, never paired
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(2, slop_s=0.05)
    assert feed(sync, [(0, 0), (1, 38)]) == []  # a closer a may still come
    assert feed(sync, [(0, 40)]) == []  # b38's best is a40, but a closer b to a40 may still come
    assert feed(sync, [(1, 80)]) == [("a40", "b38")]  # b80 is farther from a40 than b38: decided
    assert sync.dropped == [1, 0]


def test_a_known_minimum_period_decides_without_waiting() -> None:
    # a 10 Hz cloud paired with a camera: no cloud can come within 50 ms of the last one
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(2, slop_s=0.02, min_period_s=[0.05, 0.0])
    assert feed(sync, [(0, 100), (1, 95)]) == []  # b95 is the pivot: a closer b may still come
    assert feed(sync, [(1, 128)]) == [("a100", "b95")]
    assert feed(sync, [(0, 200), (1, 203)]) == [("a200", "b203")]  # no later a can beat 3 ms


def test_messages_without_partner_within_the_slop_are_dropped() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(2, slop_s=0.01)
    assert feed(sync, [(0, 0), (1, 50)]) == []
    assert sync.dropped == [1, 0]
    assert sync.pending(0) == 0
    assert sync.pending(1) == 1
    assert feed(sync, [(0, 52), (1, 120)]) == [("a52", "b50")]


def test_an_input_that_moved_on_drops_the_pivot_even_with_an_empty_queue() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(2, slop_s=0.01)
    assert feed(sync, [(0, 100), (1, 100)]) == [("a100", "b100")]
    assert feed(sync, [(0, 50)]) == []  # older than what input a already emitted: late
    assert sync.dropped == [1, 0]
    assert feed(sync, [(1, 200), (0, 150)]) == []  # b has nothing queued, yet b200 is past a150's window
    assert sync.dropped == [2, 0]
    assert sync.pending(0) == 0


def test_queues_are_bounded() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(2, slop_s=0.01, queue_size=3)
    assert feed(sync, [(0, t) for t in range(0, 1000, 100)]) == []  # input b is silent
    assert sync.pending(0) == 3
    assert sync.dropped == [7, 0]
    assert feed(sync, [(1, 705)]) == [("a700", "b705")]


def test_duplicate_and_out_of_order_stamps() -> None:
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(2, slop_s=0.01)
    assert feed(sync, [(0, 200), (0, 100), (0, 100)]) == []  # 100 is queued in order; its duplicate dropped
    assert sync.pending(0) == 2
    assert sync.dropped == [1, 0]
    assert feed(sync, [(1, 100)]) == [("a100", "b100")]


def test_three_inputs_cloud_image_camera_info() -> None:
    # cloud (a) at 10 Hz, image (b) and camera info (c) at 30 Hz with identical stamps
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(3, slop_s=0.02, min_period_s=[0.05, 0.02, 0.02])
    arrivals = []
    for t in range(0, 200, 33):
        arrivals += [(1, t), (2, t)]
        if t % 99 == 0:
            arrivals.append((0, t + 4))
    out = feed(sync, [*arrivals, (1, 240), (2, 240)])
    assert out == [("a4", "b0", "c0"), ("a103", "b99", "c99"), ("a202", "b198", "c198")]
    assert sync.dropped == [0, 4, 4]  # images and infos 33, 66, 132, 165 have no cloud; 240 waits


def test_settings_are_checked() -> None:
    for bad in (
        {"inputs": 1, "slop_s": 0.1},
        {"inputs": 2, "slop_s": -1.0},
        {"inputs": 2, "slop_s": float("nan")},
        {"inputs": 2, "slop_s": 0.1, "queue_size": 0},
        {"inputs": 2, "slop_s": 0.1, "min_period_s": [0.1]},
    ):
        with pytest.raises(PerceptionError, match="approximate-time sync"):
            ApproximateTimeSync(**bad)
    sync: ApproximateTimeSync[str] = ApproximateTimeSync(2, 0.1)
    with pytest.raises(PerceptionError, match="input index 2"):
        sync.add(2, 0, "x")


@settings(max_examples=200, deadline=None)
@given(
    period_ms=st.integers(50, 200),
    jitter_ms=st.integers(0, 10),
    offsets=st.lists(st.integers(-10, 10), min_size=30, max_size=30),
    present=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=30, max_size=30),
    lag=st.lists(st.integers(0, 3), min_size=60, max_size=60),
)
def test_regular_streams_pair_exactly_their_true_partners(
    period_ms: int,
    jitter_ms: int,
    offsets: list[int],
    present: list[tuple[bool, bool]],
    lag: list[int],
) -> None:
    """Two streams of one period with small jitter, some messages missing, arrivals interleaved at random
    (each stream in order): every emitted pair is a true pair, and every true pair is emitted once the
    streams have moved on."""
    slop_ms = period_ms // 4
    a = [k * period_ms for k in range(30) if present[k][0]]
    b = [k * period_ms + max(-jitter_ms, min(jitter_ms, offsets[k])) for k in range(30) if present[k][1]]
    # arrival order: each message arrives `lag` slots late, streams stay in order
    events = sorted(
        [(t + lag[i % 60] * 10, 0, t) for i, t in enumerate(a)]
        + [(t + lag[(i + 30) % 60] * 10, 1, t) for i, t in enumerate(b)],
        key=lambda e: (e[0], e[1]),
    )
    events = _keep_streams_in_order(events)
    sync: ApproximateTimeSync[int] = ApproximateTimeSync(2, slop_s=slop_ms / 1000)
    pairs: list[tuple[int, ...]] = []
    for _, index, t in events:
        pairs += sync.add(index, t * MS, t)
    last = 30 * period_ms
    pairs += sync.add(0, (last + 10 * period_ms) * MS, -1) + sync.add(1, (last + 20 * period_ms) * MS, -1)
    true_pairs = {
        (k * period_ms, t) for t in b for k in range(30) if present[k][0] and abs(t - k * period_ms) <= jitter_ms
    }
    assert set(pairs) == true_pairs
    assert len(pairs) == len(true_pairs)
    assert all(abs(x - y) <= slop_ms for x, y in pairs)
    assert pairs == sorted(pairs)
    # every message (the two sentinels too) was paired, dropped or is still waiting: none lost, none used twice
    assert 2 * len(pairs) + sum(sync.dropped) + sync.pending(0) + sync.pending(1) == len(a) + len(b) + 2


def _keep_streams_in_order(events: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Reorder so that within each stream stamps arrive ascending (a stream's transport keeps its order)."""
    per_stream = {0: sorted(t for _, i, t in events if i == 0), 1: sorted(t for _, i, t in events if i == 1)}
    cursor = {0: 0, 1: 0}
    out = []
    for when, index, _ in events:
        out.append((when, index, per_stream[index][cursor[index]]))
        cursor[index] += 1
    return out
