"""perception_ws: LiDAR perception for ROS 2 — range-image segmentation, instances, boxes and tracks."""

from pkgutil import extend_path

__version__ = "0.1.0"

# The generated ROS interfaces (`perception_ws.msg`) are one package with this one in a ROS install, but
# `make interfaces` builds them into .interfaces/ beside this source tree and names their folder in a
# `perception_ws.pkg` file in site-packages; extend_path adds that folder to this package's search path.
__path__ = extend_path(__path__, __name__)
