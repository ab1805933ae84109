"""The checkpoint file (ppo_toolbox/checkpoint.py): a resumed run is byte for byte the run that was not
stopped; older and newer versions' checkpoints; files outside the format refused at their first wrong byte;
a checkpoint outside a run folder writes nothing there; a checkpoint from anyone, every value checked by type
and range before it is used, never sending a run outside its folder."""
import copy
import dataclasses
import json
import os
import pickle
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

import ppo_mountaincar as pm
from ppo_toolbox import checkpoint
from ppo_toolbox import cli as ppo_cli

# a few seconds: 4 rollouts of 4 x 64 steps, evaluations (the best policy is the one shipped), the bonus
SETTINGS = dict(num_envs=4, num_steps=64, batch_size=128, update_epochs=2, eval_every=256, eval_episodes=3,
                anneal_lr=True, quiet=True, plots=False, save_every=0)


def files_of(folder):
    return {p: p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def half_run(tmp_path_factory):
    """A run of 512 steps of a 1,024-step budget, stopped there: its checkpoint."""
    base = tmp_path_factory.mktemp("half")
    return pm.train(pm.Args(**SETTINGS, total_timesteps=512, logdir=str(base / "e"), param_dir=str(base / "p")))


def test_train_checkpoint_resume_gives_the_same_files_as_training_straight(tmp_path, half_run):
    whole = pm.train(pm.Args(**SETTINGS, total_timesteps=1024, logdir=str(tmp_path / "e"),
                             param_dir=str(tmp_path / "a")))
    resumed = pm.resume(run_copy(half_run, tmp_path) / checkpoint.CHECKPOINT, total_timesteps=1024)  # the half run stays half
    for name in ("actor_net.param", "critic_net.param", "actor_net_best.param"):
        assert (Path(whole["run_dir"]) / name).read_bytes() == (Path(resumed["run_dir"]) / name).read_bytes(), name
    assert [dict(h, seconds=0) for h in whole["eval_history"]] == [dict(h, seconds=0) for h in resumed["eval_history"]]
    assert resumed["gradient_steps"] == whole["gradient_steps"]


def resume_line(capsys, path, *flags):
    """`train --resume path` in this process: exit code 2 and one line `error: ...`, which is returned."""
    assert ppo_cli.main(["train", "--resume", str(path), "--total-timesteps", "1024", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


def run_copy(half_run, tmp_path):
    """A copy of the half run's folders; returns its run folder."""
    src = Path(half_run["run_dir"]).parent.parent
    shutil.copytree(src, tmp_path / "copy")
    return tmp_path / "copy" / "p" / half_run["run_name"]


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickle_checkpoint_of_an_older_version_is_refused_in_one_line(tmp_path, capsys, half_run, protocol):
    run_dir = run_copy(half_run, tmp_path)
    old = dict(kind="checkpoint", format=2, config={}, counters={}, checksum="0" * 64)
    (run_dir / checkpoint.CHECKPOINT).write_bytes(pickle.dumps(old, protocol=protocol))
    before = files_of(tmp_path)
    assert "a checkpoint of an older version of this program" in resume_line(capsys, run_dir / checkpoint.CHECKPOINT)
    assert files_of(tmp_path) == before


def test_a_setting_added_later_takes_its_default_with_one_note(half_run, capsys):
    newer = dataclasses.make_dataclass("Args", [("demo_knob", float, dataclasses.field(default=0.5))],
                                       bases=(pm.Args,))
    state = checkpoint.read_checkpoint(half_run["checkpoint"], newer)
    assert state["config"]["demo_knob"] == 0.5 and state["config"]["seed"] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note:") and "--demo-knob" in err[0] and "default 0.5" in err[0]


def test_a_checkpoint_without_a_setting_of_this_version_resumes_with_its_default(tmp_path, capsys, half_run):
    run_dir = run_copy(half_run, tmp_path)
    state = checkpoint.load_file(run_dir / checkpoint.CHECKPOINT)
    del state["config"]["target_kl"]  # as if written before --target-kl existed
    checkpoint.save_file(run_dir / checkpoint.CHECKPOINT, state)
    assert ppo_cli.main(["train", "--resume", str(run_dir / checkpoint.CHECKPOINT), "--total-timesteps", "768"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--target-kl" in notes[0] and "default None" in notes[0], notes
    assert checkpoint.read_checkpoint(run_dir / checkpoint.CHECKPOINT, pm.Args)["counters"]["global_step"] == 768


def test_a_setting_this_version_does_not_know_is_refused_in_one_line(tmp_path, capsys, half_run):
    run_dir = run_copy(half_run, tmp_path)
    state = checkpoint.load_file(run_dir / checkpoint.CHECKPOINT)
    state["config"]["demo_knob"] = 0.5
    checkpoint.save_file(run_dir / checkpoint.CHECKPOINT, state)
    before = files_of(tmp_path)
    line = resume_line(capsys, run_dir / checkpoint.CHECKPOINT)
    assert "newer version" in line and "demo_knob" in line
    assert files_of(tmp_path) == before


def rewritten(path, edit_text=None, arrays=None):
    """The checkpoint at `path` written again with its state's JSON text edited and `arrays` changed."""
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    text = json.loads(blob[8:8 + n])["__metadata__"]["state"]
    from safetensors.numpy import load
    tensors = {**load(blob), **(arrays or {})}
    text = edit_text(text) if edit_text else text
    path.write_bytes(save(tensors, metadata={"state": text, "sha256": checkpoint.digest(text, tensors)}))
    return path


def flipped(path):
    """One bit of the data changed, the rest of the file as written."""
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 1
    path.write_bytes(bytes(blob))


def elapsed_as(value):
    def edit(text):
        state = json.loads(text)
        return text.replace(f'"elapsed":{json.dumps(state["elapsed"])}', f'"elapsed":{value}')
    return edit


def huge_header(path):
    path.write_bytes((2**63).to_bytes(8, "little") + path.read_bytes()[8:])


def cut(path):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def grown(last):
    """The bonus counts' entry, or the file's last tensor's (`last`), claims 1,000 more cells than it holds."""
    def damage(path):
        blob = path.read_bytes()
        n = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + n])
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        entry = max(tensors.values(), key=lambda t: t["data_offsets"][1]) if last else tensors["bonus/counts"]
        entry["data_offsets"][1] += entry["data_offsets"][1] - entry["data_offsets"][0] + 8 * 1000
        entry["shape"] = [entry["shape"][0] * 2 + 1000, *entry["shape"][1:]] if len(entry["shape"]) == 1 else [0]
        text = json.dumps(header).encode().ljust(n)
        path.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + n:])
    return damage


HOSTILE = {  # (what is done to a good checkpoint, words of the one line)
    "a header length of 2^63": (huge_header, "size or header length"),
    "a file cut in half": (cut, "lies outside the file"),
    "an empty file": (lambda p: p.write_bytes(b""), "size or header length"),
    "a header that is not JSON": (lambda p: p.write_bytes(b"\x10" + b"\0" * 7 + b"{not json at all" + b"\0" * 64),
                                  "not a checkpoint"),
    "a tensor beyond the file": (grown(last=True), "lies outside the file"),
    "tensors that overlap": (grown(last=False), "safetensors: "),
    "a tensor of int8": (lambda p: rewritten(p, arrays={"bonus/counts": np.zeros(400, np.int8)}),
                         "not float32, float64 or int64"),
    "a tensor of 3 dimensions": (lambda p: rewritten(p, arrays={"bonus/counts": np.zeros((4, 10, 10), np.int64)}),
                                 "at most 2 dimensions"),
    "a flipped bit": (flipped, "its checksum does not match its content"),
    "a tensor with no place": (lambda p: rewritten(p, arrays={"config/seed/x": np.zeros(2)}), "has no place"),
    "NaN in the JSON": (lambda p: rewritten(p, elapsed_as("NaN")), "NaN where a number belongs"),
    "Infinity in the JSON": (lambda p: rewritten(p, elapsed_as("1e999")), "its elapsed time"),
    "a number of 5,000 digits": (lambda p: rewritten(p, elapsed_as("9" * 5000)), "more than 40 digits"),
    "a list for a number": (lambda p: rewritten(p, elapsed_as("[1.5]")), "its elapsed time"),
    "JSON nested 100,000 deep": (lambda p: rewritten(p, elapsed_as("[" * 100_000 + "]" * 100_000)), "damaged"),
    "a folder": (lambda p: (p.unlink(), p.mkdir()), "not a regular file"),
    "a FIFO": (lambda p: (p.unlink(), os.mkfifo(p)), "not a regular file"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_file_outside_the_format_is_one_line_and_touches_nothing(tmp_path, capsys, half_run, case):
    damage, words = HOSTILE[case]
    run_dir = run_copy(half_run, tmp_path)
    damage(run_dir / checkpoint.CHECKPOINT)
    before = files_of(tmp_path)
    started = time.perf_counter()
    line = resume_line(capsys, run_dir / checkpoint.CHECKPOINT)
    assert words in line and time.perf_counter() - started < 10, line
    assert files_of(tmp_path) == before


def test_a_checkpoint_outside_a_run_folder_resumes_into_a_new_one_and_writes_nothing_where_it_lies(
        tmp_path, half_run, monkeypatch, capsys):
    downloads, work = tmp_path / "home" / "Downloads", tmp_path / "home" / "work"
    downloads.mkdir(parents=True)
    work.mkdir()
    shutil.copy(half_run["checkpoint"], downloads)
    swap = downloads / ".notes.txt.swp.tmp"  # an editor's, older than a minute
    swap.write_text("unsaved notes")
    os.utime(swap, (time.time() - 3600,) * 2)
    before = files_of(tmp_path / "home")
    monkeypatch.chdir(work)
    resumed = pm.resume(downloads / checkpoint.CHECKPOINT, total_timesteps=1024)
    assert files_of(tmp_path / "home") == {**before, **files_of(work)} and set(files_of(downloads)) == set(before)
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["Downloads", "work"]
    assert resumed["global_step"] == 1024
    assert Path(resumed["run_dir"]).resolve() == work / "param" / half_run["run_name"]
    assert "is not a run folder" in capsys.readouterr().err


# a checkpoint from anyone: a small finished run whose checkpoint is changed, one entry at a time
FINISHED = dict(total_timesteps=512, num_envs=4, num_steps=64, batch_size=128, update_epochs=2, eval_every=256,
                eval_episodes=5, save_every=1, keep_snapshots=1, quiet=True, plots=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A small finished run in param/<run>/ and exp/<run>/ under a folder of its own, and its checkpoint's state."""
    base = tmp_path_factory.mktemp("original")
    summary = pm.train(pm.Args(**FINISHED, logdir=str(base / "exp"), param_dir=str(base / "param")))
    return base, summary, checkpoint.load_file(Path(summary["checkpoint"]))


def crafted_copy(finished_run, tmp_path, change):
    """A copy of the run's folders whose checkpoint has `change` applied."""
    base, summary, state = finished_run
    shutil.copytree(base, tmp_path / "copy")
    run_dir = tmp_path / "copy" / "param" / summary["run_name"]
    state = copy.deepcopy(state)
    change(state)
    checkpoint.save_file(run_dir / checkpoint.CHECKPOINT, state)
    return run_dir


def setter(*keys, value):
    def change(state):
        target = state
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return change


def delete(*keys):
    def change(state):
        target = state
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
    return change


def evaluation(**change):
    return {**dict(mean_return=-120.0, std_return=3.0, success_rate=1.0, mean_steps=120.0, episodes=5,
                   global_step=256), **change}


CRAFTED = {  # (change, the entry the one line names)
    "a float where a count belongs": (setter("config", "num_envs", value=4.0), "config (--num-envs must be a int"),
    "an array where a name belongs": (setter("config", "env_id", value=np.zeros(3)), "config (--env-id must be a str"),
    "a list where a number belongs": (setter("config", "gamma", value=[0.99]), "config (--gamma must be a finite"),
    "an unknown activation": (setter("config", "activation", value="sigmoid"), "--activation must be one of"),
    "nine hidden layers": (setter("config", "hidden_sizes", value=[8] * 9), "at most 8 layers"),
    "10^30 steps per episode": (setter("config", "max_episode_steps", value=10**30), "must be in 0..10^10"),
    "a run name that climbs out": (setter("config", "run_name", value="../x"), "--run-name must be a plain folder"),
    "a stored run name that climbs out": (setter("run_name", value="../../x"), "--run-name must be a plain folder"),
    "an env id of two lines": (setter("config", "env_id", value="Mountain\nCar-v0"), "--env-id must be a name"),
    "a missing counter": (delete("counters", "rollouts"), "its counters"),
    "a float counter": (setter("counters", "global_step", value=512.5), "its counters"),
    "a list for a counter": (setter("counters", "global_step", value=[512]), "its counters"),
    "a true for a counter": (setter("counters", "episodes_done", value=True), "its counters"),
    "2^70 gradient steps": (setter("agent", "gradient_steps", value=2**70), "its counters"),
    "10^40 seconds": (setter("elapsed", value=1e40), "its elapsed time"),
    "a bonus table of the wrong shape": (setter("bonus", "counts", value=np.zeros(10, np.int64)), "exploration counts"),
    "a bonus table of floats": (setter("bonus", "counts", value=np.zeros(400, np.float64)), "exploration counts"),
    "a best return of 1e308": (setter("keeper", "best", value=evaluation(mean_return=1e308)), "best evaluation"),
    "a best of strings": (setter("keeper", "best", value=evaluation(mean_return="high")), "best evaluation"),
    "a best without its numbers": (setter("keeper", "best", value={"mean_return": -100.0}), "best evaluation"),
    "a success rate of 2": (setter("keeper", "best", value=evaluation(success_rate=2.0)), "best evaluation"),
    "an evaluation of strings": (setter("keeper", "history", value=[{"mean_return": "high"}]), "evaluations"),
    "a garbage optimizer entry": (setter("agent", "optimizer", "x", value="garbage"), "optimizer state"),
    "a moment of the wrong shape": (setter("agent", "optimizer", "actor.net.0.weight_moment1_0",
                                           value=np.zeros((3, 3), np.float32)), "optimizer state"),
    "a moment of float64": (setter("agent", "optimizer", "actor.net.0.weight_moment1_0",
                                   value=np.zeros((2, 64), np.float64)), "optimizer state"),
    "a broken RNG state": (setter("agent", "rng", "state", value=5), "RNG state"),
    "an RNG state of 2^129": (setter("agent", "rng", "state", "inc", value=2**129), "RNG state"),
    "a count one step from wrapping": (setter("bonus", "counts", value=np.full(400, 2**63 - 1)), "exploration counts"),
    "an episode return of 1e308": (setter("envs", "ep_return", value=np.full(4, 1e308)), "env state"),
    "episodes of three envs for four": (setter("envs", "ep_len", value=np.zeros(3, np.int64)), "env state"),
    "a car of NaN": (setter("envs", "cars", "pos", value=np.full(4, np.nan)), "env state"),
    "an actor of another shape": (setter("agent", "actor", "net.0.weight", value=np.zeros((3, 64), np.float32)),
                                  "actor weights"),
    "an actor weight of float64": (setter("agent", "actor", "net.0.weight", value=np.zeros((2, 64), np.float64)),
                                   "actor weights"),
    "a run name that is a number": (setter("run_name", value=5), "run_name entry"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_checkpoint_is_one_line_and_touches_nothing(finished_run, tmp_path, capsys, case):
    change, words = CRAFTED[case]
    run_dir = crafted_copy(finished_run, tmp_path, change)
    before = files_of(tmp_path)
    assert ppo_cli.main(["train", "--resume", str(run_dir / checkpoint.CHECKPOINT), "--total-timesteps", "1024"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert files_of(tmp_path) == before  # nothing written, nothing lost


@pytest.mark.parametrize("car", [dict(pos=1e300), dict(vel=1e300), dict(pos=5.0), dict(elapsed=-5)])
def test_a_car_out_of_range_is_one_line_not_warnings(finished_run, tmp_path, capsys, car):
    [(key, value)] = car.items()
    run_dir = crafted_copy(finished_run, tmp_path, lambda state: state["envs"]["cars"][key].fill(value))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings, before the fix
        assert ppo_cli.main(["train", "--resume", str(run_dir / checkpoint.CHECKPOINT), "--total-timesteps", "1024"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "env state" in err[0], err


def test_a_checkpoint_never_sends_a_run_outside_its_folder(finished_run, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    run_dir = crafted_copy(finished_run, tmp_path, lambda s: (
        s.update(run_name="escaped"),
        s["config"].update(logdir=str(outside / "logs"), param_dir=str(outside / "param"), run_name="escaped")))
    old = {p: p.stat().st_mtime_ns for p in (run_dir / "..").resolve().parent.rglob("vdlrecords.*")}
    monkeypatch.chdir(tmp_path)  # resumed from another working folder
    summary = pm.resume(run_dir / checkpoint.CHECKPOINT, total_timesteps=1024)
    assert summary["global_step"] == 1024 and summary["run_dir"] == str(run_dir)
    assert not outside.exists() and not list(tmp_path.rglob("escaped")) and not list(tmp_path.rglob("x"))
    # the records went to the run's own log folder beside its param folder: appended, not a new file
    [records] = (tmp_path / "copy" / "exp" / run_dir.name).glob("vdlrecords.*")
    assert records in old and records.stat().st_mtime_ns > old[records]
    assert (tmp_path / "copy" / "param" / "net_param" / "actor_net.param").is_file()
    assert {p.name for p in (tmp_path / "copy").iterdir()} == {"param", "exp"}
