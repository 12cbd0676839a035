"""A sub-network of the SPVNAS super-network as a standalone network: its weights sliced out, nothing shared.

Every elastic layer runs on the leading slice of its tensors (first inputs, first outputs, first norm channels;
the 1-kernel is the centre row of the kept 27, as in the super-network), so the standalone network is an SPVNAS whose
largest widths are the sub-network's, fixed to that sub-network, holding the leading slice of every tensor: it
computes what the super-network computes with that sub-network active (tests/test_spvnas_search.py checks it).
"""

from __future__ import annotations

from perception_ws.errors import PerceptionError
from perception_ws.models.spvnas.point_model import PointVoxelSegmenter
from perception_ws.models.spvnas.supernet import SearchSpace, SubnetConfig


def standalone_subnet(supernet: PointVoxelSegmenter, subnet: SubnetConfig) -> PointVoxelSegmenter:
    """A new network computing ``supernet``'s ``subnet`` (its current weights and norm statistics)."""
    if supernet.space is None:
        raise PerceptionError(f"{supernet.name} is no super-network: only spvnas has sub-networks to export")
    space = SearchSpace(
        max_widths=subnet.widths,
        max_depth=max(subnet.depths),
        width_ratios=(1.0,),
        kernel_choices=supernet.space.kernel_choices,
    )
    small = PointVoxelSegmenter(
        supernet.name,
        supernet.num_classes,
        voxel_size=supernet.voxel_size,
        width_ratio=supernet.width_ratio,
        zero_intensity=supernet.zero_intensity,
        space=space,
        subnet=subnet,
    )
    big = supernet.state_dict()
    sliced = {}
    for key, target in small.state_dict().items():
        source = big[key]
        sliced[key] = source[tuple(slice(0, n) for n in target.shape)].clone() if target.dim() else source.clone()
    small.load_state_dict(sliced)
    return small.eval()
