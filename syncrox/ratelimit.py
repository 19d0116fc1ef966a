"""Token buckets, fed the current time (no clock of their own), bounded in memory.

A bucket holds up to ``capacity`` tokens and regains one every ``refill_s`` seconds.
``KeyedBuckets`` keeps one bucket per key (a peer address, a user) and forgets the least
recently used keys beyond ``max_keys``, so a flood of addresses cannot grow it unbounded.
A forgotten key starts again with a full bucket, which only ever errs towards admitting.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

IPV6_PREFIX_BITS = 64  # one site's usual allocation: its addresses share one bucket


def address_key(host: str) -> str:
    """The bucket key of a peer address: an IPv4 address as it is, an IPv6 address by its
    /64 (anyone holding one address of a /64 holds them all), anything else as given."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX_BITS}", strict=False))
    return str(address)


@dataclass
class TokenBucket:
    capacity: float
    refill_s: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, capacity: float, refill_s: float, now: float) -> TokenBucket:
        return cls(capacity, refill_s, capacity, now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            gained = (now - self.stamp) / self.refill_s if self.refill_s > 0 else self.capacity
            self.tokens = min(self.capacity, self.tokens + gained)
        self.stamp = max(self.stamp, now)

    def wait_s(self, now: float, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available (0.0 if they are now)."""
        self._refill(now)
        if self.tokens >= cost:
            return 0.0
        return (cost - self.tokens) * self.refill_s

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if available and return 0.0, else return the wait in seconds."""
        wait = self.wait_s(now, cost)
        if wait == 0.0:
            self.tokens -= cost
        return wait


class KeyedBuckets:
    def __init__(self, capacity: float, refill_s: float, max_keys: int = 65536) -> None:
        self.capacity = capacity
        self.refill_s = refill_s
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def bucket(self, key: str, now: float) -> TokenBucket:
        found = self._buckets.get(key)
        if found is None:
            found = TokenBucket.full(self.capacity, self.refill_s, now)
            self._buckets[key] = found
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return found

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        return self.bucket(key, now).take(now, cost)

    def wait_s(self, key: str, now: float, cost: float = 1.0) -> float:
        return self.bucket(key, now).wait_s(now, cost)
