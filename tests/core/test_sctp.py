"""SCTP Services (issue 12 item 3) without a kernel: the CRC32c and wire format of
`harness.local.sctp`, what a pod's responder answers, the environment check
(`harness.protocols`), the model and events, the search drawing SCTP only where the target sends
it and declares `sctp`, and the conntrack protocols a start reconciles."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import InvalidEvent, UsageError
from harness.events import (
    SCALED_PORTS,
    SCTP_PORT_NAME,
    AddServicePort,
    CreatePod,
    CreateService,
    Scale,
    event_from_json,
)
from harness.features import CORE_FEATURES, FEATURES, attribute_failure
from harness.local import sctp
from harness.local.traffic import parse_seen
from harness.model.objects import Backend, Protocol, labels_of
from harness.model.state import ClusterState
from harness.protocols import (
    SCTP_CONNTRACK_SYSCTL,
    SctpMode,
    environment_notes,
    sctp_mode,
    sctp_unsupported,
)
from harness.proxies.base import KERNEL_FEATURES, RELAYING_FEATURES
from harness.proxies.rules.conntrack import RECONCILED_PROTOCOLS
from harness.runner import Runner
from harness.strategies import GENERATORS, EventSpace
from harness.targets.model import ModelTarget
from harness.udp_support import generates_sctp

WEB = labels_of({"app": "web"})
SCTP_SERVICE = CreateService("svc-a", WEB, SCTP_PORT_NAME, protocol=Protocol.SCTP)


# -- CRC32c and the wire format -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes(32), 0x8A9136AA),  # RFC 3720 B.4: 32 bytes of zeros
        (b"\xff" * 32, 0x62A8AB43),  # 32 bytes of ones
        (bytes(range(32)), 0x46DD794E),  # incrementing
        (bytes(range(31, -1, -1)), 0x113FDB5C),  # decrementing
        (b"123456789", 0xE3069283),  # the CRC catalogue's check value for CRC-32C
    ],
)
def test_crc32c_matches_the_published_vectors(data: bytes, expected: int) -> None:
    assert sctp.crc32c(data) == expected


def test_an_init_and_its_init_ack_round_trip_with_a_valid_checksum() -> None:
    init = sctp.init(40000, 80, 0xABCDEF)
    wire = init.encode()
    assert len(wire) == 12 + 20 and sctp.decode(wire) == init
    assert sctp.init_tag(init) == 0xABCDEF and init.tag == 0
    ack = sctp.init_ack(init, 0x1234, b"web-0 u1 10.250.1.2")  # 19 bytes: a padded parameter
    decoded = sctp.decode(ack.encode())
    assert decoded == ack
    assert (decoded.source_port, decoded.destination_port, decoded.tag) == (80, 40000, 0xABCDEF)
    assert sctp.cookie(decoded) == b"web-0 u1 10.250.1.2" and sctp.init_tag(decoded) == 0x1234
    corrupted = bytearray(wire)
    corrupted[-1] ^= 1
    assert sctp.decode(bytes(corrupted)) is None  # conntrack would drop it too
    assert sctp.decode(wire[:8]) is None and sctp.cookie(init) is None


def test_the_responder_answers_inits_to_served_ports_and_aborts_the_others() -> None:
    served = frozenset({8080})
    init = sctp.init(40000, 8080, 77)
    ack = sctp.answer(init, served, b"web-0 u1", "10.250.1.2")
    assert ack is not None and sctp.cookie(ack) == b"web-0 u1 10.250.1.2" and ack.tag == 77
    refused = sctp.answer(sctp.init(40000, 9999, 77), served, b"web-0 u1", "10.250.1.2")
    assert refused is not None and refused.first(sctp.ABORT) is not None
    assert refused.tag == 77 and refused.chunks[0].flags == 0  # RFC 9260 §8.4 rule 3
    abort = sctp.abort(40000, 8080, 5)
    assert sctp.answer(abort, served, b"web-0 u1", "10.250.1.2") is None  # never answered
    assert parse_seen(sctp.cookie(ack) or b"") == (Backend("web-0", "u1"), "10.250.1.2")


def test_a_datagram_with_its_ip_header_is_read_by_its_source() -> None:
    header = bytes([0x45]) + bytes(11) + bytes([10, 96, 0, 10]) + bytes([10, 250, 1, 2])
    source, packet = sctp.from_ip(header + sctp.init(1, 2, 3).encode())
    assert source == "10.96.0.10" and packet == sctp.init(1, 2, 3)
    assert sctp.from_ip(b"\x45") == ("", None)


def test_the_responder_never_runs_in_the_harness_namespace() -> None:
    with pytest.raises(ValueError, match="never in the harness's own"):
        sctp.responder_socket("")


# -- the environment ------------------------------------------------------------------------------
def test_sctp_is_supported_where_the_kernel_tracks_it_and_the_mode_follows_the_sockets(
    tmp_path: Path,
) -> None:
    tracked, untracked, unloaded = (tmp_path / n for n in ("tracked", "untracked", "unloaded"))
    for directory in (tracked, untracked, unloaded):
        directory.mkdir()
    for directory in (tracked, untracked):
        (directory / "nf_conntrack_count").write_text("0\n")
    (tracked / SCTP_CONNTRACK_SYSCTL).write_text("3\n")
    assert sctp_unsupported(tracked) is None
    why = sctp_unsupported(untracked) or ""
    assert why.startswith("unsupported by the environment") and "CONFIG_NF_CT_PROTO_SCTP" in why
    assert "not loaded" in (sctp_unsupported(unloaded) or "")
    header = "protocol  size sockets  memory press maxhdr  slab module   cl co di ac io in de sh"
    without, with_sctp = tmp_path / "without", tmp_path / "with"
    without.write_text(f"{header}\nTCP 2432 3 5 no 320 yes kernel y y y y y y y y\n")
    with_sctp.write_text(f"{header}\nSCTP 1344 0 -1 NI 0 yes sctp y y y y y y y y\n")
    assert sctp_mode(without) == SctpMode.RAW and sctp_mode(with_sctp) == SctpMode.SOCKET
    assert sctp_mode(tmp_path / "missing") == SctpMode.RAW
    assert environment_notes("model") == {}  # the model runs on no kernel
    assert sctp.stream_protocol("sctp") == sctp.IPPROTO_SCTP and sctp.stream_protocol("tcp") == 0


# -- the model, events and the search -------------------------------------------------------------
def test_sctp_events_round_trip_and_pods_serve_sctp() -> None:
    pod = CreatePod("p-0", WEB, sctp_port=9132)
    for event in (SCTP_SERVICE, pod, AddServicePort("svc-a", "s", 90, "sctp", Protocol.SCTP)):
        assert event_from_json(event.to_json()) == event
    ports = {(p.name, p.port, p.protocol) for p in pod.apply(ClusterState()).pod("p-0").ports}
    assert ports == {("http", 8080, "TCP"), ("sctp", 9132, "SCTP")}
    assert ("sctp", 8080, "SCTP") in {(p.name, p.port, p.protocol) for p in SCALED_PORTS}
    with pytest.raises(InvalidEvent, match=r"sctp_port 80 must be in 1025\.\.65535"):
        CreatePod("p-1", WEB, sctp_port=80).apply(ClusterState())
    with pytest.raises(UsageError, match="protocol must be one of TCP, UDP, SCTP, got 'DCCP'"):
        event_from_json({**SCTP_SERVICE.to_json(), "protocol": "DCCP"})


def test_the_model_balances_an_sctp_service_as_any_other() -> None:
    runner = Runner(ModelTarget())
    runner.reset()
    results = runner.run([SCTP_SERVICE, Scale("web", 3)])
    assert runner.model.services["svc-a"].ports[0].protocol == "SCTP"
    assert not [f for r in results for f in r.failures()]
    judged = {v.property for v in results[-1].verdicts if v.holds}
    assert {"no-stale-traffic", "availability", "fairness"} <= judged


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_the_search_creates_sctp_services_only_when_the_space_allows(data: st.DataObject) -> None:
    state = ClusterState()
    draw = GENERATORS["create_service"].strategy
    closed = data.draw(draw(state, EventSpace(udp=True)))
    undeclared = data.draw(
        draw(state, EventSpace(sctp=True).for_features(KERNEL_FEATURES - {"sctp"}))
    )
    assert isinstance(closed, CreateService) and closed.protocol != Protocol.SCTP
    assert isinstance(undeclared, CreateService) and undeclared.protocol != Protocol.SCTP
    pod = data.draw(GENERATORS["create_pod"].strategy(state, EventSpace(udp=True)))
    assert not isinstance(pod, CreatePod) or pod.sctp_port is None


def test_the_search_draws_sctp_services_rarely_where_it_may() -> None:
    space = EventSpace(sctp=True)
    assert space.makes_sctp and not EventSpace().makes_sctp
    strategy = GENERATORS["create_service"].strategy(ClusterState(), space)
    drawn: list[CreateService] = []

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(strategy)
    def collect(event: object) -> None:
        if type(event) is CreateService:
            drawn.append(event)

    collect()
    sctp_made = [e for e in drawn if e.protocol == Protocol.SCTP]
    assert 0 < len(sctp_made) < len(drawn) / 3, (len(sctp_made), len(drawn))
    assert all(e.target_port == SCTP_PORT_NAME for e in sctp_made)


class _Target:
    name = "local:x"
    sends_sctp = True

    def __init__(self, features: frozenset[str] | None) -> None:
        self.proxy = type("P", (), {"name": "p", "features": features})()


def test_sctp_reaches_the_search_only_where_declared_and_sendable() -> None:
    assert generates_sctp(ModelTarget())
    assert generates_sctp(_Target(CORE_FEATURES | {"sctp"}))
    assert not generates_sctp(_Target(CORE_FEATURES | {"udp"}))
    no_sctp = _Target(CORE_FEATURES | {"sctp"})
    no_sctp.sends_sctp = False  # the kube target, or a kernel that does not track SCTP
    assert not generates_sctp(no_sctp)
    assert "sctp" in KERNEL_FEATURES and "sctp" not in RELAYING_FEATURES


def test_an_sctp_failure_counts_against_the_sctp_feature() -> None:
    assert attribute_failure("availability", [SCTP_SERVICE, Scale("web", 2)]) == {"sctp"}
    assert "sctp" not in attribute_failure("availability", [CreateService("svc-a", WEB)])
    assert "reject-when-empty" in FEATURES["sctp"].properties


def test_a_start_reconciles_udp_entries_only_as_kube_proxy() -> None:
    """kube-proxy's `CleanStaleEntries` (pkg/proxy/conntrack/cleanup.go, since v1.32) keeps
    only UDP Services and UDP entries; SCTP entries end with their associations."""
    assert frozenset({"udp"}) == RECONCILED_PROTOCOLS
