"""What a run shows while it trains: `Logbook` (VisualDL scalars and images, the progress
bar, where the seconds go), and the checks of a VisualDL records file. Imports numpy,
visualdl and tqdm (when a run starts) and `settings`."""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError
from .settings import roles, short_names


def progress_bar_class() -> type:
    """tqdm's widget in a notebook that has ipywidgets, its text bar everywhere else (where
    tqdm.auto would warn that ipywidgets is missing); no bar at all when stderr is closed."""
    try:
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm.std import tqdm
    if sys.stderr is None or sys.stderr.closed:
        return functools.partial(tqdm, disable=True)
    return tqdm


class Logbook:
    """VisualDL records, the progress bar and the time split (`lap` closes a phase).
    What a rollout logs waits in `pending` until the rollout is kept (`commit`), so that
    a rollout a stop undoes logs nothing (`discard`)."""

    PHASES = ("collect", "update", "evaluate", "log_and_save", "final_files")

    def __init__(self, args: Any, run_dir: Path, global_step: int, episodes_done: int, elapsed: float):
        tqdm = progress_bar_class()
        from visualdl import LogWriter
        self.args = args
        # A resumed run appends to its own records file: VisualDL's server reads only the
        # newest file of a run folder, so a second file would hide the run's past.
        existing = sorted(run_dir.glob("vdlrecords.*"))
        if existing and not existing[-1].is_file():  # a FIFO would hang the reader
            raise UsageError(f"{existing[-1]} is not a regular file; remove it, or pass another --logdir")
        if existing:
            trim_torn_record(existing[-1])
        with contextlib.redirect_stdout(io.StringIO()):  # VisualDL prints that it appends
            self.writer = LogWriter(logdir=str(run_dir), flush_secs=5,
                                    file_name=existing[-1].name if existing else "")
        self.records = Path(self.writer.file_name)
        self.records_checked = 0  # the records file is whole up to here
        self.records_inode = self.records.stat().st_ino if self.records.exists() else None
        self.writer.add_text("config", json.dumps(dataclasses.asdict(args)), 0)
        self.writer.add_text("run_name", run_dir.name, 0)  # the run list shows only its head
        self.bar = tqdm(total=args.episodes or args.total_timesteps,
                        initial=episodes_done if args.episodes else min(global_step, args.total_timesteps),
                        unit="ep" if args.episodes else "step", disable=args.quiet, dynamic_ncols=True,
                        mininterval=0.5)
        self.ep_return, self.ep_len = np.zeros(args.num_envs), np.zeros(args.num_envs, np.int64)
        self.recent: deque[float] = deque(maxlen=20)  # returns of the latest training episodes
        self.pending: list[tuple[str, str, Any, int]] = []  # (kind, tag, value, step) of this rollout
        self.pending_bar, self.pending_returns, self.postfix = 0, [], {}
        self.clock = dict.fromkeys(self.PHASES, 0.0)
        self.start = time.perf_counter() - elapsed  # a resumed run counts its earlier seconds
        self.lap_start = time.perf_counter()

    def seconds(self) -> float:
        """Training seconds so far, earlier sessions of a resumed run included."""
        return time.perf_counter() - self.start

    def lap(self, phase: str, now: float | None = None) -> None:
        """Count the time since the last lap (up to `now`) as `phase`."""
        now = time.perf_counter() if now is None else now
        self.clock[phase] += now - self.lap_start
        self.lap_start = now

    def record_step(self, reward: np.ndarray, done: np.ndarray, global_step: int, episodes_done: int) -> None:
        """One step of every env; logs the episodes that ended (numbered from `episodes_done`)."""
        self.ep_return += reward
        self.ep_len += 1
        for k, i in enumerate(np.flatnonzero(done)):
            self.pending += [("scalar", "episode/return", float(self.ep_return[i]), global_step),
                             ("scalar", "episode/length", int(self.ep_len[i]), global_step),
                             ("scalar", "Steptime/steptime", int(self.ep_len[i]), episodes_done + k)]
            self.pending_returns.append(float(self.ep_return[i]))
            self.ep_return[i], self.ep_len[i] = 0.0, 0
        self.pending_bar += int(done.sum()) if self.args.episodes else self.args.num_envs

    def record_update(self, stats: dict[str, Any], learning_rate: float, gradient_steps: int,
                      global_step: int, episodes_done: int) -> None:
        """The losses and diagnostics of one update."""
        # The tutorial's loss tags, one point per update (the mean over its minibatches) at
        # its last minibatch step: a point per minibatch costs more than the minibatch.
        self.pending += [("scalar", "loss/action_loss", float(stats["policy_loss"].mean()), gradient_steps - 1),
                         ("scalar", "loss/value_loss", float(stats["value_loss"].mean()), gradient_steps - 1)]
        # VisualDL opens its scalars page on the group first in the alphabet (any case), which
        # should be the learning curve (episode/, eval/): the update's health comes last
        self.pending += [("scalar", f"update/{key}", float(stats[key]), global_step)
                         for key in ("entropy", "approx_kl", "clip_fraction", "explained_variance")]
        sps = global_step / self.seconds()
        self.pending += [("scalar", "train/learning_rate", float(learning_rate), global_step),
                         ("scalar", "train/steps_per_second", sps, global_step)]
        self.postfix = dict(ep=episodes_done, sps=f"{sps:.0f}")

    def record_evaluation(self, result: dict[str, Any], global_step: int, images: dict[str, np.ndarray]) -> None:
        """A periodic evaluation's scores and pictures (VisualDL's image tab shows the policy
        taking shape)."""
        self.pending.append(("scalar", "eval/mean_return", result["mean_return"], global_step))
        if result["success_rate"] is not None:  # an env with no sense of success shows none
            self.pending.append(("scalar", "eval/success_rate", result["success_rate"], global_step))
        self.pending += [("image", tag, image, global_step) for tag, image in images.items()]

    def commit(self) -> None:
        """Write what the rollout logged: it is kept."""
        for kind, tag, value, step in self.pending:
            (self.writer.add_scalar if kind == "scalar" else self.writer.add_image)(tag, value, step)
        self.recent.extend(self.pending_returns)
        if self.postfix:
            self.bar.set_postfix(**self.postfix, ret=f"{np.mean(self.recent) if self.recent else float('nan'):.1f}",
                                 refresh=False)
        if self.bar.n + self.pending_bar > self.bar.total:  # the last rollout runs past the budget
            self.bar.total = self.bar.n + self.pending_bar
        self.bar.update(self.pending_bar)
        self.discard()

    def discard(self) -> None:
        """Forget what the rollout logged: a stop undid it."""
        self.pending, self.pending_bar, self.pending_returns, self.postfix = [], 0, [], {}

    def record_hparams(self, held_out: dict[str, Any], global_step: int) -> None:
        """The run's settings and its held-out score for VisualDL's HParams panel, which
        compares runs side by side: the same columns and metric for every run (a missing one
        is a NaN cell), values rounded to what a person reads. A metric is a scalar tag (the
        panel shows its last value) of one point: one such group, beside eval/, not several."""
        # VisualDL keeps scalars as float32: a return rounded to 1/8 displays exactly (-109.17
        # would show as -109.16999816894531). Labels of at most 7 characters: a longer one can
        # freeze the parallel-coordinates view (see settings.ROLES)
        self.writer.add_scalar("heldout", round(held_out["mean_return"] * 8) / 8, global_step)
        settings = dataclasses.asdict(self.args)  # the full config is in the Text panel
        # the same columns for every run (the settings whose role says so), so that runs line up
        short, columns = short_names(self.args), [n for n, r in roles(self.args).items() if r.column]
        self.writer.add_hparams({short[k]: readable(settings[k]) for k in columns}, ["heldout"])

    def check_records(self) -> None:
        """Raise OSError if VisualDL failed to write the records file. Its writer thread only
        prints a warning (on a full disk, say) and drops the rest, leaving a torn record."""
        self.writer.flush()
        # A removed log folder: VisualDL makes the file anew, empty (its inode may be reused)
        stat = self.records.stat() if self.records.is_file() else None
        if stat is None or stat.st_size < self.records_checked or self.records_inode not in (None, stat.st_ino):
            raise OSError(errno.ENOENT, "its log folder was removed during the run", str(self.records))
        self.records_inode = stat.st_ino
        end = whole_records_end(self.records, self.records_checked)
        if end < self.records.stat().st_size:
            raise OSError(0, "VisualDL's writer failed: is the disk full?", str(self.records))
        self.records_checked = end

    def close(self) -> None:
        self.writer.close()
        self.bar.close()


def readable(value: Any) -> int | float | str:
    """A setting as the HParams panel shows it: floats to 4 significant digits (a sampled
    learning rate has 17), sizes as the flag takes them (64,64), booleans as text."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else str(value)


def whole_records_end(path: Path, start: int = 0) -> int:
    """Where the last whole record of a VisualDL records file ends (a record: an 8-byte
    length, then that many bytes), reading from `start`, a record boundary."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    end = 0
    while end + 8 <= len(data):
        length = int.from_bytes(data[end:end + 8], "little")
        if end + 8 + length > len(data):
            break
        end += 8 + length
    return start + end


def trim_torn_record(path: Path) -> None:
    """Cut a VisualDL records file after its last whole record: a run killed while writing
    leaves a torn one, which would garble what a resumed run appends."""
    end = whole_records_end(path)
    if end < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(end)
