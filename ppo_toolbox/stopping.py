"""Ctrl-C and SIGTERM as a clean stop: `StopSignal`. Imports the standard library only."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator


class StopRequested(Exception):
    """Raised by an armed `StopSignal`: the caller goes back to the start of what it armed."""


class StopSignal:
    """Ctrl-C and SIGTERM as a request to stop, for as long as the `with` block runs (a
    second one stops at once, with KeyboardInterrupt). Unarmed, a stop is only noted
    (`requested`). Armed (`with armed():`, during a rollout and its update, which can take
    long), it raises StopRequested at once and the caller undoes what it was doing; `disarm()`
    once work is being kept (files written), so that a stop lets that finish.
    Python lets only the main thread install handlers; a run in another thread stops with
    its process instead."""

    def __init__(self) -> None:
        self.signum = 0
        self.handlers: dict[int, Any] = {}
        self.is_armed = False

    @property
    def requested(self) -> bool:
        return bool(self.signum)

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            self.handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.handlers.items():
            signal.signal(sig, handler)
        self.handlers = {}

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """In the block, until `disarm()`, a stop raises StopRequested at once."""
        self.is_armed = True
        try:
            yield
        finally:
            self.is_armed = False

    def disarm(self) -> None:
        """From now on a stop is only noted: what is being done is kept and finishes."""
        self.is_armed = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum:  # the second one
            stop = KeyboardInterrupt()
            stop.signum = signum
            raise stop
        self.signum = signum
        if self.is_armed:
            self.is_armed = False
            raise StopRequested
