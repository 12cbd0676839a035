"""The numba heading costs (kernels/box_headings.py) against the numpy reference in box_fit.py: the same
costs to ~1e-9 and the same chosen heading, on real clusters, ray-cast cars and random point sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from perception_ws.errors import PerceptionError
from perception_ws.instances.box_fit import (
    SEARCH_MAX_POINTS,
    Criterion,
    fit_box,
    fit_boxes,
    heading_costs,
    heading_costs_reference,
    heading_search,
)
from perception_ws.instances.synthetic import car_at, ray_hits
from perception_ws.io import open_dataset

CRITERIA: tuple[Criterion, ...] = ("variance", "closeness", "area")
THETAS = np.arange(90) * (np.pi / 2 / 90)  # the default search grid


def assert_same_costs(xy: np.ndarray, criterion: Criterion, maximize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    fast = heading_costs(xy, THETAS, criterion, maximize)
    reference = heading_costs_reference(xy, THETAS, criterion, maximize)
    # variance and area are in m^2: compare near-zero costs (points on a line) against the cluster's size
    spread = float(np.ptp(xy, axis=0).max()) if len(xy) else 0.0
    np.testing.assert_allclose(fast, reference, rtol=1e-9, atol=1e-12 * (1.0 + spread) ** 2)
    return fast, reference


def real_clusters(real_data: Path) -> list[np.ndarray]:
    """Top-view points inside each labelled box of the KITTI object frames (>= 10 points), as the search sees them."""
    clusters = []
    for scan in open_dataset(real_data / "kitti_object"):
        xyz = scan.xyz.astype(np.float64)
        for truth in scan.boxes:
            inside = xyz[truth.contains(xyz)]
            if len(inside) >= 10:
                clusters.append(inside[:, :2])
    return clusters


@pytest.mark.real_data
@pytest.mark.parametrize("criterion", CRITERIA)
def test_real_kitti_clusters_get_the_same_costs_and_heading(real_data: Path, criterion: Criterion) -> None:
    clusters = real_clusters(real_data)
    assert len(clusters) >= 5
    for xy in clusters:
        fast, reference = assert_same_costs(xy, criterion)
        assert np.argmin(fast) == np.argmin(reference)
        assert heading_search(xy, criterion=criterion) == heading_search(
            xy, criterion=criterion, costs=heading_costs_reference
        )


def test_ray_cast_cars_get_the_same_heading_with_either_sign_of_the_variance() -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        r, az, yaw = rng.uniform(5, 40), rng.uniform(-np.pi, np.pi), rng.uniform(-np.pi, np.pi)
        points = ray_hits(car_at(r * np.cos(az), r * np.sin(az), yaw), noise_m=0.02, rng=rng)
        if len(points) < 3:
            continue
        for maximize in (False, True):
            fast, reference = assert_same_costs(points[:, :2], "variance", maximize)
            assert np.argmin(fast) == np.argmin(reference)


def point_sets() -> st.SearchStrategy[np.ndarray]:
    """1-600 top-view points within 30 m of a centre up to 1 km away (far clusters test the centring)."""
    coordinate = st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False)
    return st.tuples(
        st.integers(1, 600).flatmap(lambda n: arrays(np.float64, (n, 2), elements=coordinate)),
        st.tuples(st.floats(-1000.0, 1000.0), st.floats(-1000.0, 1000.0)),
    ).map(lambda pair: pair[0] + np.array(pair[1]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xy=point_sets(), criterion=st.sampled_from(CRITERIA), maximize=st.booleans())
def test_random_point_sets_get_the_same_costs_and_an_equally_good_heading(
    xy: np.ndarray, criterion: Criterion, maximize: bool
) -> None:
    fast, reference = assert_same_costs(xy, criterion, maximize)
    # the same heading, or one the reference scores as good to rounding (symmetric sets have exact ties)
    chosen, best = int(np.argmin(fast)), int(np.argmin(reference))
    assert chosen == best or reference[chosen] <= reference[best] + 1e-9 * max(1.0, abs(reference[best]))


def test_degenerate_inputs_and_bad_criteria() -> None:
    one = np.array([[3.0, -4.0]])
    for criterion in CRITERIA:
        assert_same_costs(one, criterion)
    assert_same_costs(np.column_stack([np.linspace(0, 4, 20), np.linspace(0, 4, 20)]), "variance")
    assert len(heading_costs(np.zeros((0, 2)), THETAS)) == len(THETAS)
    with pytest.raises(PerceptionError, match="unknown heading criterion 'ransac'"):
        heading_costs(one, THETAS, "ransac")  # type: ignore[arg-type]


@pytest.mark.real_data
def test_all_objects_of_a_scan_in_one_call_get_the_boxes_fitted_one_by_one(real_data: Path) -> None:
    """fit_boxes (one kernel call for every object) against fit_box per object: the real KITTI objects of 3 frames,
    one of them larger than the search's point cap, plus a ray-cast car and a single point."""
    groups, clouds = [], []
    offset = 0
    for scan in open_dataset(real_data / "kitti_object"):
        xyz = scan.xyz.astype(np.float64)
        for truth in scan.boxes:
            inside = np.flatnonzero(truth.contains(xyz))
            if len(inside):
                groups.append(inside + offset)
        clouds.append(xyz)
        offset += len(xyz)
    car = ray_hits(car_at(8.0, 3.0, 0.4))
    clouds.append(car)
    groups.append(np.arange(offset, offset + len(car)))
    groups.append(np.array([offset]))
    xyz = np.concatenate(clouds)
    assert len(groups) >= 8
    assert max(len(g) for g in groups) > SEARCH_MAX_POINTS  # the subsampled search is covered
    for one, together in zip((fit_box(xyz[g]) for g in groups), fit_boxes(xyz, groups), strict=True):
        np.testing.assert_allclose(together.center, one.center, rtol=0, atol=1e-9)
        np.testing.assert_allclose(together.size, one.size, rtol=0, atol=1e-9)
        assert abs(together.yaw - one.yaw) < 1e-12
        assert together.num_points == one.num_points
    assert fit_boxes(xyz, []) == []
    with pytest.raises(PerceptionError, match="heading_steps must be >= 1"):
        fit_boxes(xyz, groups, heading_steps=0)
