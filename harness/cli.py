"""The `harness` command line: run, replay, targets, proxies, properties, known-issues, report,
bench, clean.

Exit codes: 0 every property holds, 1 a property was violated (or, for `replay`, the saved
violation reproduced; for `report --fail-on-regression`, a headline figure regressed; for
`bench`, a benchmark failed), 2 usage error, 3 harness or environment error, 130 interrupted.
Expected errors print one line and no traceback; a harness bug prints its traceback and exits
3, so it never looks like a proxy's violation.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from harness import __version__, interrupts, registry
from harness.checks import PROPERTIES
from harness.checks.confidence import AlarmBudget
from harness.conformance import fails_to_restart, options_for, run_target, select_properties
from harness.console import Console
from harness.errors import (
    EXIT_HARNESS,
    EXIT_OK,
    EXIT_VIOLATION,
    HarnessError,
    UsageError,
)
from harness.events import check_nodes
from harness.failures import RunContext, load_failure, run_context_of
from harness.files import check_output_file, prepare_output_dir
from harness.kube.objects import DEFAULT_READER_IMAGE
from harness.model.objects import MAX_NODES, RUN_NODES
from harness.profiles import DEFAULT_PROFILE, PROFILES, parse_duration, profile_named
from harness.results import (
    RunReport,
    conformance_path,
    print_summary,
    write_conformance,
    write_json,
    write_junit,
)
from harness.runner import RunConfig, Runner, StepResult
from harness.targets.base import target_features

DEFAULT_TARGET = "local"
BUDGET_ENVIRONMENT = "HARNESS_BUDGET"


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2, and refuses arguments no
    command line can hold (a NUL byte, which `main(argv)` could otherwise pass on to paths and
    commands)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None and any("\x00" in arg for arg in args):
            self.error("an argument holds a NUL byte, which no command line can")
        for arg in args or ():
            try:
                os.fsencode(arg)
            except UnicodeEncodeError as error:
                bad = error.object[error.start : error.end]
                self.error(f"an argument holds {bad!r}, which no command line can")
        return super().parse_known_args(args, namespace)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        if action.nargs is None and arg_strings == ["--"]:  # `--opt=--`: argparse before 3.12
            return self._get_value(action, "--")  # drops the value and gives []
        return super()._get_values(action, arg_strings)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _node_count(text: str) -> int:
    """`--nodes`: a whole number of node namespaces, 1 to MAX_NODES."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_NODES:
        raise argparse.ArgumentTypeError(
            f"a local cluster has 1 to {MAX_NODES} nodes, got {value}; give --nodes 1 to"
            f" {MAX_NODES}"
        )
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number more than 0, got {value}")
    return value


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except (re.error, OverflowError, RecursionError) as error:
        raise argparse.ArgumentTypeError(f"not a valid regular expression: {error}") from None
    return text


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _profile(text: str) -> str:
    try:
        return profile_named(text).name
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_target_options(parser: argparse.ArgumentParser, replay: bool = False) -> None:
    group = parser.add_argument_group("target")
    group.add_argument(
        "--target",
        default=None if replay else DEFAULT_TARGET,
        help="NAME[:ARG]: model, local[:PROXY], kube, mutant:NAME, mutant-controller:NAME"
        + (
            " (default: the target the file was found on)"
            if replay
            else " (default: %(default)s, the embedded local cluster with the iptables proxy)"
        ),
    )
    group.add_argument(
        "--proxy-command",
        help="command of an external proxy (local:external) or of"
        " the proxy to run in --pods local mode; placeholders {kubeconfig} {node} {namespace}",
    )
    group.add_argument(
        "--kubeconfig", help="kubeconfig for --target kube (default: $KUBECONFIG, ~/.kube/config)"
    )
    group.add_argument("--context", help="kubeconfig context for --target kube")
    group.add_argument(
        "--kind-cluster", help="--target kube: create (and afterwards delete) this kind cluster"
    )
    group.add_argument(
        "--keep-cluster", action="store_true", help="keep the --kind-cluster cluster afterwards"
    )
    group.add_argument(
        "--pods",
        choices=["cluster", "local"],
        default=None,
        help="--target kube: run pods on the cluster's kubelets (cluster, the default), or"
        " locally as network namespaces (local)",
    )
    group.add_argument(
        "--read-node-rules",
        nargs="?",
        const=DEFAULT_READER_IMAGE,
        metavar="IMAGE",
        help="--target kube --pods cluster: let the harness run a privileged hostNetwork pod per"
        " node (IMAGE, with sleep, iptables-save and nft; default %(const)s) to read"
        " kube-proxy's rules for exact-balance; see docs/kube.md for the permissions",
    )
    group.add_argument(
        "--restart-cluster-proxy",
        action="store_true",
        default=None,
        help="--target kube --pods cluster: let restart-proxy delete the cluster's kube-proxy"
        " pods and wait for their DaemonSet (disrupts the cluster; off by default)",
    )
    group.add_argument(
        "--kube-sctp",
        action="store_true",
        default=None,
        help="--target kube --pods cluster: judge SCTP Services (backends serve netexec"
        " --sctp-port; needs the sctp module loaded on every node: off by default)",
    )
    group.add_argument(
        "--proxy-selector",
        metavar="SELECTOR",
        help="with --restart-cluster-proxy: the label selector of the proxy's pods in"
        " kube-system (default: k8s-app=kube-proxy)",
    )
    group.add_argument(
        "--nodes",
        type=_node_count,
        help="local targets: node namespaces, each with its own proxy instance (1 to"
        f" {MAX_NODES}; default: "
        + ("the run's, or 1 for a failure file that names none)" if replay else "2)"),
    )
    group.add_argument(
        "--deadline",
        type=_positive_float,
        help="seconds a change may take to be programmed (default: the target's: 5 on the"
        " local cluster, 30 elsewhere)",
    )


def build_parser() -> Parser:
    parser = Parser(prog="harness", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = commands.add_parser("run", help="run the conformance properties against a target")
    _add_target_options(run)
    size = run.add_argument_group("search size (see `harness run --help`; profiles in README)")
    size.add_argument(
        "--profile",
        type=_profile,
        default=DEFAULT_PROFILE,
        help=f"quick, default or deep ({', '.join(PROFILES)}; default: %(default)s)",
    )
    size.add_argument(
        "--budget",
        type=_duration,
        default=None,
        help="stop the search after this much wall time, e.g. 90s, 5m, 1h30m"
        f" (default: ${BUDGET_ENVIRONMENT} if set, else the profile's)",
    )
    size.add_argument(
        "--examples", type=_positive_int, help="stop the search after this many examples"
    )
    size.add_argument("--steps", type=_positive_int, help="events per example")
    run.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    run.add_argument("--focus", type=_regex, help="judge only properties matching this regex")
    run.add_argument("--skip", type=_regex, help="do not judge properties matching this regex")
    run.add_argument(
        "--exitfirst",
        action="store_true",
        help="stop at the first violated property whose counterexample reproduces (one that"
        " does not is reported, and the search goes on)",
    )
    run.add_argument("--results", type=Path, help="write the JSON results file here")
    run.add_argument("--junit", type=Path, help="write JUnit XML here")
    run.add_argument(
        "--conformance-report",
        type=Path,
        metavar="FILE",
        help="write the conformance report (YAML, harness.conformance/v1) here (default: with"
        " --results R, conformance-NAME.yaml beside it; README: Conformance profiles)",
    )
    run.add_argument(
        "--failures-dir",
        type=Path,
        default=Path("reports/failures"),
        help="where shrunk failing sequences are saved (default: %(default)s)",
    )

    replay = commands.add_parser(
        "replay", help="replay a saved sequence or failure and show each step's verdicts"
    )
    replay.add_argument("file", type=Path, help="a failure file or a sequence file")
    _add_target_options(replay, replay=True)

    commands.add_parser("targets", help="list the installed targets")
    commands.add_parser("proxies", help="list the installed proxies (and the harness's mutants)")
    commands.add_parser("properties", help="list the properties the suite checks")
    commands.add_parser(
        "known-issues", help="list the upstream issues a failure is matched against, or shown by"
    )

    report = commands.add_parser(
        "report", help="render a run's figures as report.md and index.html (README: Benchmarks)"
    )
    report.add_argument(
        "--input",
        type=Path,
        action="append",
        metavar="DIR",
        help="a run directory of figure files (default: the newest under reports/runs/); repeat"
        " to fill in what the first lacks from older runs, each figure shown with its date",
    )
    report.add_argument(
        "--output",
        type=Path,
        default=Path("build/reports"),
        metavar="DIR",
        help="where report.md, index.html, run.json and the figures shown go (default:"
        " %(default)s); reports/YYYY-MM-DD publishes the run, to be committed",
    )
    report.add_argument(
        "--mutants",
        action="store_true",
        help="first measure the mutation report (minutes) into a new run under reports/runs/",
    )
    report.add_argument(
        "--history",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="the dated reports the history, trends and regressions are read from (default:"
        " %(default)s); an --output directly under it also rewrites its index.html listing",
    )
    report.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a headline figure regressed against the last 7 earlier runs",
    )

    bench = commands.add_parser(
        "bench", help="run the benchmarks (bench/) into a run directory (README: Benchmarks)"
    )
    bench.add_argument("--profile", choices=("quick", "full"), default="full",
                       help="how big the benchmarks run (default: %(default)s)")  # fmt: skip
    bench.add_argument(
        "--target",
        metavar="TARGET",
        help="local (default) or local:PROXY[,PROXY]: the proxies to benchmark",
    )
    bench.add_argument(
        "--benchmark",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this benchmark (bench/test_NAME.py); repeat for more (default: all)",
    )
    bench.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="the run directory the figure files go to (default: a new reports/runs/<UTC time>/)",
    )

    clean = commands.add_parser("clean", help="remove what killed runs left behind")
    clean.add_argument(
        "--prefix", help="only leftovers of runs with this prefix (default: every harness run)"
    )
    clean.add_argument(
        "--kube", action="store_true", help="also delete harness namespaces in a cluster"
    )
    clean.add_argument("--kubeconfig", help="with --kube: the cluster's kubeconfig")
    clean.add_argument("--context", help="with --kube: the kubeconfig context")
    clean.add_argument(
        "--force",
        action="store_true",
        help="also remove runs that are still alive (a held lock here, a fresh Lease in the"
        " cluster): only when you know they are stuck",
    )
    return parser


KUBE_ONLY = (
    "kubeconfig",
    "context",
    "kind_cluster",
    "keep_cluster",
    "pods",
    "read_node_rules",
    "restart_cluster_proxy",
    "proxy_selector",
    "kube_sctp",
)


def proxy_restart_extra(restart: bool | None, selector: str | None) -> dict[str, Any]:
    """The kube target's extra options for `--restart-cluster-proxy` and `--proxy-selector`
    (only those given; the target checks them). Pure."""
    extra: dict[str, Any] = {}
    if restart:
        extra["restart_cluster_proxy"] = True
    if selector is not None:
        extra["proxy_selector"] = selector
    return extra


def refuse_kube_options(args: argparse.Namespace, spec: str) -> None:
    """UsageError when the command line gives an option of --target kube to another target
    (which would silently ignore it). Options a replay takes from its file are not judged."""
    if spec.partition(":")[0] == "kube":
        return
    for name in KUBE_ONLY:
        if getattr(args, name, None):
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option} is for --target kube, not {spec}; drop {option}")


ONE_NODE_SPEC = "local:loopback"
"""The local target whose pods share one namespace: one node, whatever the default."""


def target_options(
    args: argparse.Namespace, spec: str, seed: int = 0, saved: RunContext | None = None
) -> registry.TargetOptions:
    """The target's options from the command line; for a replay, the saved run's options fill
    in what the command line leaves out. UsageError for an option `spec`'s target does not
    take (`refuse_kube_options`)."""
    refuse_kube_options(args, spec)
    kept = dict(saved.options) if saved else {}

    def chosen(name: str) -> Any:
        value = getattr(args, name, None)
        return value if value is not None else kept.get(name)

    deadline = chosen("deadline")
    nodes = chosen("nodes")
    if nodes is None:  # a failure file from before local clusters had nodes ran on one
        nodes = 1 if saved is not None or spec == ONE_NODE_SPEC else RUN_NODES
    return registry.TargetOptions(
        proxy_command=chosen("proxy_command"),
        kubeconfig=chosen("kubeconfig"),
        context=chosen("context"),
        kind_cluster=args.kind_cluster,
        keep_cluster=args.keep_cluster,
        pods=chosen("pods") or "cluster",
        read_node_rules=chosen("read_node_rules"),
        deadline_s=float(deadline) if deadline is not None else 30.0,
        nodes=nodes,
        extra={
            "seed": seed,
            "deadline_given": deadline is not None,
            **proxy_restart_extra(chosen("restart_cluster_proxy"), chosen("proxy_selector")),
            **({"sctp": True} if chosen("kube_sctp") else {}),
        },
    )


def made_with_nodes(
    target: Any, given: int | None, spec: str, options: registry.TargetOptions
) -> registry.TargetOptions:
    """`options` with the node count `target` was made with (so failure files record it; none
    for a target without nodes of its own); UsageError when `--nodes` was `given` to such a
    target."""
    nodes = getattr(target, "nodes", None)
    if not isinstance(nodes, int):
        if given is not None:
            raise UsageError(f"--nodes is for local targets (local:PROXY), not {spec}; drop it")
        return replace(options, nodes=None)
    return replace(options, nodes=nodes)


def run_context(spec: str, seed: int, options: registry.TargetOptions) -> RunContext:
    """What a failure file records of this run so that a replay needs no other option."""
    given = {
        "proxy_command": options.proxy_command,
        "kubeconfig": options.kubeconfig,
        "context": options.context,
        "pods": options.pods if options.pods != "cluster" else None,
        "read_node_rules": options.read_node_rules,  # the reader image: exact-balance again
        "deadline": options.deadline_s if options.extra.get("deadline_given") else None,
        "nodes": options.nodes,
        # the run may restart the cluster's kube-proxy: so may its replay (`REPLAY_OPTIONS`)
        "restart_cluster_proxy": True if options.extra.get("restart_cluster_proxy") else None,
        "proxy_selector": options.extra.get("proxy_selector"),
        # the run sent SCTP to the cluster's nodes: so does its replay (`REPLAY_OPTIONS`)
        "kube_sctp": True if options.extra.get("sctp") is True else None,
    }
    return RunContext(spec, seed, {k: v for k, v in given.items() if v is not None})


def _budget(args: argparse.Namespace) -> float | None:
    if args.budget is not None:
        return float(args.budget)
    text = os.environ.get(BUDGET_ENVIRONMENT)
    if not text:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        raise UsageError(f"{BUDGET_ENVIRONMENT}: {error}") from None


def command_run(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    properties = select_properties(args.focus, args.skip)
    if not properties:
        raise UsageError(
            f"--focus/--skip select no property; the properties are: {', '.join(PROPERTIES)}"
        )
    for path, option in ((args.results, "--results"), (args.junit, "--junit")):
        if path is not None:
            check_output_file(path, option)
    # derived from --results only once that names a file (`--results .` has no name to derive from)
    conformance = args.conformance_report or (args.results and conformance_path(args.results))
    if conformance is not None:
        check_output_file(conformance, "--conformance-report")
    budget_s = _budget(args)
    profile = profile_named(args.profile)
    chosen = target_options(args, args.target, seed)
    target = registry.make_target(args.target, chosen)
    chosen = made_with_nodes(target, args.nodes, args.target, chosen)
    target_features(target)  # a bad declaration is a usage error before anything starts
    prepare_output_dir(args.failures_dir, "--failures-dir")  # the last check: it creates it
    options = replace(
        options_for(
            target,
            seed=seed,
            profile=profile,
            examples=args.examples,
            steps=args.steps,
            budget_s=budget_s,
            deadline_s=args.deadline,
            properties=properties,
            failures_dir=args.failures_dir,
            run=run_context(args.target, seed, chosen),
        ),
        stop_at_first=args.exitfirst,
    )
    console = Console(sys.stderr)
    limits = options.limits
    prefix = getattr(target, "prefix", None)
    cleanup = f"\n  run prefix {prefix} (after a kill: harness clean --prefix {prefix})"
    console.line(
        f"harness {__version__}: {target.name}, seed {seed}, profile {profile.name}"
        f" ({limits.examples} examples x {limits.steps} steps"
        + (f", budget {limits.budget_s:g}s" if limits.budget_s else "")
        + f"), deadline {options.config.deadline_s:g}s"
        + (cleanup if prefix else "")
    )
    started = time.monotonic()
    try:
        suite = run_target(target, options, console.verdict, console.progress, console.status)
    finally:
        console.done()
    report = RunReport(suite, profile.name, time.monotonic() - started)
    print_summary(report, sys.stdout)
    if args.results:
        write_json(report, args.results)
    if args.junit:
        write_junit(report, args.junit)
    if conformance:
        write_conformance(report, *target_features(target), conformance)
    if suite.interrupted:
        print("harness: interrupted; everything the run made was removed", file=sys.stderr)
    return report.exit_code


def _verdict_line(step: StepResult, saved: str | None) -> str:
    bad = step.failures()
    if bad:
        return "; ".join(
            f"{v.property} FAILED{' (the saved property)' if v.property == saved else ''}:"
            f" {v.message}"
            for v in bad
        )
    names = sorted({v.property for v in step.verdicts})
    return f"ok ({', '.join(names)})" if names else "ok"


def command_replay(args: argparse.Namespace) -> int:
    """Replay a file step by step, printing every verdict. For a failure file the saved
    property decides: exit 1 if it failed again (reproduced), 0 if it held; other properties'
    failures are reported, not fatal. A plain sequence file exits 1 on any failure."""
    events, failure = load_failure(args.file)
    saved = run_context_of(failure) if failure else None
    prop = str(failure["property"]) if failure else None
    spec = args.target or (saved.target if saved else None)
    if not spec:
        raise UsageError(f"{args.file} names no target; give --target NAME")
    seed = saved.seed if saved else 0
    chosen = target_options(args, spec, seed, saved)
    target = registry.make_target(spec, chosen)
    made_with_nodes(target, args.nodes, spec, chosen)
    check_nodes(events, getattr(target, "accepted_nodes", None))
    deadline: Any = args.deadline or (saved.options.get("deadline") if saved else None)
    config = RunConfig(deadline_s=float(deadline or getattr(target, "default_deadline_s", 30.0)))
    if saved is not None and saved.alarm_budget is not None:  # judged as the run judged it
        budget = saved.alarm_budget
        config = replace(
            config,
            budget=AlarmBudget(float(budget["run_alpha"]), int(budget["max_checks"])),
        )
    checking = f", checking {prop}" if prop else ""
    print(f"replaying {len(events)} events from {args.file} on {target.name}{checking}")
    other_failures = 0
    target.open()
    try:
        runner = Runner(target, config)
        runner.reset()
        for index, event in enumerate(events, 1):
            step = runner.step(event)
            print(f"{index:>3}. {event}\n     {_verdict_line(step, prop)}")
            failing = {v.property for v in step.failures()}
            if prop is not None and prop in failing:
                print(f"reproduced: {prop} failed at step {index} of {len(events)}")
                return EXIT_VIOLATION
            other_failures += len(failing)
            if runner.broken is not None:
                break
        if prop is not None and fails_to_restart(runner, prop):
            print(f"reproduced: {prop} failed when a fresh proxy started after the last step")
            return EXIT_VIOLATION
    finally:
        target.close()
    if prop is not None:
        others = f"; {other_failures} other failure(s) reported above" if other_failures else ""
        print(f"did not reproduce: {prop} held at every step{others}")
        return EXIT_OK
    print("all steps hold" if not other_failures else f"{other_failures} failure(s)")
    return EXIT_VIOLATION if other_failures else EXIT_OK


def command_targets(args: argparse.Namespace) -> int:
    for name, entry in registry.targets().items():
        print(f"{name:<12}{entry.description}")
    return EXIT_OK


def command_proxies(args: argparse.Namespace) -> int:
    for name, entry in registry.proxies().items():
        tag = " (mutant)" if entry.mutant else ""
        print(f"{name:<36}{entry.description}{tag}")
    return EXIT_OK


def command_properties(args: argparse.Namespace) -> int:
    for name, description in PROPERTIES.items():
        print(f"{name:<22}{description}")
    return EXIT_OK


def command_known_issues(args: argparse.Namespace) -> int:
    from harness.known_issues import KNOWN_ISSUES, listing

    for line in listing(KNOWN_ISSUES):
        print(line)
    return EXIT_OK


def command_report(args: argparse.Namespace) -> int:
    from harness.reporting import write_report
    from harness.reporting.mutants import measure_mutants
    from harness.reporting.output import check_output
    from harness.reporting.runs import RUNS_DIR, newest_run
    from harness.reporting.sources import MAKE_A_RUN, check_input

    inputs: list[Path] = list(args.input or [])
    newest = newest_run(RUNS_DIR)
    if not inputs and newest is not None:
        inputs = [newest]
    if not inputs and not args.mutants:
        raise UsageError(f"report: no run under {RUNS_DIR}/; {MAKE_A_RUN}, or give --input DIR")
    for directory in inputs:
        check_input(directory)
    # before the mutation report's minutes, not after; its run will be the first input
    check_output(args.output, [] if args.mutants else inputs)
    if args.mutants:
        run, mutants = measure_mutants(RUNS_DIR)
        inputs.insert(0, run)
        print(
            f"mutants: {mutants['caught']} caught, median counterexample"
            f" {mutants['median_counterexample_events']} events; wrote {run / 'mutants.json'}"
        )
    written = write_report(inputs, args.output, history_root=args.history)
    for path in written.paths:
        print(f"wrote {path}")
    for verdict in written.regressions:
        print(f"REGRESSION: {verdict.line()}")
    given = " ".join(f"--input {directory}" for directory in inputs)
    print(f"to publish these figures, commit the output of `harness report {given}"
          " --output reports/YYYY-MM-DD`")  # fmt: skip
    if args.fail_on_regression and written.regressions:
        return EXIT_VIOLATION
    return EXIT_OK


def command_bench(args: argparse.Namespace) -> int:
    import datetime

    from harness.reporting.bench import run_benchmarks
    from harness.reporting.runs import RUNS_DIR, new_run_directory

    output = args.output or new_run_directory(RUNS_DIR, datetime.datetime.now(datetime.UTC))
    outcomes = run_benchmarks(
        output, profile=args.profile, names=args.benchmark, target=args.target
    )
    print(f"benchmark figures: {output} (report: harness report --input {output})")
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        names = ", ".join(outcome.name for outcome in failed)
        print(f"harness: bench: {len(failed)} benchmark(s) failed: {names}; see their logs",
              file=sys.stderr)  # fmt: skip
        return EXIT_VIOLATION
    return EXIT_OK


def command_clean(args: argparse.Namespace) -> int:
    from harness.local.cleanup import clean

    removed = clean(args.prefix, force=args.force)
    if args.kube:
        from harness.kube.cleanup import clean_kube

        cleaned = clean_kube(args.kubeconfig, args.context, args.prefix, force=args.force)
        removed += cleaned.removed
        for line in cleaned.kept:
            print(f"kept {line}")
    for item in removed:
        print(f"removed {item}")
    print(f"{len(removed)} leftover(s) removed" if removed else "nothing to clean")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": command_run,
    "replay": command_replay,
    "targets": command_targets,
    "proxies": command_proxies,
    "properties": command_properties,
    "known-issues": command_known_issues,
    "report": command_report,
    "bench": command_bench,
    "clean": command_clean,
}


def _escape_unprintable_output() -> None:
    """Let stdout print what a command line can carry: bytes that are not UTF-8 reach Python as
    lone surrogates (a file name, say), which a strict UTF-8 stdout refuses with a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    interrupts.install()  # SIGINT, SIGTERM, SIGHUP unwind through every `finally`, quietly
    _escape_unprintable_output()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except HarnessError as error:
        print(f"harness: {error.line()}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; everything the run made was removed", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            "harness: internal harness error (a bug in the harness, not a violation by the"
            " target); please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_HARNESS


if __name__ == "__main__":
    sys.exit(main())
