"""Where a forward pass would make a GPU wait for the host, found on any device (CI and this machine have none).

A CUDA op whose result the host must read (a scalar, or an output whose size depends on the data) blocks
until the GPU's queue drains, so each one costs a pipeline stall. ``HostSyncs`` records, while its block runs,
every op of that sort as torch dispatches it, with the line of this project that asked for it:

* scalar reads (``int()``, ``bool()``, ``.item()``: ``aten._local_scalar_dense``) and ``.tolist()``;
* data-dependent sizes: ``nonzero``, ``unique``, ``masked_select``, boolean-mask indexing, ``bincount``
  (it sizes its output by the input's max on a GPU), ``repeat_interleave`` without ``output_size``;
* host data made into a tensor (``torch.tensor(list)``: a host-to-device copy there).

``nonzero_static`` (size given) is not one. The list is what torch 2.x does on CUDA; an op that syncs only
inside a kernel library (e.g. a cuDNN heuristic) is not seen, so read the count as a floor.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
#: ops that read device data on the host whatever their arguments
_SYNCING = {
    _aten._local_scalar_dense,
    _aten.nonzero,
    _aten._unique2,
    _aten.unique_dim,
    _aten.unique_consecutive,
    _aten.masked_select,
    _aten.bincount,
    _aten.lift_fresh,
}
_PACKAGE = "/perception_ws/"
_HERE = str(Path(__file__).resolve())


def _site() -> str:
    """``file:line function`` of the innermost frame in a ``perception_ws`` package outside this module."""
    for frame in reversed(traceback.extract_stack()):
        if _PACKAGE in frame.filename and frame.filename != _HERE:
            return f"{frame.filename.rsplit(_PACKAGE, 1)[1]}:{frame.lineno} {frame.name}"
    return "outside perception_ws"


def _syncs(func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    packet = func.overloadpacket
    if packet in _SYNCING:
        return True
    if packet is _aten.index:  # x[mask]: the mask's true count sizes the output
        indices: Iterable[Any] = args[1] if len(args) > 1 else ()
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)
    if packet is _aten.repeat_interleave:
        return kwargs.get("output_size") is None and isinstance(args[1] if len(args) > 1 else None, torch.Tensor)
    return False


class _Dispatch(TorchDispatchMode):  # type: ignore[no-untyped-call]  # torch's mode classes are untyped
    def __init__(self, record: Callable[[str], None]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.record = record

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if _syncs(func, args, kwargs):
            self.record(str(func.overloadpacket).removeprefix("aten."))
        return func(*args, **kwargs)


class _Function(TorchFunctionMode):
    """``.tolist()`` never reaches the dispatcher on a CPU tensor: caught here instead."""

    def __init__(self, record: Callable[[str], None]) -> None:
        super().__init__()
        self.record = record

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None
    ) -> Any:
        if func is torch.Tensor.tolist:
            self.record("tolist")
        return func(*args, **(kwargs or {}))


class HostSyncs:
    """``with HostSyncs() as syncs: model(x)``, then ``syncs.total`` and ``syncs.sites`` (site -> count)."""

    def __init__(self) -> None:
        self.sites: Counter[str] = Counter()
        self._modes = (_Function(self._record), _Dispatch(self._record))

    def _record(self, op: str) -> None:
        self.sites[f"{op} at {_site()}"] += 1

    @property
    def total(self) -> int:
        return sum(self.sites.values())

    def __enter__(self) -> HostSyncs:
        for mode in self._modes:
            mode.__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(kind, error, trace)  # type: ignore[no-untyped-call]

    def table(self) -> str:
        """One line per site, most frequent first."""
        return "\n".join(f"{count:4d}  {site}" for site, count in self.sites.most_common())
