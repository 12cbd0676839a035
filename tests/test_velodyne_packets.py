"""Raw Velodyne packets (velodyne_msgs/msg/VelodyneScan) decoded into points, checked against the clouds the
sensors' driver published from the same packets (the PCDs beside the real raw-packet bags).

Tolerances come from that comparison (2026-12-07): every decoded range and elevation equals the driver's; the
azimuths differ by the drivers' interpolation inside a block (VLP-16 median 0.0004 deg, VLP-32C up to ~0.1 deg on
the last-firing lasers), so 99 % of the driver's points have a decoded point within 2.1 cm (VLP-16) and 2.7 cm
(VLP-32C), the farthest 6.6 / 4.7 cm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from perception_ws.adapt.sensor_profile import estimate_profile, first_scans
from perception_ws.calib.sensors import get_sensor
from perception_ws.errors import DatasetError
from perception_ws.io import load, open_dataset
from perception_ws.io.velodyne_packets import (
    BLOCK_BYTES,
    BLOCKS,
    PACKET_BYTES,
    POINT_DTYPE,
    decode_packets,
    decode_reference,
)

pytestmark = pytest.mark.real_data

#: (sample folder, the message of its bag the driver's PCD was made from (the PCD is named by its bag time), PCD)
SAMPLES = {
    "vlp16": (3, "1673400472138016708.pcd"),
    "vlp32": (0, "1713492677464078412.pcd"),
}


def _bag(real_data: Path, sample: str) -> Path:
    return next(p for p in (real_data / sample).iterdir() if p.is_dir())


def _packets(real_data: Path, sample: str, message: int) -> np.ndarray:
    """(P, 1206) the data packets of one VelodyneScan of the sample's bag, read with rosbags directly."""
    from rosbags.highlevel import AnyReader

    from perception_ws.io.bag import _cloud_typestore

    with AnyReader([_bag(real_data, sample)], default_typestore=_cloud_typestore()) as reader:
        raw = [reader.deserialize(data, c.msgtype) for c, _, data in reader.messages()][message]
    return np.stack([np.asarray(packet.data) for packet in raw.packets])


def _xyz(points: np.ndarray) -> np.ndarray:
    return np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)


@pytest.mark.parametrize("sample", ["vlp16", "vlp32"])
def test_the_vectorised_decoder_equals_the_plain_loop(real_data: Path, sample: str) -> None:
    packets = _packets(real_data, sample, 0)
    decoded = decode_packets(packets).points
    reference = decode_reference(packets)
    assert decoded.dtype == reference.dtype == POINT_DTYPE
    assert len(decoded) == len(reference) > 10_000
    for name in POINT_DTYPE.names or ():
        assert np.array_equal(decoded[name], reference[name]), name


@pytest.mark.parametrize(("sample", "sensor", "mode"), [("vlp16", "vlp16", "dual"), ("vlp32", "vlp32c", "strongest")])
def test_decoded_points_are_the_drivers_points(real_data: Path, sample: str, sensor: str, mode: str) -> None:
    message, pcd = SAMPLES[sample]
    decoded = decode_packets(_packets(real_data, sample, message))
    driver = load(real_data / sample / pcd).points
    assert (decoded.sensor, decoded.return_mode) == (sensor, mode)
    assert abs(len(decoded.points) - len(driver)) <= 0.01 * len(driver)
    ours, theirs = _xyz(decoded.points), _xyz(driver)
    gap, nearest = cKDTree(ours).query(theirs)
    assert np.percentile(gap, 99) < 0.03
    assert gap.max() < 0.08
    # the same ranges and beams: only the azimuth interpolation inside a block differs
    matched = ours[nearest]
    ranges = np.linalg.norm(matched, axis=1), np.linalg.norm(theirs, axis=1)
    assert np.percentile(np.abs(ranges[0] - ranges[1]), 90) < 1e-3
    elevation = [np.degrees(np.arcsin(xyz[:, 2] / r)) for xyz, r in zip((matched, theirs), ranges, strict=True)]
    assert np.percentile(np.abs(elevation[0] - elevation[1]), 99) < 1e-3
    if "channel" in (driver.dtype.names or ()):  # the VLP-16 driver's ring numbering is ours
        assert np.mean(decoded.points["ring"][nearest] == driver["channel"]) > 0.999
        assert np.mean(decoded.points["intensity"][nearest] == driver["intensity"]) > 0.95
    # every ring lies on its datasheet beam: ring r (0 = lowest) at the r-th elevation from the bottom
    model = get_sensor(sensor)
    bottom_up = np.sort(model.elevations_deg)
    ours_elevation = np.degrees(np.arcsin(ours[:, 2] / np.linalg.norm(ours, axis=1)))
    rings = np.unique(decoded.points["ring"])
    assert len(rings) >= model.height - 1  # the VLP-16 scan's lowest beam holds no return
    for ring in rings:
        on_ring = ours_elevation[decoded.points["ring"] == ring]
        assert np.abs(on_ring - bottom_up[ring]).max() < 1e-3, ring
    # both turn at 10 Hz (0.2 deg a firing cycle); a VLP-16 message is one turn, a message of this VLP-32C bag
    # (as its driver's PCD) only the front half-turn, 265 -> 95 deg through 0: 50 ms of packets
    span_s = {"vlp16": 0.1, "vlp32c": 0.05}[sensor]
    assert abs(float(decoded.points["time"].max()) - span_s) < 0.005


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    packets=st.integers(1, 6),
    product=st.sampled_from([0x22, 0x28]),
    mode=st.sampled_from([0x37, 0x38, 0x39]),
)
def test_any_well_formed_packets_decode_as_the_loop_does(seed: int, packets: int, product: int, mode: int) -> None:
    """Random returns and azimuths (wrapping past 360, repeated, backwards): finite points, equal to the loop's."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(packets, PACKET_BYTES), dtype=np.uint8)
    blocks = data[:, : BLOCKS * BLOCK_BYTES].reshape(packets, BLOCKS, BLOCK_BYTES)
    blocks[..., 0], blocks[..., 1] = 0xFF, 0xEE
    azimuth = rng.integers(0, 36000, size=(packets, BLOCKS))  # raw hundredths of a degree, any order
    blocks[..., 2], blocks[..., 3] = azimuth % 256, azimuth // 256
    data[:, 1204], data[:, 1205] = mode, product
    decoded = decode_packets(data).points
    reference = decode_reference(data)
    assert len(decoded) == len(reference)
    for name in POINT_DTYPE.names or ():
        assert np.array_equal(decoded[name], reference[name]), name
    xyz = _xyz(decoded)
    assert np.isfinite(xyz).all()
    assert (np.linalg.norm(xyz, axis=1) <= 65535 * 0.004 + 1e-3).all()  # the largest distance a packet can hold


def test_packets_it_cannot_decode_are_one_line_naming_why(real_data: Path) -> None:
    packets = _packets(real_data, "vlp32", 0)
    hdl32 = packets.copy()
    hdl32[:, 1205] = 0x21
    with pytest.raises(DatasetError, match=r"scan 7: packets of HDL-32E \(product id 0x21\); only the VLP-16"):
        decode_packets(hdl32, "scan 7")
    mixed = packets.copy()
    mixed[5, 1205] = 0x22
    with pytest.raises(DatasetError, match="packets of several sensors or return modes in one scan"):
        decode_packets(mixed)
    unflagged = packets.copy()
    unflagged[3, 100] = 0
    with pytest.raises(DatasetError, match="1 data blocks of 912 lack the 0xFFEE flag"):
        decode_packets(unflagged)
    with pytest.raises(DatasetError, match="expected Velodyne data packets of 1206 bytes, got shape"):
        decode_packets(packets[:, :512])
    unknown_mode = packets.copy()
    unknown_mode[:, 1204] = 0x40
    with pytest.raises(DatasetError, match="unknown return mode 0x40"):
        decode_packets(unknown_mode)


@pytest.mark.parametrize(("sample", "messages", "sensor"), [("vlp16", 4, "vlp16"), ("vlp32", 5, "vlp32c")])
def test_a_raw_packet_bag_reads_as_scans(real_data: Path, sample: str, messages: int, sensor: str) -> None:
    folder = _bag(real_data, sample)
    for path in (folder, next(folder.glob("*.db3"))):
        dataset = open_dataset(path)
        assert len(dataset) == messages
        assert any("raw Velodyne packets" in note and "decoded here" in note for note in dataset.notes)
        scans = list(dataset)
        assert [scan.sensor for scan in scans] == [sensor] * messages
        assert scans[1].points.tobytes() == dataset[1].points.tobytes()  # a pass and an index read the same
    with pytest.raises(DatasetError, match=f"holds {messages} frames; use perception_ws.io.open_dataset"):
        load(folder)
    message, _ = SAMPLES[sample]
    assert dataset[message].points.tobytes() == decode_packets(_packets(real_data, sample, message)).points.tobytes()


def test_a_bag_of_packets_it_cannot_decode_names_the_bag_topic_and_message(real_data: Path, tmp_path: Path) -> None:
    from rosbags.typesys import get_types_from_msg

    from perception_ws.io.bag import BagWriter
    from perception_ws.io.velodyne_packets import MESSAGE_DEFINITIONS, PACKET_TYPE, SCAN_TYPE

    packets = _packets(real_data, "vlp32", 0)
    path = tmp_path / "hdl32"
    with BagWriter(path) as writer:
        for name, text in MESSAGE_DEFINITIONS.items():
            writer.typestore.register(get_types_from_msg(text, name))
        types = writer.typestore.types
        stamp = types["builtin_interfaces/msg/Time"](sec=1, nanosec=0)
        header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="v")
        for index, product in enumerate((0x28, 0x21)):  # the second scan: an HDL-32E's product id
            data = packets.copy()
            data[:, 1205] = product
            rows = [types[PACKET_TYPE](stamp=stamp, data=row) for row in data]
            writer.write("/velodyne_packets", SCAN_TYPE, types[SCAN_TYPE](header=header, packets=rows), 1 + index)
    dataset = open_dataset(path)
    assert len(dataset) == 2
    assert dataset[0].points.tobytes() == decode_packets(packets).points.tobytes()  # written and read back whole
    expected = rf"{path}: topic /velodyne_packets message 1: .*HDL-32E \(product id 0x21\)"
    with pytest.raises(DatasetError, match=expected):
        dataset[1]


def test_the_sensor_profile_of_a_raw_packet_bag(real_data: Path) -> None:
    """What `perception adapt --target BAG` starts from: the beam table from the decoded ring field."""
    bag = _bag(real_data, "vlp32")
    profile = estimate_profile(first_scans(open_dataset(bag), 5, str(bag)))
    assert profile.provenance["beam_table"] == "ring field 'ring'"
    assert np.abs(profile.sensor.elevations_deg - get_sensor("vlp32c").elevations_deg).max() < 0.01
    heights = profile.mounting.per_scan_m
    assert len(heights) == 5
    assert max(heights) - min(heights) < 0.01  # the same floor under the sensor in each scan
    assert profile.coverage.fov_deg == 190.0  # each message holds the front half-turn only


def test_a_bag_without_scans_says_which_topics_it_has(tmp_path: Path) -> None:
    from perception_ws.io.bag import BagWriter

    path = tmp_path / "chatter"
    with BagWriter(path) as writer:
        string = writer.typestore.types["std_msgs/msg/String"]
        writer.write("/chatter", "std_msgs/msg/String", string(data="hi"), 1)
    with pytest.raises(DatasetError, match=r"holds no scans \(holds no sensor_msgs/msg/PointCloud2 topic .*/chatter"):
        first_scans(open_dataset(path), 3, str(path))
