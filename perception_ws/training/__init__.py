"""Training the range-image segmenters (``perception train``): samples, augmentation, the loop, checkpoints.

Every training sample is addressed by an integer index (scene, frame and crop follow from it, and so do
its augmentation draws), so a run is the same whatever the number of data workers, and resuming after a
kill continues with exactly the batches the uninterrupted run would have seen. See docs/training.md.

The names below are imported on first use, so a scene-generating worker process that imports
:mod:`perception_ws.training.scenes` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perception_ws.training.config import TrainConfig
    from perception_ws.training.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name == "TrainConfig":
        from perception_ws.training.config import TrainConfig

        return TrainConfig
    if name in ("TrainResult", "train"):
        from perception_ws.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'perception_ws.training' has no attribute {name!r}")
