"""The stop signal (ppo_toolbox/stopping.py): unarmed, Ctrl-C or SIGTERM is only noted; armed, it raises
StopRequested at once, and not after `disarm()`; a second one raises KeyboardInterrupt. (A whole run stopped and
resumed: test_run_bookkeeping.py.)"""
import os
import signal

import pytest

from ppo_toolbox.stopping import StopRequested, StopSignal


def send(sig=signal.SIGINT):
    os.kill(os.getpid(), sig)  # delivered to Python's handler before the next bytecode


def test_unarmed_a_stop_is_only_noted_and_the_handlers_are_put_back():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignal() as stop:
        assert not stop.requested
        send(signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_armed_a_stop_raises_at_once_and_the_block_ends_disarmed():
    with StopSignal() as stop:
        reached = []
        with pytest.raises(StopRequested):
            with stop.armed():
                send()
                reached.append("after the signal")
        assert reached == [] and not stop.is_armed and stop.requested


def test_disarmed_inside_the_block_a_stop_lets_the_work_finish():
    with StopSignal() as stop:
        with stop.armed():
            stop.disarm()  # files are being written: they finish
            send()
            finished = True
        assert finished and stop.requested
        with stop.armed():  # the next block is armed again, and a second stop ends at once
            with pytest.raises(KeyboardInterrupt):
                send()
