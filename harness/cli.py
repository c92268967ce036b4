"""The `harness` command line: run, replay, targets, proxies, clean.

Exit codes: 0 every property holds, 1 a property was violated, 2 usage error, 3 harness or
environment error. Expected errors print one line and no traceback; a harness bug prints its
traceback and exits 3, so it never looks like a proxy's violation.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from harness import registry
from harness.checks import PROPERTIES
from harness.checks.verdict import Verdict
from harness.conformance import options_for, run_property, select_properties
from harness.errors import (
    EXIT_HARNESS,
    EXIT_OK,
    EXIT_VIOLATION,
    HarnessError,
    UsageError,
    Violation,
)
from harness.events import load_sequence
from harness.results import RunReport, print_summary, write_json, write_junit
from harness.runner import RunConfig, Runner

DEFAULT_TARGET = "local"


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {value}")
    return value


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"not a valid regular expression: {error}") from None
    return text


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target")
    group.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help="NAME[:ARG]: model, local[:PROXY], kube, mutant:NAME (default: %(default)s"
        ", the embedded local cluster with the iptables proxy)",
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
    group.add_argument("--kind-cluster", help="create (and afterwards delete) this kind cluster")
    group.add_argument(
        "--keep-cluster", action="store_true", help="keep the kind cluster afterwards"
    )
    group.add_argument(
        "--pods",
        choices=["cluster", "local"],
        default="cluster",
        help="kube: run pods on the cluster's kubelets, or locally as network namespaces",
    )
    group.add_argument(
        "--deadline",
        type=_positive_float,
        help="seconds a change may take to be programmed (default: the target's)",
    )


def build_parser() -> Parser:
    parser = Parser(prog="harness", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = commands.add_parser("run", help="run the conformance properties against a target")
    _add_target_options(run)
    run.add_argument("--examples", type=_positive_int, help="examples per property")
    run.add_argument("--steps", type=_positive_int, help="most events per example")
    run.add_argument("--seed", type=int, help="random seed (default: a fresh one, printed)")
    run.add_argument("--focus", type=_regex, help="run only properties matching this regex")
    run.add_argument("--skip", type=_regex, help="skip properties matching this regex")
    run.add_argument(
        "--exitfirst", action="store_true", help="stop after the first failed property"
    )
    run.add_argument("--results", type=Path, help="write the JSON results file here")
    run.add_argument("--junit", type=Path, help="write JUnit XML here")
    run.add_argument(
        "--failures-dir",
        type=Path,
        default=Path("reports/failures"),
        help="where shrunk failing sequences are saved (default: %(default)s)",
    )

    replay = commands.add_parser("replay", help="replay one saved sequence and show each step")
    replay.add_argument("file", type=Path)
    _add_target_options(replay)

    commands.add_parser("targets", help="list the installed targets")
    commands.add_parser("proxies", help="list the installed proxies (and the harness's mutants)")
    commands.add_parser("properties", help="list the properties the suite checks")

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

    clean = commands.add_parser("clean", help="remove what killed runs left behind")
    clean.add_argument(
        "--prefix", help="only leftovers of runs with this prefix (default: every harness run)"
    )
    clean.add_argument(
        "--kube", action="store_true", help="also delete harness namespaces in a cluster"
    )
    clean.add_argument("--kubeconfig")
    clean.add_argument("--context")
    return parser


def target_options(args: argparse.Namespace, seed: int = 0) -> registry.TargetOptions:
    return registry.TargetOptions(
        proxy_command=args.proxy_command,
        kubeconfig=args.kubeconfig,
        context=args.context,
        kind_cluster=args.kind_cluster,
        keep_cluster=args.keep_cluster,
        pods=args.pods,
        deadline_s=args.deadline or 30.0,
        extra={"seed": seed, "deadline_given": args.deadline is not None},
    )


class Progress:
    """A progress bar on a terminal; one line per finished property otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()

    def update(self, prop: str, done: int, total: int) -> None:
        if not self.tty:
            return
        width = 30
        filled = min(width, width * done // max(total, 1))
        self.out.write(f"\r{prop:<22}[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  ")
        self.out.flush()

    def finished(self, line: str) -> None:
        if self.tty:
            self.out.write("\r" + " " * 72 + "\r")
        self.out.write(line + "\n")
        self.out.flush()


def command_run(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    properties = select_properties(args.focus, args.skip)
    if not properties:
        raise UsageError(
            f"--focus/--skip select no property; the properties are: {', '.join(PROPERTIES)}"
        )
    target = registry.make_target(args.target, target_options(args, seed))
    options = options_for(
        target,
        seed=seed,
        examples=args.examples,
        steps=args.steps,
        deadline_s=args.deadline,
        properties=properties,
        failures_dir=args.failures_dir,
    )
    progress = Progress(sys.stderr)
    sys.stderr.write(f"harness: {target.name}, seed {seed}, properties: {', '.join(properties)}\n")
    started = time.monotonic()
    results = []
    target.open()
    try:
        for prop in properties:
            result = run_property(target, prop, options, progress.update)
            results.append(result)
            progress.finished(
                f"{prop}: {result.status.value} ({result.examples} examples,"
                f" {result.events} events, {result.duration_s:.1f}s)"
            )
            if args.exitfirst and result.failure_file is not None:
                break
    finally:
        target.close()
    report = RunReport(
        target.name, seed, options.examples, options.steps, results, time.monotonic() - started
    )
    print_summary(report, sys.stdout)
    if args.results:
        write_json(report, args.results)
    if args.junit:
        write_junit(report, args.junit)
    return EXIT_VIOLATION if report.failed else EXIT_OK


def _verdict_line(verdicts: Sequence[Verdict]) -> str:
    bad = [v for v in verdicts if not v.holds]
    if bad:
        return "; ".join(f"{v.property} FAILED: {v.message}" for v in bad)
    names = sorted({v.property for v in verdicts})
    return f"ok ({', '.join(names)})" if names else "ok"


def command_replay(args: argparse.Namespace) -> int:
    events = load_sequence(args.file)
    target = registry.make_target(args.target, target_options(args))
    config = RunConfig(deadline_s=args.deadline or getattr(target, "default_deadline_s", 30.0))
    print(f"replaying {len(events)} events from {args.file} on {target.name}")
    target.open()
    try:
        runner = Runner(target, config)
        runner.reset()
        for index, event in enumerate(events, 1):
            try:
                verdicts = runner.step(event)
            except Violation as violation:
                print(f"{index:>3}. {event}\n     {violation}")
                print(f"violation at step {index} of {len(events)}")
                return EXIT_VIOLATION
            print(f"{index:>3}. {event}\n     {_verdict_line(verdicts)}")
    finally:
        target.close()
    print(f"all {len(events)} steps hold")
    return EXIT_OK


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
    for written in write_report(inputs, args.output):
        print(f"wrote {written}")
    given = " ".join(f"--input {directory}" for directory in inputs)
    print(f"to publish these figures, commit the output of `harness report {given}"
          " --output reports/YYYY-MM-DD`")  # fmt: skip
    return EXIT_OK


def command_clean(args: argparse.Namespace) -> int:
    from harness.local.cleanup import clean

    removed = clean(args.prefix)
    if args.kube:
        from harness.kube.cleanup import clean_kube

        removed += clean_kube(args.kubeconfig, args.context)
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
    "report": command_report,
    "clean": command_clean,
}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`, so targets close and clean up


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except HarnessError as error:
        print(f"harness: {error}", file=sys.stderr)
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
