"""API writes at scale against kmock: bounded concurrency, retries with backoff (Retry-After
honoured), one line for a failure that persists, and waits that end on watch events.

Time never decides a verdict here: waits between retries run on a recording clock (nothing
sleeps), and the concurrency bound is observed by the mock server itself."""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import pytest
import urllib3
from fakecluster import FakeCluster, make_nodes
from mockapi import MockApiServer

from harness.errors import EnvironmentProblem, UsageError
from harness.events import CreateService, Scale
from harness.kube.api import Cluster, connect_url
from harness.kube.backoff import Backoff, retry_after_s, retryable
from harness.kube.objects import Operation, Verb
from harness.kube.observe import Watched, wait_for_names
from harness.kube.writer import Writer, waves
from harness.model.objects import labels_of
from harness.registry import TargetOptions
from harness.targets.kube import KubeTarget

NAMESPACE = "writer-test"
NO_JITTER = Backoff(first_s=0.25, factor=2.0, cap_s=1.0, jitter=0.0)


class RecordingClock:
    """A clock whose sleeps pass at once and are recorded."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


def pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"test": "writer"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }


def status(code: int, headers: dict[str, str] | None = None) -> aiohttp.web.Response:
    body = {"kind": "Status", "status": "Failure", "code": code, "message": f"mock says {code}"}
    return aiohttp.web.json_response(body, status=code, headers=headers)


def is_pod_create(request: Any) -> bool:
    return bool(request.method.name == "POST" and request.url.path.endswith("/pods"))


@pytest.fixture
def retrying(mock_api: MockApiServer) -> Iterator[tuple[Cluster, RecordingClock]]:
    clock = RecordingClock()
    cluster = connect_url(mock_api.url)
    cluster.backoff, cluster.clock = NO_JITTER, clock
    cluster.core.create_namespace({"metadata": {"name": NAMESPACE}})
    try:
        yield cluster, clock
    finally:
        cluster.close()


def create_pod(cluster: Cluster, name: str) -> Any:
    return cluster.call(
        f"create pods in namespace {NAMESPACE}",
        cluster.core.create_namespaced_pod,
        NAMESPACE,
        pod(name),
    )


def fail_first(mock_api: MockApiServer, answers: list[aiohttp.web.Response]) -> list[int]:
    """Answer the next pod creates with `answers`, in order, then let them through; returns the
    list that counts every pod create the server saw."""
    seen: list[int] = []

    async def intercept(request: Any) -> aiohttp.web.StreamResponse | None:
        if not is_pod_create(request):
            return None
        seen.append(1)
        return answers.pop(0) if answers else None

    mock_api.intercept = intercept
    return seen


# -- retries --------------------------------------------------------------------------------------
def test_429_is_retried_after_the_stated_retry_after(
    mock_api: MockApiServer, retrying: tuple[Cluster, RecordingClock]
) -> None:
    cluster, clock = retrying
    seen = fail_first(mock_api, [status(429, {"Retry-After": "3"})])
    created = create_pod(cluster, "p")
    assert created.metadata.name == "p"
    assert len(seen) == 2
    assert clock.sleeps == [3.0]  # as the server said, not the backoff's 0.25 s


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_5xx_is_retried_with_capped_exponential_backoff(
    mock_api: MockApiServer, retrying: tuple[Cluster, RecordingClock], code: int
) -> None:
    cluster, clock = retrying
    seen = fail_first(mock_api, [status(code) for _ in range(4)])
    assert create_pod(cluster, "p").metadata.name == "p"
    assert len(seen) == 5
    assert clock.sleeps == [0.25, 0.5, 1.0, 1.0]  # doubling, capped at cap_s


def test_a_persistent_failure_is_one_line_after_the_last_attempt(
    mock_api: MockApiServer, retrying: tuple[Cluster, RecordingClock]
) -> None:
    cluster, clock = retrying
    cluster.backoff = Backoff(attempts=3, first_s=0.25, jitter=0.0)
    seen = fail_first(mock_api, [status(503) for _ in range(10)])
    with pytest.raises(EnvironmentProblem) as raised:
        create_pod(cluster, "p")
    line = str(raised.value)
    assert "\n" not in line
    assert line.startswith(f"the API server at {cluster.server} kept failing to create pods")
    assert "503" in line and "mock says 503" in line and "3 attempts" in line
    assert len(seen) == 3 and clock.sleeps == [0.25, 0.5]


def test_allowed_statuses_and_client_errors_are_never_retried(
    mock_api: MockApiServer, retrying: tuple[Cluster, RecordingClock]
) -> None:
    cluster, clock = retrying
    seen = fail_first(mock_api, [status(503), status(422)])
    assert cluster.call("create pods", cluster.core.create_namespaced_pod, NAMESPACE, pod("a"),
                        allow=(503,)) is None  # fmt: skip
    with pytest.raises(
        EnvironmentProblem, match="refused to create pods in namespace writer-test: 422"
    ):
        create_pod(cluster, "b")
    assert len(seen) == 2 and clock.sleeps == []


def test_connection_resets_are_retried_and_refusals_are_not() -> None:
    clock = RecordingClock()
    cluster = Cluster(None, "https://k:6443", backoff=NO_JITTER, clock=clock)
    resets = [urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104))]

    def flaky(**_: Any) -> str:
        if resets:
            raise resets.pop()
        return "ok"

    assert cluster.call("list pods", flaky) == "ok"
    assert clock.sleeps == [0.25]
    calls: list[int] = []

    def refused(**_: Any) -> str:
        calls.append(1)
        raise urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused")

    with pytest.raises(EnvironmentProblem, match="connection refused"):
        cluster.call("list pods", refused)
    assert calls == [1] and clock.sleeps == [0.25]


def test_retry_after_forms() -> None:
    from kubernetes.client.exceptions import ApiException

    def error(value: str) -> ApiException:
        failure = ApiException(status=429, reason="Too Many Requests")
        failure.headers = {"Retry-After": value}
        return failure

    now = datetime.datetime(2026, 1, 1, 0, 0, 0, tzinfo=datetime.UTC)
    assert retry_after_s(error("7"), now) == 7.0
    assert retry_after_s(error("Thu, 01 Jan 2026 00:00:05 GMT"), now) == 5.0
    assert retry_after_s(error("Wed, 31 Dec 2025 23:00:00 GMT"), now) == 0.0  # in the past
    assert retry_after_s(error("soon"), now) is None
    assert Backoff().delay(1, retry_after_s=10_000.0) == Backoff().max_retry_after_s
    assert retryable(error("1")) and not retryable(ApiException(status=409))


# -- bounded concurrency --------------------------------------------------------------------------
def test_concurrency_never_exceeds_the_bound(
    mock_api: MockApiServer, retrying: tuple[Cluster, RecordingClock]
) -> None:
    """The server counts the pod creates in flight; the first `bound` are held until that many
    are in flight at once (so the bound is reached, not merely respected), the rest pass."""
    cluster, _ = retrying
    bound, total = 4, 24
    most = [0]
    mock_api.intercept = holding_until(bound, is_pod_create, most)
    names = [f"p{i}" for i in range(total)]
    results = Writer(bound).run([lambda name=name: create_pod(cluster, name) for name in names])
    assert [r.metadata.name for r in results] == names
    assert most[0] == bound
    listed = cluster.core.list_namespaced_pod(NAMESPACE).items
    assert sorted(p.metadata.name for p in listed) == sorted(names)


def test_a_failed_batch_raises_the_failure_and_starts_nothing_after_it(
    mock_api: MockApiServer, retrying: tuple[Cluster, RecordingClock]
) -> None:
    cluster, _ = retrying
    cluster.backoff = Backoff(attempts=2, jitter=0.0)

    async def intercept(request: Any) -> aiohttp.web.StreamResponse | None:
        if is_pod_create(request) and request.data["metadata"]["name"] == "p0":
            return status(503)
        return None

    mock_api.intercept = intercept
    started: list[str] = []

    def create(name: str) -> Any:
        started.append(name)
        return create_pod(cluster, name)

    with pytest.raises(EnvironmentProblem, match="kept failing to create pods"):
        Writer(1 + 1).run([lambda name=f"p{i}": create(name) for i in range(200)])
    assert len(started) < 200  # the batch stopped


def test_waves_keep_the_plans_order_and_never_repeat_an_object() -> None:
    ops = [
        Operation(Verb.DELETE_SERVICE, "s"),
        Operation(Verb.REMOVE_POD, "a"),
        Operation(Verb.REMOVE_POD, "b"),
        Operation(Verb.CREATE_POD, "a"),
        Operation(Verb.CREATE_POD, "c"),
        Operation(Verb.PATCH_POD, "a"),
        Operation(Verb.SET_READY, "a"),
        Operation(Verb.PATCH_POD, "c"),
        Operation(Verb.CREATE_SERVICE, "t"),
    ]
    cut = waves(ops)
    assert [op for wave in cut for op in wave] == ops
    assert [[op.name for op in wave] for wave in cut] == [
        ["s"], ["a", "b"], ["a", "c"], ["a"], ["a"], ["c"], ["t"]
    ]  # fmt: skip


# -- waits on the watch ---------------------------------------------------------------------------
def list_requests(mock_api: MockApiServer) -> int:
    return sum(1 for m, p in mock_api.calls() if m == "GET" and "watch=" not in p)


def test_a_wait_ends_on_the_watch_event_without_polling(
    mock_api: MockApiServer, retrying: tuple[Cluster, RecordingClock]
) -> None:
    cluster, _ = retrying
    watched = Watched(cluster, cluster.core.list_namespaced_pod, NAMESPACE, "test", "pods")
    watched.start()
    try:
        lists_before = list_requests(mock_api)
        looks: list[int] = []
        first_look = threading.Event()

        def arrived(cache: Any) -> bool:
            looks.append(watched.generation)
            first_look.set()
            return "late" in cache

        creator = threading.Thread(
            target=lambda: first_look.wait(10) and create_pod(cluster, "late"), daemon=True
        )
        creator.start()
        assert watched.wait_until(arrived, timeout_s=30)
        creator.join(10)
        # one look at the start, then one per change the watch delivered: no timer, no listing
        assert len(looks) <= 1 + looks[-1] - looks[0]
        assert list_requests(mock_api) == lists_before
        assert wait_for_names(watched, ["late"], present=True, timeout_s=5) == []
    finally:
        watched.stop()


def test_a_wait_with_no_event_looks_twice_and_reports_what_is_missing(
    retrying: tuple[Cluster, RecordingClock],
) -> None:
    cluster, _ = retrying
    watched = Watched(cluster, cluster.core.list_namespaced_pod, NAMESPACE, "test", "pods")
    watched.start()
    try:
        looks: list[int] = []
        assert not watched.wait_until(lambda cache: bool(looks.append(1)), timeout_s=2.5)
        assert looks == [1, 1]  # at the start and at the deadline, none between: no polling
        assert wait_for_names(watched, ["never"], present=True, timeout_s=0.1) == ["never"]
    finally:
        watched.stop()


# -- the target's batch path ----------------------------------------------------------------------
def holding_until(bound: int, matches: Any, most: list[int]) -> Any:
    """An intercept that counts the matching requests in flight (the most in `most[0]`) and holds
    the first `bound` of them until that many are in flight at once."""
    in_flight = [0]
    full: list[asyncio.Event] = []

    async def intercept(request: Any) -> aiohttp.web.StreamResponse | None:
        if not matches(request):
            return None
        if not full:
            full.append(asyncio.Event())
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        if in_flight[0] >= bound:
            full[0].set()
        try:
            await asyncio.wait_for(full[0].wait(), timeout=20)
            await asyncio.sleep(0)
        finally:
            in_flight[0] -= 1
        return None

    return intercept


def test_apply_many_and_reset_write_concurrently_and_leave_nothing(
    mock_api: MockApiServer, cluster: Cluster
) -> None:
    make_nodes(cluster)
    bound = 3
    with FakeCluster(mock_api.url) as fake:
        options = TargetOptions(extra={"startup_s": 5, "api_concurrency": bound})
        target = KubeTarget(options, cluster=cluster, pod_exec=fake.exec)
        target.open()
    try:
        most = [0]
        mock_api.intercept = holding_until(
            bound,
            lambda r: is_pod_create(r) and "/namespaces/svc-lb-" in r.url.path,
            most,
        )
        target.apply_many(
            [CreateService(f"s{i}", labels_of({"app": f"g{i}"})) for i in range(4)]
            + [Scale(f"g{i}", 5) for i in range(4)]
        )
        assert most[0] == bound  # the pods were created `bound` at a time, never more
        pods = {p.metadata.name for p in cluster.core.list_namespaced_pod(target.namespace).items}
        assert {f"g{i}-{j}" for i in range(4) for j in range(5)} <= pods
        services = cluster.core.list_namespaced_service(target.namespace).items
        assert sorted(s.metadata.name for s in services) == [f"s{i}" for i in range(4)]
        most = [0]
        mock_api.intercept = holding_until(
            bound, lambda r: r.method.name == "DELETE" and "/pods/g" in r.url.path, most
        )
        target.reset()
        assert most[0] == bound
        left = {p.metadata.name for p in cluster.core.list_namespaced_pod(target.namespace).items}
        assert not any(name.startswith("g") for name in left)
        assert cluster.core.list_namespaced_service(target.namespace).items == []
    finally:
        target.close()


@pytest.mark.parametrize("value", ["0", "33", "many", "-1", "²"])
def test_a_bad_api_concurrency_is_one_usage_line(value: str) -> None:
    with pytest.raises(UsageError, match="api_concurrency must be a whole number from 1 to 32"):
        KubeTarget(TargetOptions(extra={"api_concurrency": value}))
