"""Locust as the kube target's distributed engine: bench/locustfile.py run by a headless master
and N worker pods inside the cluster (`harness.kube.loadgen.InClusterLocust`), its figures read
as the local runs' are (`load_results.parse_locust`: the master's JSON statistics, the workers'
µs histograms and per-pod counts).

The pods ask `/hostname` (agnhost answers `POD--UID`, which bench/pod_identity.py reads), with the
same users, connection modes and user class as the local runs; every worker writes its tally into
the directory `harness.kube.loadgen` collects.
"""

from __future__ import annotations

import json
from pathlib import Path

from load_results import LoadResult, parse_locust

from harness.kube.loadgen import FIGURES, LocustOutputs, LocustPlan

BENCH = Path(__file__).resolve().parent
FILES = ("locustfile.py", "worker_tally.py", "pod_identity.py")
"""What a pod needs to run the harness's locustfile (it imports the other two)."""
PATH = "/hostname"


class KubeLoadRunFailed(RuntimeError):
    """A run in the cluster that gave no figures (the message says why, in one line)."""


def plan(url: str, users: int, workers: int, seconds: int, fresh: bool, user: str) -> LocustPlan:
    """One run of the harness's locustfile against `url` (a base URL, no path)."""
    return LocustPlan(
        files={name: (BENCH / name).read_text() for name in FILES},
        locustfile="locustfile.py",
        url=url,
        users=users,
        workers=workers,
        seconds=seconds,
        env={
            "HARNESS_LOCUST_CONNECTION": "close" if fresh else "keep-alive",
            "HARNESS_LOCUST_USER": user,
            "HARNESS_LOCUST_TALLY_DIR": FIGURES,
            "HARNESS_LOCUST_PATH": PATH,
        },
    )


def result(outputs: LocustOutputs) -> LoadResult:
    """The run's figures: the master's statistics file and every worker's tally files.
    KubeLoadRunFailed when the master wrote none or a file is unreadable."""
    master = outputs.master
    if not master.files:
        tail = " | ".join(master.log_tail) or "no log"
        raise KubeLoadRunFailed(f"the locust master wrote no statistics (exit {master.exit_code}):"
                                f" {tail}")  # fmt: skip
    try:
        stats = json.loads(master.files[0])
        tallies = [json.loads(text) for worker in outputs.workers for text in worker.files]
        return parse_locust(stats, tallies)
    except (ValueError, KeyError, TypeError) as error:
        problem = f"the locust figures from the cluster are unreadable: {error}"
        raise KubeLoadRunFailed(problem) from None
