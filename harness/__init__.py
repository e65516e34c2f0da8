"""Isthmus harness: cluster providers, kube helpers, mesh adapters, traffic and reports."""
