"""QoS profiles of the project's nodes: sensor inputs best effort (SensorData), outputs reliable.

A sensor stream is only useful fresh, so inputs are best effort and shallow (a late scan is worth
nothing); outputs are reliable so that a recorder or RViz sees every result the node produced.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def sensor_input_qos(depth: int) -> QoSProfile:
    """rclpy's ``qos_profile_sensor_data`` (best effort, volatile, keep last) with the given queue depth."""
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE,
    )


def output_qos(depth: int) -> QoSProfile:
    """Reliable, volatile, keep last ``depth``: every output topic."""
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )
