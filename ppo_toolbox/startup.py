"""The first moments of the command line: while Paddle and the rest load (a second or two),
Ctrl-C or SIGTERM ends the program with one line, nothing having been written yet. The
command line installs its own handlers once it runs. Imports the standard library only."""
from __future__ import annotations

import os
import signal
import sys
from typing import Any


def stop_quietly_while_starting() -> None:
    """Ctrl-C and SIGTERM exit at once with one line (128 + the signal), for now."""
    def stop(signum: int, frame: Any) -> None:
        sys.stderr.write(f"{signal.Signals(signum).name}: stopped while starting; nothing was written\n")
        sys.stderr.flush()
        os._exit(128 + signum)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
