"""Checks of incoming Image and CameraInfo messages, each failure with one reason and a clear detail.

Like :mod:`.intake` for clouds: a bad message is refused in the subscription callback (and counted by
reason), so it never reaches the pairing or the worker. Decoding views the message buffer; colour
images come out as RGB uint8 (H, W, 3), label masks as integer class ids (H, W).
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from perception_ws.calib.camera import PinholeCamera
from perception_ws.errors import CalibrationError
from perception_ws.nodes.intake import RejectedFrameError

#: colour encodings accepted (sensor_msgs/image_encodings names) -> channels.
COLOR_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
#: label-mask encodings accepted -> pixel dtype (little-endian; is_bigendian flips it).
MASK_ENCODINGS: dict[str, str] = {"mono8": "u1", "8UC1": "u1", "mono16": "u2", "16UC1": "u2"}

#: why an Image or CameraInfo was refused (the keys of the diagnostics counters).
IMAGE_REJECT_REASONS: dict[str, str] = {
    "image_encoding": "the image encoding is not one of COLOR_ENCODINGS",
    "image_empty": "width or height is 0",
    "image_step": "step is smaller than width x bytes per pixel",
    "image_data_length": "data length differs from step x height",
    "mask_encoding": "the label mask encoding is not one of MASK_ENCODINGS",
    "mask_empty": "the label mask's width or height is 0",
    "mask_step": "the label mask's step is smaller than width x bytes per pixel",
    "mask_data_length": "the label mask's data length differs from step x height",
    "bad_camera_info": "CameraInfo is not a usable calibration (sizes, focal length, matrices)",
}


def _pixels(msg: Any, what: str, dtype: np.dtype) -> np.ndarray:
    """(H, W, C) view of an Image's data; ``dtype`` is one channel's (its itemsize x C = bytes per pixel)."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise RejectedFrameError(f"{what}_empty", f"{what} is {width}x{height} pixels; expected both > 0")
    per_pixel = dtype.itemsize  # a sub-array dtype's itemsize covers all its channels
    if step < width * per_pixel:
        raise RejectedFrameError(
            f"{what}_step",
            f"{what} step {step} bytes < width {width} x {per_pixel} bytes per pixel ({msg.encoding})",
        )
    have = len(msg.data)
    if have != step * height:
        raise RejectedFrameError(
            f"{what}_data_length",
            f"{what} data has {have} bytes; expected step {step} x height {height} = {step * height}",
        )
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)[:, : width * per_pixel]
    return np.ascontiguousarray(rows).view(dtype.base).reshape(height, width, -1)


def accept_image(msg: Any) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a colour or mono8 Image, or :class:`RejectedFrameError`."""
    encoding = str(msg.encoding)
    channels = COLOR_ENCODINGS.get(encoding)
    if channels is None:
        raise RejectedFrameError(
            "image_encoding", f"encoding {encoding!r}; expected one of {', '.join(COLOR_ENCODINGS)}"
        )
    px = _pixels(msg, "image", np.dtype((np.uint8, (channels,))))
    if channels == 1:
        return np.repeat(px, 3, axis=2)
    rgb = px[..., :3]
    return np.ascontiguousarray(rgb[..., ::-1] if encoding.startswith("bgr") else rgb)


def accept_mask(msg: Any) -> np.ndarray:
    """Integer class ids (H, W) of a mono8 / mono16 label mask, or :class:`RejectedFrameError`."""
    encoding = str(msg.encoding)
    code = MASK_ENCODINGS.get(encoding)
    if code is None:
        raise RejectedFrameError("mask_encoding", f"encoding {encoding!r}; expected one of {', '.join(MASK_ENCODINGS)}")
    dtype = np.dtype((">" if msg.is_bigendian else "<") + code)
    return _pixels(msg, "mask", dtype)[..., 0].astype(np.int64)


def accept_camera_info(msg: Any) -> PinholeCamera:
    """The camera of a CameraInfo, or :class:`RejectedFrameError` saying why it is not usable."""
    try:
        return PinholeCamera.from_camera_info(msg)
    except CalibrationError as err:
        raise RejectedFrameError("bad_camera_info", str(err)) from None


def image_msg(header: Any, rgb: np.ndarray) -> Image:
    """An rgb8 Image of ``rgb`` (H, W, 3) uint8 with ``header``."""
    height, width = rgb.shape[:2]
    msg = Image(
        check_fields=True, header=header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3
    )
    data = array.array("B")  # one memcpy; see cloud.to_msg
    data.frombytes(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
    msg.data = data
    return msg
