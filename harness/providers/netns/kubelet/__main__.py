"""``python -m harness.providers.netns.kubelet``: run the kubelet stand-in for one node."""

from __future__ import annotations

from harness.providers.netns.kubelet import main

if __name__ == "__main__":
    main()
