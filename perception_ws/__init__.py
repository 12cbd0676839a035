"""perception_ws: LiDAR perception for ROS 2 — range-image segmentation, instances, boxes and tracks."""

__version__ = "0.1.0"
