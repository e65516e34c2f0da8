"""P2C over peak-EWMA: simulated traffic with an injected RNG and clock."""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter

import pytest

from mesh.proxy.balancer import (
    DEFAULT_DECAY,
    DEFAULT_RTT,
    PENALTY,
    Balancer,
    Empty,
    Lease,
    Pick,
    Wait,
)


def lease_of(balancer: Balancer[str], now: float) -> Lease[str]:
    pick = balancer.pick(now)
    assert isinstance(pick, Pick)
    return pick.lease


class Simulation:
    """Requests arriving every ``interval`` seconds, each taking its endpoint's latency."""

    def __init__(self, latencies: dict[str, float], *, seed: int = 7) -> None:
        self.latencies = latencies
        self.balancer: Balancer[str] = Balancer(random.Random(seed))
        self.balancer.set_endpoints(dict.fromkeys(latencies, 1.0), now=0.0)
        self.now = 0.0
        self.in_flight: list[tuple[float, int, Lease[str]]] = []
        self.seq = 0

    def run(self, requests: int, interval: float) -> Counter[str]:
        picks: Counter[str] = Counter()
        for _ in range(requests):
            self.now += interval
            while self.in_flight and self.in_flight[0][0] <= self.now:
                done, _, lease = heapq.heappop(self.in_flight)
                self.balancer.finish(lease, done)
            lease = lease_of(self.balancer, self.now)
            picks[lease.key] += 1
            self.seq += 1
            done_at = self.now + self.latencies[lease.key]
            heapq.heappush(self.in_flight, (done_at, self.seq, lease))
        return picks


def test_defaults_are_linkerds() -> None:
    assert DEFAULT_DECAY == 10.0
    assert DEFAULT_RTT == 0.030


def test_uniform_endpoints_share_evenly() -> None:
    sim = Simulation({"a": 0.010, "b": 0.010, "c": 0.010})
    picks = sim.run(9000, interval=0.004)
    for key in "abc":
        assert 0.25 <= picks[key] / 9000 <= 0.42, picks


def test_slow_endpoint_gets_markedly_fewer_requests() -> None:
    sim = Simulation({"fast1": 0.005, "fast2": 0.005, "slow": 0.200})
    picks = sim.run(6000, interval=0.005)
    assert picks["slow"] / 6000 < 0.10, picks
    assert picks["fast1"] > 0.35 * 6000, picks
    assert picks["fast2"] > 0.35 * 6000, picks


def test_slow_endpoint_is_still_probed_as_its_estimate_decays() -> None:
    sim = Simulation({"fast": 0.005, "slow": 0.200})
    picks = sim.run(20000, interval=0.005)
    assert 0 < picks["slow"] < 0.1 * 20000, picks


def test_removed_endpoints_are_never_picked() -> None:
    sim = Simulation({"a": 0.010, "b": 0.010, "c": 0.010})
    sim.run(500, interval=0.004)
    sim.balancer.set_endpoints({"a": 1.0, "c": 1.0}, now=sim.now)
    picks = sim.run(3000, interval=0.004)  # finishes in-flight leases of "b" too
    assert set(picks) == {"a", "c"}
    sim.balancer.remove("a")
    assert set(sim.run(500, interval=0.004)) == {"c"}


def test_survivors_keep_their_estimates() -> None:
    balancer: Balancer[str] = Balancer(random.Random(1))
    balancer.set_endpoints({"a": 1.0, "b": 1.0}, now=0.0)
    while True:
        lease = lease_of(balancer, 0.0)
        if lease.key == "a":
            break
        balancer.finish(lease, 0.001)
    balancer.finish(lease, 0.5)
    assert balancer.estimate("a") == 0.5
    balancer.set_endpoints({"a": 1.0, "c": 1.0}, now=0.6)
    assert balancer.estimate("a") == 0.5
    assert balancer.estimate("c") == DEFAULT_RTT
    assert "b" not in balancer


def test_peak_then_decay_towards_lower_observations() -> None:
    balancer: Balancer[str] = Balancer(random.Random(1))
    balancer.add("only", now=0.0)
    balancer.finish(lease_of(balancer, 0.0), 0.1)
    assert balancer.estimate("only") == pytest.approx(0.1)  # the peak replaces the estimate
    lease = lease_of(balancer, 10.1)
    balancer.finish(lease, 10.11)
    w = math.exp(-10.01 / DEFAULT_DECAY)
    assert balancer.estimate("only") == pytest.approx(0.1 * w + 0.01 * (1 - w))


def test_cost_counts_pending_requests() -> None:
    balancer: Balancer[str] = Balancer(random.Random(1))
    balancer.add("a", now=0.0)
    assert balancer.cost("a", 0.0) == pytest.approx(DEFAULT_RTT)
    lease_of(balancer, 0.0)
    lease_of(balancer, 0.0)
    assert balancer.pending("a") == 2
    assert balancer.cost("a", 0.0) == pytest.approx(3 * DEFAULT_RTT)


def test_zero_estimate_with_pending_requests_pays_the_penalty() -> None:
    balancer: Balancer[str] = Balancer(random.Random(1), default_rtt=0.0)
    balancer.add("a", now=0.0)
    assert balancer.cost("a", 0.0) == 0.0
    lease_of(balancer, 0.0)
    assert balancer.cost("a", 0.0) == PENALTY + 1


def test_weight_divides_cost() -> None:
    balancer: Balancer[str] = Balancer(random.Random(1))
    balancer.set_endpoints({"light": 1.0, "heavy": 4.0}, now=0.0)
    assert balancer.cost("heavy", 0.0) == pytest.approx(balancer.cost("light", 0.0) / 4)


def test_unready_endpoints_are_skipped_then_waited_for() -> None:
    balancer: Balancer[str] = Balancer(random.Random(3))
    balancer.set_endpoints({"a": 1.0, "b": 1.0}, now=0.0)
    while (lease := lease_of(balancer, 0.0)).key != "a":
        balancer.release(lease)
    balancer.fail(lease, 0.0, unready_until=5.0)
    assert all(lease_of(balancer, 1.0).key == "b" for _ in range(50))
    balancer.remove("b")
    assert balancer.pick(1.0) == Wait(5.0)
    assert isinstance(balancer.pick(5.0), Pick)


def test_no_endpoints() -> None:
    balancer: Balancer[str] = Balancer(random.Random(0))
    assert balancer.pick(0.0) == Empty()
    with pytest.raises(ValueError, match="positive"):
        balancer.set_endpoints({"a": 0.0}, now=0.0)


def test_deterministic_with_the_same_seed() -> None:
    first = Simulation({"a": 0.01, "b": 0.02, "c": 0.03}, seed=42).run(1000, 0.003)
    second = Simulation({"a": 0.01, "b": 0.02, "c": 0.03}, seed=42).run(1000, 0.003)
    assert first == second
