"""Approximate-time pairing of several message streams by their stamps (ROS-free).

The policy of ROS' ``message_filters.ApproximateTimeSynchronizer``, written for this project (that
package is not installable from the pip wheels): one queue per input, and a set (one message per
input) is emitted when its stamps lie within ``slop`` of each other and no set with a closer match
can still form. Messages that can no longer be part of any set are dropped and counted.

The decision, repeated after every arrival while it makes progress:

* the **pivot** is the oldest message at the head of the queues (all other queued messages are newer);
* if some input can no longer offer the pivot a partner within ``slop`` (its oldest queued message, or
  the newest it ever received, already lies beyond pivot + slop; inputs are assumed to arrive in stamp
  order), the pivot is dropped;
* if another message of the pivot's own input is closer to the head of some other input than the
  pivot is, the pivot loses that partner to it (the closest match wins) and is dropped;
* if such a closer message could still arrive (the pivot's input has nothing newer yet), wait; a known
  lower bound on an input's period (``min_period_s``) rules that out early and cuts the wait;
* otherwise the heads of all queues form the set: emitted, removed.

A queue holds at most ``queue_size`` messages (the oldest is dropped beyond). A message older than
what its input already emitted or dropped (arriving late, or out of order) is dropped on arrival.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from perception_ws.errors import PerceptionError

T = TypeVar("T")


@dataclass(order=True)
class _Pending(Generic[T]):
    stamp_ns: int
    message: T = field(compare=False)


class ApproximateTimeSync(Generic[T]):
    """Pairs messages of ``inputs`` streams by stamp; feed with :meth:`add`, which returns the emitted sets.

    ``slop_s``: largest stamp difference within a set. ``min_period_s``: a lower bound of each input's
    time between messages (one value for all or one per input; 0: unknown), see the module doc.
    """

    def __init__(
        self,
        inputs: int,
        slop_s: float,
        queue_size: int = 10,
        min_period_s: float | Sequence[float] = 0.0,
    ) -> None:
        if inputs < 2:
            raise PerceptionError(f"approximate-time sync: inputs = {inputs}; expected at least 2 streams")
        if not (math.isfinite(slop_s) and slop_s >= 0):
            raise PerceptionError(f"approximate-time sync: slop_s = {slop_s}; expected a finite number >= 0")
        if queue_size < 1:
            raise PerceptionError(f"approximate-time sync: queue_size = {queue_size}; expected at least 1")
        periods = [min_period_s] * inputs if isinstance(min_period_s, int | float) else list(min_period_s)
        if len(periods) != inputs or not all(math.isfinite(p) and p >= 0 for p in periods):
            raise PerceptionError(
                f"approximate-time sync: min_period_s = {min_period_s!r}; expected one finite value >= 0, or one per "
                f"input ({inputs})"
            )
        self.inputs = inputs
        self.slop_ns = round(slop_s * 1e9)
        self.queue_size = queue_size
        self.min_period_ns = [round(p * 1e9) for p in periods]
        #: messages dropped per input (never part of an emitted set).
        self.dropped = [0] * inputs
        self.emitted = 0
        self._queues: list[list[_Pending[T]]] = [[] for _ in range(inputs)]
        self._newest: list[int | None] = [None] * inputs  # newest stamp ever received per input
        self._released: list[int | None] = [None] * inputs  # newest stamp emitted or dropped per input

    def add(self, index: int, stamp_ns: int, message: T) -> list[tuple[T, ...]]:
        """Queue ``message`` of input ``index`` stamped ``stamp_ns`` (integer nanoseconds); the sets it completes."""
        if not 0 <= index < self.inputs:
            raise PerceptionError(f"approximate-time sync: input index {index}; expected 0..{self.inputs - 1}")
        stamp_ns = int(stamp_ns)
        queue = self._queues[index]
        released = self._released[index]
        if (released is not None and stamp_ns <= released) or any(p.stamp_ns == stamp_ns for p in queue):
            self.dropped[index] += 1  # late, out of order behind a decision, or a duplicate stamp
            return []
        bisect.insort(queue, _Pending(stamp_ns, message))
        newest = self._newest[index]
        self._newest[index] = stamp_ns if newest is None else max(newest, stamp_ns)
        while len(queue) > self.queue_size:
            self._drop_head(index)
        emitted: list[tuple[T, ...]] = []
        while (step := self._step()) is not None:
            if step:
                emitted.append(step)
        return emitted

    def pending(self, index: int) -> int:
        """Messages of input ``index`` waiting for partners."""
        return len(self._queues[index])

    def reset(self) -> None:
        """Forget every queued message and the stamps seen (e.g. when a replay restarts); counters stay."""
        self._queues = [[] for _ in range(self.inputs)]
        self._newest = [None] * self.inputs
        self._released = [None] * self.inputs

    # -- the decision -------------------------------------------------------------------------

    def _step(self) -> tuple[T, ...] | tuple[()] | None:
        """One decision: the emitted set, ``()`` after dropping the pivot, None when nothing can be decided yet."""
        heads = [queue[0].stamp_ns if queue else None for queue in self._queues]
        known = [(stamp, i) for i, stamp in enumerate(heads) if stamp is not None]
        if not known:
            return None
        pivot, i = min(known)
        reach = pivot + self.slop_ns
        for j in range(self.inputs):
            newest = self._newest[j]
            head = heads[j]
            if j != i and (
                (head is not None and head > reach) or (head is None and newest is not None and newest >= reach)
            ):
                self._drop_head(i)  # input j has moved past the pivot's window: no partner will come
                return ()
        if any(stamp is None for stamp in heads):
            return None  # some input has nothing queued yet and may still send a partner
        waiting = False
        own = self._queues[i]
        for j, head in enumerate(heads):
            if j == i or head is None:
                continue
            gap = head - pivot  # >= 0: the pivot is the oldest head
            if len(own) > 1:
                if abs(own[1].stamp_ns - head) < gap:
                    self._drop_head(i)  # a newer message of the pivot's input matches head j more closely
                    return ()
            elif self.min_period_ns[i] < 2 * gap:
                waiting = True  # a newer message of input i could still land closer to head j
        if waiting:
            return None
        members = tuple(self._pop_head(j) for j in range(self.inputs))
        self.emitted += 1
        return members

    def _pop_head(self, index: int) -> T:
        head = self._queues[index].pop(0)
        self._released[index] = head.stamp_ns
        return head.message

    def _drop_head(self, index: int) -> None:
        self._pop_head(index)
        self.dropped[index] += 1
