"""The ROS 2 nodes (simulator, perception, camera fusion), their message conversions, replay and launch graph."""
