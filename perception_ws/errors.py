"""The project's exceptions: one family, each message names what is wrong and what was expected.

Every error a user can trigger with bad input derives from :class:`PerceptionError`, so the CLI and
the nodes can catch that one type, print or log one line, and keep going.
"""


class PerceptionError(ValueError):
    """Base class of every input error the project raises on purpose."""


class CloudFormatError(PerceptionError):
    """A point cloud (PointCloud2, PCD, PLY, array) is malformed or has an unsupported layout."""


class DatasetError(PerceptionError):
    """A file or folder cannot be read as any known dataset, or is inconsistent."""


class CalibrationError(PerceptionError):
    """A calibration (KITTI calib file, camera model, extrinsic) is missing, malformed or inconsistent."""


class SensorError(PerceptionError):
    """An unknown sensor name or a malformed sensor definition."""


class ProjectionError(PerceptionError):
    """Range-image projection settings (field of view, image size, row source) or a pixel map are invalid."""


class WeightsError(PerceptionError):
    """A weights file is missing, corrupt, fails its checksum or does not match its config."""


class SimulatorError(PerceptionError):
    """A simulator backend (e.g. a CARLA server) is missing, unreachable, or answered unexpectedly."""


class ExportError(PerceptionError):
    """A model export's settings are invalid, its packages are missing, the exported model disagrees with torch,
    or its int8 copy loses too much accuracy against fp32.
    """


class SparseTensorError(PerceptionError):
    """A sparse tensor's coordinates, features or stride are malformed, or the sparse engine asked for is missing."""
