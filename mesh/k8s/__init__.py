"""Kubernetes for the mesh: typed object snapshots, watch events, and the lightkube edge.

``objects`` and ``events`` are plain data for the sans-IO cores; ``convert``
and ``watching`` are the only modules that touch lightkube.
"""
