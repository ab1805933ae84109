"""The first moments of the command line: a Python too old or a package that is not installed
is one line, and while Paddle and the rest load (a second or two), Ctrl-C or SIGTERM ends the
program with one line, nothing having been written yet. The command line installs its own
handlers once it runs. Imports the standard library only (and Paddle, once it is loaded), and
parses on Python 3.7 (the script's top too), so that an old Python reaches `check_python`.

Paddle replaces the SIGTERM handler while it loads (its C++ crash report, about a dozen
lines), and `paddle.disable_signal_handler()` leaves the default one behind: either way a
SIGTERM at the wrong moment is not one line. So the two signals are held (blocked) while
the program loads and released by `release_signals`, once Paddle's handler is gone and
Python's are back: a signal that came meanwhile is delivered then, to Python's handler."""
from __future__ import annotations

import os
import signal
import sys
from typing import Any


PYTHON = (3, 10)  # the oldest Python the program runs on (it uses X | Y types at run time)
REQUIRED = {"paddle": "PaddlePaddle", "gymnasium": "Gymnasium", "numpy": "numpy", "visualdl": "VisualDL",
            "matplotlib": "matplotlib", "tqdm": "tqdm", "PIL": "Pillow"}


def check_python(version: Any = sys.version_info) -> None:
    """Exit with one line (code 2) on a Python older than `PYTHON`: the first check, before
    anything that an old Python would fail on (pip fails there too, in a dependency)."""
    if tuple(version[:2]) < PYTHON:
        sys.stderr.write(f"error: needs Python {PYTHON[0]}.{PYTHON[1]} or newer (this is "
                         f"{'.'.join(map(str, version[:3]))}); install one, then run pip install -r "
                         "requirements.txt and this program with it\n")
        sys.exit(2)


def check_packages() -> None:
    """Exit with one line (code 2) if a package the program needs is not installed (on a
    Python too old for them, that first)."""
    import importlib.util
    check_python()
    missing = [name for module, name in REQUIRED.items() if importlib.util.find_spec(module) is None]
    if missing:
        sys.stderr.write(f"error: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed; "
                         "pip install -r requirements.txt (on a machine with paddlepaddle-gpu: "
                         "requirements-no-paddle.txt)\n")
        sys.exit(2)


STOPS = (signal.SIGINT, signal.SIGTERM)
CAN_HOLD = hasattr(signal, "pthread_sigmask")  # not on Windows, where Paddle installs no such handler


def stop_quietly_while_starting() -> None:
    """Ctrl-C and SIGTERM exit with one line (128 + the signal), for now; held until
    `release_signals`."""
    def stop(signum: int, frame: Any) -> None:
        sys.stderr.write(f"{signal.Signals(signum).name}: stopped while starting; nothing was written\n")
        sys.stderr.flush()
        os._exit(128 + signum)
    for sig in STOPS:
        signal.signal(sig, stop)
    if CAN_HOLD:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)


def release_signals() -> None:
    """Remove Paddle's fatal-signal handler, put Python's handlers back where it had been
    (its report is a dozen lines of C++ for a SIGTERM; ours is one) and deliver the signals
    held since `stop_quietly_while_starting`. Paddle must be loaded. Only the main thread may
    install handlers (the command line run from another thread leaves them as they are)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return
    import paddle
    paddle.disable_signal_handler()  # this leaves the default handlers, which kill silently
    for sig in STOPS:
        handler = signal.getsignal(sig)
        if handler is not None:  # None: not installed from Python
            signal.signal(sig, handler)
    if CAN_HOLD:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
