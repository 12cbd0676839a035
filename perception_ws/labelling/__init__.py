"""Offline labelling (`perception label`): the perception node's pipeline over every frame of a file, folder or
bag, written as SemanticKITTI ``.label`` files, KITTI ``label_2`` lines, labelled PCD and one MCAP.

:func:`~perception_ws.labelling.run.label_dataset` runs it; :mod:`perception_ws.labelling.options` holds
its settings. One module per job: the frame loop (``run``), the manifest (``manifest``), each writer
(``semantickitti``, ``kitti_lines``, ``mcap``), the stored per-frame results (``results``), the summary.
"""
