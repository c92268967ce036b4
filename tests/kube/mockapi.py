"""A mock API server (kmock) on loopback, run in a background thread for synchronous tests.

kmock 0.8 quirks handled here: the bundled resource list must be loaded, and it cannot parse the
cluster-scoped `namespaces` paths (`/api/v1/namespaces[/NAME]`), which it reads as a namespace
prefix; `parse_path` is corrected for exactly those paths. A Service's ClusterIP is allocated in
the create response, as the API server does (`pkg/registry/core/service/storage`: the allocation
happens before the object is stored), so the harness never needs to read a Service back.
Deleting a namespace deletes the objects in it, as the namespace controller does. A DELETE
with `dryRun` deletes nothing.

kmock keeps every request and matches each new one against all of them (quadratic: a benchmark's
thousands of requests take minutes); `MockApiServer(keep_requests=False)` forgets each request
once it is answered, for benchmarks that never look at them.

`MockApiServer.intercept`, when set, sees every request first (on the server's event loop) and
may answer it itself (an error status, a Retry-After) or delay it: the tests of retries and of
bounded concurrency use it.

`MockApiServer(graceful_pods=True)` also emulates graceful pod deletion, which kmock lacks: a
DELETE with `gracePeriodSeconds` > 0 marks the pod (deletionTimestamp, through a finalizer of its
own, `GRACEFUL_FINALIZER`) instead of removing it, and a DELETE with 0 removes a marked pod at
once; `fakecluster.FakeCluster` removes marked pods whose grace has run out, as the kubelet
would.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import parsing

_original_parse_path = parsing.parse_path


def _parse_path(path: str) -> Any:
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        name = parts[3] if len(parts) == 4 else None
        return parsing.ParsedPath("", "v1", "namespaces", None, name, None)
    if (
        parts[:3] == ["api", "v1", "namespaces"]
        and len(parts) == 5
        and parts[4] in ("status", "finalize")
    ):
        return parsing.ParsedPath("", "v1", "namespaces", None, parts[3], parts[4])
    return _original_parse_path(path)


parsing.parse_path = _parse_path

_CLUSTER_IPS = (f"10.96.0.{10 + n % 240}" for n in itertools.count())
GRACEFUL_FINALIZER = "fakecluster/graceful-deletion"


def _grace_s(request: Any) -> int | None:
    value = request.params.get("gracePeriodSeconds")
    if value is None and isinstance(request.data, dict):
        value = request.data.get("gracePeriodSeconds")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


Intercept = Callable[[Any], Awaitable[aiohttp.web.StreamResponse | None]]


class _AllocatingEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, allocating a created Service's ClusterIP when it has none, deleting a
    namespace's objects with it, and asking `intercept` first."""

    intercept: Intercept | None = None
    keep_requests = True

    graceful_pods = False

    async def _handle(self, request: Any) -> Any:
        try:
            return await self._answer(request)
        finally:
            if not self.keep_requests:
                self._requests[:] = [r for r in self._requests if r is not request]

    async def _answer(self, request: Any) -> Any:
        if self.intercept is not None:
            answer = await self.intercept(request)
            if answer is not None:
                return answer
        resource = request.resource
        if request.action == kmock.action.DELETE and request.params.get("dryRun"):
            # a server-side dry run changes nothing (the API server authorizes it first)
            metadata = {"name": request.name, "namespace": request.namespace}
            return aiohttp.web.json_response(
                {"kind": "Pod", "apiVersion": "v1", "metadata": metadata}
            )
        if (
            self.graceful_pods
            and request.action == kmock.action.DELETE
            and resource is not None
            and resource.plural == "pods"
            and request.name is not None
        ):
            await self._mark_graceful(request, _grace_s(request))
        if (
            request.action == kmock.action.CREATE
            and resource is not None
            and resource.plural == "services"
            and isinstance(request.data, dict)
        ):
            spec = request.data.setdefault("spec", {})
            spec["clusterIP"] = spec.get("clusterIP") or next(_CLUSTER_IPS)
        answer = await super()._handle(request)
        if (
            request.action == kmock.action.DELETE
            and resource is not None
            and resource.plural == "namespaces"
            and request.name
        ):
            await self._delete_contents(request.name)
        return answer

    async def _delete_contents(self, namespace: str) -> None:
        async with self._lock:
            for key, item in list(self._objects.items()):
                if key[1] == namespace and not item.deleted:
                    item.delete()
                    await self._buses[key[0]].put({"type": "DELETED", "object": item.last.raw})

    async def _mark_graceful(self, request: Any, grace_s: int | None) -> None:
        """Before kmock's DELETE: a graceful one gets our finalizer (so kmock only marks the
        pod), an immediate one takes it away again (so kmock removes the marked pod)."""
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                return
            pod = self._objects[key]
            metadata = pod.get("metadata", {})
            finalizers = [f for f in metadata.get("finalizers") or [] if f != GRACEFUL_FINALIZER]
            if grace_s and not metadata.get("deletionTimestamp"):
                pod.patch(
                    {
                        "metadata": {
                            "finalizers": [*finalizers, GRACEFUL_FINALIZER],
                            "deletionGracePeriodSeconds": grace_s,
                        }
                    }
                )
            elif not grace_s:
                pod.patch({"metadata": {"finalizers": finalizers}})


VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class MockApiServer:
    """kmock's Kubernetes emulator serving on 127.0.0.1 from its own event loop thread."""

    def __init__(self, keep_requests: bool = True, graceful_pods: bool = False) -> None:
        self._keep_requests = keep_requests
        self.graceful_pods = graceful_pods
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> str:
        self.handler = _AllocatingEmulator()
        self.handler.keep_requests = self._keep_requests
        self.handler.graceful_pods = self.graceful_pods
        await self.handler.__aenter__()
        self.handler.resources.load_bundled()
        # the python client asks `/version/` (with the slash); kmock serves only `/version`
        self.handler["get /version/"] << VERSION
        self.server = kmock.Server(self.handler)
        await self.server.__aenter__()
        return str(self.server.url).rstrip("/")

    @property
    def intercept(self) -> Intercept | None:
        return self.handler.intercept

    @intercept.setter
    def intercept(self, function: Intercept | None) -> None:
        self.handler.intercept = function

    def requests(self) -> list[Any]:
        return list(self.handler)

    def calls(self) -> list[tuple[str, str]]:
        """(METHOD, path?query) of every request so far, in order."""
        out = []
        for request in self.requests():
            url = request.url
            query = f"?{url.query_string}" if url.query_string else ""
            out.append((request.method.name, f"{url.path}{query}"))
        return out

    def stop(self) -> None:
        """Stop serving; idempotent."""
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            await self.server.__aexit__(None, None, None)
            await self.handler.__aexit__(None, None, None)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
