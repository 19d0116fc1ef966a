from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncrox.ratelimit import KeyedBuckets, TokenBucket, address_key


def test_bucket_refills_one_token_per_interval() -> None:
    bucket = TokenBucket.full(capacity=2, refill_s=10, now=0)
    assert bucket.take(0) == 0 and bucket.take(0) == 0
    assert bucket.take(0) == 10.0
    assert bucket.take(5) == 5.0
    assert bucket.take(10) == 0


def test_keyed_buckets_are_independent_and_bounded() -> None:
    buckets = KeyedBuckets(capacity=1, refill_s=100, max_keys=3)
    assert buckets.take("a", 0) == 0
    assert buckets.take("a", 0) > 0
    assert buckets.take("b", 0) == 0
    for key in "cdef":
        buckets.take(key, 0)
    assert len(buckets) == 3


@given(st.lists(st.tuples(st.floats(0, 50), st.booleans()), max_size=50))
def test_bucket_never_exceeds_capacity_nor_goes_negative(steps: list[tuple[float, bool]]) -> None:
    bucket = TokenBucket.full(capacity=3, refill_s=2, now=0)
    now = 0.0
    for advance, take in steps:
        now += advance
        if take:
            bucket.take(now)
        else:
            bucket.wait_s(now)
        assert 0 <= bucket.tokens <= 3


def test_addresses_are_keyed_by_ipv4_address_or_ipv6_64() -> None:
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2::9")
    assert address_key("2001:db8:1:2::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::9") != address_key("2001:db8:1:2::9")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"  # an IPv4 client on a v6 socket
    assert address_key("not an address") == "not an address"
