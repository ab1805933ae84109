"""The run folder (ppo_toolbox/run_folder.py, folders.py): a run writes only inside its own
folders, checked at every write (param/ or exp/ as links, a run folder swapped for a link
mid-run, a link planted at a snapshot's name), its lock is a plain file of its own (not a
hard link, not a FIFO) whose contents are never echoed, and the cleanup removes only this
program's own leftovers; one run folder is one process, and a dead one holds no lock; a link planted
where a run writes is refused."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import lock_descriptor

import ppo_mountaincar as pm
from helpers import QUICK, ROOT, cli, one_line_error
from ppo_toolbox import checkpoint

SETTINGS = dict(total_timesteps=512, num_envs=4, num_steps=64, batch_size=128, update_epochs=2, eval_every=256,
                eval_episodes=5, save_every=1, keep_snapshots=1, quiet=True, plots=False)


def small_args(base, **changes):
    return pm.Args(**{**SETTINGS, **changes}, logdir=str(base / "exp"), param_dir=str(base / "param"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("original")
    return base, pm.train(small_args(base))


@pytest.fixture
def copied_run(finished_run, tmp_path):
    """A copy of the finished run's folders; returns its run folder."""
    base, summary = finished_run
    shutil.copytree(base, tmp_path / "copy")
    return tmp_path / "copy" / "param" / summary["run_name"]


def one_line_refusal(excinfo, words):
    message = str(excinfo.value)
    assert words in message and "\n" not in message and "\x1b" not in message, message
    return message


@pytest.mark.parametrize("linked", ["param", "exp"])
def test_param_or_exp_as_a_link_is_refused_and_nothing_goes_through_it(tmp_path, linked):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / linked).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(pm.UsageError) as e:
        pm.train(small_args(tmp_path))
    one_line_refusal(e, "is a symbolic link")
    assert not any(elsewhere.iterdir())


def run_folder_of(base):
    return next(p for p in (base / "param").iterdir() if p.name != "net_param")


def test_a_run_folder_swapped_for_a_link_mid_run_is_not_written_through(tmp_path):
    decoy = tmp_path / "decoy"
    decoy.mkdir()

    def swap(step, result):
        run_dir = run_folder_of(tmp_path)
        run_dir.rename(tmp_path / "moved")
        run_dir.symlink_to(decoy, target_is_directory=True)
    with pytest.raises(pm.UsageError) as e:
        pm.train(small_args(tmp_path), on_evaluation=swap)
    one_line_refusal(e, "is no longer the folder this run claimed")
    assert not any(decoy.iterdir())


def test_a_link_planted_at_a_snapshots_name_is_not_written_through(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")

    def plant(step, result):  # the first rollout's snapshot is written next
        for role in ("actor_net", "critic_net"):
            (run_folder_of(tmp_path) / f"{role}_000001.param").symlink_to(precious)
    with pytest.raises(pm.UsageError) as e:
        pm.train(small_args(tmp_path), on_evaluation=plant)
    one_line_refusal(e, "_000001.param is a symbolic link")
    assert precious.read_text() == "keep me"


def test_a_hard_linked_lock_is_refused_and_its_other_file_kept(copied_run, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (copied_run / ".lock").unlink()
    os.link(precious, copied_run / ".lock")
    with pytest.raises(pm.UsageError) as e:
        pm.resume(copied_run / checkpoint.CHECKPOINT, total_timesteps=1024)
    one_line_refusal(e, "is a hard link")
    assert precious.read_text() == "keep me"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_lock_is_refused_as_such_not_blamed_on_free_space(copied_run):
    (copied_run / ".lock").unlink()
    os.mkfifo(copied_run / ".lock")
    with pytest.raises(pm.UsageError) as e:
        pm.resume(copied_run / checkpoint.CHECKPOINT, total_timesteps=1024)
    one_line_refusal(e, ".lock is not a regular file")


@pytest.mark.parametrize("contents, shown", [(b"4242\n", "in use by process 4242"),
                                             (b"\x1b[2J\x1b[31m12\nevil\r\n", "in use by another process")])
def test_a_held_lock_names_only_a_valid_process_id(copied_run, contents, shown):
    fd = os.open(copied_run / ".lock", os.O_RDWR)
    try:
        assert lock_descriptor(fd, blocking=False)  # as another training of the run holds it
        os.ftruncate(fd, 0)
        os.write(fd, contents)
        with pytest.raises(pm.UsageError) as e:
            pm.resume(copied_run / checkpoint.CHECKPOINT, total_timesteps=1024)
        one_line_refusal(e, shown)
    finally:
        os.close(fd)


def test_a_resume_removes_the_stale_temporaries_of_writes_a_kill_interrupted(copied_run):
    old = time.time() - 600
    names = {".ppo-actor_net.param.x1y2z3.tmp": old, ".ppo-critic_net.param.a1b2c3.tmp": None}
    for name, mtime in names.items():
        (copied_run / name).write_text("x")
        if mtime:
            os.utime(copied_run / name, (mtime, mtime))
    pm.resume(copied_run / checkpoint.CHECKPOINT, total_timesteps=1024)
    assert {p.name for p in copied_run.glob(".*.tmp")} == {".ppo-critic_net.param.a1b2c3.tmp"}  # a young one stays


def test_a_finished_run_releases_its_folder(finished_run):
    base, summary = finished_run
    fd = os.open(Path(summary["run_dir"]) / ".lock", os.O_RDWR)
    try:
        assert lock_descriptor(fd, blocking=False)  # nothing holds it any more
    finally:
        os.close(fd)


def test_a_figures_folder_planted_as_a_link_mid_run_is_not_written_through(tmp_path):
    decoy = tmp_path / "decoy"
    decoy.mkdir()

    def plant(step, result):
        img = run_folder_of(tmp_path) / "img"
        if not img.exists():
            img.symlink_to(decoy, target_is_directory=True)
    with pytest.raises(pm.UsageError) as e:
        pm.train(small_args(tmp_path, plots=True, save_every=0), on_evaluation=plant)
    one_line_refusal(e, "img is a symbolic link")
    assert not any(decoy.iterdir())


def test_one_run_folder_is_one_process_and_a_dead_one_holds_no_lock(tmp_path):
    dirs = ["--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param")]
    first = subprocess.Popen([sys.executable, str(ROOT / "ppo_mountaincar.py"), "--total-timesteps", "10000000",
                              "--save-every", "1", *QUICK, *dirs], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list((tmp_path / "param").glob(f"*/{checkpoint.CHECKPOINT}")) and time.time() < deadline:
            time.sleep(0.2)
        ckpt, = (tmp_path / "param").glob(f"*/{checkpoint.CHECKPOINT}")
        second = cli("train", "--resume", str(ckpt), "--total-timesteps", "256")
        line = one_line_error(second)
        assert f"in use by process {first.pid}" in line
    finally:
        first.kill()  # SIGKILL: no chance to release anything
        first.wait()
    third = cli("train", "--resume", str(ckpt), "--total-timesteps", "256", "--quiet")
    assert third.returncode == 0, third.stderr


def test_a_planted_link_is_refused_and_a_refused_run_leaves_nothing(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    latest = tmp_path / "param" / "net_param"
    latest.mkdir(parents=True)
    (latest / "actor_net.param").symlink_to(target)
    args = pm.Args(**SETTINGS, logdir=str(tmp_path / "exp"), param_dir=str(tmp_path / "param"))
    with pytest.raises(pm.UsageError, match="is a symbolic link") as e:
        pm.train(args)
    assert "\n" not in str(e.value)
    assert target.read_text() == "keep me"
    assert {p.name for p in (tmp_path / "param").iterdir()} == {"net_param"}  # no run folder left
    assert not (tmp_path / "exp").exists() or not any((tmp_path / "exp").iterdir())
