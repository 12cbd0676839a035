"""Malformed clouds over DDS to a live perception node: does it survive, count every one, and keep answering?

    .venv/bin/python benchmarks/bench_fuzz.py [--count 10000] [--good-every 500] [--seed 0]

The node runs as its own process (``segmenter.kind: labels``) on a loopback-only DDS domain
(:func:`perception_ws.ros_env.apply_local_dds_env`). This process publishes ``--count`` malformed
PointCloud2 messages, drawn at random from the makers of ``perception_ws/nodes/malformed_clouds.py`` (one per intake
reject reason), and after every ``--good-every`` of them one good cloud (a few hundred points with a label
field), waiting for that cloud's labelled output before going on. The bad clouds go out in bursts of 50
that wait until the node's diagnostics report them received, so the best-effort input queue is not
overrun (a message DDS still loses is reported as lost, not hidden).

Reported, from the node's own diagnostics (``frames_received``, ``issue_REASON``): per reason, clouds sent
and counted; clouds lost in transport (sent - received); internal errors (``issue_internal_*``); good
clouds answered; whether the node process is still alive at the end (a crash would end it); its RSS.
The machine's CPU count and load averages are printed with the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from perception_ws.nodes.malformed_clouds import MAKERS, small_cloud

BURST = 50
WAIT_S = 30.0


def start_node(folder: Path, suffix: str) -> subprocess.Popen[bytes]:
    """The perception node as its own process, labelling from the input's field, diagnostics every 0.1 s."""
    from perception_ws.config import PerceptionConfig, to_params_document

    config = PerceptionConfig().replace(
        **{
            "segmenter.kind": "labels",
            "topics.input": f"fuzz_in_{suffix}",
            "topics.labelled_cloud": f"fuzz_out_{suffix}",
            "topics.diagnostics": f"fuzz_diag_{suffix}",
            "output.diagnostics_period_s": 0.1,
            "qos.input_depth": BURST * 2,
        }
    )
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump(to_params_document(config)))
    command = [sys.executable, "-m", "perception_ws.nodes.perception_node", "--ros-args", "--params-file", str(params)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(folder / "node.log", "wb"))


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def good_cloud(rng: np.random.Generator, sec: int) -> Any:
    from perception_ws.cloud import to_msg

    points = small_cloud(rng, 400)
    points["ring"] = rng.integers(0, 64, len(points))
    return to_msg(points, frame_id="velodyne", stamp=(sec, 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000, help="malformed clouds to send (default 10000)")
    parser.add_argument("--good-every", type=int, default=500, help="a good cloud after every N bad ones")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from perception_ws.ros_env import apply_local_dds_env

    apply_local_dds_env()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import PointCloud2

    from perception_ws.nodes.qos import output_qos, sensor_input_qos

    rng = np.random.default_rng(args.seed)
    reasons = sorted(MAKERS)
    suffix = f"{os.getpid()}"
    folder = Path(tempfile.mkdtemp(prefix="bench_fuzz_"))
    node = start_node(folder, suffix)
    context = rclpy.Context()
    rclpy.init(context=context)
    here = rclpy.create_node("bench_fuzz", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(here)
    diagnostics: dict[str, str] = {}
    answered: set[int] = set()

    def on_diagnostics(msg: Any) -> None:
        diagnostics.clear()
        diagnostics.update({kv.key: kv.value for kv in msg.status[0].values})

    here.create_subscription(DiagnosticArray, f"fuzz_diag_{suffix}", on_diagnostics, output_qos(10))
    here.create_subscription(
        PointCloud2, f"fuzz_out_{suffix}", lambda m: answered.add(m.header.stamp.sec), output_qos(10)
    )
    publisher = here.create_publisher(PointCloud2, f"fuzz_in_{suffix}", sensor_input_qos(BURST * 2))

    def spin_until(condition: Any, timeout_s: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline or node.poll() is not None:
                return False
            executor.spin_once(timeout_sec=0.01)
        return True

    def received() -> int:
        return int(diagnostics.get("frames_received", 0))

    sent: Counter[str] = Counter()
    good_sent = 0
    began = time.monotonic()
    try:
        if not spin_until(lambda: publisher.get_subscription_count() > 0 and "frames_received" in diagnostics, 120):
            raise SystemExit("bench_fuzz: the node did not come up; see " + str(folder / "node.log"))
        total = 0
        while total < args.count:
            burst = min(BURST, args.count - total)
            for _ in range(burst):
                reason = reasons[int(rng.integers(0, len(reasons)))]
                publisher.publish(MAKERS[reason](rng))
                sent[reason] += 1
            total += burst
            expected = total + good_sent
            spin_until(lambda e=expected: received() >= e, 5.0)  # type: ignore[misc]
            if args.good_every and total % args.good_every < BURST:
                good_sent += 1
                stamp = 1000 + good_sent
                for _ in range(20):  # best effort: a good cloud DDS drops is sent again, at most 20 times
                    publisher.publish(good_cloud(rng, stamp))
                    if spin_until(lambda s=stamp: s in answered, 2.0):  # type: ignore[misc]
                        break
        spin_until(lambda: received() >= args.count + good_sent, 5.0)
        time.sleep(0.3)
        spin_until(lambda: False, 0.5)  # the last diagnostics
        alive = node.poll() is None
        rss = rss_mb(node.pid) if alive else float("nan")
    finally:
        if node.poll() is None:
            node.terminate()
            node.wait(timeout=30)
        executor.shutdown()
        here.destroy_node()
        rclpy.try_shutdown(context=context)
    seconds = time.monotonic() - began

    counted = {reason: int(diagnostics.get(f"issue_{reason}", 0)) for reason in reasons}
    internal = sum(int(v) for k, v in diagnostics.items() if k.startswith("issue_internal_"))
    print(f"bench_fuzz: {args.count} malformed clouds (seed {args.seed}), {seconds:.0f} s; {os.cpu_count()} CPUs, "
          f"load averages {' '.join(f'{v:.1f}' for v in os.getloadavg())}")  # fmt: skip
    print("\n| reason | sent | counted by the node |\n|---|---:|---:|")
    for reason in reasons:
        print(f"| {reason} | {sent[reason]} | {counted[reason]} |")
    print(f"| **all** | {sum(sent.values())} | {sum(counted.values())} |")
    print(f"\nreceived by the node: {diagnostics.get('frames_received')} of {sum(sent.values()) + good_sent} sent "
          f"(lost in transport: {sum(sent.values()) + good_sent - received()}); internal errors: {internal}; "
          f"good clouds answered: {len(answered)} of {good_sent}; frames processed: "
          f"{diagnostics.get('frames_processed')}; node alive at the end: {alive}; node RSS {rss:.0f} MiB")  # fmt: skip
    ok = alive and internal == 0 and counted == {r: sent[r] for r in reasons} and len(answered) == good_sent
    if ok:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"bench_fuzz: FAILED; the node's log is in {folder / 'node.log'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
