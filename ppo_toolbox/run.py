"""The books of one training run, as `train` uses them: `Run` holds the run's counters
(`Progress`, which `train` moves), its folder, the logbook, the best-policy keeper, the
checkpoint and the stop signal, and makes each rollout a unit that a stop undoes
(`Run.rollout`). The run's state is its parts' (`Run.parts`): what a checkpoint writes, a
resume loads and an undo point holds.
Imports numpy and the toolbox's `acting`, `best_policy`, `checkpoint`, `errors`, `evaluation`, `figures`,
`logbook`, `param_files`, `run_folder`, `run_state`, `stopping` and `undo`."""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .acting import NumpyNet
from .best_policy import BestPolicy
from .checkpoint import CHECKPOINT, write_checkpoint
from .errors import TrainingDiverged
from .evaluation import held_out_score
from .figures import plot_run, policy_value_images
from .logbook import Logbook
from .param_files import atomic_write
from .run_folder import RunFolder
from .run_state import Agent, HasState, OpenEpisodes
from .stopping import StopRequested, StopSignal
from .undo import UndoPoint


@dataclasses.dataclass
class Progress:
    """Where a run stands: the training loop's counters, held by its `Run` and moved by the
    script's `train` (steps and rollouts) and `Run.record_step` (episodes). The agent counts
    its gradient steps, the keeper when the next evaluation is due, the logbook the seconds;
    all are in the run's state."""

    global_step: int = 0    # env steps so far, all envs together
    episodes_done: int = 0  # training episodes finished
    rollouts: int = 0       # rollouts collected and learned from

    def state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)


class Run:
    """One training run's books. As a `with` block, Ctrl-C and SIGTERM stop it cleanly;
    `finish` writes the final files and returns the summary `train` returns."""

    def __init__(self, args: Any, agent: Agent, bonus: HasState | None, envs: Any, changed: dict[str, Any], device: str,
                 checkpoint: dict[str, Any] | None = None,
                 on_evaluation: Callable[[int, dict[str, Any]], bool] | None = None,
                 trusted_env: str | None = None):
        if not isinstance(agent, Agent):  # a renamed attribute fails here, not deep in a run
            raise TypeError(f"{type(agent).__name__} lacks what ppo_toolbox.run_state.Agent names")
        self.args, self.agent, self.bonus, self.envs, self.on_evaluation = args, agent, bonus, envs, on_evaluation
        self.checkpoint = checkpoint
        in_place = checkpoint is not None and checkpoint["path"] is not None  # else a new run folder
        resumed = (checkpoint["run_name"], Path(checkpoint["path"]).parent) if in_place else None
        self.folder = RunFolder(args, changed, resumed)  # a new run: a folder of its own; else the checkpoint's
        self.folder.claim()
        self.run_name, self.net_dir, self.log_dir = self.folder.run_name, self.folder.path, self.folder.log_dir
        self.latest_dir = self.folder.latest_dir  # the latest finished run's policy
        try:  # a run refused here leaves nothing behind
            self.keeper = BestPolicy(args, self.net_dir, trusted_env)
            self.progress = Progress()
            for name, part in self.parts(envs=False).items():  # the envs once the logbook is there
                if checkpoint is not None and part is not None:
                    part.load_state(checkpoint[name])
            if not args.quiet:  # before the progress bar appears
                import paddle
                print(f"training {args.env_id} on {device} (PaddlePaddle {paddle.__version__}) into {self.net_dir}",
                      file=sys.stderr)
            self.log = Logbook(args, self.log_dir, self.progress.global_step, self.progress.episodes_done,
                               0.0 if checkpoint is None else checkpoint["elapsed"])
        except BaseException:
            self.folder.release()
            raise
        self.stop = StopSignal()
        self.reached = False          # --target-return reached, or on_evaluation asked to stop
        self.evaluated = False        # in the rollout under way
        self.collected_at = time.perf_counter()

    def __enter__(self) -> Run:
        self.stop.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.__exit__(*exc)
        self.folder.release()
        if isinstance(exc[1], (KeyboardInterrupt, OSError)):  # a second stop, a full disk: say where the run's files are
            exc[1].run_dir = str(self.net_dir)
            with contextlib.suppress(Exception):
                self.log.bar.close()

    def parts(self, envs: bool = True) -> dict[str, HasState | None]:
        """The run's state, part by part (None: a part this run has not): the counters, the
        agent, the exploration bonus, the best policy's keeper, and the envs with their open
        episodes where the envs can say their state (the numpy MountainCar)."""
        parts: dict[str, HasState | None] = dict(counters=self.progress, agent=self.agent, bonus=self.bonus,
                                                 keeper=self.keeper)
        if envs:
            parts["envs"] = OpenEpisodes(self.envs, self.log) if isinstance(self.envs, HasState) else None
        return parts

    def first_observations(self, seeds: list[int]) -> np.ndarray:
        """The checkpoint's envs where they were, when it holds them (the numpy MountainCar),
        so that a resumed run is the run that was stopped; else new episodes from `seeds`."""
        envs, saved = self.parts()["envs"], self.checkpoint and self.checkpoint["envs"]
        return self.envs.reset(seed=seeds)[0] if envs is None or saved is None else envs.load_state(saved)

    def budget_spent(self) -> bool:
        p, args = self.progress, self.args
        return p.global_step >= args.total_timesteps or 0 < args.episodes <= p.episodes_done

    def finished(self) -> bool:
        """The budget is spent, the target reached, or a stop was asked for."""
        return self.budget_spent() or self.reached or self.stop.requested

    @contextlib.contextmanager
    def rollout(self) -> Iterator[None]:
        """A rollout, its update, evaluation and saving, as one unit: a stop before anything
        of it is kept on disk puts everything back as it was at its start (networks, Adam,
        counters, RNG, bonus counts, envs) and ends the run, so that a checkpoint always
        holds an update boundary. A stop while files are written lets them finish."""
        undo = UndoPoint(self.parts())
        self.evaluated = False
        try:
            with self.stop.armed():
                yield
        except StopRequested:
            undo.restore()
            self.log.discard()
        else:
            self._commit()

    def record_step(self, reward: np.ndarray, done: np.ndarray) -> None:
        """Log the step's rewards and the episodes that ended (with the env's own reward, at
        the step `train` has counted), and count those episodes."""
        p = self.progress
        self.log.record_step(reward, done, p.global_step, p.episodes_done)
        p.episodes_done += int(done.sum())
        self.collected_at = time.perf_counter()

    def check_finite(self, stats: dict[str, Any]) -> None:
        """Stop the run if an update's statistics or the weights became NaN or infinite: the
        files on disk stay those from before (raises TrainingDiverged)."""
        bad = [k for k, v in stats.items() if not np.all(np.isfinite(v))]
        if bad or not all(np.isfinite(t.numpy()).all() for t in self.agent.params):
            raise TrainingDiverged(f"{bad[0] if bad else 'a weight'} became NaN or infinite "
                                   f"at rollout {self.progress.rollouts}")

    def log_update(self, stats: dict[str, Any]) -> None:
        """Log an update: its losses and diagnostics, and where the rollout's seconds went."""
        self.log.lap("collect", self.collected_at)
        self.log.lap("update")
        agent, p = self.agent, self.progress
        self.log.record_update(stats, agent.optimizer.get_lr(), agent.gradient_steps, p.global_step, p.episodes_done)

    def evaluation_due(self) -> bool:
        return self.keeper.due(self.progress.global_step, self.budget_spent())

    def evaluate_and_keep_best(self) -> None:
        """Evaluate the greedy policy (a stop interrupts that at once), record it (the keeper
        keeps it if it is the best so far) and log it with its maps; the run ends at
        --target-return or when `on_evaluation` says."""
        step = self.progress.global_step
        result = self.keeper.evaluate(self.agent)
        self.stop.disarm()  # from here on this rollout is kept
        self.log.lap("evaluate")
        self.evaluated = True
        self.keeper.record(result, self.agent, step, self.log.seconds())
        self.log.record_evaluation(result, step, self._maps())
        if self.on_evaluation is not None and self.on_evaluation(step, result):
            self.reached = True
        elif self.keeper.reached_target(result):
            self.log.bar.write(f"eval mean return {result['mean_return']:.1f} >= target {self.args.target_return} "
                               f"at step {step}: stopping")
            self.reached = True

    def _maps(self) -> dict[str, np.ndarray]:
        """The policy and value maps, for VisualDL, where the observations are 2-D and bounded (MountainCar's)."""
        space = self.envs.single_observation_space
        if space.shape != (2,) or not space.is_bounded():
            return {}
        actor, critic = NumpyNet(self.agent.actor_net), NumpyNet(self.agent.critic_net)
        return policy_value_images(actor, critic, space.low, space.high)

    def save_due(self) -> bool:
        return bool(self.args.save_every) and self.progress.rollouts % self.args.save_every == 0

    def save(self) -> None:
        """A numbered snapshot pair (only the --keep-snapshots newest stay) and the checkpoint."""
        self.stop.disarm()
        self.agent.save_param(self.net_dir, f"_{self.progress.rollouts:06d}")
        for role in ("actor_net", "critic_net"):
            numbered = sorted(self.net_dir.glob(f"{role}_[0-9]*.param"))
            for old in numbered[:max(0, len(numbered) - self.args.keep_snapshots)]:
                old.unlink()
        self.write_checkpoint()

    def write_checkpoint(self) -> Path:
        return write_checkpoint(self.net_dir / CHECKPOINT, dataclasses.asdict(self.args), self.run_name,
                                self.parts(), self.log.seconds())

    def _commit(self) -> None:
        """The rollout is kept: write its logs. After an evaluation, check that VisualDL could
        write them; if not (a full disk), save a checkpoint and stop, resumable."""
        self.log.commit()
        if self.evaluated:
            try:
                self.log.check_records()
            except OSError:
                self.write_checkpoint()
                raise
        self.log.lap("log_and_save")

    def finish(self) -> dict[str, Any]:
        """Final files: the best evaluated policy (else the latest) and a checkpoint; its
        held-out score; a summary, which says what the command line tells the user (how the
        run went, where it stopped). A stop that comes while the files are written skips the
        figures (a second of work)."""
        stop_signal = self.stop.signum  # a stop during training, not one during the final files
        self.log.lap("collect")
        best_files = [self.net_dir / f"{name}_best.param" for name in ("actor_net", "critic_net")]
        if self.keeper.found and not stop_signal and all(f.is_file() for f in best_files):
            # ship the best evaluated policy, not merely the last (that one is in the checkpoint)
            for name, best_file in zip(("actor_net", "critic_net"), best_files):
                atomic_write(self.net_dir / f"{name}.param", lambda tmp, src=best_file: shutil.copyfile(src, tmp))
            actor_path = self.net_dir / "actor_net.param"
        else:
            actor_path = self.agent.save_param(self.net_dir)
        checkpoint = self.write_checkpoint()
        held_out, figures, stopped_in = None, [], "training" if stop_signal else ""
        if not stop_signal:  # param/net_param/actor_net.param, where the tutorial put it: this run's policy
            for name in ("actor_net", "critic_net"):
                atomic_write(self.latest_dir / f"{name}.param",
                             lambda tmp, src=self.net_dir / f"{name}.param": shutil.copyfile(src, tmp))
            held_out = held_out_score(actor_path, self.args.env_id, self.keeper.trusted_env)
        seconds, best = self.log.seconds(), self.keeper.best
        if held_out is not None:
            self.log.record_hparams(held_out, self.progress.global_step)
        self.log.close()
        if not stop_signal and self.stop.signum:  # it came while the files above were written: the run is whole
            stopped_in = "final files"
        elif not stop_signal and self.args.plots:
            figures = plot_run(self.log_dir, actor_path, self.net_dir / "img")
            stopped_in = "figures" if self.stop.signum else ""  # they are whole, as every file
        self.log.lap("final_files")
        return dict(run_name=self.run_name, run_dir=str(self.net_dir), log_dir=str(self.log_dir),
                    latest_path=str(self.latest_dir / "actor_net.param"), actor_path=str(actor_path),
                    checkpoint=str(checkpoint), **dataclasses.asdict(self.progress),
                    gradient_steps=self.agent.gradient_steps, seconds=seconds, best_eval=best,
                    eval_history=self.keeper.history, held_out=held_out, figures=[str(f) for f in figures],
                    interrupted=self.stop.signum, stopped_in=stopped_in,
                    started=self.log.start, time_split=self.log.clock)
