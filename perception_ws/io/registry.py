"""The reader registry: one `open_dataset(path)` that picks a reader from what the path is.

A reader module registers itself with :func:`register`, giving a name, a predicate that says
whether it understands a path, and an opener returning a :class:`Dataset`. Readers are tried in
priority order (higher first) so that a specific layout (a KITTI object folder) wins over a generic
one (a folder of .bin files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, overload

from perception_ws.errors import DatasetError
from perception_ws.scan import Scan


class Dataset(Protocol):
    """A sequence of scans read lazily from one source (a file, a folder, a bag)."""

    path: Path
    #: human-readable remarks, e.g. topics of a bag that were skipped and why.
    notes: list[str]

    def __len__(self) -> int: ...

    @overload
    def __getitem__(self, index: int) -> Scan: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Scan]: ...

    def __iter__(self) -> Iterator[Scan]: ...


@dataclass
class ListDataset(Sequence[Scan]):
    """A dataset whose scans are produced by per-index loader callables (lazy, cheap to open)."""

    path: Path
    loaders: list[Callable[[], Scan]]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.loaders)

    @overload
    def __getitem__(self, index: int) -> Scan: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Scan]: ...

    def __getitem__(self, index: int | slice) -> Scan | Sequence[Scan]:
        if isinstance(index, slice):
            return [loader() for loader in self.loaders[index]]
        return self.loaders[index]()

    def __iter__(self) -> Iterator[Scan]:
        for loader in self.loaders:
            yield loader()


@dataclass(frozen=True)
class Reader:
    """A registered format: its name, what it reads, the test that recognises a path, and its opener."""

    name: str
    description: str
    accepts: Callable[[Path], bool]
    open: Callable[[Path], Dataset]
    priority: int = 0


_READERS: list[Reader] = []


def register(
    name: str, description: str, accepts: Callable[[Path], bool], priority: int = 0
) -> Callable[[Callable[[Path], Dataset]], Callable[[Path], Dataset]]:
    """Decorator: register ``opener`` as the reader ``name`` for paths ``accepts`` says yes to."""

    def decorate(opener: Callable[[Path], Dataset]) -> Callable[[Path], Dataset]:
        _READERS.append(Reader(name, description, accepts, opener, priority))
        _READERS.sort(key=lambda r: -r.priority)
        return opener

    return decorate


def readers() -> list[Reader]:
    """The registered readers, highest priority first."""
    return list(_READERS)


def find_reader(path: Path) -> Reader:
    """The first reader, highest priority first, that accepts ``path``; a DatasetError lists the known ones."""
    for reader in _READERS:
        if reader.accepts(path):
            return reader
    known = "; ".join(f"{r.name} ({r.description})" for r in _READERS)
    raise DatasetError(f"{path}: no reader understands this path. Known formats: {known}")


def open_dataset(path: str | Path) -> Dataset:
    """Open any supported file, folder or bag as a lazy sequence of scans."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    return find_reader(p).open(p)


def load(path: str | Path) -> Scan:
    """Read a single-frame file (or a source holding exactly one frame) as one :class:`Scan`."""
    dataset = open_dataset(path)
    if len(dataset) == 1:
        return dataset[0]
    if len(dataset) == 0:
        why = "; ".join(dataset.notes) if dataset.notes else "it is empty"
        raise DatasetError(f"{path}: holds no point clouds ({why})")
    raise DatasetError(f"{path}: holds {len(dataset)} frames; use perception_ws.io.open_dataset() to iterate them")
