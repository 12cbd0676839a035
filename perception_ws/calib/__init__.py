"""Sensor models, camera and KITTI calibration, and the tree of transforms between frames."""
