"""KITTI calibration and the pinhole camera, checked against the real KITTI object frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.calib.kitti import KittiCalib, read_kitti_calib
from perception_ws.errors import CalibrationError
from perception_ws.io import open_dataset
from perception_ws.io.kitti import read_velodyne_bin
from perception_ws.io.kitti_object import DONT_CARE, read_kitti_labels

FRAMES = ["000000", "000001", "000002"]


@pytest.fixture(scope="module")
def kitti_object(real_data: Path) -> Path:
    return real_data / "kitti_object"


def _calib(kitti_object: Path, frame: str = "000000") -> KittiCalib:
    return read_kitti_calib(kitti_object / "calib" / f"{frame}.txt")


def _xyz(kitti_object: Path, frame: str = "000000") -> np.ndarray:
    points = read_velodyne_bin(kitti_object / "velodyne" / f"{frame}.bin")
    return np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)


# -- projection on the real frames -----------------------------------------------------------------


@pytest.mark.real_data
def test_points_in_each_3d_box_project_into_its_2d_box(kitti_object: Path) -> None:
    report = []
    dataset = open_dataset(kitti_object)
    for frame, scan in zip(FRAMES, dataset, strict=True):
        objects = [o for o in read_kitti_labels(kitti_object / "label_2" / f"{frame}.txt") if o.type != DONT_CARE]
        assert scan.calib is not None
        assert len(objects) == len(scan.boxes)
        xyz = scan.xyz
        for obj, box in zip(objects, scan.boxes, strict=True):
            inside = xyz[box.contains(xyz)]
            uv, _ = scan.calib.velo_to_image(inside, cam=2)
            left, top, right, bottom = obj.bbox
            in_2d = (uv[:, 0] >= left) & (uv[:, 0] <= right) & (uv[:, 1] >= top) & (uv[:, 1] <= bottom)
            report.append((frame, obj.type, len(inside), float(in_2d.mean()) if len(inside) else float("nan")))
    table = "\n".join(f"{f} {t:<10} {n:5d} points {r:6.1%} in 2D box" for f, t, n, r in report)
    assert all(n > 0 for _, _, n, _ in report), table
    assert all(r >= 0.95 for _, _, _, r in report), table


@pytest.mark.real_data
@pytest.mark.parametrize("frame", FRAMES)
def test_velo_cam_velo_round_trip(kitti_object: Path, frame: str) -> None:
    calib, xyz = _calib(kitti_object, frame), _xyz(kitti_object, frame)
    cam = calib.velo_to_cam(xyz)
    # the rectified camera looks along the LiDAR's x axis: depth (cam z) follows x
    front = xyz[:, 0] > 5.0
    assert np.all(cam[front, 2] > 4.0)
    np.testing.assert_allclose(calib.cam_to_velo(cam), xyz, atol=1e-9)


@pytest.mark.real_data
def test_velo_to_image_agrees_with_camera_and_extrinsic(kitti_object: Path) -> None:
    calib, xyz = _calib(kitti_object), _xyz(kitti_object)
    np.testing.assert_allclose(calib.extrinsic().apply(xyz), calib.velo_to_cam(xyz), atol=1e-9)
    uv, depth = calib.velo_to_image(xyz, cam=2)
    camera = calib.camera(2, image_size=(1242, 375))
    uv_cam, depth_cam, visible = camera.project(calib.velo_to_cam(xyz))
    np.testing.assert_allclose(depth_cam, depth, atol=1e-6)
    np.testing.assert_allclose(uv_cam[visible], uv[visible], atol=1e-4)
    # visible points: in front of the car and within the camera's ~80 degree field of view
    assert visible.sum() > 10000
    assert np.all(xyz[visible, 0] > 0)
    assert np.all(np.abs(np.arctan2(xyz[visible, 1], xyz[visible, 0])) < np.radians(50))
    behind = depth <= 0
    assert behind.any()
    assert np.all(np.isnan(uv[behind]))
    assert not visible[behind].any()


@pytest.mark.real_data
def test_cameras_differ_by_their_stereo_offsets(kitti_object: Path) -> None:
    calib, xyz = _calib(kitti_object), _xyz(kitti_object)
    far = xyz[:, 0] > 20
    uv2, _ = calib.velo_to_image(xyz[far], cam=2)
    uv3, _ = calib.velo_to_image(xyz[far], cam=3)
    # camera 3 sits to the right of camera 2: the same point appears further left in its image
    assert np.all(uv3[:, 0] < uv2[:, 0])
    np.testing.assert_allclose(uv3[:, 1], uv2[:, 1], atol=2.0)


# -- calibration file styles ---------------------------------------------------------------------


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.12e}" for v in np.asarray(values).reshape(-1))


@pytest.mark.real_data
def test_raw_recording_calibration_matches_object_calibration(kitti_object: Path, tmp_path: Path) -> None:
    calib, xyz = _calib(kitti_object), _xyz(kitti_object)
    (tmp_path / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
        + "".join(f"P_rect_0{i}: {_fmt(calib.projection(i))}\n" for i in range(4))
        + f"R_rect_00: {_fmt(calib.R0_rect)}\n"
    )
    tr = calib.Tr_velo_to_cam
    (tmp_path / "calib_velo_to_cam.txt").write_text(
        f"calib_time: 15-Mar-2012 11:37:16\nR: {_fmt(tr[:, :3])}\nT: {_fmt(tr[:, 3])}\ndelta_f: 0 0\ndelta_c: 0 0\n"
    )
    expected, _ = calib.velo_to_image(xyz)
    for path in (tmp_path, tmp_path / "calib_cam_to_cam.txt", tmp_path / "calib_velo_to_cam.txt"):
        raw = read_kitti_calib(path)
        assert raw.Tr_imu_to_velo is None
        np.testing.assert_allclose(raw.velo_to_image(xyz)[0], expected, atol=1e-6)


@pytest.mark.real_data
def test_odometry_calibration_has_identity_rectification(kitti_object: Path, tmp_path: Path) -> None:
    calib, xyz = _calib(kitti_object), _xyz(kitti_object)
    rect_tr = calib.extrinsic().matrix[:3]  # odometry's Tr maps straight into the rectified frame
    (tmp_path / "calib.txt").write_text(
        "".join(f"P{i}: {_fmt(calib.projection(i))}\n" for i in range(4)) + f"Tr: {_fmt(rect_tr)}\n"
    )
    odometry = read_kitti_calib(tmp_path / "calib.txt")
    np.testing.assert_array_equal(odometry.R0_rect, np.eye(3))
    np.testing.assert_allclose(odometry.velo_to_cam(xyz), calib.velo_to_cam(xyz), atol=1e-6)


def _edit_line(text: str, key: str, new: str | None) -> str:
    lines = [ln for ln in text.splitlines() if ln.split(":")[0] != key]
    if new is not None:
        lines.append(new)
    return "\n".join(lines) + "\n"


def _break(text: str, how: str) -> tuple[str, str]:
    """A broken copy of a real calib file and the key the error must name."""
    p2 = next(ln for ln in text.splitlines() if ln.startswith("P2:"))
    tr = next(ln for ln in text.splitlines() if ln.startswith("Tr_velo_to_cam:"))
    if how == "missing":
        return _edit_line(text, "R0_rect", None), "R0_rect"
    if how == "short":
        return _edit_line(text, "P2", " ".join(p2.split()[:-1])), "P2"
    if how == "long":
        return _edit_line(text, "Tr_velo_to_cam", tr + " 1.0"), "Tr_velo_to_cam"
    if how == "nan":
        return _edit_line(text, "P2", p2.replace(p2.split()[3], "nan", 1)), "P2"
    if how == "text":
        return _edit_line(text, "P2", p2.replace(p2.split()[3], "seven", 1)), "P2"
    if how == "singular":
        return _edit_line(text, "R0_rect", "R0_rect: " + " ".join(["0"] * 9)), "R0_rect"
    if how == "scaled":
        scaled = " ".join(str(2 * float(v)) for v in tr.split()[1:])
        return _edit_line(text, "Tr_velo_to_cam", f"Tr_velo_to_cam: {scaled}"), "Tr_velo_to_cam"
    raise AssertionError(how)


@pytest.mark.real_data
@pytest.mark.parametrize("how", ["missing", "short", "long", "nan", "text", "singular", "scaled"])
def test_bad_calibration_files_are_rejected(kitti_object: Path, tmp_path: Path, how: str) -> None:
    text, key = _break((kitti_object / "calib" / "000000.txt").read_text(), how)
    path = tmp_path / f"bad_{how}.txt"
    path.write_text(text)
    with pytest.raises(CalibrationError) as info:
        read_kitti_calib(path)
    assert key in str(info.value)
    assert path.name in str(info.value)


def test_unreadable_calibration_inputs(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="no such calibration file"):
        read_kitti_calib(tmp_path / "absent.txt")
    (tmp_path / "garbage.txt").write_text("P0 1 2 3\n")
    with pytest.raises(CalibrationError, match="line 1"):
        read_kitti_calib(tmp_path / "garbage.txt")
    (tmp_path / "calib_cam_to_cam.txt").write_text("P_rect_00: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(CalibrationError, match=r"calib_velo_to_cam\.txt"):
        read_kitti_calib(tmp_path)


# -- PinholeCamera ---------------------------------------------------------------------------------


@pytest.mark.real_data
def test_camera_info_round_trip_through_dict_and_ros_message(kitti_object: Path) -> None:
    camera = PinholeCamera(
        _calib(kitti_object).projection(2), 1242, 375, distortion=np.array([-0.37, 0.2, 1e-3, -2e-4, -0.07])
    )
    info = camera.to_camera_info_dict()
    assert set(info) == {"k", "p", "d", "r", "width", "height", "distortion_model"}
    message = CameraInfo(**info)
    for source in (info, message):
        back = PinholeCamera.from_camera_info(source)
        for name in ("P", "K", "R", "distortion"):
            np.testing.assert_array_equal(getattr(back, name), getattr(camera, name))
        assert (back.width, back.height, back.distortion_model) == (1242, 375, "plumb_bob")


def test_uncalibrated_camera_info_is_rejected_and_unset_p_falls_back_to_k() -> None:
    with pytest.raises(CalibrationError, match="focal"):
        PinholeCamera.from_camera_info(CameraInfo(width=640, height=480))
    K = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    camera = PinholeCamera.from_camera_info(CameraInfo(width=640, height=480, k=K))
    np.testing.assert_array_equal(camera.P[:, :3], np.reshape(K, (3, 3)))
    np.testing.assert_array_equal(camera.R, np.eye(3))
    with pytest.raises(CalibrationError, match="equidistant"):
        PinholeCamera.from_camera_info(
            {"k": K, "width": 640, "height": 480, "d": [0.1] * 4, "distortion_model": "equidistant"}
        )
    with pytest.raises(CalibrationError, match="3 values"):
        PinholeCamera(np.reshape(K, (3, 3)), 640, 480, distortion=np.array([0.1, 0.0, 0.0]))
    # a simulator's camera: 8 zero coefficients of another model are simply no distortion
    ideal = PinholeCamera.from_camera_info(
        {"k": K, "width": 640, "height": 480, "d": [0.0] * 8, "distortion_model": "rational_polynomial"}
    )
    assert not ideal.has_distortion
    assert ideal.distortion_model == "plumb_bob"


def _undistort(xd: np.ndarray, yd: np.ndarray, d: np.ndarray, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point inversion of plumb_bob (the method OpenCV's undistortPoints uses)."""
    k1, k2, p1, p2, k3 = d
    x, y = xd.copy(), yd.copy()
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return x, y


@pytest.mark.real_data
def test_distortion_is_applied_and_inverts(kitti_object: Path) -> None:
    calib, xyz = _calib(kitti_object), _xyz(kitti_object)
    cam_xyz = calib.velo_to_cam(xyz)
    cam_xyz = cam_xyz[cam_xyz[:, 2] > 2.0]
    K = calib.projection(0)[:, :3]
    d = np.array([-0.25, 0.08, 1e-3, -5e-4, -0.01])
    plain = PinholeCamera(K, 1242, 375)
    distorted = PinholeCamera(K, 1242, 375, distortion=d)
    uv0, depth0, vis0 = plain.project(cam_xyz)
    uv1, depth1, vis1 = distorted.project(cam_xyz)
    np.testing.assert_allclose(depth1, depth0)
    shift = np.linalg.norm(uv1 - uv0, axis=1)
    assert shift[vis0 & vis1].max() > 5.0  # barrel distortion pulls the image edges in
    # undoing the distortion recovers the pinhole projection
    xn = (uv1[:, 0] - K[0, 2]) / K[0, 0]
    yn = (uv1[:, 1] - K[1, 2]) / K[1, 1]
    x, y = _undistort(xn, yn, d)
    sel = vis1 & vis0
    np.testing.assert_allclose(K[0, 0] * x[sel] + K[0, 2], uv0[sel, 0], atol=1e-3)
    np.testing.assert_allclose(K[1, 1] * y[sel] + K[1, 2], uv0[sel, 1], atol=1e-3)


def test_distortion_fold_is_not_visible() -> None:
    camera = PinholeCamera(
        np.array([[100.0, 0, 320], [0, 100.0, 240], [0, 0, 1]]), 640, 480, distortion=np.array([-0.5, 0, 0, 0, 0])
    )
    # at x/z = 2 the radial polynomial r(1 - 0.5 r²) has turned back: it lands near the centre
    uv, _, visible = camera.project(np.array([[2.0, 0.0, 1.0], [0.5, 0.0, 1.0]]))
    assert 0 <= uv[0, 0] < 640
    assert not visible[0]
    assert visible[1]


def test_visibility_respects_min_depth_and_image_borders() -> None:
    camera = PinholeCamera(np.array([[100.0, 0, 319.5], [0, 100.0, 239.5], [0, 0, 1]]), 640, 480)
    points = np.array([[0.0, 0.0, 0.05], [0.0, 0.0, 10.0], [3.199, 0.0, 1.0], [3.201, 0.0, 1.0], [0.0, 0.0, -5.0]])
    uv, depth, visible = camera.project(points)
    assert visible.tolist() == [False, True, True, False, False]
    np.testing.assert_allclose(uv[1], [319.5, 239.5])
    assert np.isnan(uv[4]).all()
    assert depth[4] == -5.0


@pytest.mark.real_data
def test_kitti_default_camera_resembles_the_real_kitti_camera(kitti_object: Path) -> None:
    default = PinholeCamera.kitti_default()
    real = _calib(kitti_object).camera(2)
    assert (default.width, default.height) == (real.width, real.height)

    def fov(cam: PinholeCamera) -> float:
        return float(np.degrees(2 * np.arctan(cam.width / 2 / cam.fx)))

    assert abs(fov(default) - fov(real)) < 2.0
    uv, _, visible = default.project(np.array([[0.0, 0.0, 10.0]]))
    assert visible[0]
    assert np.allclose(uv[0], [default.cx, default.cy])


# -- Extrinsic -------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_extrinsic_from_3x4_inverse_and_compose(kitti_object: Path) -> None:
    calib, xyz = _calib(kitti_object), _xyz(kitti_object)
    tr = Extrinsic.from_3x4(calib.Tr_velo_to_cam)
    back = tr.inverse()
    np.testing.assert_allclose(back.apply(tr.apply(xyz)), xyz, atol=1e-5)
    np.testing.assert_allclose(back.compose(tr).matrix, np.eye(4), atol=1e-6)
    same = Extrinsic.from_rt(tr.rotation, tr.translation)
    np.testing.assert_array_equal(same.matrix, tr.matrix)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.diag([2.0, 2.0, 2.0, 1.0]), "not a rotation"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "determinant"),
        (np.full((4, 4), np.nan), "non-finite"),
        (np.eye(3), "shape"),
        (np.vstack([np.eye(4)[:3], [1.0, 0, 0, 1]]), "last row"),
    ],
)
def test_bad_extrinsics_are_rejected(matrix: np.ndarray, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        Extrinsic(matrix)
