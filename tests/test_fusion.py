"""Camera-LiDAR fusion on the real KITTI object frames: painting, label transfer, occlusion, overlay, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perception_ws.calib.camera import Extrinsic, PinholeCamera
from perception_ws.errors import CalibrationError, PerceptionError
from perception_ws.fusion import (
    Occlusion,
    load_extrinsic,
    overlay_image,
    pack_rgb,
    paint_points,
    project_points,
    transfer_labels,
    unpack_rgb,
    with_field,
)
from perception_ws.labels import KITTI3
from tests.helpers.data import box_mask, kitti_frame

FRAMES = ("000000", "000001", "000002")


@pytest.mark.real_data
@pytest.mark.parametrize("frame", FRAMES)
def test_painted_colours_are_the_image_pixels_at_the_projections(real_data: Path, frame: str) -> None:
    scan, camera, extrinsic = kitti_frame(real_data, frame)
    assert scan.image is not None
    assert scan.calib is not None
    rgb, visible = paint_points(scan.xyz, scan.image, camera, extrinsic)
    # the projection the other way: P2 · R0_rect · Tr_velo_to_cam straight from the calibration
    uv, depth = scan.calib.velo_to_image(scan.xyz, cam=2)
    col, row = np.round(np.nan_to_num(uv, nan=-1.0)).astype(int).T
    inside = (depth > 0.1) & (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
    assert np.array_equal(visible, inside)
    assert 15_000 < visible.sum() < len(visible) / 3  # the camera sees the front ~90 degrees only
    assert np.array_equal(rgb[visible], scan.image[row[visible], col[visible]])
    assert not rgb[~visible].any()


@pytest.mark.real_data
def test_labels_from_2d_box_mask_reach_the_points_inside_the_3d_boxes(real_data: Path) -> None:
    inside_total, matched_total = 0, 0
    for frame in FRAMES:
        scan, camera, extrinsic = kitti_frame(real_data, frame)
        assert scan.image is not None
        mask = box_mask(real_data, frame, scan.image.shape[:2])
        labels = transfer_labels(scan.xyz, mask, camera, extrinsic)
        for box in scan.boxes:
            if box.label == 0:  # Truck, Van, ...: no KITTI-3 class, nothing to transfer
                continue
            inside = box.contains(scan.xyz)
            inside_total += int(inside.sum())
            matched_total += int(np.count_nonzero(labels[inside] == box.label))
    fraction = matched_total / inside_total
    print(f"label transfer: {matched_total}/{inside_total} points in 3D boxes took their class ({fraction:.1%})")
    assert inside_total > 400
    assert fraction >= 0.9


def test_occlusion_keeps_hidden_points_from_taking_the_occluders_label() -> None:
    camera = PinholeCamera.kitti_default()
    # camera frame (z forward): a small object 8 m ahead, LiDAR-sparse (~3 px apart), and a wall at 20 m
    # behind it whose points fall between the object's on the image
    gx, gy = np.meshgrid(np.arange(-0.6, 0.6, 0.033), np.arange(-0.4, 0.4, 0.033))
    near = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, 8.0)], axis=1)
    wx, wy = np.meshgrid(np.arange(-3.0, 3.0, 0.05), np.arange(-1.5, 1.5, 0.05))
    far = np.stack([wx.ravel(), wy.ravel(), np.full(wx.size, 20.0)], axis=1)
    xyz = np.vstack([near, far])
    is_near = np.arange(len(xyz)) < len(near)
    proj = project_points(near, camera, Extrinsic.identity())
    mask = np.full((camera.height, camera.width), 2, dtype=np.uint8)  # the wall's class
    mask[proj.row.min() : proj.row.max() + 1, proj.col.min() : proj.col.max() + 1] = 1  # the object's
    plain = transfer_labels(xyz, mask, camera, Extrinsic.identity(), occlusion=False)
    tested = transfer_labels(xyz, mask, camera, Extrinsic.identity(), occlusion=True)
    behind = ~is_near & (plain == 1)
    assert behind.sum() > 100  # without the z-buffer, wall points take the object's label
    assert np.all(tested[behind] == 0)  # with it they are hidden, labelled "not visible"
    assert np.all(tested[is_near] == 1)
    # wall points beside the object keep their class, except within the window's reach of its outline
    wall = ~is_near & (plain == 2)
    lost = wall & (tested != 2)
    assert np.all(tested[lost] == 0)
    assert lost.sum() < 0.1 * wall.sum()
    where = project_points(xyz[lost], camera, Extrinsic.identity())
    reach = Occlusion().window // 2
    assert np.all((where.col >= proj.col.min() - reach) & (where.col <= proj.col.max() + reach))
    assert np.all((where.row >= proj.row.min() - reach) & (where.row <= proj.row.max() + reach))
    # a window of 1 pixel cannot see between the sparse object points: the neighbourhood is what works
    single = transfer_labels(xyz, mask, camera, Extrinsic.identity(), occlusion=Occlusion(window=1))
    assert np.count_nonzero(single[behind] == 1) > 0.8 * behind.sum()


@pytest.mark.real_data
def test_overlay_draws_points_in_class_colours_and_the_boxes(real_data: Path) -> None:
    scan, camera, extrinsic = kitti_frame(real_data, "000002")
    assert scan.image is not None
    assert scan.labels is not None
    picture = overlay_image(
        scan.image, scan.xyz, scan.labels, [], camera, extrinsic, class_set=KITTI3, radius=0, draw_background=True
    )
    proj = project_points(scan.xyz, camera, extrinsic)
    seen = np.flatnonzero(proj.visible)
    # the nearest point of every pixel shows its class colour
    flat = proj.row[seen] * camera.width + proj.col[seen]
    order = np.lexsort((proj.depth[seen], flat))
    nearest = seen[order[np.unique(flat[order], return_index=True)[1]]]
    expected = KITTI3.colorize(scan.labels[nearest])
    assert np.array_equal(picture[proj.row[nearest], proj.col[nearest]], expected)
    untouched = np.ones(picture.shape[:2], dtype=bool)
    untouched[proj.row[nearest], proj.col[nearest]] = False
    assert np.array_equal(picture[untouched], scan.image[untouched])
    # by default only the object classes are drawn: every changed pixel wears an object colour
    objects_only = overlay_image(scan.image, scan.xyz, scan.labels, [], camera, extrinsic, class_set=KITTI3, radius=0)
    changed = np.any(objects_only != scan.image, axis=2)
    object_colours = KITTI3.colorize(np.array(KITTI3.object_ids))
    assert 0 < changed.sum() < (~untouched).sum() / 10
    assert np.all(np.any(np.all(objects_only[changed][:, None, :] == object_colours[None], axis=2), axis=1))
    with_boxes = overlay_image(scan.image, scan.xyz, None, scan.boxes, camera, extrinsic, class_set=KITTI3)
    without = overlay_image(scan.image, scan.xyz, None, [], camera, extrinsic, class_set=KITTI3)
    changed = np.any(with_boxes != without, axis=2)
    drawn = with_boxes[changed]
    box_colours = KITTI3.colorize(np.array([box.label for box in scan.boxes]))
    assert np.all(np.any(np.all(drawn[:, None, :] == box_colours[None], axis=2), axis=1))
    car = KITTI3.colorize(np.array([KITTI3.id_of("car")]))[0]
    assert np.count_nonzero(np.all(drawn == car, axis=1)) > 200


def test_rgb_packing_and_field_replacement() -> None:
    rgb = np.array([[255, 0, 0], [1, 2, 3], [0, 0, 0]], dtype=np.uint8)
    packed = pack_rgb(rgb)
    assert packed.dtype == np.float32
    assert packed.view(np.uint32)[0] == 0xFF0000
    assert np.array_equal(unpack_rgb(packed), rgb)
    points = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("rgb", "f4")])
    out = with_field(points, "rgb", packed)
    assert out.dtype.names == ("x", "y", "z", "rgb")
    assert np.array_equal(out["rgb"].view(np.uint32), packed.view(np.uint32))


@pytest.mark.real_data
def test_bad_camera_extrinsic_and_inputs_get_clear_errors(real_data: Path) -> None:
    scan, camera, extrinsic = kitti_frame(real_data, "000000")
    assert scan.image is not None
    with pytest.raises(CalibrationError, match=r"shape \(100, \d+, 3\); the camera is calibrated for"):
        paint_points(scan.xyz, scan.image[:100], camera, extrinsic)
    with pytest.raises(CalibrationError, match="expected a PinholeCamera"):
        paint_points(scan.xyz, scan.image, "P2", extrinsic)  # type: ignore[arg-type]
    with pytest.raises(CalibrationError, match="expected an Extrinsic"):
        paint_points(scan.xyz, scan.image, camera, np.eye(4))  # type: ignore[arg-type]
    with pytest.raises(CalibrationError, match="focal lengths"):
        PinholeCamera(np.zeros((3, 4)), 1242, 375)
    with pytest.raises(PerceptionError, match=r"expected \(N, 3\)"):
        paint_points(scan.xyz[:, :2], scan.image, camera, extrinsic)
    with pytest.raises(PerceptionError, match="integer class ids"):
        transfer_labels(scan.xyz, np.zeros(scan.image.shape[:2], dtype=np.float32), camera, extrinsic)
    with pytest.raises(CalibrationError, match="9 values; expected 16"):
        load_extrinsic([1.0] * 9)
    with pytest.raises(CalibrationError, match="not a rotation"):
        load_extrinsic((2.0 * np.eye(3, 4)).ravel().tolist())  # scaled, not rigid
    calib = real_data / "kitti_object" / "calib" / "000000.txt"
    with pytest.raises(CalibrationError, match="given twice"):
        load_extrinsic(np.eye(4).ravel().tolist(), calib)
    assert np.allclose(load_extrinsic([], calib).matrix, extrinsic.matrix)
