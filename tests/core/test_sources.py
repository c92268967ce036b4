"""`source-ip` and `hairpin` as pure checks, and the model as a pod client's reference: hand-made
samples in the shapes the e2e specs "should preserve source pod IP for traffic thru service
cluster IP" and "should allow pods to hairpin back to themselves through services" see."""

from __future__ import annotations

from harness.checks.sources import (
    HAIRPIN,
    SOURCE_IP,
    PodClientSample,
    check_hairpin,
    check_pod_client,
    check_source_ip,
)
from harness.conformance import applicable, uncheckable_features
from harness.events import CreateService, Scale
from harness.features import NOT_SUPPORTED
from harness.model.objects import Backend, labels_of
from harness.podclients import PodClients, judged_properties, requests_for, uncheckable
from harness.proxies.userspace import UserspaceProxy
from harness.targets.base import target_features
from harness.targets.model import NODE_ADDRESS, ModelTarget
from harness.traffic import ErrorKind, Outcome, TrafficRequest

CLIENT, OTHER = Backend("web-0", "u0"), Backend("web-1", "u1")
ADDRESS = "10.244.0.10"


def sample(*outcomes: Outcome) -> PodClientSample:
    return PodClientSample("svc-a", CLIENT, ADDRESS, frozenset({CLIENT, OTHER}), outcomes)


def answer(backend: Backend, seen: str | None) -> Outcome:
    return Outcome(backend, None, 1.0, 0, seen_source=seen)


TIMEOUT = Outcome(None, ErrorKind.TIMEOUT, 1000.0, 0)


def test_another_pod_must_see_the_client_pods_own_address() -> None:
    kept = check_source_ip(sample(answer(OTHER, ADDRESS), answer(CLIENT, NODE_ADDRESS)))
    assert kept is not None and kept.holds
    lost = check_source_ip(sample(answer(OTHER, NODE_ADDRESS)))
    assert lost is not None and not lost.holds and NODE_ADDRESS in lost.message
    assert lost.evidence["client_address"] == ADDRESS


def test_source_ip_is_not_judged_without_an_answer_from_another_pod() -> None:
    assert check_source_ip(sample(answer(CLIENT, NODE_ADDRESS), TIMEOUT)) is None
    assert check_source_ip(sample(answer(OTHER, None))) is None  # the target did not say


def test_a_pod_must_reach_itself_and_every_request_must_be_answered() -> None:
    reached = check_hairpin(sample(answer(CLIENT, NODE_ADDRESS), answer(OTHER, ADDRESS)))
    assert reached is not None and reached.holds
    dropped = check_hairpin(sample(answer(OTHER, ADDRESS), TIMEOUT))
    assert dropped is not None and not dropped.holds and "timeout" in dropped.message
    assert check_hairpin(sample(answer(OTHER, ADDRESS))) is None  # never reached itself


def test_only_the_declared_properties_are_judged() -> None:
    lost = sample(answer(OTHER, NODE_ADDRESS), answer(CLIENT, NODE_ADDRESS))
    assert [v.property for v in check_pod_client(lost, (HAIRPIN,))] == [HAIRPIN]
    assert {v.property for v in check_pod_client(lost, (HAIRPIN, SOURCE_IP))} == {
        HAIRPIN,
        SOURCE_IP,
    }


def test_the_model_shows_a_pod_clients_address_and_masquerades_hairpin() -> None:
    target = ModelTarget(seed=3)
    for event in (CreateService("svc-a", labels_of({"app": "web"})), Scale("web", 2)):
        target.apply(event)
    client = target.state.pods["web-0"]
    request = TrafficRequest("svc-a", count=40, client_pod="web-0")
    seen = {
        (o.backend.pod if o.backend else None, o.seen_source) for o in target.send(request).outcomes
    }
    assert seen == {("web-0", NODE_ADDRESS), ("web-1", client.ip)}


def test_a_sample_reaches_itself_and_another_pod_often_and_stays_small() -> None:
    for usable in range(1, 11):
        count = requests_for(usable)
        assert 4 <= count <= 16
        assert 1 - (1 - 1 / usable) ** count >= (0.95 if usable <= 5 else 0.8)
        assert usable == 1 or 1 - (1 / usable) ** count >= 0.98


def test_pod_clients_judge_nothing_on_a_target_that_cannot_send_from_pods() -> None:
    class NoPods:
        pass

    probes = PodClients(NoPods(), 1.0)  # type: ignore[arg-type]
    target = ModelTarget()
    target.apply(CreateService("svc-a", labels_of({"app": "web"})))
    assert probes.after(1, target.state, {}) == ([], frozenset(), frozenset())


class _Relaying:
    """A target whose proxy relays connections (declares hairpin, not source-ip)."""

    name = "local:userspace"
    sends_from_pods = True

    def __init__(self) -> None:
        self.proxy = UserspaceProxy.__new__(UserspaceProxy)


def test_states_a_target_is_never_judged_on_are_uncheckable() -> None:
    assert uncheckable_features(ModelTarget()) == frozenset()
    assert uncheckable(_Relaying()) == {"source-ip-checked"}
    assert judged_properties(_Relaying()) == (HAIRPIN,)
    relaying = target_features(_Relaying())[0]
    assert applicable(SOURCE_IP, _Relaying(), relaying) == NOT_SUPPORTED  # type: ignore[arg-type]
    assert applicable(HAIRPIN, _Relaying(), relaying) is None  # type: ignore[arg-type]
    assert applicable(HAIRPIN, object()) is not None  # type: ignore[arg-type]
    assert uncheckable(object()) == {"hairpin", "source-ip-checked"}
