"""Moving scenes: planned traffic (:mod:`traffic`, :mod:`paths`, :mod:`speed_profile`), the scene moved
along it (:mod:`motion`), and sequences of sweeps taken while it moves (:mod:`sequence`).
"""
