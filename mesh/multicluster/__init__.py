"""Multicluster: the Link, the service-mirror controller, the gateway and their commands."""
