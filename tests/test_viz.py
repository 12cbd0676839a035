"""Pictures on real frames: right sizes, class colours where the classes are, boxes where the boxes are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from perception_ws.boxes import Box3D
from perception_ws.calib.sensors import get_sensor
from perception_ws.errors import PerceptionError
from perception_ws.io import open_dataset
from perception_ws.labels import KITTI3, SEMANTIC_KITTI
from perception_ws.projection import project
from perception_ws.scan import Scan
from perception_ws.viz.bev import auto_extent, draw_bev, render_bev
from perception_ws.viz.colors import EMPTY_RGB
from perception_ws.viz.figure import compose_scan, render_scan
from perception_ws.viz.overlay import BOX_EDGES, draw_boxes, draw_points, overlay
from perception_ws.viz.range_image import pixel_labels, render_range_image

pytestmark = pytest.mark.real_data

CAR_RGB = np.array(KITTI3.colors[KITTI3.id_of("car")], dtype=np.uint8)


@pytest.fixture(scope="module")
def squeezeseg_frame(real_data: Path) -> np.ndarray:
    return np.load(sorted((real_data / "kitti_squeezeseg").glob("*.npy"))[0])


@pytest.fixture(scope="module")
def squeezeseg_scan(real_data: Path) -> Scan:
    return open_dataset(real_data / "kitti_squeezeseg")[0]


@pytest.fixture(scope="module")
def object_scan(real_data: Path) -> Scan:
    """KITTI object frame 000001: image, calibration, a car, a truck and a cyclist."""
    return open_dataset(real_data / "kitti_object")[1]


def _kitti_projection(calib_file: Path) -> np.ndarray:
    """P2 · R0_rect · Tr_velo_to_cam (3x4), parsed here with numpy, independently of perception_ws.calib."""
    rows = {}
    for line in calib_file.read_text().splitlines():
        if ":" in line:
            key, values = line.split(":", 1)
            rows[key] = np.array(values.split(), dtype=np.float64)
    rect = np.eye(4)
    rect[:3, :3] = rows["R0_rect"].reshape(3, 3)
    velo = np.vstack([rows["Tr_velo_to_cam"].reshape(3, 4), [0, 0, 0, 1]])
    return rows["P2"].reshape(3, 4) @ rect @ velo


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _near(img: np.ndarray, u: float, v: float, rgb: np.ndarray, radius: int = 2, tol: int = 30) -> bool:
    """Whether some pixel within ``radius`` of (u, v) has colour ``rgb`` (each channel within ``tol``)."""
    u0, v0 = round(u), round(v)
    patch = img[max(v0 - radius, 0) : v0 + radius + 1, max(u0 - radius, 0) : u0 + radius + 1].astype(int)
    return bool(np.any(np.all(np.abs(patch - rgb.astype(int)) <= tol, axis=-1)))


# --- range images --------------------------------------------------------------------------------------


def test_range_image_labels_carry_class_colours(squeezeseg_frame: np.ndarray) -> None:
    labels, valid = squeezeseg_frame[..., 5], squeezeseg_frame[..., 4] > 0
    rgb = render_range_image(labels, "labels", valid=valid, row_scale=4)
    assert rgb.shape == (256, 512, 3)
    assert rgb.dtype == np.uint8
    # Every car pixel is car-coloured over its 4 drawn rows; every empty pixel is dark.
    rows, cols = np.nonzero((labels == 1) & valid)
    assert len(rows) > 1000
    for dr in range(4):
        assert np.all(rgb[rows * 4 + dr, cols] == CAR_RGB)
    er, ec = np.nonzero(~valid)
    assert np.all(rgb[er * 4, ec] == EMPTY_RGB)
    # Background with a return is the "unknown" grey.
    ur, uc = np.nonzero((labels == 0) & valid)
    assert np.all(rgb[ur * 4 + 3, uc] == KITTI3.colors[0])


def test_range_image_by_intensity_and_range(squeezeseg_frame: np.ndarray) -> None:
    valid = squeezeseg_frame[..., 4] > 0
    rng = squeezeseg_frame[..., 4]
    by_range = render_range_image(rng, "range", row_scale=2, vmax=60.0)  # valid mask from range > 0
    assert by_range.shape == (128, 512, 3)
    assert np.all(by_range[np.nonzero(~valid)[0] * 2, np.nonzero(~valid)[1]] == EMPTY_RGB)
    near = np.unravel_index(np.argmin(np.where(valid, rng, np.inf)), rng.shape)
    far = np.unravel_index(np.argmax(rng), rng.shape)
    lum = by_range.astype(float) @ [0.299, 0.587, 0.114]
    assert lum[near[0] * 2, near[1]] > lum[far[0] * 2, far[1]] + 100  # near is bright
    # A pixel's colour is the colormap's at its scaled value (plasma reversed: near = bright).
    expected = colormaps["plasma_r"](rng[near] / 60.0, bytes=True)[:3]
    np.testing.assert_allclose(by_range[near[0] * 2, near[1]], expected, atol=1)

    by_intensity = render_range_image(squeezeseg_frame[..., 3], "intensity", valid=valid, vmax=1.0)
    strongest = np.unravel_index(np.argmax(np.where(valid, squeezeseg_frame[..., 3], -1)), valid.shape)
    expected = colormaps["viridis"](squeezeseg_frame[..., 3][strongest], bytes=True)[:3]
    np.testing.assert_allclose(by_intensity[strongest[0] * 4, strongest[1]], expected, atol=1)


def test_pixel_labels_rebuild_the_released_label_channel(squeezeseg_scan: Scan, squeezeseg_frame: np.ndarray) -> None:
    assert squeezeseg_scan.pixels is not None
    assert squeezeseg_scan.labels is not None
    ids = pixel_labels(squeezeseg_scan.pixels[:, 0], squeezeseg_scan.pixels[:, 1], squeezeseg_scan.labels, (64, 512))
    valid = squeezeseg_frame[..., 4] > 0
    np.testing.assert_array_equal(ids[valid], squeezeseg_frame[..., 5][valid].astype(np.int64))
    assert np.all(ids[~valid] == -1)
    # Two points on one pixel: the nearer one names it, whatever the order.
    two = pixel_labels(np.array([0, 0]), np.array([1, 1]), np.array([3, 1]), (2, 2), depth=np.array([9.0, 2.0]))
    assert two[0, 1] == 1
    assert two[0, 0] == -1


# --- bird's-eye view --------------------------------------------------------------------------------------


def _bev_canvas(scan: Scan, boxes: list[Box3D]) -> tuple[np.ndarray, Figure]:
    fig = Figure(figsize=(7, 9), dpi=100)
    ax = fig.add_axes((0.1, 0.06, 0.85, 0.9))
    draw_bev(ax, scan.xyz, boxes=boxes, extent=(-10.0, 80.0, -30.0, 30.0))  # coloured by height
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy(), fig


def _to_pixel(fig: Figure, x: float, y: float) -> tuple[float, float]:
    """LiDAR (x, y) -> PNG pixel (u, v), through the axes' own transform (origin bottom-left -> top-left)."""
    u, v = fig.axes[0].transData.transform((y, x))
    return u, fig.bbox.height - v


def test_bev_draws_boxes_where_they_are(object_scan: Scan) -> None:
    boxes = list(object_scan.boxes)
    assert {b.name for b in boxes} == {"Car", "Truck", "Cyclist"}
    boxes[0].track_id = 7  # the label shows a track id when there is one
    img, fig = _bev_canvas(object_scan, boxes)
    bare, bare_fig = _bev_canvas(object_scan, [])
    assert img.shape == (900, 700, 3)
    for box in boxes:
        rgb = np.array(KITTI3.colors[box.label], dtype=np.uint8)
        corners = box.bev_corners()
        for a, b in ((0, 1), (1, 2), (2, 3), (3, 0)):  # middle of every edge is drawn in the class colour
            u, v = _to_pixel(fig, *((corners[a] + corners[b]) / 2))
            assert _near(img, u, v, rgb), (box.name, a, b)
            assert not _near(bare, u, v, rgb), (box.name, a, b)  # and it is the box, not the points
        # The heading line runs from the centre to the front edge (corners 0 and 3).
        u, v = _to_pixel(fig, *(0.25 * box.center[:2] + 0.75 * (corners[0] + corners[3]) / 2))
        assert _near(img, u, v, rgb)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(texts) == sorted([f"{boxes[0].name} #7", *(b.name for b in boxes[1:])])
    # The ego car sits at the origin: white body.
    u, v = _to_pixel(fig, -1.5, 0.0)
    assert np.all(img[round(v), round(u)] == 255)
    bare_fig.clear()


def test_bev_alone_and_extent(object_scan: Scan) -> None:
    rgb = render_bev(object_scan.xyz, labels=object_scan.labels, boxes=object_scan.boxes, size_in=6, dpi=80)
    assert rgb.shape == (480, 480, 3)
    assert np.any(np.all(rgb == CAR_RGB, axis=-1))  # car points and box drawn in the car colour
    x0, x1, y0, y1 = auto_extent(object_scan.xyz, object_scan.boxes)
    for box in object_scan.boxes:  # every box fits the automatic extent
        c = box.bev_corners()
        assert x0 <= c[:, 0].min()
        assert c[:, 0].max() <= x1
        assert y0 <= c[:, 1].min()
        assert c[:, 1].max() <= y1
    # the ego car is in view
    assert x0 < 0 < x1
    assert y0 < 0 < y1


# --- camera overlay -------------------------------------------------------------------------------------


def test_overlay_points_land_on_their_pixels_nearest_first(real_data: Path) -> None:
    root = real_data / "kitti_object"
    image = np.asarray(Image.open(root / "image_2" / "000000.png").convert("RGB"))
    xyz = np.fromfile(root / "velodyne" / "000000.bin", dtype=np.float32).reshape(-1, 4)[:, :3]
    P = _kitti_projection(root / "calib" / "000000.txt")
    hom = np.hstack([xyz, np.ones((len(xyz), 1))]) @ P.T
    depth = hom[:, 2]
    uv = hom[:, :2] / np.where(depth > 0, depth, np.nan)[:, None]
    # Colour every point with its own index, so each drawn pixel says which point drew it.
    index = np.arange(len(xyz))
    colors = np.stack([index >> 16, (index >> 8) & 255, index & 255], axis=1).astype(np.uint8)
    out = draw_points(image, uv, depth, colors=colors, radius=0)
    assert out.shape == image.shape
    assert out is not image

    h, w = image.shape[:2]
    ok = (depth > 0) & np.all(np.isfinite(uv), axis=1)
    u, v = np.round(uv[ok, 0]).astype(int), np.round(uv[ok, 1]).astype(int)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, d, idx = u[inside], v[inside], depth[ok][inside], index[ok][inside]
    assert len(idx) > 15000  # the camera sees a good part of the scan
    # Nearest point per pixel, by a plain reference: sort by depth, keep first per pixel.
    order = np.argsort(d, kind="stable")
    _, first = np.unique((v * w + u)[order], return_index=True)
    winner = idx[order][first]
    drawn = out[v[order][first], u[order][first]].astype(np.int64)
    np.testing.assert_array_equal((drawn[:, 0] << 16) | (drawn[:, 1] << 8) | drawn[:, 2], winner)
    touched = np.zeros((h, w), bool)
    touched[v, u] = True
    np.testing.assert_array_equal(out[~touched], image[~touched])  # the rest of the image is untouched


def test_overlay_depth_colours_and_boxes(real_data: Path, object_scan: Scan) -> None:
    root = real_data / "kitti_object"
    image = np.asarray(Image.open(root / "image_2" / "000001.png").convert("RGB"))
    P = _kitti_projection(root / "calib" / "000001.txt")

    def project(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hom = np.hstack([xyz, np.ones((len(xyz), 1))]) @ P.T
        return hom[:, :2] / hom[:, 2:], hom[:, 2]

    car = next(b for b in object_scan.boxes if b.name == "Car")
    corners, _ = project(car.corners())
    rect = (387.63, 181.54, 423.81, 203.12)  # the car's 2D box in label_2/000001.txt
    uv, depth = project(object_scan.xyz)
    out = overlay(
        image, uv, depth, radius=1, boxes2d=[rect], box_corners=[corners], box_colors=[(255, 0, 255), (0, 255, 0)]
    )
    assert out.shape == image.shape
    magenta, green = np.array([255, 0, 255]), np.array([0, 255, 0])
    assert _near(out, rect[0], (rect[1] + rect[3]) / 2, magenta, radius=1, tol=0)
    for a, b in BOX_EDGES[:12]:
        mid = (corners[a] + corners[b]) / 2
        if 0 <= mid[0] < image.shape[1] and 0 <= mid[1] < image.shape[0]:
            assert _near(out, mid[0], mid[1], green, radius=1, tol=0), (a, b)
    # Depth colours: the nearest visible point is brighter than the farthest.
    only_points = draw_points(np.zeros_like(image), uv, depth, radius=0)
    lum = only_points.astype(float) @ [0.299, 0.587, 0.114]
    seen = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < image.shape[1] - 0.5) & (uv[:, 1] >= 0)
    seen &= uv[:, 1] < image.shape[0] - 0.5
    near, far = np.argmin(np.where(seen, depth, np.inf)), np.argmax(np.where(seen, depth, -np.inf))
    assert lum[round(uv[near, 1]), round(uv[near, 0])] > lum[round(uv[far, 1]), round(uv[far, 0])]


# --- the whole picture -------------------------------------------------------------------------------------


def _cell_centre(box: tuple[int, int, int, int], shape: tuple[int, int], r: int, c: int) -> tuple[int, int]:
    """PNG pixel (u, v) at the centre of range-image pixel (r, c) drawn in panel ``box``."""
    left, top, right, bottom = box
    return int(left + (c + 0.5) * (right - left) / shape[1]), int(top + (r + 0.5) * (bottom - top) / shape[0])


def test_render_scan_squeezeseg_range_panels(
    squeezeseg_scan: Scan, squeezeseg_frame: np.ndarray, tmp_path: Path
) -> None:
    composed = compose_scan(squeezeseg_scan, title="squeezeseg frame")
    out = composed.save(tmp_path / "frame.png")
    png = _png(out)
    assert png.shape[1::-1] == composed.size
    assert composed.size[0] == 1600
    assert set(composed.panels) == {"range_labels", "range_intensity", "bev"}
    assert [p.name for p in tmp_path.iterdir()] == ["frame.png"]  # no temporary file left behind
    # Interior car pixels (car all around) are car-coloured in the labels panel, at their place.
    labels = squeezeseg_frame[..., 5]
    car = labels == 1
    interior = car[1:-1, 1:-1] & car[:-2, 1:-1] & car[2:, 1:-1] & car[1:-1, :-2] & car[1:-1, 2:]
    rows, cols = np.nonzero(interior)
    assert len(rows) > 100
    box = composed.panels["range_labels"]
    for r, c in zip(rows[::20] + 1, cols[::20] + 1, strict=True):
        u, v = _cell_centre(box, (64, 512), r, c)
        assert np.all(png[v, u] == CAR_RGB), (r, c)
    left, top, right, bottom = box
    assert abs((right - left) / (bottom - top) - 512 / 256) < 0.02  # rows drawn 4x: aspect 2:1 kept


def test_render_scan_object_frame_with_camera_and_boxes(object_scan: Scan, tmp_path: Path) -> None:
    composed = compose_scan(object_scan)
    out = composed.save(tmp_path / "object.png")
    png = _png(out)
    assert set(composed.panels) == {"camera", "bev"}  # no range image and no projection: no range panel
    left, top, right, bottom = composed.panels["camera"]
    assert object_scan.image is not None
    h, w = object_scan.image.shape[:2]
    assert abs((right - left) / (bottom - top) - w / h) < 0.02
    x_min, x_max, y_min, y_max = composed.bev_extent or (0, 0, 0, 0)
    bl, bt, br, bb = composed.panels["bev"]
    for box in object_scan.boxes:  # each box outline shows up at its place in the bird's-eye view
        rgb = np.array(KITTI3.colors[box.label], dtype=np.uint8)
        c = box.bev_corners()
        x, y = (c[0] + c[1]) / 2  # middle of the left edge
        u = bl + (y_max - y) / (y_max - y_min) * (br - bl)
        v = bt + (x_max - x) / (x_max - x_min) * (bb - bt)
        assert _near(png, u, v, rgb, radius=2), box.name


def test_render_scan_full_turn_projection(real_data: Path, tmp_path: Path) -> None:
    scan = open_dataset(real_data / "semantickitti")[0]
    proj = project(scan, get_sensor("hdl64e"), fov_deg=360.0, width=2048)
    composed = compose_scan(scan, projection=proj, class_set=SEMANTIC_KITTI)
    png = _png(composed.save(tmp_path / "full.png"))
    assert set(composed.panels) == {"range_labels", "range_intensity", "bev"}
    # A full turn is very wide: the range images take the whole width, above the bird's-eye view.
    left, _, right, bottom = composed.panels["range_labels"]
    assert right - left > 0.95 * png.shape[1]
    assert bottom < composed.panels["bev"][1]
    # Pixels won by a car point (with car all around) are car-coloured at their place in the panel.
    assert scan.semantic is not None
    car_id = SEMANTIC_KITTI.id_of("car")
    owner_class = np.where(proj.owner >= 0, scan.semantic[proj.owner], -1)
    car = owner_class == car_id
    interior = car[1:-1, 1:-1] & car[:-2, 1:-1] & car[2:, 1:-1] & car[1:-1, :-2] & car[1:-1, 2:]
    rows, cols = np.nonzero(interior)
    assert len(rows) > 50
    car_rgb = np.array(SEMANTIC_KITTI.colors[car_id], dtype=np.uint8)
    for r, c in zip(rows[::10] + 1, cols[::10] + 1, strict=True):
        u, v = _cell_centre(composed.panels["range_labels"], proj.image.shape[:2], r, c)
        assert _near(png, u, v, car_rgb, radius=0, tol=25), (r, c)


def test_render_scan_semantickitti_without_range_image(real_data: Path, tmp_path: Path) -> None:
    scan = open_dataset(real_data / "semantickitti")[0]
    out = render_scan(scan, tmp_path / "sub" / "sk.png", class_set=SEMANTIC_KITTI)
    png = _png(out)
    assert png.shape[1] == 1600
    assert png.shape[0] > 600
    road = np.array(SEMANTIC_KITTI.colors[SEMANTIC_KITTI.id_of("road")], dtype=np.uint8)
    # The road is drawn road-coloured (points are small antialiased dots: allow some blending).
    assert np.count_nonzero(np.all(np.abs(png.astype(int) - road) <= 40, axis=-1)) > 5000


# --- bad inputs --------------------------------------------------------------------------------------------


def test_bad_inputs_give_clear_errors(object_scan: Scan, tmp_path: Path) -> None:
    with pytest.raises(PerceptionError, match=r"expected one \(H, W\) channel"):
        render_range_image(np.zeros((64, 512, 6)), "labels")
    with pytest.raises(PerceptionError, match="unknown kind 'depth'"):
        render_range_image(np.zeros((4, 4)), "depth")  # type: ignore[arg-type]
    with pytest.raises(PerceptionError, match=r"ids 0\.\.7 do not fit class set kitti3"):
        render_range_image(np.array([[0, 7]]), "labels")
    with pytest.raises(PerceptionError, match="non-integer values"):
        render_range_image(np.array([[0.5, 1.0]]), "labels")
    with pytest.raises(PerceptionError, match=r"expected points of shape \(N, 3\)"):
        render_bev(np.zeros((5, 2)))
    with pytest.raises(PerceptionError, match="3 labels for 5 points"):
        render_bev(np.zeros((5, 3)), labels=np.zeros(3, int))
    with pytest.raises(PerceptionError, match="x_min < x_max"):
        render_bev(np.zeros((5, 3)), extent=(10.0, 0.0, -5.0, 5.0))
    with pytest.raises(PerceptionError, match="x_min < x_max"):
        render_scan(object_scan, tmp_path / "frame.png", extent=(0.0, 50.0, 5.0, 5.0))
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(PerceptionError, match=r"RGB uint8 image \(H, W, 3\), got float64"):
        draw_points(np.zeros((10, 10, 3)), np.zeros((1, 2)), np.ones(1))
    with pytest.raises(PerceptionError, match=r"uv \(N, 2\) and depth \(N,\)"):
        draw_points(image, np.zeros((3, 2)), np.ones(2))
    with pytest.raises(PerceptionError, match=r"box_corners\[0\] must be 8 finite pixel corners"):
        draw_boxes(image, box_corners=[np.zeros((4, 2))])
    with pytest.raises(PerceptionError, match="2 colours for 1 boxes"):
        draw_boxes(image, boxes2d=[(0, 0, 5, 5)], colors=[(1, 1, 1), (2, 2, 2)])
    with pytest.raises(PerceptionError, match=r"must be a \.png file"):
        render_scan(object_scan, tmp_path / "frame.jpg")
    assert not list(tmp_path.iterdir())


def test_moving_boxes_get_a_velocity_arrow_and_standing_ones_none(real_data: Path) -> None:
    scan = open_dataset(real_data / "kitti_object")[0]
    moving = Box3D(center=[10.0, 2.0, -1.0], size=[4.0, 1.8, 1.5], yaw=0.0, label=1, velocity=[5.0, 0.0, 0.0])
    standing = Box3D(center=[15.0, -3.0, -1.0], size=[4.0, 1.8, 1.5], yaw=0.0, label=1, velocity=[0.2, 0.1, 0.0])
    fig = Figure()
    ax = fig.add_subplot()
    draw_bev(ax, scan.xyz, boxes=[moving, standing], class_set=KITTI3)
    (arrow,) = [p for p in ax.patches if type(p).__name__ == "FancyArrow"]
    # drawn in the picture's (y, x) axes, one second of motion ahead of the moving box's centre
    tip_y, tip_x = arrow.get_xy()[np.argmax(arrow.get_xy()[:, 1])]
    assert tip_x == pytest.approx(15.0, abs=0.05)
    assert tip_y == pytest.approx(2.0, abs=0.05)


def test_auto_extent_ignores_points_with_nan_or_inf_coordinates() -> None:
    rng = np.random.default_rng(3)
    finite = rng.uniform(-30, 30, (500, 3))
    broken = np.concatenate([finite, [[np.nan, 1, 0], [np.inf, 0, 0], [0, -np.inf, 0]]])
    assert auto_extent(broken) == auto_extent(finite)
    assert auto_extent(np.full((10, 3), np.nan)) == auto_extent(np.zeros((0, 3)))  # the ego car alone
