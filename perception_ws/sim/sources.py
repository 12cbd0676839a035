"""Which source the simulator reads: :func:`open_source` picks the backend named by ``SimConfig.backend``.

The CARLA and dataset backends are imported only when chosen (the CARLA one needs a server; neither needs
the procedural simulator).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perception_ws.sim.source import FrameSource
from perception_ws.sim.stream_config import SimConfig

if TYPE_CHECKING:
    from perception_ws.sim.carla.client import SessionFactory


def open_source(config: SimConfig, carla_session: SessionFactory | None = None) -> FrameSource:
    """The frame source of ``config``; ``carla_session`` (a factory ``CarlaConfig -> session``) replaces
    :class:`~perception_ws.sim.carla.CarlaSession` for the ``carla`` backend (a stand-in, in the tests).
    """
    if config.backend == "carla":
        from perception_ws.sim.carla_source import CarlaSource

        return CarlaSource(config) if carla_session is None else CarlaSource(config, carla_session)
    if config.backend == "dataset":
        from perception_ws.sim.dataset_source import DatasetSource

        return DatasetSource(config)
    from perception_ws.sim.stream import SimStream

    return SimStream(config)
