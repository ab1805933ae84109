"""A network file from anyone (ppo_toolbox/network_files.py): an env id never imports a module unless the command line
says so; a description or weights that do not fit are refused before anything is built; every failure is one line
and exit code 2. How the file itself is read: test_param_grammar.py."""
import sys

import numpy as np
import paddle
import ppo_mountaincar as pm
from ppo_toolbox import acting, evaluation, figures, network_files, param_files
import pytest

from helpers import in_process, one_line_error


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A freshly saved actor/critic pair and the state the actor file holds."""
    folder = tmp_path_factory.mktemp("good")
    paddle.seed(3)
    agent = pm.PPO(2, 3, pm.Args())
    agent.obs_norm.update(np.random.default_rng(0).normal([-0.5, 0.0], [0.3, 0.02], (500, 2)))
    path = agent.save_param(folder)
    return path, param_files.load_state(path)


def resealed(state, tmp_path, name="actor_net.param", **meta):
    """A crafted file with a valid checksum: what an attacker can always write."""
    state = {**state, "meta": {**state["meta"], **meta}} if meta else state
    path = tmp_path / name
    paddle.save(param_files.sealed(state), str(path))
    return path


def refused(path, *words):
    with pytest.raises(pm.UsageError) as e:
        pm.load_actor(path)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)
    return str(e.value)


def test_an_env_id_from_a_file_never_imports_a_module(good, tmp_path):
    # a folder as downloaded: a policy naming "evilmod:Car-v0", and evilmod.py beside it
    marker = tmp_path / "ran"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    path = resealed(good[1], tmp_path, env_id="evilmod:Car-v0")
    sys.path.insert(0, str(tmp_path))  # importable, as from the folder it came in
    try:
        for command in (["eval", str(path)], ["replay", str(path), "--out", str(tmp_path / "r.gif")],
                        ["plot", "--param", str(path), str(tmp_path)]):
            proc = in_process(*command, cwd=tmp_path)
            assert "would import the module 'evilmod'" in one_line_error(proc) or command[0] == "plot", proc.stderr
            assert not marker.exists(), command
        # in a notebook: load_policy works, running it in the file's env is refused
        actor, meta = pm.load_actor(path), network_files.read_network(path, "actor").meta
        with pytest.raises(pm.UsageError, match="--allow-env-module"):
            evaluation.env_for(meta)
        with pytest.raises(pm.UsageError, match="would import"):
            figures.policy_value_figure(acting.NumpyNet(actor), None, meta["env_id"])
        assert not marker.exists()
    finally:
        sys.path.remove(str(tmp_path))


def test_allow_env_module_imports_only_what_the_command_line_names(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    (tmp_path / "mymod.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    base = ["--env-id", "mymod:Car-v0", "--quiet", "--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "p")]
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "--allow-env-module" in one_line_error(in_process(*base)) and not marker.exists()
    allowed = in_process(*base, "--allow-env-module")
    assert marker.exists()  # imported, as asked; the env itself does not exist there: one line
    assert "cannot make env 'mymod:Car-v0'" in one_line_error(allowed)


@pytest.mark.parametrize("meta, words", [
    (dict(hidden_sizes=[-64, 64]), "hidden sizes"),
    (dict(hidden_sizes=[10**6, 10**6]), "larger than the file"),
    (dict(obs_dim=10**9), "observation or action size"),
    (dict(obs_dim=True), "observation or action size"),
    (dict(activation="sigmoid"), "activation"),
    (dict(env_id=["MountainCar-v0"]), "a list of numbers"),  # refused by the reader, at the string
    (dict(env_id=7), "env id"),
])
def test_crafted_network_descriptions_are_refused_before_building(good, tmp_path, meta, words):
    refused(resealed(good[1], tmp_path, **meta), "is damaged", words)


def test_weights_of_the_wrong_kind_are_refused(good, tmp_path):
    state = good[1]
    w = state["net.0.weight"]
    for name, value in (("f64", w.astype(np.float64)), ("ragged", [[1.0, 2.0], [3.0]]), ("list", w.tolist()),
                        ("nan", np.full_like(w, np.nan)), ("1-D", w.ravel())):
        path = resealed({**state, "net.0.weight": value}, tmp_path, f"{name}.param")
        refused(path, "is damaged")
    missing = resealed({**state, "meta": {k: v for k, v in state["meta"].items() if k != "env_id"}}, tmp_path)
    with pytest.raises(pm.UsageError, match="pass --env-id"):  # loads; asks which env to run it in
        evaluation.env_for(network_files.read_network(missing, "actor").meta)


def test_a_one_dimensional_tutorial_weight_is_not_taken_for_a_tutorial_file(tmp_path):
    path = tmp_path / "actor_net.param"
    paddle.save({"fc1.weight": np.zeros(256, np.float32), "fc1.bias": np.zeros(128, np.float32),
                 "action_head.weight": np.zeros((128, 3), np.float32),
                 "action_head.bias": np.zeros(3, np.float32)}, str(path))
    refused(path, "not an actor .param file")
