"""Simulated against real scans: both as full-turn range images (:mod:`real_views`), the realism report
(:mod:`compare`) and the dropout map measured on real scans (:mod:`dropout_map`).
"""
