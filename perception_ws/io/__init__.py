"""Datasets and file formats. `load(path)` reads one frame; `open_dataset(path)` any source.

Importing this package registers every reader: each reader module registers itself on import.
"""

from perception_ws.io import (  # noqa: F401  (imported for their registrations)
    bag,
    kitti,
    pcd,
    ply,
    simdata,
    squeezeseg,
)
from perception_ws.io.registry import Dataset, ListDataset, load, open_dataset, readers, register

__all__ = ["Dataset", "ListDataset", "load", "open_dataset", "readers", "register"]
