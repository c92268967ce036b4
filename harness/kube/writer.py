"""Many API writes at once, at most a fixed number in flight: how the kube target builds and
tears down large clusters (1,000 pods and 200 Services) in seconds instead of minutes.

`Writer.run` runs a batch of calls on at most `concurrency` threads, so no more than that many
requests are ever in flight (the API server's fairness queues see one steady client, as with
client-go's bounded workers); each call is expected to retry by itself what may pass (every
`Cluster.call` does, `harness.kube.backoff`). The first call that fails stops the batch: calls not
yet started are dropped, the running ones finish, and the first failure is raised, unchanged
(a one-line `HarnessError` from `Cluster.call`).

`waves` cuts an ordered list of operations (`harness.kube.objects.plan`) into batches that may
run concurrently without changing the outcome: consecutive operations of one verb, each on a
different object. The plan's order between verbs (Services removed before pods, a pod removed
before its name is created again, pods before the Services that select them) is kept, one wave
after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from harness.errors import UsageError
from harness.kube.api import CONNECTION_POOL
from harness.kube.objects import Operation

T = TypeVar("T")

DEFAULT_CONCURRENCY = 16  # writes in flight; the connection pool holds CONNECTION_POOL


class Writer:
    """Runs batches of API calls with at most `concurrency` in flight. Holds no threads between
    batches; one batch at a time per Writer."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        if not 1 <= concurrency <= CONNECTION_POOL:
            raise UsageError(
                f"api_concurrency must be a whole number from 1 to {CONNECTION_POOL},"
                f" not {concurrency} (the target option api_concurrency=N)"
            )
        self.concurrency = concurrency
        self._batch = threading.Lock()

    @classmethod
    def from_option(cls, value: object) -> Writer:
        """A Writer from the target option `api_concurrency` (None: the default); UsageError,
        one line, for anything but a whole number in range."""
        if value is None:
            return cls()
        text = str(value).strip()
        if not (text.isascii() and text.isdigit()):
            raise UsageError(
                f"api_concurrency must be a whole number from 1 to {CONNECTION_POOL}, not {text!r}"
            )
        return cls(int(text))

    def run(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Every call's result, in the calls' order. Stops at the first failure and raises it;
        calls not started by then never run. On KeyboardInterrupt the same: no new call starts,
        the running ones end (each is bounded by its request timeout and retries)."""
        if not calls:
            return []
        if len(calls) == 1 or self.concurrency == 1:
            return [call() for call in calls]
        with self._batch:
            pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="api-write")
            try:
                futures = [pool.submit(call) for call in calls]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = _first_failure(futures, done)
                if failed is not None:
                    for future in futures:
                        future.cancel()
                    raise failed
                return [future.result() for future in futures]
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

    def run_waves(
        self, operations: Sequence[Operation], execute: Callable[[Operation], None]
    ) -> None:
        """`execute` every operation, wave after wave (`waves`), each wave through `run`."""
        for wave in waves(operations):
            self.run([_bind(execute, operation) for operation in wave])


def waves(operations: Sequence[Operation]) -> list[list[Operation]]:
    """`operations` cut into consecutive runs of one verb in which no object appears twice; the
    concatenation of the waves is `operations`, in order."""
    result: list[list[Operation]] = []
    names: set[str] = set()
    for operation in operations:
        current = result[-1] if result else None
        if current is None or current[0].verb != operation.verb or operation.name in names:
            result.append([operation])
            names = {operation.name}
        else:
            current.append(operation)
            names.add(operation.name)
    return result


def _bind(execute: Callable[[Operation], None], operation: Operation) -> Callable[[], None]:
    return lambda: execute(operation)


def _first_failure(futures: Sequence[Future[T]], done: set[Future[T]]) -> BaseException | None:
    """The failure of the earliest submitted call among those done, or None."""
    for future in futures:
        if future in done and not future.cancelled():
            error = future.exception()
            if error is not None:
                return error
    return None
