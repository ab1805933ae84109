"""export (ppo_toolbox/export.py): a policy that leaves the project. Paddle Inference and onnxruntime
give the .param's greedy action on every one of 10,000 states, logits within 1e-5, and the same
return in `eval`; refusals are one line and leave nothing half-written; nothing installs itself."""
import errno
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import paddle
import pytest

import ppo_mountaincar as pm
from helpers import PRETRAINED
from ppo_toolbox import cli as ppo_cli
from ppo_toolbox import export

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnxruntime"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "policy"
    return out, export.export_policy(PRETRAINED, out)


def states_over_the_box(n=10_000, seed=7):
    return np.random.default_rng(seed).uniform([-1.2, -0.07], [0.6, 0.07], (n, 2)).astype(np.float32)


def reference_logits(states):
    with paddle.no_grad():
        return pm.load_actor(PRETRAINED).logits(paddle.to_tensor(states)).numpy()


@pytest.mark.parametrize("runtime", ["paddle", pytest.param("onnx", marks=pytest.mark.skipif(
    not HAS_ONNX, reason="the ONNX export needs requirements-export.txt (paddle2onnx has no wheel for this Python)"))])
def test_the_exported_model_acts_as_the_param_does(exported, runtime, capsys):
    out, report = exported
    names = {"policy.json", "policy.pdiparams", "policy_info.json", "README.md"} | ({"policy.onnx"} if HAS_ONNX else set())
    assert {p.name for p in out.iterdir()} == names  # and no temporary folder left
    states = states_over_the_box()
    logits, expected = export.ExportedPolicy(out, runtime).logits(states), reference_logits(states)
    assert np.abs(logits - expected).max() <= 1e-5
    assert (logits.argmax(1) == expected.argmax(1)).all()
    target = out / "policy.onnx" if runtime == "onnx" else out
    returns = []
    for path in (PRETRAINED, target):  # eval of the exported model: the same episodes, the same return
        assert ppo_cli.main(["eval", str(path), "--json", "--episodes", "50"]) == 0
        returns.append(json.loads(capsys.readouterr().out)["mean_return"])
    assert returns[0] == returns[1]
    card = (out / "README.md").read_text()
    assert "MountainCar-v0" in card and f"{report['held_out_return']:.1f}" in card and "argmax(logits)" in card


def test_without_the_onnx_packages_the_paddle_model_is_written_and_one_line_says_how(tmp_path, monkeypatch, capsys):
    real_import = __import__

    def no_onnx(name, *a, **kw):
        if name in ("paddle2onnx", "onnxruntime"):
            raise ImportError(name)
        return real_import(name, *a, **kw)
    monkeypatch.setattr("builtins.__import__", no_onnx)
    assert ppo_cli.main(["export", str(PRETRAINED), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: policy.onnx not written: the ONNX export needs paddle2onnx and onnxruntime "
                   "(pip install -r requirements-export.txt)"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"policy.json", "policy.pdiparams", "policy_info.json",
                                                            "README.md"}


@pytest.mark.skipif(not HAS_ONNX, reason="the ONNX export needs requirements-export.txt")
def test_nothing_installs_itself(tmp_path, monkeypatch):
    # paddle2onnx's default optimiser sets POLYGRAPHY_AUTOINSTALL_DEPS=1 and runs pip for a missing module
    commands = []
    real = subprocess.Popen.__init__

    def recording(self, args, *a, **kw):
        commands.append(" ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args))
        real(self, args, *a, **kw)
    monkeypatch.setattr(subprocess.Popen, "__init__", recording)
    monkeypatch.delenv("POLYGRAPHY_AUTOINSTALL_DEPS", raising=False)
    export.export_policy(PRETRAINED, tmp_path / "out")
    assert not [c for c in commands if "pip" in c], commands
    assert export.os.environ.get("POLYGRAPHY_AUTOINSTALL_DEPS") != "1"


def test_an_actor_of_another_env_exports_too(tmp_path):
    paddle.seed(0)
    agent = pm.PPO(4, 2, pm.Args(env_id="CartPole-v1"))
    agent.obs_norm.update(np.random.default_rng(0).normal(0, [1, 2, 0.1, 1], (500, 4)))
    path = agent.save_param(tmp_path)
    report = export.export_policy(path, tmp_path / "out")
    assert report["env_id"] == "CartPole-v1" and report["paddle_inference"]["ok"]
    assert report["paddle_inference"]["same_greedy_action"] == 1.0


def test_refusals_are_one_line_and_leave_nothing_half_written(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "policy.json").write_text("an older export")
    critic = PRETRAINED.with_name("critic_net.param")
    damaged = tmp_path / "actor_net.param"
    damaged.write_bytes(PRETRAINED.read_bytes()[:-40])
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for path, target, words in ((critic, out, "is not an actor"), (damaged, out, "damaged"),
                                (PRETRAINED, a_file, "is a file"), (PRETRAINED, a_file / "sub", "cannot write")):
        assert ppo_cli.main(["export", str(path), "--out", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
    assert [p.name for p in out.iterdir()] == ["policy.json"] and (out / "policy.json").read_text() == "an older export"
    assert a_file.read_text() == "x"


def test_a_tutorial_file_exports_and_says_so_once(tmp_path, capsys):
    rng = np.random.default_rng(0)  # the tutorial's layers: fc1 (2 -> 128, ReLU), action_head (128 -> 3)
    state = {"fc1.weight": rng.normal(0, 3, (2, 128)).astype(np.float32), "fc1.bias": np.zeros(128, np.float32),
             "action_head.weight": rng.normal(0, 1, (128, 3)).astype(np.float32),
             "action_head.bias": np.zeros(3, np.float32)}
    path = tmp_path / "actor_net1700000000.param"
    paddle.save(state, str(path))
    report = export.export_policy(path, tmp_path / "out")
    assert report["env_id"] == "MountainCar-v0" and report["paddle_inference"]["same_greedy_action"] == 1.0
    assert capsys.readouterr().err.count("as a file of the original tutorial") == 1


def hostile_copy(exported, tmp_path, change):
    folder = tmp_path / "hostile"
    shutil.copytree(exported[0], folder)
    change(folder)
    return folder


def write_info(**changes):
    def change(folder):
        info = json.loads((folder / "policy_info.json").read_text())
        (folder / "policy_info.json").write_text(json.dumps({**info, **changes}))
    return change


def replace_with(name, make):
    def change(folder):
        (folder / name).unlink()
        make(folder / name)
    return change


HOSTILE_FOLDERS = {  # what is changed in an exported folder -> words of the one line
    "garbage policy.json": (lambda f: (f / "policy.json").write_text("garbage"), "not a Paddle program"),
    "policy.json of the wrong shape": (lambda f: (f / "policy.json").write_text("{}"), "do not load as a model"),
    "deeply nested policy.json": (lambda f: (f / "policy.json").write_text("[" * 100_000), "not a Paddle program"),
    "a cut .pdiparams": (lambda f: os.truncate(f / "policy.pdiparams", 9000), "do not load as a model"),
    "a .pdiparams linked to /dev/zero": (replace_with("policy.pdiparams", lambda p: p.symlink_to("/dev/zero")),
                                         "is a link"),
    "a FIFO .pdiparams": (replace_with("policy.pdiparams", os.mkfifo), "is not a regular file"),
    "a huge .pdiparams": (lambda f: os.truncate(f / "policy.pdiparams", 2**40), "larger than any file export writes"),
    "an info that lies about the env": (write_info(env_id="CartPole-v1", obs_dim=4, n_actions=2),
                                        "do not map 4 inputs to 2 actions"),
    "an info whose sizes are arrays": (write_info(obs_dim=[2], n_actions=3), "obs_dim is not a whole number"),
    "an info whose sizes are booleans": (write_info(n_actions=True), "n_actions is not a whole number"),
    "an info whose env is a number": (write_info(env_id=7), "env_id is not an env id"),
    "a garbage info": (lambda f: (f / "policy_info.json").write_text("[" * 60_000), "not JSON"),
}


@pytest.mark.parametrize("case", HOSTILE_FOLDERS)
def test_a_hostile_exported_folder_is_refused_in_one_line_before_a_runtime_sees_it(exported, tmp_path, case, capfd):
    change, words = HOSTILE_FOLDERS[case]
    folder = hostile_copy(exported, tmp_path, change)
    assert ppo_cli.main(["eval", str(folder), "--episodes", "2"]) == 2
    out, err = capfd.readouterr()  # the C++ side's output too
    err = err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err


@pytest.mark.skipif(not HAS_ONNX, reason="the ONNX export needs requirements-export.txt")
def test_a_garbage_onnx_is_one_line(exported, tmp_path, capfd):
    folder = hostile_copy(exported, tmp_path, lambda f: (f / "policy.onnx").write_bytes(b"\x08garbage" * 100))
    assert ppo_cli.main(["eval", str(folder / "policy.onnx"), "--episodes", "2"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "policy.onnx" in err[0] and "does not load as a model" in err[0], err


@pytest.mark.parametrize("missing", ["onnxruntime", "policy.onnx"])
def test_eval_of_an_onnx_without_onnxruntime_or_the_file_says_how_to_get_them(exported, tmp_path, missing,
                                                                              monkeypatch, capsys):
    # missing_ok: where paddle2onnx does not install (Python 3.13), the export wrote no policy.onnx
    folder = hostile_copy(exported, tmp_path, lambda f: (f / "policy.onnx").unlink(missing_ok=True))
    if missing == "onnxruntime":
        (folder / "policy.onnx").write_bytes(b"placeholder: it is never read")
        real_import = __import__

        def no_onnxruntime(name, *a, **kw):
            if name == "onnxruntime":
                raise ModuleNotFoundError(f"No module named '{name}'")
            return real_import(name, *a, **kw)
        monkeypatch.setattr("builtins.__import__", no_onnxruntime)
    assert ppo_cli.main(["eval", str(folder / "policy.onnx"), "--episodes", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install -r requirements-export.txt" in err[0], err


def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    real_save = paddle.jit.save

    def full_disk(layer, path, **kw):  # what Paddle's writer does: it stops where the disk is full, silently
        real_save(layer, path, **kw)
        os.truncate(path + ".pdiparams", 4096)
    monkeypatch.setattr(export.paddle.jit, "save", full_disk)
    monkeypatch.setattr(export.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(2**30, 2**30, 0))
    out = tmp_path / "out"
    out.mkdir()
    (out / "policy.json").write_text("an older export")
    assert ppo_cli.main(["export", str(PRETRAINED), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and os.strerror(errno.ENOSPC) in err[0] and "free space" in err[0], err
    assert [p.name for p in out.iterdir()] == ["policy.json"] and (out / "policy.json").read_text() == "an older export"


def test_an_export_removes_what_a_killed_one_left_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    stale, young, other = out / ".export-k1ll3d", out / ".export-wr1t1ng", out / ".exported-notes"
    for folder in (stale, young, other):
        folder.mkdir(parents=True)
        (folder / "policy.json").write_text("{}")
    for folder in (stale, other):
        os.utime(folder, (time.time() - 600,) * 2)
    export.export_policy(PRETRAINED, out)
    assert not stale.exists() and young.exists() and other.exists()


def test_the_cards_paddle_inference_snippet_is_quiet(exported, monkeypatch, capfd):
    out, _ = exported
    snippet = re.search(r"## Paddle Inference.*?```python\n(.*?)```", (out / "README.md").read_text(), re.S)[1]
    monkeypatch.chdir(out)
    capfd.readouterr()
    scope = {}
    exec(snippet, scope)
    assert scope["action"].shape == (1,)
    printed = capfd.readouterr()
    assert "PIR pass" not in printed.out + printed.err, printed
