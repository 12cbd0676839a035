"""Helpers the test modules share, so that no test module imports another.

data.py       the repository root, real-scan helpers (label field, ground truth, KITTI object frames)
carla.py      a CARLA session without a server (buffers in CARLA's layouts)
ros.py        spinning nodes in the background, waiting for a condition, running the simulator node
messages.py   a KITTI object frame as the fusion node's input messages
samples.py    sample Detection3DArray / TrackArray, and the process that publishes them (light imports)
training.py   a small, fast training configuration
"""
