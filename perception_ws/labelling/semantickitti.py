"""Per-point labels as a SemanticKITTI ``.label`` file: one little-endian uint32 per point, in the scan's
point order, ``instance << 16 | semantic id``.

The semantic ids are SemanticKITTI's *raw* ids (the ones its ``.label`` files hold, before the benchmark's
learning map), so the files read like the benchmark's own:

* class set ``kitti3``: unknown -> 0 (unlabeled), car -> 10 (car), pedestrian -> 30 (person),
  cyclist -> 31 (bicyclist: KITTI's Cyclist is the rider with the bike, as SemanticKITTI's bicyclist);
* class set ``semantickitti``: each learning id -> the static raw id of its class (the benchmark's
  inverse learning map: car 10, bicycle 11, motorcycle 15, truck 18, other-vehicle 20, person 30, …).

The instance is the pipeline's (``k`` = its ``k``-th detection of the scan, 0 for none); read back by
:mod:`perception_ws.io.kitti` the labels map to the same class ids again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception_ws.errors import PerceptionError
from perception_ws.io.atomic import atomic_file
from perception_ws.labels import KITTI3, SEMANTIC_KITTI, ClassSet

#: raw SemanticKITTI semantic id of each class id, per class set.
RAW_IDS: dict[str, tuple[int, ...]] = {
    KITTI3.name: (0, 10, 30, 31),
    # the benchmark's inverse learning map, learning ids 0..19
    SEMANTIC_KITTI.name: (0, 10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81),
}
#: instances live in the high 16 bits.
MAX_INSTANCE = 0xFFFF


def encode_labels(labels: np.ndarray, instances: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """(N,) uint32 ``.label`` values of the pipeline's class ids and instance ids."""
    raw = np.asarray(RAW_IDS[class_set.name], dtype=np.uint32)
    instances = np.asarray(instances, dtype=np.uint32)
    if instances.size and int(instances.max()) > MAX_INSTANCE:
        raise PerceptionError(
            f"{int(instances.max())} instances in one scan; a .label file holds at most {MAX_INSTANCE}"
        )
    return (instances << np.uint32(16)) | raw[np.asarray(labels, dtype=np.intp)]


def write_label_file(path: Path, labels: np.ndarray, instances: np.ndarray, class_set: ClassSet) -> None:
    """Write the ``.label`` file of one scan, atomically."""
    values = encode_labels(labels, instances, class_set).astype("<u4")
    with atomic_file(path) as handle:
        handle.write(values.tobytes())
