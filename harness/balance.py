"""The deep profile's balancing probe (I17): every endpoint's share within 2% of 1/n, n = 2..10.

kube-proxy once printed its statistic probabilities with two decimals (kubernetes#37932, fixed
by PR #83599), which skewed shares by 2-4% at n = 7-8: far below what a per-step sample can
see. The probe is one short sequence per n: a Service, its group scaled to n, and a `probe` whose
sample is sized to detect one endpoint's share deviating by `DEVIATION` from 1/n with power 0.9
at the fairness test's level (`harness.checks.confidence.connections_for_deviation`: about
50,000 connections at n = 2 and 800,000 at n = 10). The sequences run before the deep search,
as ordinary examples, so a failure is shrunk, confirmed and saved like any other.
"""

from __future__ import annotations

from harness.events import CreateService, Event, Probe, Scale
from harness.model.objects import labels_of

DEVIATION = 0.02
ENDPOINTS = range(2, 11)
SERVICE = "svc-a"
GROUP = "web"


def balance_sequences(endpoints: range = ENDPOINTS) -> list[list[Event]]:
    """One sequence per number of endpoints (see the module docstring)."""
    return [
        [
            CreateService(SERVICE, labels_of({"app": GROUP})),
            Scale(GROUP, n),
            Probe(SERVICE, deviation=DEVIATION),
        ]
        for n in endpoints
    ]
