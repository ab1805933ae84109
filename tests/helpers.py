"""Helpers shared by the test files: the repo's paths, small run settings, the command line."""
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import paddle.nn as nn
import paddle.nn.functional as F
import ppo_mountaincar as pm
from ppo_toolbox import checkpoint, figures
from ppo_toolbox import cli as ppo_cli

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "param" / "pretrained" / "actor_net.param"
# a run of a few seconds: 2,048 steps of 4 envs, 2 epochs of 4 minibatches per update
SMALL = dict(total_timesteps=2048, num_envs=4, num_steps=64, batch_size=64, update_epochs=2,
             save_every=2, keep_snapshots=2, quiet=True)
# the same from the command line, larger minibatches
QUICK = ["--num-envs", "4", "--num-steps", "64", "--batch-size", "128", "--update-epochs", "2",
         "--no-plots", "--quiet"]


def cli(*argv: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python ppo_mountaincar.py ARGV` in a fresh process."""
    return subprocess.run([sys.executable, str(ROOT / "ppo_mountaincar.py"), *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def in_process(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`cli(*argv)` without a fresh process (about 3 s less): the command line's main() in this
    one, its output captured. Where a fresh process proves nothing more: the same lines, the
    same exit code."""
    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = ppo_cli.main(list(argv))
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(["ppo_mountaincar.py", *argv], code, out.getvalue(), err.getvalue())


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """Assert the process failed with one line 'error: ...' and no traceback; return that line."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def scalars_of(logdir: str, run_name: str) -> dict[str, list[tuple[int, float]]]:
    """A run's VisualDL scalars as (step, value) lists, read back with the module's reader."""
    return {tag: list(zip(steps.tolist(), values.tolist()))
            for tag, (steps, values) in figures.read_scalars(Path(logdir) / run_name).items()}


def load_checkpoint(path) -> dict:
    """A checkpoint read and checked as `train --resume` reads it."""
    return checkpoint.read_checkpoint(path, pm.Args)


class TutorialActor(nn.Layer):
    """The original tutorial's actor, under its layer names: what its .param files hold."""

    def __init__(self, num_state=2, num_action=3, hidden=128):
        super().__init__()
        self.fc1 = nn.Linear(num_state, hidden)
        self.action_head = nn.Linear(hidden, num_action)

    def forward(self, x):
        return F.softmax(self.action_head(F.relu(self.fc1(x))), axis=1)


class TutorialCritic(nn.Layer):
    """The original tutorial's critic."""

    def __init__(self, num_state=2):
        super().__init__()
        self.fc1 = nn.Linear(num_state, 128)
        self.state_value = nn.Linear(128, 1)

    def forward(self, x):
        return self.state_value(F.relu(self.fc1(x)))
