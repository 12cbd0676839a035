"""Sparse tensors and sparse 3D convolution in pure torch (CPU and GPU), with torchsparse's interface.

docs/models.md ("Sparse engine") lists the calls; docs/algorithms.md §9 says what they compute.
"""

from perception_ws.models.sparse.conv import Conv3d, apply_kernel_map, sparse_conv3d
from perception_ws.models.sparse.engine import Engine, SparseSettings, load_engine
from perception_ws.models.sparse.layers import BatchNorm, ReLU
from perception_ws.models.sparse.point_voxel import initial_voxelize, point_to_voxel, voxel_to_point
from perception_ws.models.sparse.tensor import PointTensor, SparseCache, SparseTensor

__all__ = [
    "BatchNorm",
    "Conv3d",
    "Engine",
    "PointTensor",
    "ReLU",
    "SparseCache",
    "SparseSettings",
    "SparseTensor",
    "apply_kernel_map",
    "initial_voxelize",
    "load_engine",
    "point_to_voxel",
    "sparse_conv3d",
    "voxel_to_point",
]
