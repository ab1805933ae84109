"""The first moments of the command line: a package that is not installed is one line, and
while Paddle and the rest load (a second or two), Ctrl-C or SIGTERM ends the program with one
line, nothing having been written yet. The command line installs its own handlers once it
runs. Imports the standard library only."""
from __future__ import annotations

import os
import signal
import sys
from typing import Any


REQUIRED = {"paddle": "PaddlePaddle", "gymnasium": "Gymnasium", "numpy": "numpy", "visualdl": "VisualDL",
            "matplotlib": "matplotlib", "tqdm": "tqdm", "PIL": "Pillow"}


def check_packages() -> None:
    """Exit with one line (code 2) if a package the program needs is not installed."""
    import importlib.util
    missing = [name for module, name in REQUIRED.items() if importlib.util.find_spec(module) is None]
    if missing:
        sys.stderr.write(f"error: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed; "
                         "pip install -r requirements.txt (on a machine with paddlepaddle-gpu: "
                         "requirements-no-paddle.txt)\n")
        sys.exit(2)


def stop_quietly_while_starting() -> None:
    """Ctrl-C and SIGTERM exit at once with one line (128 + the signal), for now."""
    def stop(signum: int, frame: Any) -> None:
        sys.stderr.write(f"{signal.Signals(signum).name}: stopped while starting; nothing was written\n")
        sys.stderr.flush()
        os._exit(128 + signum)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
