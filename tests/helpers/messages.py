"""A real KITTI object frame as the ROS messages the fusion node takes in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from perception_ws.cloud import to_msg
from perception_ws.labels import KITTI3
from perception_ws.nodes.conversions import detections_msg
from perception_ws.nodes.image_intake import image_msg
from tests.helpers.data import box_mask, kitti_frame


def frame_messages(real_data: Path, frame: str, sec: int, bgr: bool = False) -> dict[str, Any]:
    """One KITTI object frame as the node's inputs, each stamped a few milliseconds apart."""
    scan, camera, _ = kitti_frame(real_data, frame)
    assert scan.image is not None

    def header(offset_ms: int, frame_id: str) -> Header:
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = sec, 100_000_000 + offset_ms * 1_000_000
        return header

    image = image_msg(header(12, "camera_2"), scan.image)
    if bgr:  # the same picture as a driver in OpenCV order sends it
        image = image_msg(image.header, scan.image[..., ::-1])
        image.encoding = "bgr8"
    info = CameraInfo(header=header(12, "camera_2"), **camera.to_camera_info_dict())
    mask = box_mask(real_data, frame, scan.image.shape[:2])
    mask_msg = Image(header=header(8, "camera_2"), height=mask.shape[0], width=mask.shape[1], encoding="mono8")
    mask_msg.step, mask_msg.data = mask.shape[1], mask.tobytes()
    cloud = to_msg(scan.points, header=header(0, "velodyne"))
    detections = detections_msg(cloud.header, scan.boxes, KITTI3)
    return {"scan": scan, "image": image, "info": info, "mask": mask_msg, "cloud": cloud, "detections": detections}
