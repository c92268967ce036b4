"""SIGINT and SIGTERM stop a program quietly, whatever it inherited and wherever they land
(harness/interrupts.py), and `harness run` on the model target is stopped within a second.

Each case is a small program started both with SIGINT ignored (as CI runners and background jobs
of non-interactive shells start programs) and with SIGINT default, whatever this test process
inherited.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.local.runs import HARNESS, NOISE, Run, start_program

BOTH_WAYS = pytest.mark.parametrize("sigint_ignored", [True, False], ids=["ignored", "default"])
PROGRAM = """
import gc, os, signal, sys, time
from harness import interrupts

def main():
    interrupts.install()
    try:
        print("installed", flush=True)
{body}
    except KeyboardInterrupt:
        print("unwound", flush=True)
        return 130
    return 0

sys.exit(main())
"""
SWALLOWED_BY_GC = """
        def callback(phase, info):  # as Hypothesis's gc timing callback: the signal lands here
            gc.callbacks.remove(callback)
            os.kill(os.getpid(), signal.SIG)
            time.sleep(0.05)  # the handler runs inside the callback; its exception is dropped
        gc.callbacks.append(callback)
        gc.collect()
        time.sleep(10)
"""
SWALLOWED_BY_A_LIBRARY = """
        try:
            os.kill(os.getpid(), signal.SIG)
            time.sleep(10)
        except KeyboardInterrupt:
            pass  # a library that catches it and goes on
        time.sleep(10)
"""
SECOND_SIGNAL_IN_CLEANUP = """
        try:
            os.kill(os.getpid(), signal.SIG)
            time.sleep(10)
        finally:
            os.kill(os.getpid(), signal.SIG)  # impatient: again, while cleaning up
            time.sleep(0.3)
            print("cleaned up", flush=True)
"""
WAITS = """
        time.sleep(10)
"""


def start(body: str, signum: int, sigint_ignored: bool) -> subprocess.Popen[str]:
    program = PROGRAM.format(body=body.replace("signal.SIG)", f"signal.{signum.name})"))
    return start_program(program, [], sigint_ignored, "installed")


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str, float]:
    started_s = time.monotonic()
    out, err = process.communicate(timeout=20)
    return process.returncode, out, err, time.monotonic() - started_s


@BOTH_WAYS
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_dropped_in_a_gc_callback_still_stops_the_program(
    sigint_ignored: bool, signum: signal.Signals
) -> None:
    code, out, err, took_s = finish(start(SWALLOWED_BY_GC, signum, sigint_ignored))
    assert (code, out.strip()) == (130, "unwound"), err
    assert took_s < 1.0
    assert err.strip() == f"harness: {signum.name}: stopping and removing what the run made"


@BOTH_WAYS
def test_a_signal_a_library_swallows_is_sent_again(sigint_ignored: bool) -> None:
    code, out, err, took_s = finish(start(SWALLOWED_BY_A_LIBRARY, signal.SIGINT, sigint_ignored))
    assert (code, out.strip()) == (130, "unwound"), err
    assert took_s < 2.0  # re-sent after half a second
    assert not any(word in err for word in NOISE)


@BOTH_WAYS
def test_a_second_signal_does_not_cut_the_cleanup_short(sigint_ignored: bool) -> None:
    code, out, err, _ = finish(start(SECOND_SIGNAL_IN_CLEANUP, signal.SIGTERM, sigint_ignored))
    assert code == 130 and out.split() == ["cleaned", "up", "unwound"], err
    assert "SIGTERM again: still removing" in err and "Traceback" not in err


@BOTH_WAYS
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signals_from_outside_unwind_whatever_sigint_was(
    sigint_ignored: bool, signum: signal.Signals
) -> None:
    process = start(WAITS, signum, sigint_ignored)
    sent_s = time.monotonic()
    process.send_signal(signum)
    code, out, err, _ = finish(process)
    assert (code, out.strip()) == (130, "unwound"), err
    assert time.monotonic() - sent_s < 1.0


def test_an_ignored_sighup_stays_ignored() -> None:
    """nohup's promise: the program outlives its terminal."""
    program = PROGRAM.format(body=WAITS)
    process = subprocess.Popen(
        ["nohup", sys.executable, "-c", program], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "installed"
    process.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 130


def test_an_interrupt_escaping_main_is_one_line() -> None:
    program = (
        "import os, signal, time\nfrom harness import interrupts\n"
        "def main():\n    interrupts.install()\n    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(10)\nmain()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == -signal.SIGINT  # as Python ends a program on an unhandled Ctrl-C
    assert done.stderr.splitlines() == [
        "harness: SIGTERM: stopping and removing what the run made",
        "harness: interrupted",
    ]


@BOTH_WAYS
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay_s", [0.0, 0.3, 1.0])
def test_harness_run_stops_within_a_second(
    sigint_ignored: bool, signum: signal.Signals, delay_s: float, tmp_path: object
) -> None:
    argv = [HARNESS, "run", "--target", "model", "--examples", "100000", "--seed", "1"]
    run = Run([*argv, "--failures-dir", str(tmp_path)], "hk00000", sigint_ignored).start()
    assert run.wait_for_handlers()
    time.sleep(delay_s)
    sent_s = run.signal(signum, group=False)
    code = run.wait(10)
    assert code == 130, run.stderr
    assert time.monotonic() - sent_s < 1.0
    assert not any(word in run.stderr for word in NOISE), run.stderr
    assert run.stderr.splitlines()[-1] == (
        "harness: interrupted; everything the run made was removed"
    )
