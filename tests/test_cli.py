"""The command line (ppo_toolbox/cli.py): help, and mistakes that end in one line and exit code 2."""
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

from pathlib import Path

import ppo_mountaincar as pm
from ppo_toolbox import cli as ppo_cli
import pytest

from helpers import cli, in_process, one_line_error


@pytest.mark.parametrize("argv, words", [
    (["--clip", "1.5"], "--clip"),
    (["--batch-size", "5000", "--num-envs", "2", "--num-steps", "8"], "--batch-size"),
    (["--gamma", "0"], "--gamma"),
    (["--hidden-sizes", "64,x"], "sizes"),
    (["--env-id", "Pendulum-v1"], "Discrete actions"),
    (["--env-id", "Blackjack-v1"], "flat Box observation"),
    (["--env-id", "NoSuchEnv-v0"], "cannot make env"),
    (["--env-id", "CartPole-v1"], "--explore-bonus 0"),  # unbounded observations: no grid
    (["--no-such-flag"], "no flag --no-such-flag for train"),
    (["eval", "does/not/exist.param"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # in-process (as the command line runs it; the next test starts the real one)
    dirs = ["--logdir", str(tmp_path / "e"), "--param-dir", str(tmp_path / "p")] if argv[0] != "eval" else []
    assert ppo_cli.main([*argv, *dirs]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]
    assert os.listdir(tmp_path) == []  # nothing written


@pytest.mark.parametrize("argv, words", [(["--clip", "1.5"], "--clip"), (["eval", "does/not/exist.param"], "no such file")])
def test_the_real_command_ends_with_the_same_line_and_exit_code_2(argv, words, tmp_path):
    proc = cli(*argv, "--logdir", str(tmp_path / "e"), "--param-dir", str(tmp_path / "p")) \
        if argv[0] != "eval" else cli(*argv)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]
    assert "Traceback" not in proc.stderr


# Key flags as a user reads them, with the default preset's values written out here (not read
# from the Args that generates the help), and a value each to set
KEY_FLAGS = [("--preset", "default", "best"), ("--total-timesteps", "150000", 9000), ("--num-envs", "16", 4),
             ("--hidden-sizes", "64,64", (32,)), ("--actor-lr", "0.003", 0.001), ("--ent-coef", "0.08", 0.5),
             ("--param-dir", "param", "elsewhere")]


def test_help_documents_the_key_flags_and_each_sets_its_setting(capsys):
    with pytest.raises(SystemExit) as e:
        ppo_cli.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())  # as one line: argparse wraps at any space
    assert e.value.code == 0
    for flag, default, value in KEY_FLAGS:
        assert re.search(rf"{flag} \S+ [^[]*\[default preset: {re.escape(default)}\]", shown), flag
        typed = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        args = ppo_cli.args_from_cli(ppo_cli.parse_command_line([flag, typed]))
        assert getattr(args, flag[2:].replace("-", "_")) == value, flag
    assert "--anneal-ent, --no-anneal-ent" in shown
    assert ppo_cli.args_from_cli(ppo_cli.parse_command_line(["--no-anneal-ent"])).anneal_ent is False
    others = shown.split("Other commands:")[1].split("(")[0].split(", ")  # every other command, export too
    assert [c.strip() for c in others] == [c for c in ppo_cli.subcommands(ppo_cli.build_parser()) if c != "train"]
    assert {"eval", "replay", "plot", "tune", "export"} <= {c.strip() for c in others}


@pytest.mark.parametrize("argv, line", [
    (["evl", "param/pretrained/actor_net.param"], "error: no command 'evl'; did you mean 'eval'?"),
    (["trian"], "error: no command 'trian'; did you mean 'train'?"),
    (["x"], "error: no command 'x'; the commands are train, tune, eval, replay, export, plot"),
    (["--clp", "0.3"], "error: no flag --clp for train; did you mean --clip? (see ppo_mountaincar.py train --help)"),
    (["--seed", "3", "evl"], "error: train takes no argument 'evl'; did you mean the command 'eval'?"),
    (["eval", "p.param", "--hidden-sizes", "64"], "error: no flag --hidden-sizes for eval (see"),
    # an abbreviation is refused (argparse would take it), naming the flag it abbreviates
    (["--total", "100"], "error: no flag --total for train; did you mean --total-timesteps?"),
    (["tune", "--stor", "postgresql://u:S3cret@host/db"], "error: no flag --stor for tune; did you mean --storage?"),
    (["tune", "--trials", "postgresql://u:S3cret@host/db"], "error: argument --trials: invalid int value: "
     "'postgresql://u:***@host/db'"),
])
def test_a_mistyped_command_or_flag_names_the_nearest_one(argv, line, capsys):
    assert ppo_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1 and "S3cret" not in err, err


def test_no_parser_takes_an_abbreviation():
    parser = ppo_cli.build_parser()
    assert not parser.allow_abbrev and not any(p.allow_abbrev for p in ppo_cli.subcommands(parser).values())


def test_the_real_command_suggests_the_command_meant():
    assert one_line_error(cli("evl", "param/pretrained/actor_net.param")) == "error: no command 'evl'; did you mean 'eval'?"


def test_bad_hyperparameters_write_nothing(tmp_path):
    net = tmp_path / "param" / "net_param"
    net.mkdir(parents=True)
    (net / "actor_net.param").write_bytes(b"precious")
    for flags in (["--clip", "0"], ["--gamma", "1.5"], ["--num-envs", "0"], ["--update-epochs", "-1"]):
        assert ppo_cli.main([*flags, "--param-dir", str(tmp_path / "param"), "--logdir", str(tmp_path / "exp")]) == 2
    assert (net / "actor_net.param").read_bytes() == b"precious"
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("argv, words", [
    (["--num-envs", "100000000"], "--num-envs"),
    (["--num-steps", "1000000000"], "--num-envs x --num-steps"),
    (["--hidden-sizes", "100000,100000"], "--hidden-sizes"),
    (["--eval-episodes", "1000000000"], "--eval-episodes"),
    (["--episodes", "10000000000"], "--episodes"),
    (["eval", "param/pretrained/actor_net.param", "--episodes", "1000000000"], "--episodes"),
    (["replay", "param/pretrained/actor_net.param", "--episodes", "1000"], "for a GIF"),
])
def test_absurd_sizes_are_refused_at_once_and_touch_nothing(argv, words, tmp_path):
    net = tmp_path / "param" / "net_param"
    net.mkdir(parents=True)
    (net / "actor_net.param").write_bytes(b"precious")
    dirs = ["--param-dir", str(tmp_path / "param"), "--logdir", str(tmp_path / "exp")] if argv[0] not in (
        "eval", "replay") else ([] if argv[0] == "eval" else ["--out", str(tmp_path / "r.gif")])
    start = time.perf_counter()
    assert words in one_line_error(in_process(*argv, *dirs))  # the line and code the command ends with
    assert time.perf_counter() - start < 60
    assert (net / "actor_net.param").read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["param"]


def test_the_preset_flag_offers_exactly_the_presets():
    [preset] = [f for f in dataclasses.fields(pm.Args) if f.name == "preset"]
    assert set(preset.metadata["choices"]) == set(pm.PRESETS)


@pytest.mark.parametrize("argv, words", [
    (["--actor-lr", "1e400"], "--actor-lr must be a finite number"),
    (["--ent-coef", "nan"], "--ent-coef must be a finite number"),
    (["--ent-coef", "inf"], "--ent-coef must be a finite number"),
    (["--explore-bonus", "inf"], "--explore-bonus must be a finite number"),
    (["--max-grad-norm", "inf"], "--max-grad-norm must be a finite number"),
    (["--explore-decay-steps", "0"], "--explore-decay-steps must be positive"),
    (["--explore-decay-steps", "-5"], "--explore-decay-steps must be positive"),
    (["--seed", "-1"], "--seed must be in 0..4,294,967,295"),
    (["--seed", str(2**64)], "--seed must be in 0..4,294,967,295"),
    (["--update-epochs", "1000000000"], "--update-epochs must be in 1..1,000"),
    (["--explore-bins", "100000"], "bonus cells"),
    (["--env-id", "Acrobot-v1"], "use --explore-bins 10 or --explore-bonus 0"),
    (["--num-envs", "65536", "--num-steps", "256"], "GB for one rollout"),
    (["--device", "gpu"], "--device gpu needs PaddlePaddle's GPU build"),
    (["eval", "param/pretrained/actor_net.param", "--seed", "-1"], "--seed must be in 0.."),
    (["eval", "param/pretrained/actor_net.param", "--episodes", str(10**20)], "--episodes must be in 1..100,000"),
    (["replay", "param/pretrained/actor_net.param", "--seed", str(2**64)], "--seed must be in 0.."),
])
def test_flags_that_cannot_work_are_one_line_before_anything_runs(argv, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    outdirs = ["--logdir", str(tmp_path / "e"), "--param-dir", str(tmp_path / "p")] if argv[0] not in ("eval", "replay") else []
    assert ppo_cli.main([*argv, *outdirs]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert not (tmp_path / "p").exists()  # nothing written


def test_output_mishaps_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    policy = "param/pretrained/actor_net.param"
    target = tmp_path / "real.gif"
    target.write_bytes(b"old")
    link = tmp_path / "link.gif"
    link.symlink_to(target)
    # a symlink is written through to its target, and stays a link
    assert ppo_cli.main(["replay", policy, "--episodes", "1", "--out", str(link)]) == 0
    assert link.is_symlink() and target.read_bytes()[:3] == b"GIF"
    # a target that is not a regular file is refused; so is a folder that is a file
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert ppo_cli.main(["replay", policy, "--episodes", "1", "--out", str(fifo)]) == 2
    run = pm.train(pm.Args(num_envs=2, num_steps=32, batch_size=64, update_epochs=1, total_timesteps=64,
                           eval_every=0, quiet=True, plots=False, logdir=str(tmp_path / "exp"),
                           param_dir=str(tmp_path / "param")))
    assert ppo_cli.main(["plot", str(tmp_path / "exp" / run["run_name"]), "--out", str(target)]) == 2  # a file
    (tmp_path / "runs").mkdir()
    assert ppo_cli.main(["plot", str(tmp_path / "runs")]) == 2  # no records there
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error:") for line in lines), lines
    assert "not a regular file" in lines[0]


def test_a_damaged_records_file_is_one_line(tmp_path, capsys):
    run = tmp_path / "exp" / "run"
    run.mkdir(parents=True)
    (run / "vdlrecords.1.log").write_bytes(os.urandom(64))
    assert ppo_cli.main(["plot", str(run), "--out", str(tmp_path / "img")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0], err


def test_eval_into_a_closed_pipe_is_quiet():
    proc = subprocess.run(f"{sys.executable} {Path(__file__).resolve().parents[1] / 'ppo_mountaincar.py'} "
                          "eval param/pretrained/actor_net.param --json | head -c 0", shell=True,
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


# The signal comes at a given point of the replay, whatever the machine's speed: the program
# itself sends it while it draws the second episode's first frame (SIGINT), or once the GIF is
# fully written to its temporary file, before it is renamed (SIGTERM).
_SIGNAL_IN_REPLAY = """
import os, runpy, sys
sys.path.insert(0, {root!r})
import ppo_toolbox.replay as replay
caption, atomic_write = replay._caption, replay.atomic_write
def signal_at_episode_2(frame, text):
    if text.startswith("episode 2/"):
        os.kill(os.getpid(), 2)
    return caption(frame, text)
def signal_once_written(path, write):
    return atomic_write(path, lambda tmp: (write(tmp), os.kill(os.getpid(), 15)))
replay._caption, replay.atomic_write = signal_at_episode_2, signal_once_written
sys.argv = {argv!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("sig", [2, 15])  # SIGINT (in an episode), SIGTERM (the GIF written, not yet renamed)
def test_a_signal_during_replay_is_one_line_and_leaves_no_half_gif(tmp_path, sig):
    out = tmp_path / "r.gif"
    root = str(Path(__file__).resolve().parents[1])
    argv = [str(Path(root) / "ppo_mountaincar.py"), "replay", "param/pretrained/actor_net.param",
            "--episodes", "2" if sig == 2 else "1", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_IN_REPLAY.format(root=root, argv=argv)],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 128 + sig and proc.stderr.strip() == "interrupted", proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


# The signal comes at a given point of the start-up, whatever the machine's speed: an import
# hook sends it to the program itself when the program first imports a module: Paddle (while
# it loads, before its own handler exists) or the command line (Paddle loaded, its handler
# installed, ours not yet running).
_SIGNAL_AT_IMPORT = """
import importlib.abc, os, runpy, sys
class SignalAt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), {sig})
        return None
sys.meta_path.insert(0, SignalAt())
sys.argv = {argv!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("module", ["paddle", "ppo_toolbox.cli"])
@pytest.mark.parametrize("sig", [2, 15])  # SIGINT, SIGTERM
def test_a_signal_while_the_program_starts_is_one_line(tmp_path, sig, module):
    argv = [str(Path(__file__).resolve().parents[1] / "ppo_mountaincar.py"),
            "--logdir", str(tmp_path / "e"), "--param-dir", str(tmp_path / "p")]
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_AT_IMPORT.format(module=module, sig=sig, argv=argv)],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 128 + sig and len(lines) == 1 and lines[0].startswith(("SIGINT", "SIGTERM")), proc.stderr
    assert "nothing was written" in lines[0] and not (tmp_path / "p").exists()


def test_a_second_signal_is_one_true_line(tmp_path):
    dirs = ["--logdir", str(tmp_path / "e"), "--param-dir", str(tmp_path / "p")]
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parents[1] / "ppo_mountaincar.py"),
                             "--total-timesteps", "10000000", "--save-every", "1", "--update-epochs", "200",
                             "--quiet", *dirs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120  # a checkpoint exists; then two signals inside a long update
    while not list((tmp_path / "p").glob("*/checkpoint.ckpt")) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.strip().splitlines() if not line.startswith("training ")]
    assert proc.returncode in (130, 143) and "Traceback" not in err and "Exception ignored" not in err, err
    checkpoint, = (tmp_path / "p").glob("*/checkpoint.ckpt")
    assert str(checkpoint) in lines[-1], err  # the line names a checkpoint that exists


def test_newcomers_mishaps_are_one_line(tmp_path):
    # nothing installed (-S: no site-packages): one line, not a ModuleNotFoundError traceback
    proc = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.argv = ['ppo_mountaincar.py', '--help']; "
                           f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
                           "import runpy; runpy.run_path(sys.path[0] + '/ppo_mountaincar.py', run_name='__main__')"],
                          capture_output=True, text=True, timeout=60)
    line = one_line_error(proc)
    assert "PaddlePaddle" in line and "pip install -r requirements.txt" in line
    # a missing checkpoint, a missing --param for plot: what is missing, and what to pass
    assert "no such checkpoint" in one_line_error(cli("train", "--resume", str(tmp_path / "nope.ckpt")))
    run = pm.train(pm.Args(num_envs=2, num_steps=32, batch_size=64, update_epochs=1, total_timesteps=64,
                           eval_every=0, quiet=True, plots=False, logdir=str(tmp_path / "exp"),
                           param_dir=str(tmp_path / "param")))
    line = one_line_error(cli("plot", str(tmp_path / "exp" / run["run_name"]), "--param", str(tmp_path / "nope.param"),
                              "--out", str(tmp_path / "img")))
    assert "no such file" in line and not (tmp_path / "img").exists()


@pytest.mark.parametrize("env_id, code", [("Acrobot-v0", 2), ("CartPole-v0", 2)])  # gone from Gymnasium; out of date
def test_a_deprecated_env_is_one_line_without_gymnasiums_warning(env_id, code, capsys, monkeypatch):
    import warnings
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ppo_cli.main(["eval", "param/pretrained/actor_net.param", "--env-id", env_id, "--episodes", "1"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and env_id in err[0] and not caught, (err, caught)


def test_an_actor_that_does_not_fit_the_env_its_file_names_is_told_which_one_it_fits():
    from ppo_toolbox.evaluation import env_for
    for sizes, fix in (((4, 2), "pass --env-id CartPole-v1, the env of that size"),
                       ((5, 7), "pass --env-id with the env it was trained on")):
        with pytest.raises(ppo_cli.UsageError) as refused:
            env_for(dict(env_id="MountainCar-v0", obs_dim=sizes[0], n_actions=sizes[1]))
        assert str(refused.value) == (f"this actor ({sizes[0]} inputs, {sizes[1]} actions) does not fit MountainCar-v0, "
                                      f"the env its file names; {fix}")


@pytest.mark.parametrize("saved", [0, 1])  # the disk fills before the first checkpoint, or after one
def test_a_full_disk_names_a_checkpoint_only_if_it_exists(saved, tmp_path, capsys, monkeypatch):
    import errno
    from ppo_toolbox import run
    original, calls = run.Run.write_checkpoint, []

    def write_checkpoint(self):
        calls.append(self.net_dir)
        if len(calls) > saved:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self)
    monkeypatch.setattr(run.Run, "write_checkpoint", write_checkpoint)
    assert ppo_cli.main(["--num-envs", "2", "--num-steps", "32", "--batch-size", "64", "--update-epochs", "1",
                         "--total-timesteps", "256", "--save-every", "1", "--quiet", "--no-plots",
                         "--logdir", str(tmp_path / "e"), "--param-dir", str(tmp_path / "p")]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    checkpoint = calls[0] / "checkpoint.ckpt"
    assert line.startswith("error: could not write a file (No space left on device)")
    assert line.endswith(f"then resume with: python ppo_mountaincar.py train --resume {checkpoint}" if saved else
                         "then start the run again (no checkpoint had been saved)"), line
    assert checkpoint.is_file() == bool(saved)
