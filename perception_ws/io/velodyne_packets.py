"""Velodyne raw data packets (``velodyne_msgs/msg/VelodyneScan``) decoded into points.

Drivers can record a spinning Velodyne as its raw UDP data packets instead of clouds (ROS's ``velodyne_driver``,
Autoware's nebula); a bag of those holds ``VelodyneScan`` messages, a revolution each (or the part of it the
driver keeps: the VLP-32C sample's messages hold the front half-turn), whose packets this module turns into the
points a decoder such as ``velodyne_pointcloud`` would publish. Layout of a 1206-byte data packet
(the sensors' user manuals): 12 blocks of 100 bytes (flag ``0xFFEE``, azimuth in 0.01 degree, then 32 returns of a
2-byte distance and a 1-byte calibrated reflectivity), a 4-byte timestamp, the return mode (``0x37`` strongest,
``0x38`` last, ``0x39`` dual) and the product id, which names the sensor.

- VLP-16 (``0x22``): a block holds two firings of the 16 lasers, 55.296 us apart, lasers 2.304 us apart.
- VLP-32C (``0x28``): a block holds one firing of the 32 lasers, fired in pairs 2.304 us apart, and each laser
  looks a fixed azimuth off the block's (``VLP32C_AZIMUTH_OFFSETS_DEG``).

A point's azimuth is the block's, advanced by the share of the turn the sensor made until that laser fired
(interpolated to the next block's azimuth). In dual-return mode consecutive blocks pair up (same firing, the two
returns); a second return equal to the first is dropped. Returns with distance 0 (no echo) are dropped. Axes are
ROS's: x forward (azimuth 0), y left, z up; the azimuth grows clockwise seen from above, so ``y = -d cos(e) sin(a)``.

Fields of the points: ``x y z intensity`` (float32; the reflectivity 0..255), ``ring`` (uint16, 0 = lowest beam,
as ``velodyne_pointcloud`` numbers it) and ``time`` (float32 seconds since the scan's first packet).
:func:`decode_reference` is the plain per-return loop the vectorised :func:`decode_packets` is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from perception_ws.calib.sensors import SensorModel, get_sensor
from perception_ws.errors import DatasetError

#: the message types, with their definitions (velodyne_msgs as released: what a bag without embedded
#: definitions needs to be read).
SCAN_TYPE = "velodyne_msgs/msg/VelodyneScan"
PACKET_TYPE = "velodyne_msgs/msg/VelodynePacket"
MESSAGE_DEFINITIONS = {
    PACKET_TYPE: "builtin_interfaces/Time stamp\nuint8[1206] data\n",
    SCAN_TYPE: "std_msgs/Header header\nvelodyne_msgs/VelodynePacket[] packets\n",
}

PACKET_BYTES = 1206
BLOCKS = 12
BLOCK_BYTES = 100
RETURNS_PER_BLOCK = 32
BLOCK_FLAG = (0xFF, 0xEE)
DUAL_RETURN = 0x39
RETURN_MODES = {0x37: "strongest", 0x38: "last", DUAL_RETURN: "dual"}
#: firing timing of both sensors (manuals): one firing cycle, and one laser (VLP-16) or laser pair (VLP-32C)
CYCLE_US = 55.296
LASER_US = 2.304

#: VLP-32C: each laser's azimuth relative to its block's, by laser id (VLP-32C user manual, degrees).
VLP32C_AZIMUTH_OFFSETS_DEG = (
    1.4, -4.2, 1.4, -1.4, 1.4, -1.4, 4.2, -1.4, 1.4, -4.2, 1.4, -1.4, 4.2, -1.4, 4.2, -1.4,
    1.4, -4.2, 1.4, -4.2, 4.2, -1.4, 1.4, -1.4, 1.4, -1.4, 1.4, -4.2, 4.2, -1.4, 1.4, -1.4,
)  # fmt: skip

POINT_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2"), ("time", "<f4")]
)


@dataclass(frozen=True)
class PacketLayout:
    """How one sensor fills a block's 32 returns."""

    sensor: str
    #: metres per distance unit
    distance_unit_m: float
    #: per return slot of a block (32): laser id, firing time after the block's start (us)
    lasers: np.ndarray
    times_us: np.ndarray
    #: how long a block's firings last (us): the azimuth step to the next block is made over that time
    block_us: float
    #: per laser id: azimuth offset (degrees)
    azimuth_offsets_deg: np.ndarray


def _layouts() -> dict[int, PacketLayout]:
    slots = np.arange(RETURNS_PER_BLOCK)
    vlp16 = PacketLayout(
        sensor="vlp16",
        distance_unit_m=0.002,
        lasers=slots % 16,
        times_us=(slots // 16) * CYCLE_US + (slots % 16) * LASER_US,
        block_us=2 * CYCLE_US,
        azimuth_offsets_deg=np.zeros(16),
    )
    vlp32c = PacketLayout(
        sensor="vlp32c",
        distance_unit_m=0.004,
        lasers=slots,
        times_us=(slots // 2) * LASER_US,
        block_us=CYCLE_US,
        azimuth_offsets_deg=np.array(VLP32C_AZIMUTH_OFFSETS_DEG),
    )
    return {0x22: vlp16, 0x28: vlp32c}


#: product id (packet byte 1205) -> layout; other Velodyne products are refused by name.
LAYOUTS = _layouts()
#: product ids named in refusals (the user manuals')
KNOWN_PRODUCTS = {0x21: "HDL-32E", 0x22: "VLP-16", 0x24: "Puck Hi-Res", 0x28: "VLP-32C"}


@dataclass(frozen=True)
class DecodedScan:
    """One scan's points (``POINT_DTYPE``), the sensor that recorded it and its return mode."""

    points: np.ndarray
    sensor: str
    return_mode: str


def packet_array(packets: list[np.ndarray] | np.ndarray, where: str) -> np.ndarray:
    """(P, 1206) uint8 from a message's packet buffers; one line naming ``where`` if they are not data packets."""
    data = np.asarray(packets if isinstance(packets, np.ndarray) else [np.asarray(p) for p in packets])
    if data.ndim != 2 or data.shape[1] != PACKET_BYTES or len(data) == 0:
        raise DatasetError(f"{where}: expected Velodyne data packets of {PACKET_BYTES} bytes, got shape {data.shape}")
    return data.astype(np.uint8, copy=False)


def decode_message(message: Any, where: str) -> DecodedScan:
    """The points of one deserialized ``VelodyneScan`` message (the bag reader's and the replay's way in)."""
    return decode_packets([packet.data for packet in message.packets], where)


def _blocks(data: np.ndarray) -> np.ndarray:
    """(P * 12, 100) the packets' data blocks, in packet order (a view)."""
    return data[:, : BLOCKS * BLOCK_BYTES].reshape(-1, BLOCK_BYTES)


def _header(data: np.ndarray, where: str) -> tuple[PacketLayout, int]:
    """The scan's layout and return mode, from its packets' factory bytes (all packets must agree)."""
    products, modes = np.unique(data[:, 1205]), np.unique(data[:, 1204])
    if len(products) != 1 or len(modes) != 1:
        raise DatasetError(
            f"{where}: packets of several sensors or return modes in one scan (product ids "
            f"{[hex(p) for p in products]}, return modes {[hex(m) for m in modes]})"
        )
    product, mode = int(products[0]), int(modes[0])
    if product not in LAYOUTS:
        name = KNOWN_PRODUCTS.get(product, "an unknown Velodyne product")
        raise DatasetError(
            f"{where}: packets of {name} (product id {product:#04x}); only the VLP-16 (0x22) and VLP-32C (0x28) "
            "are decoded here: convert the bag to PointCloud2 with the sensor's own driver"
        )
    if mode not in RETURN_MODES:
        raise DatasetError(f"{where}: unknown return mode {mode:#04x} (expected 0x37, 0x38 or 0x39)")
    flags = _blocks(data)[:, :2]
    bad = ~((flags[:, 0] == BLOCK_FLAG[0]) & (flags[:, 1] == BLOCK_FLAG[1]))
    if bad.any():
        raise DatasetError(
            f"{where}: {int(bad.sum())} data blocks of {bad.size} lack the 0xFFEE flag: not Velodyne data packets"
        )
    return LAYOUTS[product], mode


def _block_azimuths(blocks: np.ndarray, dual: bool) -> tuple[np.ndarray, np.ndarray]:
    """(P * 12,) every block's azimuth and the step to the next firing's (degrees), in packet order."""
    azimuth = (blocks[:, 2].astype(np.float64) + 256.0 * blocks[:, 3]) / 100.0
    firings = azimuth[::2] if dual else azimuth  # a dual-return pair is one firing
    step = np.empty_like(firings)
    step[:-1] = np.mod(np.diff(firings), 360.0)
    step[-1] = step[-2] if len(step) > 1 else 0.0  # the last firing turns as the one before
    return azimuth, (np.repeat(step, 2) if dual else step)


def _ring_of_laser(model: SensorModel) -> np.ndarray:
    """Per laser id: ring number, 0 = lowest beam (the model's rows count from the highest)."""
    return (len(model.elevations_deg) - 1 - model.laser_rows).astype(np.uint16)


def decode_packets(packets: list[np.ndarray] | np.ndarray, where: str = "VelodyneScan") -> DecodedScan:
    """The points of one scan's data packets (see the module doc); ``where`` names the scan in errors."""
    data = packet_array(packets, where)
    layout, mode = _header(data, where)
    model = get_sensor(layout.sensor)
    dual = mode == DUAL_RETURN
    blocks = _blocks(data)
    azimuth, step = _block_azimuths(blocks, dual)
    returns = blocks[:, 4:].reshape(len(blocks), RETURNS_PER_BLOCK, 3)
    distance = (returns[..., 0].astype(np.float64) + 256.0 * returns[..., 1]) * layout.distance_unit_m
    lasers = layout.lasers
    point_azimuth = (
        azimuth[:, None]
        + step[:, None] * (layout.times_us / layout.block_us)[None, :]
        + layout.azimuth_offsets_deg[lasers][None, :]
    )
    firing = np.arange(len(blocks)) // 2 if dual else np.arange(len(blocks))
    time_s = (firing[:, None] * layout.block_us + layout.times_us[None, :]) * 1e-6
    keep = distance > 0
    if dual:  # the second block of a pair repeats the first where both returns are the same echo
        same = np.zeros_like(keep)
        same[1::2] = np.all(returns[1::2] == returns[0::2], axis=-1)
        keep &= ~same
    elevation = np.radians(model.elevations_deg[model.laser_rows[lasers]])[None, :]
    angle = np.radians(point_azimuth)
    flat = np.cos(elevation) * distance
    points = np.zeros(int(keep.sum()), POINT_DTYPE)
    points["x"] = (flat * np.cos(angle))[keep]
    points["y"] = (-flat * np.sin(angle))[keep]
    points["z"] = (np.sin(elevation) * distance)[keep]
    points["intensity"] = returns[..., 2][keep]
    points["ring"] = np.broadcast_to(_ring_of_laser(model)[lasers], keep.shape)[keep]
    points["time"] = time_s[keep]
    return DecodedScan(points, layout.sensor, RETURN_MODES[mode])


def decode_reference(packets: np.ndarray) -> np.ndarray:
    """:func:`decode_packets`, one return at a time (the plain reference the tests compare against)."""
    data = packet_array(packets, "reference")
    layout, mode = _header(data, "reference")
    model = get_sensor(layout.sensor)
    dual = mode == DUAL_RETURN
    rings = _ring_of_laser(model)
    blocks = [data[p, b * BLOCK_BYTES : (b + 1) * BLOCK_BYTES] for p in range(len(data)) for b in range(BLOCKS)]
    azimuths = [(int(block[2]) + 256 * int(block[3])) / 100.0 for block in blocks]
    firings = azimuths[::2] if dual else azimuths
    rows = []
    for index, block in enumerate(blocks):
        firing = index // 2 if dual else index
        following = firings[firing + 1] if firing + 1 < len(firings) else None
        if following is not None:
            step = (following - firings[firing]) % 360.0
        else:
            step = (firings[firing] - firings[firing - 1]) % 360.0 if firing else 0.0
        for slot in range(RETURNS_PER_BLOCK):
            low, high, reflectivity = (int(v) for v in block[4 + 3 * slot : 7 + 3 * slot])
            if (
                dual
                and index % 2
                and bytes(block[4 + 3 * slot : 7 + 3 * slot]) == bytes(blocks[index - 1][4 + 3 * slot : 7 + 3 * slot])
            ):
                continue
            distance = (low + 256 * high) * layout.distance_unit_m
            if distance == 0:
                continue
            laser = int(layout.lasers[slot])
            fired_us = float(layout.times_us[slot])
            azimuth = math.radians(
                azimuths[index] + step * fired_us / layout.block_us + float(layout.azimuth_offsets_deg[laser])
            )
            elevation = math.radians(float(model.elevations_deg[model.laser_rows[laser]]))
            flat = distance * math.cos(elevation)
            time_s = (firing * layout.block_us + fired_us) * 1e-6
            rows.append(
                (flat * math.cos(azimuth), -flat * math.sin(azimuth), distance * math.sin(elevation), reflectivity,
                 rings[laser], time_s)
            )  # fmt: skip
    return np.array(rows, dtype=POINT_DTYPE)
