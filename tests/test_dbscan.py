"""DBSCAN against scikit-learn: random clouds of many shapes (hypothesis) and the real scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN

from perception_ws.errors import CloudFormatError, PerceptionError
from perception_ws.instances import dbscan
from perception_ws.io import load
from perception_ws.kernels.dbscan import dbscan_grid, dbscan_reference
from perception_ws.labels import SEMANTIC_KITTI

GROUND_CLASSES = ("road", "parking", "sidewalk", "other-ground", "terrain")


def sklearn_dbscan(xyz: np.ndarray, eps: float, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    # the KD-tree sums squared coordinate differences like our kernel, so points at exactly eps agree
    fitted = DBSCAN(eps=eps, min_samples=min_samples, algorithm="kd_tree").fit(xyz)
    core = np.zeros(len(xyz), dtype=bool)
    core[fitted.core_sample_indices_] = True
    return fitted.labels_, core


def assert_same_dbscan(xyz: np.ndarray, eps: float, min_samples: int, labels: np.ndarray, core: np.ndarray) -> None:
    """Our (labels, core) is a valid DBSCAN result equal to scikit-learn's where DBSCAN is unique."""
    expected, expected_core = sklearn_dbscan(xyz, eps, min_samples)
    np.testing.assert_array_equal(core, expected_core)
    # clusters of core points: identical, even the numbering (lowest-index core point first)
    np.testing.assert_array_equal(labels[core], expected[core])
    # every other point: noise where scikit-learn says noise, else a cluster of a core point within eps
    np.testing.assert_array_equal(labels == -1, expected == -1)
    d2 = ((xyz[:, None, :] - xyz[None, core, :]) ** 2).sum(axis=2)
    for i in np.flatnonzero(~core & (labels >= 0)):
        assert labels[i] in set(labels[core][d2[i] <= eps * eps].tolist())


def check_all(xyz: np.ndarray, eps: float, min_samples: int) -> None:
    for kernel in (dbscan_grid, dbscan_reference):
        labels, core = kernel(np.asarray(xyz, dtype=np.float64), eps, min_samples)
        assert_same_dbscan(xyz, eps, min_samples, labels, core)
    public = dbscan(xyz, eps, min_samples)
    np.testing.assert_array_equal(public, dbscan_grid(np.asarray(xyz, dtype=np.float64), eps, min_samples)[0])


# -- random clouds ---------------------------------------------------------------------------------

eps_values = st.sampled_from([1e-9, 1e-3, 0.05, 0.3, 1.0, 3.0, 1e3])
min_samples_values = st.integers(min_value=1, max_value=25)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    seed=seeds, n=st.integers(1, 400), scale=st.sampled_from([0.1, 1.0, 10.0]), eps=eps_values, ms=min_samples_values
)
def test_uniform_clouds(seed: int, n: int, scale: float, eps: float, ms: int) -> None:
    xyz = np.random.default_rng(seed).uniform(-scale, scale, size=(n, 3))
    check_all(xyz, eps, ms)


@SETTINGS
@given(seed=seeds, blobs=st.integers(1, 6), n=st.integers(1, 300), eps=eps_values, ms=min_samples_values)
def test_gaussian_blobs(seed: int, blobs: int, n: int, eps: float, ms: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-5, 5, size=(blobs, 3))
    spread = rng.uniform(0.01, 1.0, size=(blobs, 1))
    which = rng.integers(0, blobs, size=n)
    xyz = centres[which] + rng.normal(size=(n, 3)) * spread[which]
    check_all(xyz, eps, ms)


@SETTINGS
@given(seed=seeds, distinct=st.integers(1, 30), n=st.integers(1, 300), eps=eps_values, ms=min_samples_values)
def test_duplicated_points(seed: int, distinct: int, n: int, eps: float, ms: int) -> None:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-1, 1, size=(distinct, 3))[rng.integers(0, distinct, size=n)]
    check_all(xyz, eps, ms)


@SETTINGS
@given(seed=seeds, n=st.integers(1, 300), step=st.sampled_from([0.1, 0.3, 0.29999, 1.0]), ms=min_samples_values)
def test_lines_at_exactly_eps(seed: int, n: int, step: float, ms: int) -> None:
    """Points along a line spaced by (about) eps: distances sit on the <= eps boundary."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    axis_aligned = np.eye(3)[rng.integers(0, 3)]
    for d in (direction, axis_aligned):
        xyz = np.arange(n)[:, None] * step * d + rng.uniform(-50, 50, size=3)
        check_all(xyz, 0.3, ms)


@SETTINGS
@given(seed=seeds, n=st.integers(1, 400), eps=eps_values, ms=min_samples_values)
def test_flat_2d_clouds(seed: int, n: int, eps: float, ms: int) -> None:
    rng = np.random.default_rng(seed)
    xyz = np.zeros((n, 3))
    xyz[:, :2] = rng.uniform(-3, 3, size=(n, 2))
    check_all(xyz, eps, ms)


@SETTINGS
@given(seed=seeds, n=st.integers(1, 200), ms=min_samples_values)
def test_integer_grid_at_eps_spacing(seed: int, n: int, ms: int) -> None:
    """Grid points with spacing exactly eps: many pairs at distance eps, sqrt(2) eps, sqrt(3) eps."""
    rng = np.random.default_rng(seed)
    xyz = rng.integers(-4, 5, size=(n, 3)).astype(np.float64) * 0.25
    check_all(xyz, 0.25, ms)


def test_min_samples_one_makes_every_point_core() -> None:
    xyz = np.random.default_rng(1).uniform(-10, 10, size=(500, 3))
    labels, core = dbscan_grid(xyz, 0.5, 1)
    assert core.all()
    assert (labels >= 0).all()
    check_all(xyz, 0.5, 1)


def test_huge_eps_is_one_cluster_and_tiny_eps_only_joins_duplicates() -> None:
    xyz = np.random.default_rng(2).uniform(-100, 100, size=(300, 3))
    xyz = np.vstack([xyz, xyz[:10]])  # 10 duplicated points
    assert (dbscan(xyz, 1e6, 5) == 0).all()
    tiny = dbscan(xyz, 1e-12, 2)
    assert (tiny[:10] >= 0).all()
    assert (tiny[10:300] == -1).all()
    np.testing.assert_array_equal(tiny[:10], tiny[300:])


def test_far_apart_coordinates_do_not_overflow_the_grid() -> None:
    """1e9 m apart with eps 1 mm: more cells than an int64 key could address, handled by bigger cells."""
    xyz = np.array([[0, 0, 0], [0, 0, 1e-4], [1e9, -1e9, 1e9], [1e9, -1e9, 1e9 + 1e-4]], dtype=np.float64)
    check_all(xyz, 1e-3, 2)


# -- input handling ----------------------------------------------------------------------------------


def test_empty_input_gives_empty_labels() -> None:
    labels = dbscan(np.zeros((0, 3), dtype=np.float32), 0.3, 20)
    assert labels.shape == (0,)


def test_float32_input_matches_float64() -> None:
    xyz = np.random.default_rng(3).normal(size=(2000, 3)).astype(np.float32)
    np.testing.assert_array_equal(dbscan(xyz, 0.2, 5), dbscan(xyz.astype(np.float64), 0.2, 5))


@pytest.mark.parametrize(
    ("xyz", "message"),
    [
        (np.zeros((4, 2)), r"shape \(4, 2\), expected \(N, 3\)"),
        (np.zeros(3), r"shape \(3,\), expected \(N, 3\)"),
        (np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]), r"1 point\(s\) have NaN or Inf .*row 1"),
        (np.array([[np.inf, 0.0, 0.0]]), r"NaN or Inf"),
        ([["a", "b", "c"]], r"cannot be read as an \(N, 3\) float array"),
    ],
)
def test_bad_clouds_raise_one_clear_error(xyz: object, message: str) -> None:
    with pytest.raises(CloudFormatError, match=message):
        dbscan(xyz, 0.3, 20)  # type: ignore[arg-type]


@pytest.mark.parametrize(("eps", "min_samples"), [(0.0, 5), (-1.0, 5), (float("nan"), 5), (0.3, 0), (0.3, 2.5)])
def test_bad_settings_raise_one_clear_error(eps: float, min_samples: int) -> None:
    with pytest.raises(PerceptionError, match=r"eps|min_samples"):
        dbscan(np.zeros((3, 3)), eps, min_samples)


# -- real scans ----------------------------------------------------------------------------------------


def non_ground_points(real_data: Path) -> np.ndarray:
    scan = load(real_data / "semantickitti" / "000000.bin")
    assert scan.semantic is not None
    ground = np.isin(scan.semantic, [SEMANTIC_KITTI.id_of(name) for name in GROUND_CLASSES])
    return scan.xyz[~ground]


@pytest.mark.real_data
def test_real_scan_non_ground_points_match_sklearn(real_data: Path) -> None:
    xyz = non_ground_points(real_data)
    assert len(xyz) == 41_313  # the input: every point not labelled as a ground class
    labels, core = dbscan_grid(xyz.astype(np.float64), 0.3, 20)
    # scikit-learn's defaults here (algorithm "auto"), as the thesis ran it
    fitted = DBSCAN(eps=0.3, min_samples=20).fit(xyz.astype(np.float64))
    expected_core = np.zeros(len(xyz), dtype=bool)
    expected_core[fitted.core_sample_indices_] = True
    np.testing.assert_array_equal(core, expected_core)
    np.testing.assert_array_equal(labels[core], fitted.labels_[core])
    np.testing.assert_array_equal(labels == -1, fitted.labels_ == -1)
    assert labels.max() + 1 == fitted.labels_.max() + 1 > 50


@pytest.mark.real_data
def test_real_kitti_object_frame_matches_reference(real_data: Path) -> None:
    scan = load(real_data / "kitti_object" / "velodyne" / "000002.bin")
    xyz = scan.xyz.astype(np.float64)
    xyz = xyz[np.abs(xyz[:, 1]) < xyz[:, 0]]  # the front 90 degrees, as SqueezeSeg and the thesis saw it
    labels, core = dbscan_grid(xyz, 0.3, 20)
    ref_labels, ref_core = dbscan_reference(xyz, 0.3, 20)
    assert len(xyz) > 30_000
    assert labels.max() + 1 > 5
    np.testing.assert_array_equal(core, ref_core)
    np.testing.assert_array_equal(labels[core], ref_labels[core])
    np.testing.assert_array_equal(labels == -1, ref_labels == -1)
