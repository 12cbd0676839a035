"""Hot loops compiled with numba: projection, DBSCAN, box fitting, ground planes and the LZF codec of PCD files."""
