"""The simulated sensors and what they cast rays with.

The LiDAR (:mod:`lidar`, its sweep in :mod:`sweep_points` and :mod:`sweep_kernels`, the models of a
return: :mod:`returns`, :mod:`noise`, :mod:`intensity`), the camera (:mod:`camera`,
:mod:`camera_shading`), ray casting (the interface :mod:`raycaster`, the backend choice :mod:`raycast`,
the backends :mod:`raycast_open3d`, :mod:`raycast_torch`, :mod:`raycast_layers`, :mod:`raycast_kernels`)
and whole sweeps on a GPU (:mod:`raycast_raster`, :mod:`gpu_sweeps`, :mod:`arrays`).
"""
