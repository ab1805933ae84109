"""A run's state (ppo_toolbox/run_state.py): Adam's moments under names that hold in another process, and the
script's PPO as the agent the toolbox knows. (Every part put back: test_undo.py; in a file: test_checkpoint.py.)"""
import numpy as np
import paddle
import pytest

import ppo_mountaincar as pm
from ppo_toolbox import network_files, param_files, run_state
from ppo_toolbox import run as ppo_run


def test_resume_restores_the_optimizer_moments_under_other_parameter_names():
    args = pm.Args(num_envs=4, num_steps=64, batch_size=128, update_epochs=2, norm_obs=False)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(65, 4, 2)).astype(np.float32) * [0.3, 0.02] + [-0.5, 0]
    batch = [obs[:-1], rng.integers(0, 3, (64, 4)), np.full((64, 4), -1.1), rng.normal(size=(64, 4)),
             obs[1:], np.zeros((64, 4)), np.zeros((64, 4))]

    def update(agent):
        for t in range(64):
            agent.store_transition(*(x[t] for x in batch))
        agent.rng = np.random.default_rng(1)
        agent.update()

    paddle.seed(0)
    original = pm.PPO(2, 3, args)
    update(original)  # now Adam has moments
    weights = {role: param_files.numpy_state(net) for role, net in (("actor", original.actor_net),
                                                            ("critic", original.critic_net))}
    moments = run_state.optimizer_state(original.optimizer, original.actor_net, original.critic_net)
    pm.Actor(2, 3, (7,))  # shifts the auto-generated parameter names in this process
    resumed, fresh = pm.PPO(2, 3, args), pm.PPO(2, 3, args)
    assert resumed.actor_net.net[0].weight.name != original.actor_net.net[0].weight.name
    for agent in (resumed, fresh):
        network_files.load_weights(agent.actor_net, weights["actor"], "test")
        network_files.load_weights(agent.critic_net, weights["critic"], "test")
    run_state.restore_optimizer(resumed.optimizer, moments, resumed.actor_net, resumed.critic_net)
    after = []
    for agent in (original, resumed, fresh):
        update(agent)
        after.append(agent.actor_net.net[0].weight.numpy())
    assert np.array_equal(after[0], after[1])      # same moments, same step
    assert not np.allclose(after[0], after[2])     # without them the step differs


def test_the_script_s_ppo_is_the_agent_the_toolbox_knows_and_a_rename_fails_loudly(tmp_path):
    agent = pm.PPO(2, 3, pm.Args())
    assert isinstance(agent, run_state.Agent)
    members = [name for name in dir(run_state.Agent) if not name.startswith("_")] + \
        list(run_state.Agent.__annotations__)
    assert {"state", "load_state", "save_param", "actor_net", "gradient_steps"} <= set(members)
    assert all(hasattr(agent, name) for name in members)
    del agent.gradient_steps  # as if the script had renamed it
    envs = pm.make_vec_env("MountainCar-v0", 4)
    with pytest.raises(TypeError, match="lacks what ppo_toolbox.run_state.Agent names"):
        ppo_run.Run(pm.Args(param_dir=str(tmp_path / "p"), logdir=str(tmp_path / "e")), agent, None, envs, {}, "cpu")
    assert not (tmp_path / "p").exists()
