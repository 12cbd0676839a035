"""Bags through rosbags: our writer, ROS 1 bags, the real raw-packet bags, corrupt bags."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.typesys import Stores, get_typestore

from perception_ws.cloud import as_structured, pack
from perception_ws.errors import CloudFormatError, DatasetError
from perception_ws.io import load, mcap_stream, open_dataset
from perception_ws.io.bag import BagWriter, cdr_header_stamp, open_bag, write_bag
from perception_ws.io.mcap_stream import McapStreamWriter, read_cut_mcap
from perception_ws.io.registry import find_reader
from perception_ws.scan import Scan

pytestmark = pytest.mark.real_data

STAMP0 = 1_317_000_000_123_456_789


@pytest.fixture(scope="module")
def kitti_scans(real_data: Path) -> list[Scan]:
    scans = []
    for i, frame in enumerate(("000094", "000095", "000198")):
        raw = np.fromfile(real_data / "kitti_odometry_00" / f"{frame}.bin", dtype=np.float32).reshape(-1, 4)
        scans.append(
            Scan(points=as_structured(raw), name=frame, frame_id="velo_link", stamp_ns=STAMP0 + i * 100_000_007)
        )
    return scans


def assert_same_scan(got: Scan, want: Scan) -> None:
    assert got.points.dtype == want.points.dtype
    assert got.points.tobytes() == want.points.tobytes()  # bit-exact
    assert (got.stamp_ns, got.frame_id) == (want.stamp_ns, want.frame_id)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_real_kitti_scans_round_trip_bit_exact(tmp_path: Path, kitti_scans: list[Scan], storage: str) -> None:
    path = write_bag(tmp_path / "drive", kitti_scans, topic="/kitti/velo", storage=storage)  # type: ignore[arg-type]
    assert sorted(p.suffix for p in path.iterdir()) == sorted([".yaml", ".mcap" if storage == "mcap" else ".db3"])
    assert [p.name for p in tmp_path.iterdir()] == ["drive"], "no temporary folder may be left behind"
    assert find_reader(path).name == "bag"
    with open_bag(path) as dataset:
        assert len(dataset) == 3
        assert dataset.topic == "/kitti/velo"
        assert dataset.notes == []
        for i in (2, 0, -2):  # random access, in any order
            assert_same_scan(dataset[i], kitti_scans[i])
        assert dataset[1].name == "/kitti/velo#1"
        streamed = list(dataset)
        assert len(streamed) == 3
        for got, want in zip(streamed, kitti_scans, strict=True):
            assert_same_scan(got, want)
        assert [s.stamp_ns for s in dataset[1:]] == [kitti_scans[1].stamp_ns, kitti_scans[2].stamp_ns]
        with pytest.raises(IndexError):
            dataset[3]
    assert dataset[0].points.flags.writeable  # reopened on demand after close()


def test_bare_storage_file_and_folder_without_metadata(tmp_path: Path, kitti_scans: list[Scan]) -> None:
    path = write_bag(tmp_path / "bag", kitti_scans[:2])
    mcap = next(path.glob("*.mcap"))
    assert len(open_dataset(mcap)) == 2
    (path / "metadata.yaml").unlink()
    dataset = open_dataset(path)
    assert len(dataset) == 2
    assert_same_scan(dataset[1], kitti_scans[1])


def test_other_topics_are_listed_in_notes(tmp_path: Path, kitti_scans: list[Scan]) -> None:
    with BagWriter(tmp_path / "mixed", storage="sqlite3") as bag:
        string = bag.typestore.types["std_msgs/msg/String"]
        for i, scan in enumerate(kitti_scans[:2]):
            bag.write_scan("/points", scan)
            bag.write("/chatter", "std_msgs/msg/String", string(data=f"hello {i}"), STAMP0 + i)
        bag.write_scan("/points_raw", kitti_scans[2])
    dataset = open_bag(tmp_path / "mixed")
    assert dataset.topic == "/points"
    assert len(dataset) == 2
    assert any("reading /points, the one with the most messages" in note for note in dataset.notes)
    assert (
        "skipped topic /chatter (std_msgs/msg/String, 2 messages): not a sensor_msgs/msg/PointCloud2" in dataset.notes
    )
    assert any(
        note.startswith("skipped topic /points_raw (sensor_msgs/msg/PointCloud2, 1 messages)") for note in dataset.notes
    )
    other = open_bag(tmp_path / "mixed", topic="/points_raw")
    assert len(other) == 1
    assert_same_scan(other[0], kitti_scans[2])
    with pytest.raises(
        DatasetError, match="topic '/chatter' holds std_msgs/msg/String, not sensor_msgs/msg/PointCloud2"
    ):
        open_bag(tmp_path / "mixed", topic="/chatter")
    with pytest.raises(DatasetError, match=r"no topic '/nope'; PointCloud2 topics: \['/points', '/points_raw'\]"):
        open_bag(tmp_path / "mixed", topic="/nope")


def test_ros1_bag_is_read(tmp_path: Path, kitti_scans: list[Scan]) -> None:
    typestore = get_typestore(Stores.ROS1_NOETIC)
    types = typestore.types
    path = tmp_path / "drive.bag"
    with Ros1Writer(path) as bag:
        connection = bag.add_connection("/velodyne_points", "sensor_msgs/msg/PointCloud2", typestore=typestore)
        for seq, scan in enumerate(kitti_scans[:2]):
            packed = pack(scan.points)
            assert scan.stamp_ns is not None
            message = types["sensor_msgs/msg/PointCloud2"](
                header=types["std_msgs/msg/Header"](
                    seq=seq,
                    stamp=types["builtin_interfaces/msg/Time"](
                        sec=scan.stamp_ns // 10**9, nanosec=scan.stamp_ns % 10**9
                    ),
                    frame_id=scan.frame_id,
                ),
                height=packed.height,
                width=packed.width,
                fields=[
                    types["sensor_msgs/msg/PointField"](
                        name=f.name, offset=f.offset, datatype=f.datatype, count=f.count
                    )
                    for f in packed.fields
                ],
                is_bigendian=False,
                point_step=packed.point_step,
                row_step=packed.row_step,
                data=packed.data,
                is_dense=packed.is_dense,
            )
            bag.write(connection, scan.stamp_ns, typestore.serialize_ros1(message, "sensor_msgs/msg/PointCloud2"))
    dataset = open_dataset(path)
    assert len(dataset) == 2
    for i in range(2):
        assert_same_scan(dataset[i], kitti_scans[i])


def test_a_bag_without_scans_opens_empty_with_notes(tmp_path: Path) -> None:
    """(Raw Velodyne packet bags are read as scans: tests/test_velodyne_packets.py.)"""
    path = tmp_path / "chatter"
    with BagWriter(path, storage="sqlite3") as writer:
        string = writer.typestore.types["std_msgs/msg/String"]
        writer.write("/chatter", "std_msgs/msg/String", string(data="hi"), 1)
    for where in (path, next(path.glob("*.db3"))):
        dataset = open_dataset(where)
        assert find_reader(where).name == "bag"
        assert len(dataset) == 0
        assert list(dataset) == []
        assert dataset.notes[0].startswith("holds no sensor_msgs/msg/PointCloud2 topic (nor raw Velodyne packets")
        skipped = "skipped topic /chatter (std_msgs/msg/String, 1 messages): not a sensor_msgs/msg/PointCloud2"
        assert skipped in dataset.notes
        with pytest.raises(DatasetError, match=r"holds no point clouds \(.*/chatter \(std_msgs/msg/String"):
            load(where)


def test_corrupt_bags_raise_dataset_error_naming_the_file(tmp_path: Path, kitti_scans: list[Scan]) -> None:
    write_bag(
        tmp_path / "m", kitti_scans[:2]
    )  # its metadata is spoilt below (a cut MCAP is recovered: test_a_cut_mcap_is_read_up_to_the_cut_with_a_note)
    db3 = next(write_bag(tmp_path / "s", kitti_scans[:2], storage="sqlite3").glob("*.db3"))
    broken = tmp_path / "broken"
    broken.mkdir()
    cases = {
        broken / "cut.db3": db3.read_bytes()[: db3.stat().st_size // 2],
        broken / "garbage.db3": bytes(range(256)) * 64,
        broken / "garbage.mcap": b"\x89MCAP0\r\n" + bytes(range(256)) * 64,
        broken / "empty.bag": b"",
    }
    for path, content in cases.items():
        path.write_bytes(content)
        with pytest.raises(DatasetError, match=str(path)):
            list(open_bag(path))  # a reader that opens lazily must still fail clearly when reading
    folder = shutil.copytree(tmp_path / "m", tmp_path / "bad_meta")
    (folder / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, a, mapping")
    with pytest.raises(DatasetError, match=str(folder)):
        open_bag(folder)


def test_a_cut_mcap_is_read_up_to_the_cut_with_a_note(tmp_path: Path, kitti_scans: list[Scan]) -> None:
    mcap = next(write_bag(tmp_path / "m", kitti_scans).glob("*.mcap"))  # a chunk per scan (each > 1 MiB)
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])  # the first scan whole, the second cut
    with open_bag(cut) as dataset:
        assert len(dataset) == 1
        assert_same_scan(dataset[0], kitti_scans[0])
        assert dataset.notes == [
            "cut.mcap was cut (its writer did not finish it): recovered 1 messages written before the cut"
        ]


def test_a_streamed_mcap_cut_anywhere_keeps_every_message_written_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcap_stream, "CHUNK_BYTES", 1)  # a chunk per message
    path = tmp_path / "stream.mcap"
    payloads = [bytes([i]) * (10 + i) for i in range(5)]
    with McapStreamWriter(path) as writer:
        channel = writer.add_channel(writer.add_schema("std_msgs/msg/Empty", "ros2msg", b""), "/e", "cdr", {})
        for i, payload in enumerate(payloads):
            writer.write(channel, 1000 + i, payload)
    data = path.read_bytes()
    assert read_cut_mcap(path).complete
    assert [m[2] for m in read_cut_mcap(path).messages] == payloads
    counts = []
    for size in range(len(mcap_stream.MAGIC) + 1, len(data)):
        (tmp_path / "cut.mcap").write_bytes(data[:size])
        found = read_cut_mcap(tmp_path / "cut.mcap")
        assert [m[2] for m in found.messages] == payloads[: len(found.messages)]  # a prefix, whole messages only
        counts.append(len(found.messages))
    assert counts == sorted(counts)
    assert counts[-1] == len(payloads)


def test_bad_cloud_in_a_bag_is_named(tmp_path: Path, kitti_scans: list[Scan]) -> None:
    with BagWriter(tmp_path / "bad") as bag:
        message = bag.cloud_message(kitti_scans[0].points[:10], "velo", STAMP0)
        message.point_step = 8  # shorter than the fields' extent of 16 bytes
        bag.write("/points", "sensor_msgs/msg/PointCloud2", message, STAMP0)
    with pytest.raises(
        CloudFormatError, match=r"bad: topic /points message 0 is not a valid PointCloud2: .*point_step 8"
    ):
        open_bag(tmp_path / "bad")[0]


@pytest.mark.parametrize("little_endian", [True, False])
def test_header_stamp_is_read_from_a_serialized_real_cloud(
    tmp_path: Path, kitti_scans: list[Scan], little_endian: bool
) -> None:
    with BagWriter(tmp_path / "stamp") as bag:
        message = bag.cloud_message(kitti_scans[1].points, "velo", kitti_scans[1].stamp_ns or 0)
        raw = bag.typestore.serialize_cdr(message, "sensor_msgs/msg/PointCloud2", little_endian=little_endian)
    assert cdr_header_stamp(raw) == divmod(STAMP0 + 100_000_007, 1_000_000_000)
    with pytest.raises(DatasetError, match="not a plain CDR message"):
        cdr_header_stamp(raw[:11])
    with pytest.raises(DatasetError, match="not a plain CDR message"):
        cdr_header_stamp(b"\x00\x0a" + bytes(raw[2:]))


def test_writer_is_atomic_and_never_overwrites(tmp_path: Path, kitti_scans: list[Scan]) -> None:
    def interrupted_recording() -> None:
        with BagWriter(tmp_path / "half") as bag:
            bag.write_scan("/points", kitti_scans[0])
            raise RuntimeError("recorder stopped")

    with pytest.raises(RuntimeError, match="recorder stopped"):
        interrupted_recording()
    assert list(tmp_path.iterdir()) == []
    write_bag(tmp_path / "done", kitti_scans[:1])
    with pytest.raises(DatasetError, match="exists already"):
        write_bag(tmp_path / "done", kitti_scans[:1])
    string_error = r"half2: cannot write a std_msgs/msg/String to topic /chatter"
    with pytest.raises(DatasetError, match=string_error), BagWriter(tmp_path / "half2") as bag:
        bag.write("/chatter", "std_msgs/msg/String", kitti_scans[0], 0)  # not a String message
    with pytest.raises(DatasetError, match="storage 'zip'"):
        write_bag(tmp_path / "other", kitti_scans[:1], storage="zip")  # type: ignore[arg-type]
    assert [p.name for p in tmp_path.iterdir()] == ["done"]


def test_scans_without_stamps_get_evenly_spaced_ones(tmp_path: Path, kitti_scans: list[Scan]) -> None:
    scans = [Scan(points=s.points[:100], name=s.name) for s in kitti_scans]
    dataset = open_bag(write_bag(tmp_path / "nostamp", scans, period_ns=50_000_000))
    assert [s.stamp_ns for s in dataset] == [0, 50_000_000, 100_000_000]
    assert dataset[2].frame_id == "lidar"
