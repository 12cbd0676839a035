"""Point-voxel segmentation networks on the sparse engine: SPVCNN, MinkUNet and the SPVNAS super-network.

docs/models.md ("SPVCNN and SPVNAS") lists the calls; docs/algorithms.md §9 says what they compute.
"""

from perception_ws.models.spvnas.network import PointVoxelUNet, build_minkunet, build_spvcnn, make_points
from perception_ws.models.spvnas.supernet import (
    SPVNAS,
    SearchSpace,
    SubnetConfig,
    largest_subnet,
    sample_subnet,
    smallest_subnet,
)

__all__ = [
    "SPVNAS",
    "PointVoxelUNet",
    "SearchSpace",
    "SubnetConfig",
    "build_minkunet",
    "build_spvcnn",
    "largest_subnet",
    "make_points",
    "sample_subnet",
    "smallest_subnet",
]
