"""Feature-wise layers on sparse tensors (torchsparse's ``nn.BatchNorm`` and ``nn.ReLU``): they act on the
(N, C) feature rows and keep the coordinates and the cache.
"""

from __future__ import annotations

from torch import nn

from perception_ws.models.sparse.tensor import SparseTensor


class BatchNorm(nn.BatchNorm1d):
    """Batch norm over the occupied voxels (each voxel is one sample)."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.with_feats(super().forward(x.feats))


class ReLU(nn.ReLU):
    """ReLU on the occupied voxels' features."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.with_feats(super().forward(x.feats))
