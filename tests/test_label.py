"""`perception label`: the files it writes read back through the project's readers, resume and shards.

Writer tests label the KITTI object frames from their box-derived label field (``segmenter.kind: labels``:
real points, real boxes, no network); the MCAP test runs the shipped model on CPU on two real scans; the
replay test sends an MCAP through `perception replay` over loopback DDS.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import PointCloud2

from perception_ws.cli import main
from perception_ws.io import open_dataset
from perception_ws.io.kitti_object import boxes_from_labels, read_kitti_labels
from perception_ws.io.pcd import read_pcd
from perception_ws.labelling.kitti_lines import SENSOR_AXES, image_box
from perception_ws.labelling.options import pipeline_config
from perception_ws.labelling.semantickitti import RAW_IDS
from perception_ws.pipeline import Pipeline, PipelineResult
from perception_ws.scan import Scan
from tests.helpers.data import with_label_field

pytestmark = pytest.mark.real_data

FRAMES = ("000000", "000001", "000002")


def _labels_config(tmp_path: Path) -> Path:
    """The node's params file with the label-field segmenter (the KITTI object reader's box-derived labels)."""
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump({"perception_node": {"ros__parameters": {"segmenter": {"kind": "labels"}}}}))
    return path


def _label(source: Path, out: Path, config: Path, *extra: str) -> int:
    return main(["label", str(source), "--out", str(out), "--config", str(config), "--quiet", *extra])


def _expected(config: Path, source: Path) -> list[tuple[PipelineResult, Scan]]:
    """What the node's pipeline finds in each frame, run here directly: (result, scan)."""
    pipeline = Pipeline(pipeline_config(config, None, None))
    out = []
    for scan in open_dataset(source):
        cloud = with_label_field(scan)
        out.append((pipeline.process(cloud, 0.0, track=False), scan))
    return out


def _same_boxes(read: list, found: list, atol: float) -> None:
    assert len(read) == len(found)
    for a, b in zip(read, found, strict=True):
        assert a.label == b.label
        np.testing.assert_allclose(a.center, b.center, atol=atol)
        np.testing.assert_allclose(a.size, b.size, atol=atol)
        assert abs(np.angle(np.exp(1j * (a.yaw - b.yaw)))) < atol
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_files_read_back_as_the_pipeline_found_them(real_data: Path, tmp_path: Path) -> None:
    source, config, out = real_data / "kitti_object", _labels_config(tmp_path), tmp_path / "out"
    assert _label(source, out, config, "--format", "semantickitti", "kitti", "pcd") == 0
    expected = _expected(config, source)
    assert any(result.detections for result, _ in expected)  # the frames have objects to compare
    # SemanticKITTI: the .label beside its scan, read by the project's reader
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for index, frame in enumerate(FRAMES):
        shutil.copy(source / "velodyne" / f"{frame}.bin", pairs / f"{index:06d}.bin")
        shutil.copy(out / "labels" / f"{index:06d}.label", pairs / f"{index:06d}.label")
    for scan, (result, _) in zip(open_dataset(pairs), expected, strict=True):
        np.testing.assert_array_equal(scan.labels, result.labels)
        assert scan.instances is not None
        np.testing.assert_array_equal(scan.instances & 0xFFFF, result.instances)
    for index, (result, scan) in enumerate(expected):
        stem = f"{index:06d}"
        # KITTI lines: sensor frame (every box) and camera frame (the boxes camera 2 sees), 4 decimals
        velo = boxes_from_labels(read_kitti_labels(out / "label_velo" / f"{stem}.txt"), SENSOR_AXES)
        _same_boxes(velo, result.detections, atol=2e-3)
        seen = [b for b in result.detections if image_box(b, scan.calib, (1242, 375)) is not None]
        camera = boxes_from_labels(read_kitti_labels(out / "label_2" / f"{stem}.txt"), scan.calib)
        _same_boxes(camera, seen, atol=2e-3)
        # PCD: the scan's fields plus label and instance
        cloud = read_pcd(out / "pcd" / f"{stem}.pcd")
        np.testing.assert_array_equal(cloud["label"], result.labels)
        np.testing.assert_array_equal(cloud["instance"], result.instances)
        np.testing.assert_array_equal(cloud["x"], scan.points["x"])


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_resumed_run_writes_the_files_of_an_uninterrupted_one(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, config = real_data / "kitti_object", _labels_config(tmp_path)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    args = ("--format", "semantickitti", "kitti", "pcd")
    assert _label(source, whole, config, *args) == 0
    assert _label(source, resumed, config, *args) == 0
    # what a kill leaves: a half-written temporary file, a frame whose files are gone, a damaged file
    (resumed / "labels" / ".000001.label.x.tmp").write_bytes(b"\0" * 10)
    for path in resumed.rglob("000001.*"):
        path.unlink()
    damaged = resumed / "labels" / "000002.label"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    capsys.readouterr()
    assert _label(source, resumed, config, *args) == 0
    assert "3 of 3 frames labelled (2 now, 1 kept" in capsys.readouterr().out
    whole_files, resumed_files = _files(whole), _files(resumed)
    manifest_whole = json.loads(whole_files.pop("manifest.json"))
    manifest_resumed = json.loads(resumed_files.pop("manifest.json"))
    assert resumed_files == whole_files
    assert [r["files"] for r in manifest_resumed["frames"]] == [r["files"] for r in manifest_whole["frames"]]


def test_shards_partition_the_frames(real_data: Path, tmp_path: Path) -> None:
    source, config = real_data / "kitti_object", _labels_config(tmp_path)
    assert _label(source, tmp_path / "all", config, "--format", "kitti") == 0
    indices = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}"
        assert _label(source, out, config, "--format", "kitti", "--shard", f"{k}/2") == 0
        frames = json.loads((out / "manifest.json").read_text())["frames"]
        indices.append([r["index"] for r in frames])
        for record in frames:
            for name in record["files"]:
                assert (out / name).read_bytes() == (tmp_path / "all" / name).read_bytes()
    assert indices == [[0, 2], [1]]


def test_batched_network_calls_write_the_files_of_one_scan_at_a_time(real_data: Path, tmp_path: Path) -> None:
    """``--batch``: the shipped model on two real scans at once labels them as it does one by one (on the CPU the
    batched kernels give the same classes here; the GPU's may differ in rounding, which the manifest ignores).
    """
    source = real_data / "kitti_odometry_00"
    scans = list(open_dataset(source))[:2]
    pipeline = Pipeline(pipeline_config(None, None, "cpu"))
    one_by_one = [pipeline.process(scan.points, 0.0, track=False) for scan in scans]
    together = pipeline.process_batch([scan.points for scan in scans], [0.0, 0.0])
    for single, batched in zip(one_by_one, together, strict=True):
        assert (single.labels == batched.labels).mean() > 0.999
        assert (single.labels > 0).sum() > 1000  # the model found objects: the comparison is not of empty labels
        _same_boxes(batched.detections, single.detections, atol=1e-3)
        assert batched.timings_ms["segmentation"] > 0
        assert set(batched.timings_ms) >= {"projection", "back_projection", "detection", "total"}
    with pytest.raises(SystemExit) as refused:  # argparse's one usage line
        main(["label", str(source), "--out", str(tmp_path / "b"), "--batch", "0", "--quiet"])
    assert refused.value.code == 2


def test_other_settings_and_bad_arguments_are_refused_in_one_line(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, config, out = real_data / "kitti_object", _labels_config(tmp_path), tmp_path / "out"
    assert _label(source, out, config, "--format", "kitti", "--frames", "1") == 0
    capsys.readouterr()
    assert _label(source, out, config, "--format", "pcd", "--frames", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "other settings (formats)" in err[0]
    assert _label(source, out, config, "--shard", "0/2") == 2
    assert "--shard 0/2" in capsys.readouterr().err
    assert main(["label", str(source), "--out", str(out), "--weights", "w.pt", "--config", str(config)]) == 2
    assert "segmenter.kind is 'labels'" in capsys.readouterr().err


def test_the_mcap_opens_with_rosbags_and_perception_info(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rosbags.highlevel import AnyReader

    from perception_ws.io.bag import BagWriter
    from perception_ws.nodes.record import register_project_types

    out = tmp_path / "out"
    source = real_data / "kitti_odometry_00"
    args = ["label", str(source), "--out", str(out), "--format", "mcap", "semantickitti", "--frames", "2", "--quiet"]
    assert main(args) == 0  # the shipped model, on CPU
    bag = out / "labels.mcap"
    store = BagWriter(tmp_path / "unused").typestore
    register_project_types(store)
    counts: dict[str, int] = {}
    boxes: dict[str, list[list[tuple[float, float]]]] = {
        "/perception/detections": [],
        "/perception/vision_detections": [],
    }
    with AnyReader([bag], default_typestore=store) as reader:
        for connection, _, raw in reader.messages():
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
            message = reader.deserialize(raw, connection.msgtype)
            if connection.topic == "/perception/labelled_points":
                names = [f.name for f in message.fields]
                assert {"x", "label", "instance"} <= set(names)
            elif connection.topic == "/perception/detections":
                boxes[connection.topic].append([(d.center.x, d.size.x) for d in message.detections])
            elif connection.topic == "/perception/vision_detections":
                vision = [(d.bbox.center.position.x, d.bbox.size.x) for d in message.detections]
                boxes[connection.topic].append(vision)
    assert counts == {t: 2 for t in ("/perception/labelled_points", "/perception/detections",
                                     "/perception/vision_detections", "/perception/tracks",
                                     "/perception/markers")}  # fmt: skip
    # the vision_msgs detections are the project's boxes, frame by frame
    assert boxes["/perception/vision_detections"] == boxes["/perception/detections"]
    # the labelled clouds are the pipeline's labels: the same as the .label files of the same run
    dataset = open_dataset(bag)
    assert len(dataset) == 2
    for index in range(2):
        raw = np.fromfile(out / "labels" / f"{index:06d}.label", dtype="<u4")
        kitti3_raw = np.asarray(RAW_IDS["kitti3"], dtype=np.uint32)
        np.testing.assert_array_equal(kitti3_raw[dataset[index].points["label"]], raw & 0xFFFF)
        np.testing.assert_array_equal(dataset[index].points["instance"], raw >> 16)
    capsys.readouterr()
    assert main(["info", str(bag)]) == 0
    assert "2 frame(s)" in capsys.readouterr().out


def test_viz_predict_draws_the_model_above_the_ground_truth(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    from perception_ws.labelling.predict_view import compose_prediction

    source = real_data / "kitti_object"
    config = pipeline_config(None, None, None)  # the node's defaults: the shipped model on CPU
    model, truth = compose_prediction(source, config, frame=0, fov_deg=90.0)
    assert model.figure.get_suptitle().startswith("model: ")
    assert truth.figure.get_suptitle().startswith("ground truth: ")
    titles = [ax.get_title(loc="left") for ax in model.figure.axes]
    assert "range image 64×512: labels (kitti3)" in titles
    assert set(model.panels) == set(truth.panels) == {"camera", "range_labels", "range_intensity", "bev"}
    # the same scan, the same layout; the labels drawn differ
    pictures = [np.asarray(f.figure.canvas.buffer_rgba()) for f in (model, truth)]
    left, top, right, bottom = model.panels["range_labels"]
    labels = [p[top:bottom, left:right] for p in pictures]
    assert not np.array_equal(*labels)
    left, top, right, bottom = model.panels["range_intensity"]
    np.testing.assert_array_equal(*(p[top:bottom, left:right] for p in pictures))
    # the CLI writes both, one above the other; --weights without --predict is refused
    out = tmp_path / "predict.png"
    assert main(["viz", str(source), "--predict", "--fov", "90", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size == (model.size[0], model.size[1] + truth.size[1])
    capsys.readouterr()
    assert main(["viz", str(source), "--weights", "w.pt", "--out", str(out)]) == 2
    assert (
        capsys.readouterr().err.strip() == "perception viz: error: viz: --weights and --config only go with --predict"
    )


@pytest.mark.dds
def test_the_mcap_replays_through_perception_replay(
    real_data: Path, tmp_path: Path, local_env: dict[str, str], ros_context: object
) -> None:
    import subprocess
    import sys
    import time

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from perception_ws.cloud import from_msg
    from perception_ws.msg import Detection3DArray

    source, config, out = real_data / "kitti_object", _labels_config(tmp_path), tmp_path / "out"
    assert _label(source, out, config, "--format", "mcap", "semantickitti") == 0
    node = Node("label_replay_listener", context=ros_context)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    detections: list[Detection3DArray] = []
    clouds: list[np.ndarray] = []
    node.create_subscription(Detection3DArray, "/perception/detections", detections.append, qos)
    node.create_subscription(
        PointCloud2, "/perception/labelled_points", lambda m: clouds.append(from_msg(m).reshape(-1)), qos
    )
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    command = [sys.executable, "-m", "perception_ws.cli", "replay", str(out / "labels.mcap"), "--rate", "2"]
    child = subprocess.Popen(
        [*command, "--wait-subscribers", "20"],
        env=local_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40.0
        while (len(clouds) < len(FRAMES) or len(detections) < len(FRAMES)) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        output, _ = child.communicate(timeout=20.0)
    finally:
        child.kill()
        node.destroy_node()
    assert child.returncode == 0, output
    assert len(clouds) == len(detections) == len(FRAMES), output
    manifest = json.loads((out / "manifest.json").read_text())
    for index, (cloud, array) in enumerate(zip(clouds, detections, strict=True)):
        raw = np.fromfile(out / "labels" / f"{index:06d}.label", dtype="<u4")
        np.testing.assert_array_equal(cloud["instance"], raw >> 16)
        assert len(array.detections) == sum(manifest["frames"][index]["objects"].values())
