"""Scenes: labelled triangle meshes of procedural streets (:func:`generator.generate_scene`).

:mod:`scene` (the scene and its triangle soup), :mod:`mesh` (primitives), :mod:`materials`,
:mod:`assets`, :mod:`layout` and :mod:`footprints` (where things stand), and the assets:
:mod:`ground`, :mod:`street`, :mod:`buildings`, :mod:`vehicles`, :mod:`people`, :mod:`nature`.
"""
