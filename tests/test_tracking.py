"""Tracking: Kalman models, the CLEAR MOT metrics on a hand-worked case, and the tracker on
synthetic traffic (crossing objects, occlusion gaps, births and deaths, noise, clutter)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from perception_ws.boxes import Box3D
from perception_ws.errors import PerceptionError
from perception_ws.instances import Tracker, TrackerConfig, clear_mot
from perception_ws.instances.association import assign, determinants, mahalanobis2
from perception_ws.instances.motion_models import (
    measurement_noise,
    measurement_noises,
    new_filter,
    observation,
    process_noise,
    transition,
)

DT = 0.1


# -- models ------------------------------------------------------------------------------------------


def test_constant_acceleration_transition_is_the_thesis_matrix() -> None:
    dt = 0.1
    expected = np.array(
        [
            [1, 0, dt, 0, dt**2 / 2, 0],
            [0, 1, 0, dt, 0, dt**2 / 2],
            [0, 0, 1, 0, dt, 0],
            [0, 0, 0, 1, 0, dt],
            [0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ]
    )
    np.testing.assert_allclose(transition(TrackerConfig(motion_model="ca"), dt), expected)
    np.testing.assert_allclose(transition(TrackerConfig(motion_model="cv"), dt), expected[:4, :4])
    q = process_noise(TrackerConfig(), dt)
    assert np.count_nonzero(q - np.diag(np.diag(q))) == 0
    assert (np.diag(q) > 0).all()


def test_measurement_noise_is_wider_across_the_ray_far_away() -> None:
    config = TrackerConfig(min_position_std_m=0.0, range_resolution_m=0.02, azimuth_resolution_rad=0.01)
    r = measurement_noise(np.array([0.0, 50.0]), config)  # straight left of the sensor
    np.testing.assert_allclose(r, np.diag([0.5**2, 0.02**2]), atol=1e-12)
    # diagonal at 45 degrees: the rotated diag(along^2, across^2); at the sensor itself: isotropic along^2
    seen_from = (10.0, 0.0)
    r = measurement_noise(np.array([40.0, 30.0]), config, seen_from)
    rot = np.array([[1.0, -1.0], [1.0, 1.0]]) / np.sqrt(2.0)
    np.testing.assert_allclose(r, rot @ np.diag([0.02**2, (np.hypot(30, 30) * 0.01) ** 2]) @ rot.T, atol=1e-12)
    np.testing.assert_allclose(measurement_noise(np.array([10.0, 0.0]), config, seen_from), np.eye(2) * 0.02**2)
    # a scan's detections at once: each as on its own
    centres = np.array([[0.0, 50.0], [40.0, 30.0], [10.0, 0.0], [-5.0, 3.0]])
    together = measurement_noises(centres, config, seen_from)
    for centre, noise in zip(centres, together, strict=True):
        np.testing.assert_allclose(noise, measurement_noise(centre, config, seen_from), atol=1e-15)


@pytest.mark.parametrize("model", ["ca", "cv"])
def test_the_centre_filter_gives_the_numbers_of_filterpys_general_filter(model: str) -> None:
    """The tracker's own filter (H = [I 0] written out) against filterpy's KalmanFilter, the general textbook
    filter it replaced, over 200 steps of irregular scan intervals, misses and detections at every distance."""
    from filterpy.kalman import KalmanFilter

    config = TrackerConfig(motion_model="ca" if model == "ca" else "cv")
    rng = np.random.default_rng(7)
    sensor = (3.0, -2.0)
    start = np.array([12.0, 5.0, 0.5])
    ours = new_filter(start, config, sensor)
    general = KalmanFilter(dim_x=len(ours.x), dim_z=2)
    general.x, general.P, general.H = ours.x.copy(), ours.P.copy(), observation(config)
    position = start[:2].copy()
    for step in range(200):
        dt = float(rng.uniform(0.05, 0.3))
        position += np.array([8.0, -3.0]) * dt
        for kf in (ours, general):
            kf.F, kf.Q = transition(config, dt), process_noise(config, dt)
            kf.predict()
        if step % 7 != 3:  # every seventh scan the object is missed: predict only
            z = position + rng.normal(0.0, 0.2, 2)
            noise = measurement_noise(np.array([*z, 0.0]), config, sensor)
            ours.update(z, noise)
            general.update(z, R=noise)
        np.testing.assert_allclose(ours.x, general.x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ours.P, general.P, rtol=1e-9, atol=1e-12)
    assert abs(float(ours.x[2, 0]) - 8.0) < 1.0  # and it learnt the speed


def test_closed_form_distances_equal_numpys_solve_and_det() -> None:
    rng = np.random.default_rng(3)
    half = rng.normal(size=(40, 30, 2, 2))
    covariances = half @ np.swapaxes(half, -1, -2) + 0.01 * np.eye(2)  # symmetric positive definite, some near-flat
    covariances[0, 0] = [[4.0, 1.0], [0.5, 2.0]]  # not symmetric: the general 2 x 2 inverse
    innovations = rng.normal(size=(40, 30, 2)) * 3.0
    solved = np.linalg.solve(covariances, innovations[..., None])[..., 0]
    np.testing.assert_allclose(
        mahalanobis2(innovations, covariances), np.einsum("...i,...i->...", innovations, solved), rtol=1e-9
    )
    np.testing.assert_allclose(determinants(covariances), np.linalg.det(covariances), rtol=1e-9, atol=1e-12)


def test_assignment_respects_the_gate() -> None:
    cost = np.array([[1.0, 2.0], [0.5, 100.0]])
    allowed = np.array([[True, True], [True, False]])
    matches, rows, cols = assign(cost, allowed)
    assert sorted(matches) == [(0, 1), (1, 0)]
    assert rows == []
    assert cols == []
    matches, rows, cols = assign(cost, np.array([[False, False], [True, False]]))
    assert matches == [(1, 0)]
    assert rows == [0]
    assert cols == [1]


# -- CLEAR MOT ------------------------------------------------------------------------------------------


def test_clear_mot_on_a_hand_worked_sequence() -> None:
    gt = [
        {1: (0, 0), 2: (10, 0)},
        {1: (1, 0), 2: (9, 0)},
        {1: (2, 0), 2: (8, 0)},  # the two hypotheses swap objects: 2 identity switches
        {1: (3, 0)},  # object 1 is missed
    ]
    hyp: list[dict[str, tuple[float, float]]] = [
        {"a": (0.1, 0), "b": (10, 0.2)},
        {"a": (1, 0), "b": (9.5, 0), "c": (50, 50)},  # c is a false positive
        {"b": (2, 0.1), "a": (8, 0)},
        {},
    ]
    result = clear_mot(gt, hyp, threshold_m=1.0)
    assert (result.objects, result.matches, result.misses) == (7, 6, 1)
    assert (result.false_positives, result.id_switches) == (1, 2)
    assert result.mota == pytest.approx(1 - (1 + 1 + 2) / 7)
    assert result.motp == pytest.approx((0.1 + 0.2 + 0.0 + 0.5 + 0.1 + 0.0) / 6)


def test_clear_mot_keeps_a_valid_correspondence_over_a_closer_newcomer() -> None:
    gt = [{1: (0, 0)}, {1: (0, 0)}]
    hyp = [{"a": (0.2, 0)}, {"a": (0.9, 0), "b": (0.1, 0)}]
    result = clear_mot(gt, hyp, threshold_m=1.0)
    assert (result.id_switches, result.false_positives, result.matches) == (0, 1, 2)


def test_clear_mot_counts_a_switch_after_a_gap() -> None:
    gt = [{1: (0, 0)}, {}, {1: (0, 0)}]
    hyp = [{"a": (0, 0)}, {}, {"b": (0, 0)}]
    assert clear_mot(gt, hyp, 1.0).id_switches == 1


# -- synthetic traffic ----------------------------------------------------------------------------------


@dataclass
class Mover:
    start: int
    end: int
    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray = field(default_factory=lambda: np.zeros(2))
    name: str = "car"
    #: frames in which the object is hidden (no detection)
    hidden: range = range(0)

    def state(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        t = (frame - self.start) * DT
        return (
            self.position + self.velocity * t + 0.5 * self.acceleration * t * t,
            self.velocity + self.acceleration * t,
        )


SIZES = {"car": (4.2, 1.8, 1.5), "pedestrian": (0.6, 0.6, 1.7)}
LABELS = {"car": 1, "pedestrian": 2}


def traffic() -> list[Mover]:
    return [
        Mover(0, 80, np.array([0.0, -12.0]), np.array([0.0, 8.0]), hidden=range(40, 44)),  # crosses the next
        Mover(0, 80, np.array([-12.0, 0.0]), np.array([8.0, 0.0])),
        Mover(10, 60, np.array([25.0, 5.0]), np.array([-6.0, 0.0]), np.array([0.8, 0.3])),  # brakes, drifts
        Mover(30, 80, np.array([6.0, 22.0]), np.array([0.0, -4.0])),  # born late
        Mover(0, 40, np.array([15.0, -15.0]), np.array([2.0, 2.0])),  # dies early
        Mover(0, 80, np.array([-3.0, 8.0]), np.array([1.2, 0.2]), name="pedestrian"),
    ]


def detections(
    movers: list[Mover], frames: int, noise_m: float, p_miss: float, clutter: float, seed: int
) -> tuple[list[dict[int, np.ndarray]], list[dict[int, np.ndarray]], list[list[Box3D]]]:
    """Per frame: true positions and velocities by object, and the noisy detections."""
    rng = np.random.default_rng(seed)
    truth, velocities, dets = [], [], []
    for f in range(frames):
        here = {k: m.state(f) for k, m in enumerate(movers) if m.start <= f < m.end}
        truth.append({k: s[0] for k, s in here.items()})
        velocities.append({k: s[1] for k, s in here.items()})
        frame = []
        for k, (pos, vel) in here.items():
            m = movers[k]
            if f in m.hidden or rng.random() < p_miss:
                continue
            xy = pos + rng.normal(0, noise_m, 2)
            # a box's yaw is only known modulo pi: report it in [-pi/2, pi/2)
            yaw = (np.arctan2(vel[1], vel[0]) + rng.normal(0, 0.05) + np.pi / 2) % np.pi - np.pi / 2
            size = np.array(SIZES[m.name]) * rng.uniform(0.8, 1.05, 3)  # partial views look smaller
            frame.append(Box3D(np.array([*xy, -1.0]), size, yaw, label=LABELS[m.name], name=m.name))
        for _ in range(rng.poisson(clutter)):
            xy = rng.uniform(-30, 30, 2)
            frame.append(Box3D(np.array([*xy, -1.0]), np.ones(3), 0.0, label=1, name="car"))
        dets.append(frame)
    return truth, velocities, dets


def run_tracker(
    config: TrackerConfig, dets: list[list[Box3D]]
) -> tuple[list[dict[int, np.ndarray]], list[list[Box3D]]]:
    tracker = Tracker(config)
    positions, outputs = [], []
    for f, frame in enumerate(dets):
        out = tracker.update(frame, f * DT)
        outputs.append(out)
        positions.append({b.track_id: b.center[:2] for b in out})
    return positions, outputs


def velocity_errors(
    truth: list[dict[int, np.ndarray]], velocities: list[dict[int, np.ndarray]], outputs: list[list[Box3D]]
) -> np.ndarray:
    """|v_estimated - v_true| for every reported box within 1 m of an object, after 1 s of tracking."""
    errors = []
    for f, out in enumerate(outputs):
        if f < 10:
            continue
        for b in out:
            near = [k for k, p in truth[f].items() if np.linalg.norm(p - b.center[:2]) < 1.0]
            if near:
                errors.append(np.linalg.norm(velocities[f][near[0]] - b.velocity[:2]))
    return np.array(errors)


@pytest.mark.parametrize(
    ("model", "min_mota", "max_median_velocity_error"),
    [("ca", 0.92, 0.55), ("cv", 0.92, 0.35)],  # measured: MOTA 0.937 / 0.937, median |dv| 0.45 / 0.28 m/s
)
def test_synthetic_traffic(model: str, min_mota: float, max_median_velocity_error: float) -> None:
    movers = traffic()
    truth, velocities, dets = detections(movers, 80, noise_m=0.15, p_miss=0.05, clutter=0.3, seed=1)
    config = TrackerConfig(motion_model=model, report_lost=True)  # type: ignore[arg-type]
    positions, outputs = run_tracker(config, dets)
    result = clear_mot(truth, positions, threshold_m=2.0)
    assert result.id_switches == 0
    assert result.mota >= min_mota, result
    # clutter is never confirmed; the two objects that leave coast for max_misses scans each
    assert result.false_positives <= 2 * config.max_misses
    assert np.median(velocity_errors(truth, velocities, outputs)) <= max_median_velocity_error
    # one id per object through the crossing, the occlusion gap and the missed detections (no switch
    # above), and no id for clutter: as many ids as objects
    assert len({b.track_id for out in outputs for b in out}) == len(movers)


def test_noise_free_constant_velocity_is_learnt_exactly() -> None:
    mover = Mover(0, 40, np.array([5.0, 5.0]), np.array([3.0, -1.0]))
    _, _, dets = detections([mover], 40, noise_m=0.0, p_miss=0.0, clutter=0.0, seed=0)
    for model in ("ca", "cv"):
        _, outputs = run_tracker(TrackerConfig(motion_model=model), dets)
        np.testing.assert_allclose(outputs[-1][0].velocity[:2], [3.0, -1.0], atol=0.05)
        np.testing.assert_allclose(outputs[-1][0].center[:2], mover.state(39)[0], atol=0.02)


def test_life_cycle_tentative_confirmed_lost_dropped() -> None:
    config = TrackerConfig(confirm_hits=3, max_misses=2)
    tracker = Tracker(config)
    car = Box3D(np.array([10.0, 0.0, -1.0]), np.array([4.0, 1.8, 1.5]), 0.0, label=1, name="car")
    assert tracker.update([car], 0.0) == []  # tentative
    assert tracker.update([car], 0.1) == []
    confirmed = tracker.update([car], 0.2)
    assert [b.track_id for b in confirmed] == [1]
    assert tracker.update([], 0.3) == []
    assert tracker.tracks[0].state.value == "lost"
    assert tracker.update([], 0.4) == []
    assert len(tracker.tracks) == 1
    assert [b.track_id for b in tracker.update([car], 0.5)] == [1]  # found again: same id
    for t in (0.6, 0.7, 0.8):
        tracker.update([], t)
    assert tracker.tracks == []  # more than max_misses in a row: dropped
    tracker.update([car], 0.9)
    assert tracker.tracks[0].id == 2  # ids are never reused
    # a tentative track dies at its first miss
    tracker.update([], 1.0)
    assert tracker.tracks == []


def test_rigid_objects_keep_their_size_and_people_do_not() -> None:
    tracker = Tracker(TrackerConfig(confirm_hits=3))
    sizes = [4.0, 4.4, 4.2, 3.0, 2.5, 4.6]
    reported_car: list[np.ndarray] = []
    reported_person: list[np.ndarray] = []
    for f, length in enumerate(sizes):
        car = Box3D(np.array([10.0 + f * 0.5, 0.0, -1.0]), np.array([length, 1.8, 1.5]), 0.0, label=1, name="car")
        person = Box3D(np.array([0.0, 8.0, -1.0]), np.array([0.5, 0.4, length / 2.5]), 0.0, label=2, name="pedestrian")
        for b in tracker.update([car, person], f * DT):
            (reported_car if b.name == "car" else reported_person).append(b.size.copy())
    # the car's size is settled at confirmation (median of its first 3 detections) and kept
    for size in reported_car:
        np.testing.assert_allclose(size, [4.2, 1.8, 1.5])
    np.testing.assert_allclose([s[2] for s in reported_person], np.array(sizes[2:]) / 2.5)


def test_yaw_follows_the_motion_through_the_modulo_pi_ambiguity() -> None:
    tracker = Tracker(TrackerConfig(confirm_hits=1))
    heading = np.radians(170.0)  # moving left and slightly up: the box yaw (mod pi) is -10 degrees
    for f in range(20):
        centre = np.array([20.0, 0.0]) + f * DT * 5.0 * np.array([np.cos(heading), np.sin(heading)])
        det = Box3D(np.array([*centre, -1.0]), np.array([4.2, 1.8, 1.5]), np.radians(-10.0), label=1, name="car")
        out = tracker.update([det], f * DT)
    assert abs(np.degrees(out[0].yaw) - 170.0) < 1e-6


def test_gates_keep_far_and_other_class_detections_apart() -> None:
    tracker = Tracker(TrackerConfig(confirm_hits=1))
    car = Box3D(np.array([10.0, 0.0, -1.0]), np.array([4.0, 1.8, 1.5]), 0.0, label=1, name="car")
    tracker.update([car], 0.0)
    jumped = Box3D(np.array([18.0, 0.0, -1.0]), np.array([4.0, 1.8, 1.5]), 0.0, label=1, name="car")
    person = Box3D(np.array([10.1, 0.0, -1.0]), np.array([0.5, 0.5, 1.7]), 0.0, label=2, name="pedestrian")
    out = tracker.update([jumped, person], 0.1)
    assert sorted(b.track_id for b in out) == [2, 3]  # neither updates track 1
    assert tracker.tracks[0].state.value == "lost"


def test_bad_input_raises_one_clear_error() -> None:
    tracker = Tracker()
    tracker.update([], 1.0)
    with pytest.raises(PerceptionError, match="must not go back in time"):
        tracker.update([], 0.5)
    with pytest.raises(PerceptionError, match="finite time"):
        tracker.update([], float("nan"))
    with pytest.raises(PerceptionError, match="detection 0 is a tuple, expected a Box3D"):
        tracker.update([(1, 2, 3)], 2.0)  # type: ignore[list-item]
    with pytest.raises(PerceptionError, match="finite time"):
        tracker.update([], "soon")  # type: ignore[arg-type]
    broken = Box3D(np.array([np.nan, 0.0, 0.0]), np.ones(3), 0.0)
    with pytest.raises(PerceptionError, match="detection 0 has a NaN or Inf centre"):
        tracker.update([broken], 3.0)
    with pytest.raises(PerceptionError, match="motion_model"):
        TrackerConfig(motion_model="jerk")  # type: ignore[arg-type]
    with pytest.raises(PerceptionError, match="one hypothesis frame per ground-truth frame"):
        clear_mot([{}], [], 1.0)
    tracker.reset()
    assert tracker.update([], 0.0) == []
