"""Ground removal (LATTE planes): the real SemanticKITTI scan, synthetic slopes, plane fitting, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.errors import CloudFormatError, PerceptionError
from perception_ws.instances import GroundConfig, fit_plane, ground, ground_mask
from perception_ws.io import load
from perception_ws.kernels import ground_planes as kernels
from perception_ws.labels import SEMANTIC_KITTI

GROUND_CLASSES = ("road", "parking", "sidewalk", "other-ground", "terrain")


def precision_recall(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = int((predicted & truth).sum())
    return hits / int(predicted.sum()), hits / int(truth.sum())


@pytest.mark.real_data
def test_real_scan_ground_precision_and_recall(real_data: Path) -> None:
    scan = load(real_data / "semantickitti" / "000000.bin")
    assert scan.semantic is not None
    truth = np.isin(scan.semantic, [SEMANTIC_KITTI.id_of(name) for name in GROUND_CLASSES])
    predicted = ground_mask(scan.xyz)
    # every point counts (unlabelled ones as not ground): measured 0.9596 / 0.9768
    precision, recall = precision_recall(predicted, truth)
    assert precision >= 0.955, (precision, recall)
    assert recall >= 0.97, (precision, recall)
    # unlabelled points (no truth) left out: measured 0.9726 / 0.9768
    labelled = scan.semantic != 0
    precision, recall = precision_recall(predicted[labelled], truth[labelled])
    assert precision >= 0.97, (precision, recall)
    assert recall >= 0.97, (precision, recall)
    # the road itself is nearly all found; trunks, poles and signs are nearly never taken for ground
    road = scan.semantic == SEMANTIC_KITTI.id_of("road")
    assert predicted[road].mean() > 0.99
    upright = np.isin(scan.semantic, [SEMANTIC_KITTI.id_of(n) for n in ("trunk", "pole", "traffic-sign")])
    assert predicted[upright].mean() < 0.03


def test_sloped_and_stepped_ground_is_followed_and_objects_kept() -> None:
    rng = np.random.default_rng(0)
    # a road rising at 8 % along x, a kerb step of 15 cm beyond y = 6 m, and box-shaped objects
    xy = rng.uniform(-40, 40, size=(60_000, 2))
    z = -1.7 + 0.08 * np.maximum(xy[:, 0], 0) + np.where(xy[:, 1] > 6, 0.15, 0.0) + rng.normal(0, 0.02, len(xy))
    ground = np.column_stack([xy, z])
    objects = []
    for cx, cy in [(10.0, -3.0), (25.0, 2.0), (-15.0, -8.0), (-5.0, 12.0)]:
        base = -1.7 + 0.08 * max(cx, 0) + (0.15 if cy > 6 else 0.0)
        pts = rng.uniform([-2, -0.9, 0.3], [2, 0.9, 1.6], size=(800, 3)) + np.array([cx, cy, base])
        objects.append(pts)
    xyz = np.vstack([ground, *objects])
    mask = ground_mask(xyz)
    assert mask[: len(ground)].mean() > 0.99
    assert mask[len(ground) :].mean() < 0.01


def test_fit_plane_recovers_a_known_plane_with_upward_normal() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(-5, 5, size=(200, 2))
    normal = np.array([-0.1, 0.05, 1.0]) / np.linalg.norm([-0.1, 0.05, 1.0])
    offset = 2.0 * normal[2]  # the plane passes through (0, 0, 2)
    z = (offset - xy @ normal[:2]) / normal[2]
    fitted, d = fit_plane(np.column_stack([xy, z]))
    np.testing.assert_allclose(fitted, normal, atol=1e-9)
    assert d == pytest.approx(offset)
    flipped, d_flipped = fit_plane(np.column_stack([xy, z])[::-1])
    assert flipped[2] > 0
    assert d_flipped == pytest.approx(offset)


def test_a_steep_wall_segment_borrows_the_ground_plane_of_its_neighbour() -> None:
    rng = np.random.default_rng(2)
    near = np.column_stack([rng.uniform(2, 4.5, 3000), rng.uniform(-0.5, 0.5, 3000), np.full(3000, -1.7)])
    # only a wall in the next ring (5-10 m) of the same sector: its own "plane" would be vertical
    wall = np.column_stack([np.full(2000, 7.0), rng.uniform(-0.5, 0.5, 2000), rng.uniform(-1.0, 2.0, 2000)])
    mask = ground_mask(np.vstack([near, wall]))
    assert mask[:3000].all()
    assert not mask[3000:].any()


def test_plane_borrowing_equals_its_ring_by_ring_loop() -> None:
    rng = np.random.default_rng(5)
    patterns = [rng.random((10, 16)) < share for share in (0.0, 0.05, 0.3, 0.7, 1.0) for _ in range(40)]
    patterns.append(np.eye(10, 16, k=3, dtype=bool))  # one trusted ring per sector, at every depth
    for trusted in patterns:
        planes = (rng.normal(size=(10, 16, 3)), rng.normal(size=(10, 16)), trusted)
        fast, slow = (tuple(a.copy() for a in planes) for _ in range(2))
        ground._borrow_planes(*fast)
        ground._borrow_planes_reference(*slow)
        for a, b in zip(fast, slow, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(fast[2], np.broadcast_to(trusted.any(axis=0), trusted.shape))


def test_kernels_match_their_numpy_references() -> None:
    rng = np.random.default_rng(4)
    xyz = rng.normal(size=(20_000, 3)) * [20.0, 20.0, 1.0] + [60.0, -30.0, -1.7]
    segment = rng.integers(0, 50, len(xyz))
    segment[segment == 7] = 8  # an empty segment
    selected = rng.random(len(xyz)) < 0.6
    for fast, slow in zip(
        kernels.segment_moments(xyz, segment, selected, 50),
        kernels.segment_moments_reference(xyz, segment, selected, 50),
        strict=True,
    ):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10)
    normal = rng.normal(size=(50, 3))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    offset = rng.normal(size=50) * 20.0
    distances = kernels.plane_distances_reference(xyz, segment, normal, offset)
    np.testing.assert_array_equal(kernels.near_planes(xyz, segment, normal, offset, 5.0), np.abs(distances) < 5.0)
    assert 0 < int((np.abs(distances) < 5.0).sum()) < len(xyz)
    # the one-pass refit (sums about a point near each segment) equals the two-pass moments of the near points
    about = kernels.segment_moments_reference(xyz, segment, selected, 50)[1] + rng.normal(size=(50, 3))
    for fast, slow in zip(
        kernels.near_plane_moments(xyz, segment, normal, offset, 5.0, about),
        kernels.near_plane_moments_reference(xyz, segment, normal, offset, 5.0, about),
        strict=True,
    ):
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)
    for fraction in (0.01, 0.2, 1.0):
        np.testing.assert_allclose(
            kernels.lowest_mean(xyz[:, 2], segment, 50, fraction),
            kernels.lowest_mean_reference(xyz[:, 2], segment, 50, fraction),
        )
    # segments: points spread over every ring, some exactly on a ring edge or at the origin
    near = rng.uniform(-80.0, 80.0, size=(20_000, 3))
    near[:3] = [[5.0, 0.0, 0.0], [0.0, -30.0, 1.0], [0.0, 0.0, 0.0]]
    edges = np.array([0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 70.0])
    azimuth = np.arctan2(near[:, 1], near[:, 0])
    fast = kernels.polar_segments(near, azimuth, edges, 16)
    np.testing.assert_array_equal(fast, kernels.polar_segments_reference(near, azimuth, edges, 16))
    assert list(fast[:3] // 16) == [1, 6, 0]  # an edge starts its ring
    assert set(np.unique(fast // 16)) == set(range(10))


def test_tiny_and_empty_clouds() -> None:
    assert ground_mask(np.zeros((0, 3))).shape == (0,)
    flat = np.column_stack([np.arange(5.0), np.zeros(5), np.full(5, -1.7)])
    assert ground_mask(flat).all()


def test_bad_input_raises_one_clear_error() -> None:
    with pytest.raises(CloudFormatError, match="NaN or Inf"):
        ground_mask(np.array([[0.0, 0.0, np.nan]]))
    with pytest.raises(CloudFormatError, match=r"expected \(N, 3\)"):
        ground_mask(np.zeros((10, 4)))
    with pytest.raises(PerceptionError, match="at least 3 points"):
        fit_plane(np.zeros((2, 3)))
    with pytest.raises(PerceptionError, match="ring_edges_m"):
        GroundConfig(ring_edges_m=(0.0, 10.0, 5.0))
    with pytest.raises(PerceptionError, match="seed_fraction"):
        GroundConfig(seed_fraction=0.0)
