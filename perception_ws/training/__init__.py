"""Training the range-image segmenters (``perception train``): samples, augmentation, the loop, checkpoints.

Every training sample is addressed by an integer index (scene, frame and crop follow from it, and so do
its augmentation draws), so a run is the same whatever the number of data workers, and resuming after a
kill continues with exactly the batches the uninterrupted run would have seen. See docs/training.md.
"""

from perception_ws.training.config import TrainConfig
from perception_ws.training.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
