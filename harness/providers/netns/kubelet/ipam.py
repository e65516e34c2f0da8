"""Pod address allocation from the node's podCIDR (pure; the caller persists it).

The network address and the first host address are never handed out (the first is
conventionally the node's own on real CNIs), nor is the broadcast address. An
allocation is keyed by pod uid, so asking twice gives the same address.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping


class AddressesExhausted(Exception):
    pass


class Ipam:
    def __init__(self, cidr: str, allocations: Mapping[str, str] | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self._by_uid: dict[str, str] = {
            uid: ip
            for uid, ip in (allocations or {}).items()
            if ipaddress.ip_address(ip) in self.network
        }
        self._next = 2

    @property
    def allocations(self) -> dict[str, str]:
        return dict(self._by_uid)

    def allocate(self, uid: str) -> str:
        """The address of pod ``uid``, allocating the next free one if it has none."""
        if uid in self._by_uid:
            return self._by_uid[uid]
        used = set(self._by_uid.values())
        first, last = 2, self.network.num_addresses - 2
        count = last - first + 1
        for step in range(max(0, count)):
            offset = first + (self._next - first + step) % count
            ip = str(self.network.network_address + offset)
            if ip not in used:
                self._by_uid[uid] = ip
                self._next = offset + 1
                return ip
        raise AddressesExhausted(f"no free address left in {self.network}")

    def release(self, uid: str) -> str | None:
        return self._by_uid.pop(uid, None)

    def to_json(self) -> str:
        return json.dumps({"cidr": str(self.network), "allocations": self._by_uid}, indent=1)

    @classmethod
    def from_json(cls, text: str, cidr: str) -> Ipam:
        """Restore saved allocations; ones outside ``cidr`` (a changed CIDR) are dropped."""
        data = json.loads(text) if text.strip() else {}
        return cls(cidr, data.get("allocations", {}))
