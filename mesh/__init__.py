"""Isthmus: a multicluster service mesh speaking Linkerd's user-facing API."""
