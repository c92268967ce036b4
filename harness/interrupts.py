"""How the harness stops on SIGINT, SIGTERM and SIGHUP: it unwinds, it never just dies.

A signal raises KeyboardInterrupt in the main thread wherever it is, as Ctrl-C does, so every
`finally` block and context manager runs and the run removes everything it made, and pytest and
Hypothesis stop (a SystemExit would count as one failed test and the session would go on); the
CLI then says so in one line and exits 130. What `install()` adds to Python's own Ctrl-C handling:

- **Ctrl-C works even when SIGINT was inherited as ignored**, as a background job of a
  non-interactive shell and some CI runners start programs: the handler is set whatever the
  inherited disposition. An ignored SIGHUP (`nohup`) stays ignored.
- **It is acknowledged at once**: one line on stderr names the signal as it arrives.
- **An interrupt cannot be lost.** Python drops an exception raised inside a garbage-collector
  callback or a finaliser ("Exception ignored in ..."), and the run went on as if nothing had
  happened (seen: a SIGTERM landing in Hypothesis's gc callback let the run finish with exit 0).
  A dropped interrupt is raised again at once (`sys.unraisablehook`), and until the main thread
  is seen unwinding it, a watchdog thread re-sends the signal every REDELIVER_S, for at most
  GIVE_UP_S.
- **A second signal does not cut the cleanup short**: while an interrupt unwinds, further signals
  are noted and ignored (SIGKILL still ends the process, and `harness clean` removes what is left).
- **No traceback**: an interrupt that escapes the program's main function is one line.

It must not touch any other signal, act outside the main thread, or raise once the function that
installed it has returned (a re-sent signal that arrives late is dropped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType, TracebackType
from typing import Any

REDELIVER_S = 0.5
RESEND_SOON_S = 0.01
GIVE_UP_S = 30.0


@dataclass
class _State:
    """What the handler knows: whose run it stops, and whether a signal is a re-sent one."""

    scope: CodeType | None = None  # the installing function: re-sent signals act only inside it
    signum: int | None = None  # the signal that raised the last interrupt
    resent: bool = False
    stop_watchdog: threading.Event = field(default_factory=threading.Event)
    watchdog: threading.Thread | None = None
    unraisable: Callable[[Any], object] = sys.unraisablehook
    uncaught: Callable[[type[BaseException], BaseException, TracebackType | None], object] = (
        sys.excepthook
    )


_state = _State()


def _say(line: str) -> None:
    """One line on stderr, written straight to the descriptor: a signal handler may run while a
    buffered write is half done, and the terminal may be gone (SIGHUP)."""
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode())


def _unwinding() -> bool:
    """Whether the main thread is handling an interrupt: in a `finally`, an `__exit__` or an
    `except` while one propagates (also while handling an error raised during that cleanup)."""
    error: BaseException | None = sys.exception()
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__context__
    return False


def _running(frame: FrameType | None, codes: set[CodeType]) -> bool:
    """Whether one of the functions with these `codes` is on the stack below `frame`."""
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def on_signal(signum: int, frame: FrameType | None) -> None:
    """The handler: raise KeyboardInterrupt unless an interrupt is already unwinding. Runs in
    the main thread only (Python calls signal handlers there)."""
    resent, _state.resent = _state.resent, False
    name = signal.Signals(signum).name
    if _running(frame, _HOOKS):  # an exception raised in a hook would be dropped: try again
        _resend_soon(signum)
        return
    if _unwinding():
        _state.stop_watchdog.set()
        if not resent:
            _say(
                f"harness: {name} again: still removing what the run made (SIGKILL stops at"
                " once; then `harness clean` removes the rest)"
            )
        return
    if resent and _state.scope is not None and not _running(frame, {_state.scope}):
        _state.stop_watchdog.set()  # the run is over; the process is on its way out
        return
    if not resent:
        _say(f"harness: {name}: stopping and removing what the run made")
    if _state.scope is not None:
        _start_watchdog(signum)
    _state.signum = signum
    # exactly KeyboardInterrupt: Python ends a program it escapes as killed by SIGINT (exit
    # status 130), where a subclass would exit 1, the code of a violation
    raise KeyboardInterrupt(f"interrupted by {name}")


def _resend(signum: int) -> None:
    _state.resent = True
    main = threading.main_thread().ident
    if main is not None:
        signal.pthread_kill(main, signum)  # a real signal: it also interrupts a blocking call


def _resend_soon(signum: int) -> None:
    """Re-send from another thread, so the handler runs once the main thread left the place
    that dropped the interrupt."""
    timer = threading.Timer(RESEND_SOON_S, _resend, (signum,))
    timer.daemon = True
    timer.start()


def _start_watchdog(signum: int) -> None:
    if _state.watchdog is not None and _state.watchdog.is_alive():
        return
    stop = _state.stop_watchdog = threading.Event()

    def watch() -> None:
        deadline_s = time.monotonic() + GIVE_UP_S
        while not stop.wait(REDELIVER_S) and time.monotonic() < deadline_s:
            _resend(signum)

    _state.watchdog = threading.Thread(target=watch, name="harness-interrupts", daemon=True)
    _state.watchdog.start()


def _quiet_unraisable(unraisable: Any) -> None:
    """sys.unraisablehook: an interrupt dropped in a gc callback or a finaliser is raised again,
    silently; anything else goes to the previous hook."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _state.signum is not None:
        _resend_soon(_state.signum)
        return
    _state.unraisable(unraisable)


def _quiet_uncaught(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    """sys.excepthook: an interrupt that escaped the program is one line, not a traceback."""
    if issubclass(kind, KeyboardInterrupt):
        _say("harness: interrupted")
        return
    _state.uncaught(kind, error, tb)


_HOOKS = {_quiet_unraisable.__code__, _quiet_uncaught.__code__}


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP (unless ignored) as described in the module docstring,
    for the run of the calling function (a program's main). Call it first thing in that function,
    from the main thread; elsewhere it does nothing. Calling it again is harmless."""
    if threading.current_thread() is not threading.main_thread():
        return
    caller = sys._getframe(1)
    _state.scope = caller.f_code
    _state.stop_watchdog.set()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, on_signal)
    if sys.unraisablehook is not _quiet_unraisable:
        _state.unraisable, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable
    if sys.excepthook is not _quiet_uncaught:
        _state.uncaught, sys.excepthook = sys.excepthook, _quiet_uncaught
