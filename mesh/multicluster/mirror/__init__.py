"""The service-mirror controller: one per Link, mirroring the target's exported Services.

Rules: the core (``core``, ``messages``, ``desired``, ``link``, ``naming``, ``liveness``) is
sans-IO and decides everything from plain values; ``controller`` and ``kube`` are the only
modules that talk to the API servers, and ``admin`` the only one that serves HTTP.
"""
