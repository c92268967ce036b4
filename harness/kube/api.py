"""Connecting to an API server, and turning client errors into one-line harness errors.

Everything the `kube` target sends to the API goes through `Cluster.call`, so that every failure
the environment can cause is reported the same way, as one line that names the cause:

- the server cannot be reached (connection refused, DNS, TLS, timeout): `EnvironmentProblem`;
- the kubeconfig is missing, unreadable or has no such context: `UsageError`;
- 401: the credentials were rejected: `EnvironmentProblem`;
- 403: a permission is missing: `EnvironmentProblem` naming the verb and resource, pointing at
  `deploy/rbac.yaml` (which lists every permission the harness uses);
- 429, 500, 502, 503, 504 and connection resets are retried with backoff, honouring Retry-After
  (`harness.kube.backoff`); one that persists is one `EnvironmentProblem` naming the status, the
  number of attempts and the time they took.

The client is the official `kubernetes` package with a private `Configuration`: connecting never
changes the process-wide default configuration, so two targets can talk to two clusters.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from harness.clock import Clock, RealClock
from harness.documents import shorten
from harness.errors import EnvironmentProblem, UsageError
from harness.kube.backoff import Backoff, describe, retry_after_s, retryable

T = TypeVar("T")

REQUEST_TIMEOUT_S = 10.0  # one API call; watches set their own
MERGE_PATCH = "application/merge-patch+json"  # the content type of every patch the harness sends
RETRY_PAUSE_S = 0.2
CONNECTION_POOL = 32  # connections kept per server: at least a Writer's concurrency
# the loaders are untyped in the client package
_LOAD_KUBECONFIG: Any = config.load_kube_config
_LOAD_INCLUSTER: Any = config.load_incluster_config
RBAC_HINT = "deploy/rbac.yaml lists the permissions the harness needs"
KUBECONFIG_VERSION = "v1"
KUBECONFIG_KIND = "Config"
LOADER_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    RecursionError,
)
"""What the client's kubeconfig loader raises on a file that parses but is not a kubeconfig."""


@dataclass
class Cluster:
    """A connection to one API server: the typed API groups and the server's address.

    `server` is the URL the client talks to, `context` the kubeconfig context it came from (None
    for a URL), `kubeconfig` the file (None when built from a URL or in-cluster config).
    `backoff` is the retry policy of every call and `clock` what its waits sleep on; the
    connection is safe to share between threads (one urllib3 pool of CONNECTION_POOL).
    """

    api_client: Any
    server: str
    context: str | None = None
    kubeconfig: str | None = None
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    clock: Clock = dataclasses.field(default_factory=RealClock)

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api_client)

    @property
    def discovery(self) -> Any:
        return client.DiscoveryV1Api(self.api_client)

    @property
    def configuration(self) -> Any:
        return self.api_client.configuration

    def call(
        self,
        action: str,
        function: Callable[..., T],
        *args: Any,
        allow: Collection[int] = (),
        **kwargs: Any,
    ) -> T | None:
        """Call one API `function`; `action` names it for errors ("create pods in namespace x").

        Statuses in `allow` (for example 404 on a delete that may race) return None instead of
        raising, and are never retried. A retryable failure (`harness.kube.backoff.retryable`)
        is retried as `backoff` says; any other failure, or one that persists, raises a
        one-line `HarnessError`.
        """
        try:
            return self._invoke(action, function, *args, allow=allow, **kwargs)
        except ApiException as error:
            if error.status in allow:
                return None
            raise translate(error, action, self.server) from None

    def create(
        self, action: str, function: Callable[..., T], *args: Any, clock: Clock, wait_s: float
    ) -> T:
        """`call` for a create the server may refuse for a moment (`transient_refusal`): retried
        every RETRY_PAUSE_S for up to `wait_s`, then reported as `call` reports it."""
        deadline_s = clock.now() + wait_s
        while True:
            try:
                return self._invoke(action, function, *args)
            except ApiException as error:
                if not transient_refusal(error) or clock.now() >= deadline_s:
                    raise translate(error, action, self.server) from None
            clock.sleep(RETRY_PAUSE_S)

    def _invoke(
        self,
        action: str,
        function: Callable[..., T],
        *args: Any,
        allow: Collection[int] = (),
        **kwargs: Any,
    ) -> T:
        """`function(*args)`, retried while it fails retryably (a status in `allow` is an answer,
        not a failure); network and decoding failures, and a retryable failure that outlasts
        `backoff.attempts`, become one-line errors, while any other ApiException (the server's
        answer) is left to the caller."""
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT_S)
        started_s = self.clock.now()
        attempt = 1
        while True:
            try:
                return function(*args, **kwargs)
            except ApiException as error:
                if error.status in allow or not retryable(error):
                    raise
                failure: BaseException = error
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if not retryable(error):
                    raise translate(error, action, self.server) from None
                failure = error
            except ValueError as error:  # the client's models reject what the server sent
                raise EnvironmentProblem(
                    f"the API server at {self.server} answered an unexpected object while trying"
                    f" to {action}: {_one_line(error)}"
                ) from None
            if attempt >= self.backoff.attempts:
                raise self._gave_up(failure, action, attempt, self.clock.now() - started_s)
            self.clock.sleep(self.backoff.delay(attempt, retry_after_s(failure), random.random()))
            attempt += 1

    def _gave_up(
        self, failure: BaseException, action: str, attempts: int, spent_s: float
    ) -> EnvironmentProblem:
        """The one line for a retryable failure that persisted: what, how often, for how long."""
        what = describe(failure)
        if isinstance(failure, ApiException):
            message = _api_message(failure)
            if message != str(failure.reason or "no reason given"):
                what += f": {message[:200]}"
        return EnvironmentProblem(
            f"the API server at {self.server} kept failing to {action}: {what}"
            f" ({attempts} attempts over {spent_s:.1f}s, retried with backoff); the server is"
            " overloaded or restarting: try again later, or lower the load on it"
        )

    def check(self) -> str:
        """Make one cheap request (GET /version) so that an unreachable server fails early; the
        server's `gitVersion` ("unknown" if it gives none)."""
        info = self.call("read the server version", client.VersionApi(self.api_client).get_code)
        version = getattr(info, "git_version", None)
        return version if isinstance(version, str) and version else "unknown"

    def close(self) -> None:
        self.api_client.close()


def transient_refusal(error: ApiException) -> bool:
    """Whether a create is refused only for now, so that retrying is right:

    - 403 "error looking up service account .../default": the namespace is new and its default
      ServiceAccount not made yet (the ServiceAccount admission plugin; the e2e framework waits
      for it, `WaitForDefaultServiceAccountInNamespace`);
    - 409 AlreadyExists: a predecessor of the same name is still being removed (a restart).
    """
    if error.status == 409:
        return True
    message = _api_message(error).lower()
    return error.status == 403 and "service account" in message


def translate(error: BaseException, action: str, server: str) -> EnvironmentProblem | UsageError:
    """The one-line harness error for a failed API call. Pure: builds, never raises.

    Exec and other websocket calls fail as status 0 with the handshake's HTTP status in the
    text (kubernetes.stream.ws_client); that status is read back so a 403 is still named.
    """
    if isinstance(error, ApiException):
        status, reason = error.status, _api_message(error)
        handshake = re.search(r"Handshake status (\d{3})\s*([^-]*)", reason)
        if status in (0, None) and handshake:
            status, reason = int(handshake.group(1)), handshake.group(2).strip() or reason
        if status == 403:
            return EnvironmentProblem(
                f"missing permission: the API server at {server} forbids the harness to {action}"
                f" ({reason[:300]}); {RBAC_HINT}"
            )
        if status == 401:
            return EnvironmentProblem(
                f"the API server at {server} rejected the credentials (401 Unauthorized) while"
                f" trying to {action}: check the kubeconfig's user and token"
            )
        if status in (0, None):
            return EnvironmentProblem(
                f"cannot reach the Kubernetes API server at {server}"
                f" (while trying to {action}): {reason[:300]}"
            )
        return EnvironmentProblem(
            f"the API server at {server} refused to {action}: {status} {error.reason}:"
            f" {reason[:300]}"
        )
    return EnvironmentProblem(
        f"cannot reach the Kubernetes API server at {server} (while trying to {action}):"
        f" {_network_reason(error)}"
    )


def _api_message(error: ApiException) -> str:
    """The server's Status message, or the HTTP reason, on one line."""
    body = error.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str) and body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if isinstance(message, str) and message:
            return " ".join(message.split())
    return str(error.reason or "no reason given")


def _network_reason(error: BaseException) -> str:
    """The innermost cause of a connection failure, on one line."""
    reason: BaseException = error
    while True:
        inner = getattr(reason, "reason", None)
        if isinstance(inner, BaseException) and inner is not reason:
            reason = inner
            continue
        break
    text = str(reason) or type(reason).__name__
    if "Connection refused" in text:
        return "connection refused (is the cluster running?)"
    if "timed out" in text.lower():
        return "the connection timed out"
    return " ".join(text.split())[:300]


# -- building a Cluster ---------------------------------------------------------------------------
def connect(
    kubeconfig: str | None = None, context: str | None = None, kind_hint: bool = True
) -> Cluster:
    """A Cluster from a kubeconfig file, resolved as kubectl does.

    `kubeconfig` None means `$KUBECONFIG` (first existing file of the list) or `~/.kube/config`,
    and in-cluster service-account config when running inside a pod with neither. `context` None
    means the file's current context. Bad input raises `UsageError`; the server is not contacted
    (call `check()`). `kind_hint` mentions `--kind-cluster` in the no-kubeconfig error (the
    commands that have that option).
    """
    configuration = client.Configuration()
    path = kubeconfig or _default_kubeconfig()
    if path is None:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                _LOAD_INCLUSTER(client_configuration=configuration)
            except ConfigException as error:
                raise UsageError(f"in-cluster configuration is unusable: {error}") from None
            return _cluster(configuration, None, None)
        raise UsageError(
            "no kubeconfig found: give --kubeconfig FILE or set KUBECONFIG"
            + (", or use --kind-cluster NAME" if kind_hint else "")
        )
    _check_kubeconfig_file(path)
    try:
        _LOAD_KUBECONFIG(
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except ConfigException as error:
        where = f" (context {shorten(context)})" if context else ""
        raise UsageError(f"bad kubeconfig {path}{where}: {_one_line(error)}") from None
    except LOADER_ERRORS as error:
        # YAML that is not a kubeconfig: the loader indexes and calls what it finds
        raise UsageError(
            f"bad kubeconfig {path}: {type(error).__name__}: {_one_line(error)}"
            " (`kubectl config view` shows what is wrong)"
        ) from None
    return _cluster(configuration, context, path)


def connect_url(server: str, token: str | None = None) -> Cluster:
    """A Cluster for a bare URL (a mock API server in tests, or `kubectl proxy`)."""
    configuration = client.Configuration()
    configuration.host = server.rstrip("/")
    if token:
        configuration.api_key = {"authorization": f"Bearer {token}"}
    return _cluster(configuration, None, None)


def _cluster(configuration: Any, context: str | None, kubeconfig: str | None) -> Cluster:
    # One quick try: an unreachable server must fail in seconds, not after urllib3's retries
    # (failures worth retrying are retried by Cluster, with backoff). Enough pooled connections
    # for a Writer's concurrency: urllib3 otherwise opens and discards one per extra request.
    configuration.retries = 1
    configuration.connection_pool_maxsize = max(
        CONNECTION_POOL, configuration.connection_pool_maxsize or 0
    )
    where = f"bad kubeconfig {kubeconfig}" if kubeconfig else "bad cluster configuration"
    proxy = configuration.proxy
    if proxy is not None and not (isinstance(proxy, str) and "://" in proxy):
        raise UsageError(
            f"{where}: proxy-url {shorten(str(proxy))} is not a URL; give"
            " http://HOST:PORT, https://HOST:PORT or socks5://HOST:PORT, or remove it"
        )
    try:
        api_client = client.ApiClient(configuration)
    except (ValueError, TypeError, AttributeError) as error:  # what the client cannot use
        raise UsageError(
            f"{where}: {type(error).__name__}: {_one_line(error)}"
            " (`kubectl config view` shows what is wrong)"
        ) from None
    return Cluster(api_client, configuration.host, context, kubeconfig)


def _check_kubeconfig_file(path: str) -> None:
    """UsageError unless `path` is a readable YAML mapping of a kubeconfig version this harness
    reads (`apiVersion: v1`, `kind: Config`, both optional as for kubectl); the loader's own
    errors are obscure."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"kubeconfig {path} is not UTF-8 text") from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or _one_line(error)
        raise UsageError(f"cannot read kubeconfig {path}: {reason}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"kubeconfig {path} is not valid YAML: {_one_line(error)}") from None
    except RecursionError:
        raise UsageError(f"kubeconfig {path} is nested too deeply to be a kubeconfig") from None
    if not isinstance(data, dict) or not isinstance(data.get("clusters"), list):
        raise UsageError(f"{path} is not a kubeconfig (no 'clusters' list)")
    for field, readable in (("apiVersion", KUBECONFIG_VERSION), ("kind", KUBECONFIG_KIND)):
        if data.get(field, readable) != readable:
            raise UsageError(
                f"kubeconfig {path} has {field} {shorten(data[field])}; this harness reads"
                f" {field} {readable}"
            )


def _default_kubeconfig() -> str | None:
    for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry and Path(entry).is_file():
            return entry
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__
