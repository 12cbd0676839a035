"""The camera-fusion node over real DDS on loopback: a real KITTI frame's Image, CameraInfo, PointCloud2 and
detections with slightly different stamps come back as a painted cloud, an overlay and a mask-labelled cloud;
a bad Image is counted and the next good frame still works."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.context import Context
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from perception_ws.cloud import from_msg
from perception_ws.config import (
    FUSION_NODE_NAME,
    ConfigError,
    FusionConfig,
    descriptions,
    flatten,
    load_schema_config,
    section_key,
)
from perception_ws.errors import CalibrationError
from perception_ws.fusion import RGB_FIELD, Occlusion, paint_points, transfer_labels, unpack_rgb
from perception_ws.msg import Detection3DArray
from perception_ws.nodes.fusion_node import FusionNode
from perception_ws.nodes.qos import output_qos, sensor_input_qos
from tests.helpers.messages import frame_messages
from tests.helpers.ros import Spinner, wait_for, wait_until

# the local-DDS fixtures of the perception node's tests (a fresh domain id and log folder, its own Context)

WAIT_S = 20.0


class Outputs:
    def __init__(self, node: Any, config: FusionConfig) -> None:
        self.got: dict[str, dict[tuple[int, int], Any]] = {"painted": {}, "overlay": {}, "labelled": {}}
        for key, kind, topic in (
            ("painted", PointCloud2, config.topics.painted_cloud),
            ("overlay", Image, config.topics.overlay),
            ("labelled", PointCloud2, config.topics.mask_labelled_cloud),
        ):
            node.create_subscription(kind, topic, self._keep(key), output_qos(5))

    def _keep(self, key: str) -> Any:
        def keep(msg: Any) -> None:
            self.got[key][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

        return keep

    def result(self, sent: dict[str, Any]) -> dict[str, Any] | None:
        cloud_stamp = (sent["cloud"].header.stamp.sec, sent["cloud"].header.stamp.nanosec)
        image_stamp = (sent["image"].header.stamp.sec, sent["image"].header.stamp.nanosec)
        found = {
            "painted": self.got["painted"].get(cloud_stamp),
            "labelled": self.got["labelled"].get(cloud_stamp),
            "overlay": self.got["overlay"].get(image_stamp),
        }
        return found if all(found.values()) else None


@pytest.mark.real_data
@pytest.mark.dds
def test_real_frame_is_painted_and_overlaid_and_a_bad_image_is_counted(
    real_data: Path,
    ros_context: Context,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    calib = real_data / "kitti_object" / "calib"
    config = FusionConfig().replace(
        **{
            f"topics.{key}": f"{key}_{suffix}"
            for key in ("image", "camera_info", "cloud", "detections", "label_mask", "painted_cloud", "overlay")
        },
        **{
            "topics.mask_labelled_cloud": f"mask_labelled_{suffix}",
            "calibration.kitti_calib": str(calib / "000001.txt"),
        },
    )
    fusion = FusionNode(context=ros_context, defaults=config)
    player = rclpy.create_node("kitti_camera_player", context=ros_context)
    outputs = Outputs(player, config)
    topics, qos = config.topics, sensor_input_qos(2)
    pubs = {
        "image": player.create_publisher(Image, topics.image, qos),
        "info": player.create_publisher(CameraInfo, topics.camera_info, qos),
        "cloud": player.create_publisher(PointCloud2, topics.cloud, qos),
        "detections": player.create_publisher(Detection3DArray, topics.detections, qos),
        "mask": player.create_publisher(Image, topics.label_mask, qos),
    }

    def play(sent: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while (found := outputs.result(sent)) is None and time.monotonic() < deadline:
            for key in ("cloud", "detections", "mask", "info", "image"):  # best effort: again until answered
                pubs[key].publish(sent[key])
            wait_until(lambda: outputs.result(sent) is not None, timeout_s=1.0)
        assert found is not None, f"no fused output within {WAIT_S} s"
        return found

    try:
        with Spinner(ros_context, fusion, player):
            wait_for(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), "the fusion node")
            first = frame_messages(real_data, "000001", 1_700_000_100)
            check(first, play(first), fusion)

            bad = frame_messages(real_data, "000001", 1_700_000_101)["image"]
            bad.data = bytes(bad.data)[:-7]  # data length mismatch

            def rejected() -> bool:
                pubs["image"].publish(bad)
                return fusion.issues.counts().get("image_data_length", 0) > 0

            wait_for(rejected, "the bad image to be counted")
            assert fusion.frames_rejected() >= 1

            # the same calibration file fits frame 000001 only; the next good frame: same frame, BGR order
            second = frame_messages(real_data, "000001", 1_700_000_102, bgr=True)
            check(second, play(second), fusion)
            assert fusion.stats.processed >= 2
            assert fusion.stats.failed == 0
    finally:
        fusion.destroy_node()
        player.destroy_node()


def check(sent: dict[str, Any], got: dict[str, Any], fusion: FusionNode) -> None:
    scan = sent["scan"]
    assert got["painted"].header == sent["cloud"].header
    assert got["labelled"].header == sent["cloud"].header
    assert got["overlay"].header == sent["image"].header
    _, camera, extrinsic = kitti_frame_camera(sent)
    painted = from_msg(got["painted"])
    assert painted.dtype.names == ("x", "y", "z", "intensity", RGB_FIELD)
    expected, visible = paint_points(scan.xyz, scan.image, camera, extrinsic, occlusion=fusion.occlusion)
    assert visible.sum() > 10_000
    assert np.array_equal(unpack_rgb(painted[RGB_FIELD]), expected)
    labelled = from_msg(got["labelled"])
    mask = np.frombuffer(bytes(sent["mask"].data), dtype=np.uint8).reshape(camera.height, camera.width)
    assert fusion.occlusion == Occlusion()
    assert np.array_equal(labelled["label"], transfer_labels(scan.xyz, mask, camera, extrinsic))
    overlay = got["overlay"]
    assert (overlay.encoding, overlay.width, overlay.height) == ("rgb8", camera.width, camera.height)
    picture = np.frombuffer(bytes(overlay.data), dtype=np.uint8).reshape(camera.height, camera.width, 3)
    assert np.count_nonzero(np.any(picture != scan.image, axis=2)) > 10_000  # points and boxes drawn


def kitti_frame_camera(sent: dict[str, Any]) -> tuple[Any, Any, Any]:
    scan = sent["scan"]
    from perception_ws.calib.camera import PinholeCamera

    return scan, PinholeCamera.from_camera_info(sent["info"]), scan.calib.extrinsic()


def test_shipped_yaml_has_every_fusion_parameter_with_its_default() -> None:
    path = Path(__file__).resolve().parents[1] / "config" / "perception.yaml"
    section = yaml.safe_load(path.read_text())[section_key(FUSION_NODE_NAME)]["ros__parameters"]
    written = {f"{group}.{key}" for group, values in section.items() for key in values}
    assert written == set(flatten(FusionConfig())) == set(descriptions(FusionConfig))
    assert load_schema_config(path, FusionConfig, FUSION_NODE_NAME) == FusionConfig()
    with pytest.raises(ConfigError, match=r"calibration\.extrinsic has 9 values"):
        FusionConfig().replace(**{"calibration.extrinsic": [1.0] * 9})


@pytest.mark.dds
def test_parameters_are_declared_and_a_missing_transform_stops_the_start(ros_context: Context) -> None:
    identity = [float(v) for v in np.eye(4).ravel()]
    args = ["--ros-args", "-p", f"calibration.extrinsic:={identity}", "-p", "sync.slop_s:=0.02"]
    node = FusionNode(context=ros_context, cli_args=args)
    try:
        declared = {name: node.get_parameter(name).value for name in flatten(FusionConfig())}
        assert list(declared["calibration.extrinsic"]) == identity
        assert declared["sync.slop_s"] == 0.02
        assert node.config.sync.slop_s == 0.02
        assert np.array_equal(node.extrinsic.matrix, np.eye(4))
    finally:
        node.destroy_node()
    with pytest.raises(CalibrationError, match=r"expected 16 \(4x4\) or 12 \(3x4\) row-major"):
        FusionNode(context=ros_context, node_name="fusion_without_transform")
