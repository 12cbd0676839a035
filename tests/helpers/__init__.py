"""Helpers the test modules share, so that no test module imports another.

data.py      the repository root, real-scan helpers (label field, ground truth, KITTI object frames)
ros.py       spinning nodes in the background, waiting for a condition, running the simulator node
messages.py  ROS messages the node tests send: a KITTI frame as fusion inputs, sample detections/tracks
training.py  a small, fast training configuration
"""
