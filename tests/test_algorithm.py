"""The algorithm (sections 1-5): returns and advantages, the clipped surrogate, sampling, the update,
observation statistics and the exploration bonus, against hand-computed or numpy values."""

import numpy as np
import paddle
import paddle.nn.functional as F
import ppo_mountaincar as pm
from ppo_toolbox import acting
import pytest


def fill(buf, rewards, terminated, dones):
    for r, term, d in zip(rewards, terminated, dones):
        n = len(r)
        z = np.zeros((n, buf.obs.shape[2]))
        buf.add(z, np.zeros(n), np.zeros(n), r, z, term, d)


def test_monte_carlo_returns_restart_at_episode_end_and_bootstrap_at_the_cut():
    # gae_lambda=1, gamma=0.5, V=0 except V(s') of the last step = 10: the rollout ends there
    # mid-episode. Step 1 ends an episode (terminated). The tutorial carried R across.
    buf = pm.RolloutBuffer(3, 1, 2)
    fill(buf, [[1.0], [2.0], [4.0]], [[0], [1], [0]], [[0], [1], [0]])
    values, next_values = np.zeros((3, 1)), np.array([[0.0], [0.0], [10.0]])
    adv, ret = buf.compute_returns(values, next_values, gamma=0.5, gae_lambda=1.0)
    assert ret[:, 0] == pytest.approx([1 + 0.5 * 2, 2, 4 + 0.5 * 10])
    assert adv[:, 0] == pytest.approx(ret[:, 0])


def test_gae_several_envs_against_hand_values():
    gamma, lam = 0.9, 0.8
    buf = pm.RolloutBuffer(2, 2, 1)
    # env 0 runs on; env 1's episode terminates after step 0
    fill(buf, [[1.0, 1.0], [0.0, 3.0]], [[0, 1], [0, 0]], [[0, 1], [0, 0]])
    v = np.array([[0.5, 2.0], [1.0, 1.5]])
    nv = np.array([[1.0, 99.0], [2.0, 4.0]])  # V(s') of env 1 at its terminal step is ignored
    adv, ret = buf.compute_returns(v, nv, gamma, lam)
    d1 = 0.0 + gamma * 2.0 - 1.0
    d0 = 1.0 + gamma * 1.0 - 0.5
    assert adv[:, 0] == pytest.approx([d0 + gamma * lam * d1, d1])
    e1 = 3.0 + gamma * 4.0 - 1.5
    assert adv[:, 1] == pytest.approx([1.0 - 2.0, e1])  # nothing flows back across the end
    assert ret == pytest.approx(adv + v)


def test_time_limit_truncation_bootstraps_from_the_final_state():
    # truncated (done, not terminated): the return is r + gamma * V(s_final), and nothing
    # flows back from the next episode's first step
    buf = pm.RolloutBuffer(2, 1, 1)
    gamma = 0.99
    fill(buf, [[-1.0], [-5.0]], [[0], [0]], [[1], [0]])
    adv, ret = buf.compute_returns(np.zeros((2, 1)), np.array([[7.0], [0.0]]), gamma, 0.95)
    assert ret[0, 0] == pytest.approx(-1.0 + gamma * 7.0)
    # the same step terminated instead: no bootstrap
    buf.terminated[0] = 1
    _, ret = buf.compute_returns(np.zeros((2, 1)), np.array([[7.0], [0.0]]), gamma, 0.95)
    assert ret[0, 0] == pytest.approx(-1.0)


def numpy_surrogate(logp, old, adv, eps):
    r = np.exp(logp - old)
    return -np.minimum(r * adv, np.clip(r, 1 - eps, 1 + eps) * adv).mean()


def test_clipped_surrogate_matches_numpy_and_has_no_gradient_where_clipped():
    old = np.log(np.array([0.5, 0.5, 0.5, 0.5], np.float32))
    # ratios 1.5 (A>0: clipped), 0.5 (A<0: clipped), 1.1 (A>0: inside), 0.5 (A>0: unclipped side)
    new = np.log(np.array([0.75, 0.25, 0.55, 0.25], np.float32))
    adv = np.array([1.0, -1.0, 2.0, 1.0], np.float32)
    logp = paddle.to_tensor(new, stop_gradient=False)
    loss = pm.clipped_surrogate(logp, paddle.to_tensor(old), paddle.to_tensor(adv), 0.2)
    assert float(loss) == pytest.approx(numpy_surrogate(new, old, adv, 0.2), rel=1e-6)
    loss.backward()
    grad = logp.grad.numpy()
    assert grad[0] == 0 and grad[1] == 0  # clipped: no push further out
    # inside the clip: d/dlogp of -(r*A)/N = -r*A/N
    assert grad[2] == pytest.approx(-1.1 * 2.0 / 4, rel=1e-5)
    assert grad[3] == pytest.approx(-0.5 * 1.0 / 4, rel=1e-5)


def test_log_prob_of_equals_per_element_lookup():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 3)).astype(np.float32)
    actions = rng.integers(0, 3, 50)
    logp = pm.log_prob_of(F.log_softmax(paddle.to_tensor(logits), axis=-1), paddle.to_tensor(actions))
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = [log_softmax[i, a] for i, a in enumerate(actions)]
    assert logp.numpy() == pytest.approx(np.array(expected), abs=1e-5)


def test_actions_are_sampled_from_pi_not_from_softmax_of_pi():
    paddle.seed(0)
    actor = pm.Actor(2, 3, (8,), "tanh")
    probs = np.array([0.9, 0.05, 0.05], np.float32)
    last = actor.net[-1]
    last.weight.set_value(np.zeros_like(last.weight.numpy()))
    last.bias.set_value(np.log(probs))  # pi(.|s) = probs for every s
    logp_table = acting.NumpyNet(actor).log_probs(np.zeros((20000, 2), np.float32))
    actions, logp = pm.sample_actions(logp_table, np.random.default_rng(1))
    freq = np.bincount(actions, minlength=3) / len(actions)
    assert freq == pytest.approx(probs, abs=0.01)  # softmax(probs) would give ~[0.54, 0.23, 0.23]
    assert logp == pytest.approx(np.log(probs[actions]), abs=1e-5)


def test_update_on_a_fixed_batch_lowers_the_surrogate_loss():
    args = pm.Args(num_envs=4, num_steps=32, batch_size=32, update_epochs=4, norm_obs=False,
                   anneal_lr=False, actor_lr=1e-3)
    paddle.seed(3)
    agent = pm.PPO(2, 3, args)
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(32, 4, 2)).astype(np.float32)
    for t in range(32):
        a, lp = agent.select_action(obs[t])
        agent.store_transition(obs[t], a, lp, rng.normal(size=4), obs[(t + 1) % 32], np.zeros(4), np.zeros(4))
    values = agent.get_value(agent.buffer.obs.reshape(128, 2)).reshape(32, 4)
    next_values = agent.get_value(agent.buffer.next_obs.reshape(128, 2)).reshape(32, 4)
    adv, _ = agent.buffer.compute_returns(values, next_values, args.gamma, args.gae_lambda)
    flat = [paddle.to_tensor(x.reshape(128, *x.shape[2:])) for x in
            (agent.buffer.obs, agent.buffer.actions, agent.buffer.logprobs, adv)]

    def surrogate():
        with paddle.no_grad():
            logp = pm.log_prob_of(F.log_softmax(agent.actor_net.logits(flat[0]), axis=-1), flat[1])
            a = (flat[3] - flat[3].mean()) / (flat[3].std() + 1e-8)
            return float(pm.clipped_surrogate(logp, flat[2], a, args.clip))

    before = surrogate()
    stats = agent.update()
    assert surrogate() < before - 1e-3
    assert agent.gradient_steps == 4 * 4 and len(stats["policy_loss"]) == 16
    assert agent.buffer.size == 0


@pytest.mark.parametrize("anneal_lr", [False, True])
def test_schedules_scale_both_networks_steps_and_the_entropy_bonus(anneal_lr):
    # Adam's first step moves every weight by about its learning rate, whatever the gradient
    args = pm.Args(num_envs=4, num_steps=32, batch_size=128, update_epochs=1, actor_lr=1e-3, critic_lr=4e-3,
                   anneal_lr=anneal_lr, anneal_ent=True, ent_coef=0.08)
    paddle.seed(5)
    agent = pm.PPO(2, 3, args)
    agent.anneal(0.5)  # half-way through the budget
    assert agent.ent_coef == pytest.approx(0.04)
    rng = np.random.default_rng(5)
    for _ in range(32):
        obs = rng.normal(size=(4, 2)).astype(np.float32)
        a, lp = agent.select_action(obs)
        agent.store_transition(obs, a, lp, rng.normal(size=4), obs, np.zeros(4), np.zeros(4))
    before = [p.numpy().copy() for p in agent.params]
    agent.update()  # one minibatch step: 128 samples, 1 epoch
    steps = [np.abs(p.numpy() - b).max() for p, b in zip(agent.params, before)]
    n_actor = len(agent.actor_net.parameters())
    factor = 0.5 if anneal_lr else 1.0
    assert max(steps[:n_actor]) == pytest.approx(1e-3 * factor, rel=0.02)
    assert max(steps[n_actor:]) == pytest.approx(4e-3 * factor, rel=0.02)  # the critic's group follows


def test_obs_norm_matches_numpy_statistics():
    norm = pm.ObsNorm(2)
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=[3, -1], scale=[2, 0.5], size=(n, 2)) for n in (10, 50, 7)]
    for b in batches:
        norm.update(b)
    allx = np.concatenate(batches)
    assert norm.mean.numpy() == pytest.approx(allx.mean(0), rel=1e-4)
    assert norm.var.numpy() == pytest.approx(allx.var(0), rel=1e-3)
    z = norm(paddle.to_tensor(allx.astype(np.float32))).numpy()
    assert z.mean(0) == pytest.approx([0, 0], abs=1e-3) and z.std(0) == pytest.approx([1, 1], rel=1e-2)


def test_count_bonus_decays_with_visits_and_separates_cells():
    bonus = pm.CountBonus(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), bins=4)
    here, there = np.array([[0.1, 0.1]]), np.array([[-0.9, 0.9]])
    assert bonus(here, 1.0)[0] == pytest.approx(1.0)
    assert bonus(here, 1.0)[0] == pytest.approx(1 / np.sqrt(2))
    assert bonus(there, 1.0)[0] == pytest.approx(1.0)  # a new cell
    # a batch counts every row, duplicates included
    out = bonus(np.array([[0.9, -0.9], [0.9, -0.9]]), 2.0)
    assert out == pytest.approx([2 / np.sqrt(2)] * 2)
    with pytest.raises(pm.UsageError):
        pm.CountBonus(np.array([-np.inf]), np.array([np.inf]), 4)
