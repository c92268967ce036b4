"""Locust inside the cluster: a headless master and N worker pods, started and removed by the
harness, so that load on a real cluster comes from its nodes (issue 13, item 3).

One run is: the master pod (`--master --headless --expect-workers N`), then, once it has an
address, N worker pods pointed at it, spread over the nodes (a topology spread constraint on
`kubernetes.io/hostname`, best effort, so a bigger cluster spreads its load wider). Each pod runs
a shell script that writes the locustfile it is handed (in its environment: no ConfigMap, so no
permission beyond the kube target's), runs locust bounded by `-t`, and then writes its output
(the master's JSON statistics, each worker's tally files) to `/tmp/harness-out` and creates
`/tmp/harness-done`, which its readiness probe reads. A pod is therefore *Ready exactly when its
figures are there*, and the harness waits on the pod watch (`harness.kube.runtime.
wait_until_ready`), never by polling; it then reads each pod's output through `pods/exec`
(`cat`, the permission the kube target already has) and deletes the pods (grace 0), also when
anything failed. A killed run's pods end by themselves (`activeDeadlineSeconds`) and go with the
run's namespace (`harness clean --kube`).

Bounds: locust's `-t`, its `--expect-workers-max-wait`, a sleep after the output that keeps the
pod readable for `READ_WINDOW_S` and no longer, and `activeDeadlineSeconds` over all of it plus
the image pull budget. The image is locust's official one (`LOCUST_IMAGE`), pinned by tag (the
machine this was written on cannot reach the registry to resolve its digest).

`master_manifest`, `worker_manifest` and `parse_output` are pure; `InClusterLocust` talks to the
API. This module knows nothing of what the locustfile measures: bench/kube_locust.py hands it the
files and parses the figures.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.clock import Clock
from harness.errors import EnvironmentProblem
from harness.kube.node_rules import PodExec
from harness.kube.objects import ROLE_LABEL, RUN_LABEL, Placement, managed_labels
from harness.kube.observe import Watched
from harness.kube.runtime import wait_until_ready
from harness.kube.scope import Scope

LOCUST_IMAGE = "docker.io/locustio/locust:2.47.0"  # the version the bench extra runs here
ROLE = "locust"
MASTER_PORT = 5557
FILES_DIR = "/tmp/harness-locust"
OUTPUT = "/tmp/harness-out"
DONE = "/tmp/harness-done"
OUTPUT_MARK = "HARNESS-OUTPUT "
EXIT_MARK = "HARNESS-EXIT "
WORKERS_WAIT_S = 60  # the master's --expect-workers-max-wait
STOP_TIMEOUT_S = 2
READ_WINDOW_S = 600  # a pod stays readable this long after its output is written
PULL_BUDGET_S = 300  # image pull and scheduling, inside activeDeadlineSeconds
CREATE_WAIT_S = 30.0  # until a new namespace's default ServiceAccount exists
MAX_WORKERS = 64
PART_LABEL = "svc-lb-harness/locust"  # master or worker
FIGURES = "/tmp/harness-figures"


@dataclass(frozen=True)
class LocustPlan:
    """One run: `files` (name -> text; `locustfile` names the one to run) written into every
    pod, `url` the base URL asked (no path), `users` spread over `workers` worker pods for
    `seconds`, `env` handed to every locust process."""

    files: Mapping[str, str]
    locustfile: str
    url: str
    users: int
    workers: int
    seconds: int
    env: Mapping[str, str] = field(default_factory=dict)
    image: str = LOCUST_IMAGE

    def __post_init__(self) -> None:
        if self.locustfile not in self.files:
            raise ValueError(f"the locustfile {self.locustfile!r} is not among the files")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1 to {MAX_WORKERS}, not {self.workers}")
        if self.users < 1 or self.seconds < 1:
            raise ValueError("users and seconds must be at least 1")

    @property
    def run_s(self) -> int:
        """How long locust may run, at most: waiting for workers, the test, its stop."""
        return WORKERS_WAIT_S + self.seconds + STOP_TIMEOUT_S + 10

    @property
    def deadline_s(self) -> int:
        """`activeDeadlineSeconds` of every pod: the pull budget, the run, the read window."""
        return PULL_BUDGET_S + self.run_s + READ_WINDOW_S


def _file_env(plan: LocustPlan) -> list[dict[str, str]]:
    return [
        {"name": f"HARNESS_FILE_{index}", "value": text}
        for index, text in enumerate(plan.files.values())
    ]


def _script(plan: LocustPlan, locust_argv: Sequence[str], outputs: str) -> str:
    """Write the files, run locust (bounded by `timeout`), print nothing, then put `outputs`
    (a shell glob or path whose files are the pod's figures) into OUTPUT, one marked line per
    file, and the exit code; create DONE; stay readable for READ_WINDOW_S."""
    writes = [
        f'printf "%s" "$HARNESS_FILE_{index}" > {FILES_DIR}/{shlex.quote(name)}'
        for index, name in enumerate(plan.files)
    ]
    lines = [
        f"mkdir -p {FILES_DIR} {FIGURES}",
        *writes,
        f"timeout {plan.run_s} {shlex.join(locust_argv)} > /tmp/harness-log 2>&1",
        "code=$?",
        f": > {OUTPUT}",
        f"for f in {outputs}; do [ -f \"$f\" ] && printf '{OUTPUT_MARK}%s\\n'"
        f' "$(tr -d "\\n" < "$f")" >> {OUTPUT}; done',
        f'echo "{EXIT_MARK}$code" >> {OUTPUT}',
        "tail -n 3 /tmp/harness-log | sed 's/^/# /' >> " + OUTPUT,
        f"touch {DONE}",
        f"sleep {READ_WINDOW_S}",
    ]
    return "\n".join(lines)


def _pod(
    name: str, placement: Placement, plan: LocustPlan, script: str, part: str
) -> dict[str, Any]:
    labels = {**managed_labels(placement.run, ROLE), PART_LABEL: part}
    env = [{"name": key, "value": value} for key, value in sorted(plan.env.items())]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "activeDeadlineSeconds": plan.deadline_s,
        "containers": [
            {
                "name": "locust",
                "image": plan.image,
                "command": ["sh", "-c", script],
                "env": [*_file_env(plan), *env],
                "readinessProbe": {
                    "exec": {"command": ["test", "-e", DONE]},
                    "periodSeconds": 1,
                },
            }
        ],
    }
    if part == "worker":
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {PART_LABEL: part}},
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": placement.namespace, "labels": labels},
        "spec": spec,
    }


def master_manifest(
    name: str, placement: Placement, plan: LocustPlan, stats: str
) -> dict[str, Any]:
    """The master pod: headless, expecting `plan.workers`, writing its JSON statistics to
    `stats` (locust's `--json-file`, without the `.json` it appends)."""
    argv = ["locust", "-f", f"{FILES_DIR}/{plan.locustfile}", "--loglevel", "WARNING"]
    argv += ["--master", "--master-bind-port", str(MASTER_PORT), "--headless"]
    argv += ["--expect-workers", str(plan.workers)]
    argv += ["--expect-workers-max-wait", str(WORKERS_WAIT_S)]
    argv += ["-u", str(plan.users), "-r", str(plan.users * 10), "-t", f"{plan.seconds}s"]
    argv += ["-H", plan.url, "--json-file", stats, "--only-summary"]
    argv += ["--stop-timeout", str(STOP_TIMEOUT_S)]
    return _pod(name, placement, plan, _script(plan, argv, f"{stats}.json"), "master")


def worker_manifest(
    name: str, placement: Placement, plan: LocustPlan, master: str, outputs: str
) -> dict[str, Any]:
    """A worker pod connecting to the master at address `master`; its figures are the files
    `outputs` (a glob) names once locust has quit."""
    argv = ["locust", "-f", f"{FILES_DIR}/{plan.locustfile}", "--loglevel", "WARNING"]
    argv += ["--worker", "--master-host", master, "--master-port", str(MASTER_PORT)]
    return _pod(name, placement, plan, _script(plan, argv, outputs), "worker")


@dataclass(frozen=True)
class PodOutput:
    """What one pod wrote: its files' contents (one line each), locust's exit code and the
    last lines of its log."""

    files: tuple[str, ...]
    exit_code: int | None
    log_tail: tuple[str, ...]


def parse_output(text: str) -> PodOutput:
    """A pod's OUTPUT file, parsed; lines it does not know are ignored."""
    files, tail = [], []
    code: int | None = None
    for line in text.splitlines():
        if line.startswith(OUTPUT_MARK):
            files.append(line[len(OUTPUT_MARK) :])
        elif line.startswith(EXIT_MARK):
            value = line[len(EXIT_MARK) :].strip()
            code = int(value) if value.isdigit() else None
        elif line.startswith("# "):
            tail.append(line[2:])
    return PodOutput(tuple(files), code, tuple(tail))


@dataclass(frozen=True)
class LocustOutputs:
    master: PodOutput
    workers: tuple[PodOutput, ...]


class InClusterLocust:
    """Runs `LocustPlan`s in the run's namespace (see the module docstring).

    Contract: `run` creates only pods labelled with the run and role `locust`, and deletes every
    one it created before it returns or raises; it raises a one-line EnvironmentProblem when a
    pod cannot start or locust wrote no figures in time; it never changes anything else.
    """

    def __init__(
        self, scope: Scope, exec_function: PodExec, clock: Clock, startup_s: float
    ) -> None:
        self._scope = scope
        self._exec = exec_function
        self._clock = clock
        self._startup_s = startup_s
        self._runs = 0

    def run(self, plan: LocustPlan) -> LocustOutputs:
        self._runs += 1
        run = self._scope.placement.run
        master = f"{run}-locust-{self._runs}-m"
        workers = [f"{run}-locust-{self._runs}-w{index}" for index in range(plan.workers)]
        created: list[str] = []
        pods = Watched(
            self._scope.cluster,
            self._scope.cluster.core.list_namespaced_pod,
            self._scope.namespace,
            f"{RUN_LABEL}={run},{ROLE_LABEL}={ROLE}",
            "locust pods",
        )
        pods.start()
        try:
            stats = f"{FIGURES}/stats"
            self._create(master_manifest(master, self._scope.placement, plan, stats), created)
            address = self._address(pods, master)
            outputs = f"{FIGURES}/tally-*.json"
            for name in workers:
                manifest = worker_manifest(name, self._scope.placement, plan, address, outputs)
                self._create(manifest, created)
            wait_until_ready(pods, list(created), self._startup_s + plan.run_s, self._clock)
            return LocustOutputs(self._read(master), tuple(self._read(name) for name in workers))
        finally:
            pods.stop()
            self._delete(created)

    def _create(self, manifest: dict[str, Any], created: list[str]) -> None:
        self._scope.create_pod(manifest, self._clock, CREATE_WAIT_S)
        created.append(manifest["metadata"]["name"])

    def _address(self, pods: Watched, name: str) -> str:
        """The master's pod IP, waited for on the watch (bounded by the startup budget)."""

        def has_address(pods: Mapping[str, Any]) -> bool:
            return bool(_pod_ip(pods.get(name)))

        if not pods.wait_until(has_address, self._startup_s):
            raise EnvironmentProblem(
                f"the locust master pod {name} got no address within {self._startup_s:.0f} s;"
                f" check that the nodes can pull {LOCUST_IMAGE}"
            )
        found = _pod_ip(pods.get(name))
        assert found is not None
        return found

    def _read(self, name: str) -> PodOutput:
        return parse_output(self._exec(name, ["cat", OUTPUT], 30.0))

    def _delete(self, names: list[str]) -> None:
        while names:
            self._scope.delete_pod(names.pop())


def _pod_ip(pod: Any) -> str | None:
    status = getattr(pod, "status", None)
    return getattr(status, "pod_ip", None) or None
