"""Cluster providers behind one protocol: netns (default), k3d, existing."""

from harness.providers.base import Cluster, Provider, ProviderError, get_provider

__all__ = ["Cluster", "Provider", "ProviderError", "get_provider"]
