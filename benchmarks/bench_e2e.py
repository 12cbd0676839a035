"""End-to-end latency of the perception node over DDS: scan stamp -> Detection3DArray, at 10 Hz, ~120k points.

    python -m perception_ws.ros_env .venv/bin/python benchmarks/bench_e2e.py [--minutes 5] [--soak-minutes 30]
        [--source sim|kitti] [--rate 10] [--frames 20] [--rows ...] [--set KEY=VALUE ...]

Scans: ``sim`` (default) renders ``--frames`` HDL-64E x 2048 sweeps of a moving street once, before timing
(~125k points each, ground-truth ``label`` field); ``kitti`` replays the real KITTI scans of
../shared/data/real (kitti_object velodyne, ~120k points, labels from the boxes; SemanticKITTI 000000).
This process publishes them in a loop at ``--rate`` Hz (SensorData QoS, stamped with the wall time at
publication) to a perception node started as its own process, and receives the detection arrays:

- latency = arrival of the Detection3DArray here - its header stamp (one clock: this machine's);
- dropped = scans published - detection arrays received (the node skipped them while busy, latest-only,
  or best-effort transport lost them).

Rows, each run for ``--minutes`` in the same invocation, so they share the machine's conditions:

- ``dds labels``: the graph with the 'labels' segmenter (the ground-truth field; no network);
- ``dds model (cpu)``: the same with the 'model' segmenter, SqueezeSegV2 on the CPU, with the shipped
  weights when they load, else freshly initialised weights (same compute; the labels are meaningless);
- ``dds model (cpu, front 90° preset)``: the same with config/perception_cpu_front.yaml (front 90° as a
  64 x 512 image, 2 torch threads, torch.compile warmed up at node start), ``… eager``: the
  preset with ``segmenter.compile`` false, and ``… lidar odometry``: the preset tracking over the ground
  on the scans' own motion (``tracking.odometry: lidar``);
- ``dds model (cpu, 360° preset)``: config/perception_cpu_360.yaml (the whole turn as 64 x 2048, bf16, one CRF
  step; docs/models.md); ``--set KEY=VALUE`` changes a setting of this row (e.g. ``segmenter.crf_iterations=3``),
  to measure one change at a time;
- ``in-process labels`` (the named baseline): the same Pipeline called directly on the same scans, no
  DDS, no serialisation: its per-frame processing time (no drops: it is not paced).

Per-stage table: for each DDS row, where the node's time went, read from its last diagnostics message of the
row (``stage_<name>_ms_p50`` / ``_p99`` over the node's window of its last 300 scans): the pipeline's stages
(projection, segmentation = network + crf, back_projection, detection = ground + clustering + boxes, instances,
tracking, total) and the node's serialisation (output messages built and published).

Soak: the ``dds labels`` graph (``--soak-graph front``: the CPU preset's model graph) runs for
``--soak-minutes`` more while the node's resident memory (VmRSS) is sampled every second; growth = median of
the last tenth of samples over the median of the first tenth after a one-minute (or 10 %) warm-up, in
percent. ``--soak-minutes 0`` skips it.
The machine's CPU count and load averages are printed with the table. ``--rows`` runs some rows only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from perception_ws.config import PerceptionConfig, flatten, load_config, to_params_document
from perception_ws.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("PERCEPTION_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
#: the perception node's settings in every row (DBSCAN radius as the node tests use for 20-60 m objects).
NODE_SETTINGS = {
    "detection.eps_m": 0.6,
    "detection.min_samples": 8,
    "detection.car_eps_m": 0.6,
    "detection.car_min_samples": 8,
}
#: the shipped real-time CPU preset (front 90°, 64 x 512, compiled network).
CPU_PRESET = REPO / "config" / "perception_cpu_front.yaml"
#: the CPU preset for the whole turn (64 x 2048).
CPU_360_PRESET = REPO / "config" / "perception_cpu_360.yaml"
ROWS = ("labels", "model", "front", "front-eager", "front-odometry", "full", "in-process")
#: the per-stage table's columns, in pipeline order (diagnostics keys stage_<name>_ms_p50 / _p99).
STAGE_COLUMNS = ("projection", "network", "crf", "back_projection", "ground", "clustering", "boxes", "instances",
                 "tracking", "serialisation", "total")  # fmt: skip
STARTUP_TIMEOUT_S = 300.0  # a compiled network compiles before the node subscribes (about a minute, more if loaded)
DRAIN_S = 3.0


@dataclass
class RowResult:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    published: int = 0
    received: int = 0
    rss_mb: list[float] = field(default_factory=list)
    note: str = ""
    #: the node's own counters (its diagnostics) over the measured window: scans it took in, and scans it
    #: skipped because a newer one came while it was busy (latest-only); None when no diagnostics came
    node_received: int | None = None
    node_skipped: int | None = None
    #: the node's last diagnostics values of the row (stage_<name>_ms_p50 / _p99 ...); empty when none came
    node_values: dict[str, str] = field(default_factory=dict)

    @property
    def dropped(self) -> int:
        return self.published - self.received


# -- scans ---------------------------------------------------------------------------------------


def sim_scans(frames: int, rate_hz: float) -> list[np.ndarray]:
    from perception_ws.sim.stream import SimStream
    from perception_ws.sim.stream_config import SimConfig

    stream = SimStream(SimConfig().replace(**{"camera.enabled": False, "clock.mode": "sim", "sensor.rate_hz": rate_hz}))
    return [stream.frame(i, stream.scene_time(i, 0.0)).points for i in tqdm(range(frames), desc="render", unit="scan")]


def kitti_scans() -> list[np.ndarray]:
    from perception_ws.io import load
    from perception_ws.labels import KITTI3

    paths = [*sorted((REAL / "kitti_object" / "velodyne").glob("*.bin")), REAL / "semantickitti" / "000000.bin"]
    scans = []
    for path in paths:
        scan = load(path)
        labels = np.zeros(len(scan.points), dtype=np.uint16) if scan.labels is None else scan.labels.astype(np.uint16)
        for box in scan.boxes:  # kitti_object: the points in a box take its class
            if 0 < box.label < len(KITTI3):
                labels[box.contains(scan.xyz)] = box.label
        out = np.empty(len(scan.points), dtype=[*scan.points.dtype.descr, ("label", np.uint16)])
        for name in scan.points.dtype.names or ():
            out[name] = scan.points[name]
        out["label"] = labels
        scans.append(out)
    return scans


# -- the DDS graph -------------------------------------------------------------------------------


def untrained_weights(folder: Path) -> tuple[str, str]:
    """(weights path, note): the shipped weights when they load, else freshly initialised SqueezeSegV2 ones."""
    from perception_ws.errors import PerceptionError
    from perception_ws.models import build_model
    from perception_ws.models.weights import load_weights, save_weights

    try:
        load_weights(None)
        return "", "shipped weights"
    except PerceptionError:
        model = build_model("squeezesegv2", num_classes=4)
        path = save_weights(model, folder / "untrained.pt", training={"data": "none (timing only)", "steps": 0},
                            scores={})  # fmt: skip
        return str(path), "untrained weights (timing only)"


def preset_settings(path: Path) -> dict[str, Any]:
    """The keys a params file sets to other values than the schema defaults."""
    defaults = flatten(PerceptionConfig())
    return {key: value for key, value in flatten(load_config(path)).items() if value != defaults[key]}


def start_node(settings: dict[str, Any], folder: Path) -> subprocess.Popen[bytes]:
    config = PerceptionConfig().replace(**{**NODE_SETTINGS, **settings})
    params = folder / f"params_{time.monotonic_ns()}.yaml"
    params.write_text(yaml.safe_dump(to_params_document(config)))
    command = [sys.executable, "-m", "perception_ws.nodes.perception_node", "--ros-args", "--params-file", str(params)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def run_graph(name: str, settings: dict[str, Any], scans: list[np.ndarray], rate_hz: float, seconds: float,
              folder: Path, sample_rss: bool = False) -> RowResult:  # fmt: skip
    """Publish ``scans`` in a loop for ``seconds`` to a fresh perception node; latency and drops."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import PointCloud2

    from perception_ws.cloud import to_msg
    from perception_ws.msg import Detection3DArray
    from perception_ws.nodes.qos import output_qos, sensor_input_qos

    result = RowResult(name)
    topics = PerceptionConfig().topics
    messages = [to_msg(points, frame_id="lidar") for points in scans]
    context = rclpy.Context()
    rclpy.init(args=[], context=context)
    process = start_node(settings, folder)
    try:
        node = rclpy.create_node("bench_e2e", context=context)
        publisher = node.create_publisher(PointCloud2, topics.input, sensor_input_qos(2))

        measured_from_ns = [2**63]  # the stamp of the first measured scan; answers to warm-up scans are not counted

        def on_detections(msg: Any) -> None:
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if stamp_ns >= measured_from_ns[0]:
                result.latencies_ms.append((time.time_ns() - stamp_ns) / 1e6)
                result.received += 1

        node.create_subscription(Detection3DArray, topics.detections, on_detections, output_qos(50))
        counters: dict[str, int] = {}  # the node's latest diagnostics counters

        def on_diagnostics(msg: Any) -> None:
            for status in msg.status:
                for item in status.values:
                    if item.key in ("frames_received", "frames_dropped"):
                        counters[item.key] = int(item.value)
                    result.node_values[item.key] = item.value

        node.create_subscription(DiagnosticArray, topics.diagnostics, on_diagnostics, output_qos(10))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while publisher.get_subscription_count() < 1 or node.count_publishers(topics.detections) < 1:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the perception node did not come up (exit code {process.poll()})")
            executor.spin_once(timeout_sec=0.1)
        # warm-up frames (numba compilation, first allocation) are not counted
        warm_end = time.monotonic() + 5.0
        at_start: dict[str, int] | None = None
        period, index = 1.0 / rate_hz, 0
        next_at = time.monotonic()
        start = next_at
        end = warm_end + seconds
        next_sample = start
        with tqdm(total=round(seconds + 5.0), desc=name, unit="s", leave=False) as bar:
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_at:
                    msg = messages[index % len(messages)]
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
                    if now >= warm_end and result.published == 0:  # the measured window starts here
                        measured_from_ns[0] = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                        at_start = dict(counters)
                    publisher.publish(msg)
                    result.published += now >= warm_end
                    index += 1
                    next_at += period
                    if next_at < now:  # publishing itself fell behind: skip, never burst
                        next_at = now + period
                if sample_rss and now >= next_sample:
                    result.rss_mb.append(rss_mb(process.pid))
                    next_sample += 1.0
                bar.update(int(now - start) - bar.n)
                executor.spin_once(timeout_sec=max(0.0, min(next_at - time.monotonic(), 0.05)))
            drain_end = time.monotonic() + DRAIN_S
            while time.monotonic() < drain_end:
                executor.spin_once(timeout_sec=0.05)
        if at_start is not None and len(at_start) == len(counters) == 2:  # diagnostics come once a second
            result.node_received = counters["frames_received"] - at_start["frames_received"]
            result.node_skipped = counters["frames_dropped"] - at_start["frames_dropped"]
        node.destroy_node()
    finally:
        process.send_signal(2)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        rclpy.try_shutdown(context=context)
    return result


def in_process(scans: list[np.ndarray], seconds: float) -> RowResult:
    """The named baseline: Pipeline.process on the same scans, back to back, no DDS."""
    pipeline = Pipeline(PerceptionConfig().replace(**NODE_SETTINGS, **{"segmenter.kind": "labels"}))
    pipeline.process(scans[0], 0.0)  # warm-up (numba)
    result = RowResult("in-process labels (baseline)", note="no DDS; processing time per frame, not paced")
    end, index = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        start = time.perf_counter()
        pipeline.process(scans[index % len(scans)], 0.1 * (index + 1))
        result.latencies_ms.append((time.perf_counter() - start) * 1e3)
        index += 1
    result.published = result.received = index
    return result


# -- the table -----------------------------------------------------------------------------------


def soak_growth(samples: list[float]) -> tuple[float, float, float]:
    """(first MiB, last MiB, growth %) of an RSS series after its warm-up."""
    warm = min(60, len(samples) // 10)
    body = samples[warm:]
    tenth = max(1, len(body) // 10)
    first, last = float(np.median(body[:tenth])), float(np.median(body[-tenth:]))
    return first, last, 100.0 * (last - first) / first


def table(rows: list[RowResult], points: int, rate_hz: float) -> str:
    lines = [
        f"{'row':34s} {'frames':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'dropped':>9s}  note",
        "-" * 100,
    ]
    for r in rows:
        if r.latencies_ms:
            p50, p99 = np.percentile(r.latencies_ms, [50, 99])
            times = f"{p50:8.1f} {p99:8.1f} {max(r.latencies_ms):8.1f}"
        else:
            times = f"{'-':>8s} {'-':>8s} {'-':>8s}"
        share = f"{r.dropped} ({100.0 * r.dropped / max(r.published, 1):.0f}%)"
        split = ""
        if r.node_received is not None and r.node_skipped is not None and r.published != r.received:
            # about: the counters are read from once-a-second diagnostics at the window's ends
            split = f" [~{r.node_skipped} skipped busy, ~{max(0, r.published - r.node_received)} not delivered]"
        lines.append(f"{r.name:34s} {r.received:7d} {times} {share:>9s}  {r.note}{split}")
    lines.append(f"\n~{points} points per scan, published at {rate_hz:g} Hz; latency = stamp -> Detection3DArray here")
    return "\n".join(lines)


def stage_table(rows: list[RowResult]) -> str:
    """p50 / p99 ms of every stage in each DDS row, from the node's last diagnostics (its last 300 scans)."""
    staged = [r for r in rows if any(key.startswith("stage_") for key in r.node_values)]
    if not staged:
        return ""
    lines = [f"{'stage (node diagnostics)':26s} " + " ".join(f"{r.name[:24]:>24s}" for r in staged)]
    lines.append(f"{'':26s} " + " ".join(f"{'p50 / p99 ms':>24s}" for _ in staged))
    for name in STAGE_COLUMNS:
        cells = []
        for r in staged:
            p50, p99 = (r.node_values.get(f"stage_{name}_ms_{stat}") for stat in ("p50", "p99"))
            cells.append(f"{p50} / {p99}" if p50 is not None and p99 is not None else "-")
        lines.append(f"{name:26s} " + " ".join(f"{cell:>24s}" for cell in cells))
    return "\n".join(lines)


def overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (values read as YAML scalars: 1, true, bf16) as settings."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected KEY=VALUE, e.g. segmenter.crf_iterations=3")
        settings[key] = yaml.safe_load(value)
    return settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="measured time per row (default 5)")
    parser.add_argument("--soak-minutes", type=float, default=30.0, help="memory soak (default 30; 0: none)")
    parser.add_argument("--source", choices=("sim", "kitti"), default="sim", help="scans (default sim)")
    parser.add_argument("--frames", type=int, default=20, help="simulated scans to loop over (default 20)")
    parser.add_argument("--rate", type=float, default=10.0, help="scans per second (default 10)")
    parser.add_argument("--rows", nargs="*", choices=ROWS, default=list(ROWS),
                        help="rows to run (default all; none: the soak only)")  # fmt: skip
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="settings of the 'full' row that differ from config/perception_cpu_360.yaml")  # fmt: skip
    parser.add_argument("--soak-graph", choices=("labels", "front"), default="labels",
                        help="graph of the memory soak: labels (default) or the CPU preset's model graph")  # fmt: skip
    args = parser.parse_args()
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST":
        print("run under `python -m perception_ws.ros_env` (loopback-only DDS)", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    scans = sim_scans(args.frames, args.rate) if args.source == "sim" else kitti_scans()
    points = int(np.mean([len(s) for s in scans]))
    seconds = args.minutes * 60.0
    rows: list[RowResult] = []
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as tmp:
        folder = Path(tmp)
        if "labels" in args.rows:
            rows.append(run_graph("dds labels", {"segmenter.kind": "labels"}, scans, args.rate, seconds, folder))
        weights, note = untrained_weights(folder)
        model_rows = {
            "model": ("dds model (cpu)", {}, "360° 64x2048"),
            "front": ("dds model (cpu, front 90° preset)", preset_settings(CPU_PRESET), "64x512, compiled"),
            "front-eager": ("dds model (cpu, front 90°, eager)",
                            {**preset_settings(CPU_PRESET), "segmenter.compile": False}, "64x512"),
            "front-odometry": ("dds model (cpu, front 90°, lidar odometry)",
                               {**preset_settings(CPU_PRESET), "tracking.odometry": "lidar"}, "64x512, compiled"),
            "full": ("dds model (cpu, 360° preset)", {**preset_settings(CPU_360_PRESET), **overrides(args.set)},
                     "64x2048" + "".join(f", {item}" for item in args.set)),
        }  # fmt: skip
        for key, (name, settings, shape) in model_rows.items():
            if key in args.rows:
                # the row's own settings last: a --set segmenter.weights=W.pt of the 'full' row must win
                settings = {"segmenter.kind": "model", "segmenter.weights": weights, **settings}
                model = run_graph(name, settings, scans, args.rate, seconds, folder)
                model.note = f"SqueezeSegV2 {shape}" + (f", {note}" if settings["segmenter.weights"] == weights else "")
                rows.append(model)
        if "in-process" in args.rows:
            rows.append(in_process(scans, seconds))
        soak = None
        if args.soak_minutes > 0:
            if args.soak_graph == "front":  # the model graph of the CPU preset: the network's memory too
                name, settings = "soak: dds model (front preset)", {**model_rows["front"][1], "segmenter.kind": "model",
                                                                    "segmenter.weights": weights}  # fmt: skip
            else:
                name, settings = "soak: dds labels", {"segmenter.kind": "labels"}
            soak = run_graph(name, settings, scans, args.rate, args.soak_minutes * 60.0, folder, sample_rss=True)
            rows.append(soak)
    print(table(rows, points, args.rate))
    print(stage_table(rows))
    if soak is not None and len(soak.rss_mb) >= 20:
        first, last, growth = soak_growth(soak.rss_mb)
        print(f"soak {args.soak_minutes:g} min: perception node RSS {first:.0f} -> {last:.0f} MiB ({growth:+.1f} %), "
              f"{len(soak.rss_mb)} samples")  # fmt: skip
    load_after = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs; load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/"
          f"{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
