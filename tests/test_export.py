"""export (ppo_toolbox/export.py): a policy that leaves the project. Paddle Inference and onnxruntime
give the .param's greedy action on every one of 10,000 states, logits within 1e-5, and the same
return in `eval`; refusals are one line and leave nothing half-written; nothing installs itself."""
import importlib.util
import json
import subprocess
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
