"""Domain adaptation to a real sensor from its unlabelled scans (docs/algorithms.md §5).

One module a job: ``target`` reads the unlabelled target scans as range images; the learned intensity
rendering, the geodesic correlation alignment, the progressive domain calibration and the sensor profile
each live in their own module beside it. Nothing is imported here, so importing one part stays cheap.
"""
