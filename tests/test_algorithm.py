"""The algorithm (ppo_mountaincar.py, sections 2-6): returns and advantages, the clipped surrogate,
entropy, advantage normalisation, gradient clipping, sampling, the update and its early stop, the
diagnostics, observation statistics, the exploration bonus and the loop's helpers, against
hand-computed, numpy or Paddle's own values."""

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


def filled_agent(seed=3, **settings):
    """A PPO agent whose buffer holds one rollout of random states and rewards (4 envs x 32 steps)."""
    args = pm.Args(**{**dict(num_envs=4, num_steps=32, batch_size=128, update_epochs=4, norm_obs=False,
                             actor_lr=1e-3), **settings})
    paddle.seed(seed)
    agent = pm.PPO(2, 3, args)
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(33, 4, 2)).astype(np.float32)
    for t in range(32):
        a, lp = agent.select_action(obs[t])
        agent.store_transition(obs[t], a, lp, rng.normal(size=4), obs[t + 1], np.zeros(4), np.zeros(4))
    return agent


def ppo_loss(agent, batch):
    """Loss = -L_clip - c * H + L_V on the whole batch, as README step 9 writes it (numpy)."""
    with paddle.no_grad():
        logits = agent.actor_net.logits(batch["obs"]).numpy().astype(np.float64)
        value = agent.critic_net(batch["obs"]).numpy()
    log_pi = logits - logits.max(1, keepdims=True)
    log_pi -= np.log(np.exp(log_pi).sum(1, keepdims=True))
    ratio = np.exp(log_pi[np.arange(len(log_pi)), batch["actions"]] - batch["old_logp"])
    adv = (batch["adv"] - batch["adv"].mean()) / (batch["adv"].std() + 1e-8)
    l_clip = np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv).mean()
    entropy = -(np.exp(log_pi) * log_pi).sum(1).mean()
    return -l_clip - agent.ent_coef * entropy + ((value - batch["returns"]) ** 2).mean()


def test_update_on_a_fixed_batch_lowers_its_own_loss():
    # one minibatch per epoch (batch-size = the rollout), so every step descends the same loss
    agent = filled_agent()
    buf = agent.buffer
    values = agent.get_value(buf.obs.reshape(128, 2)).reshape(32, 4)
    next_values = agent.get_value(buf.next_obs.reshape(128, 2)).reshape(32, 4)
    adv, ret = buf.compute_returns(values, next_values, agent.args.gamma, agent.args.gae_lambda)
    batch = dict(obs=paddle.to_tensor(buf.obs.reshape(128, 2)), actions=buf.actions.reshape(128),
                 old_logp=buf.logprobs.reshape(128), adv=adv.reshape(128), returns=ret.reshape(128))
    before = ppo_loss(agent, batch)
    stats = agent.update()
    assert stats["epochs"] == 4 and agent.gradient_steps == 4 and len(stats["policy_loss"]) == 4
    assert ppo_loss(agent, batch) < before - 1e-3
    assert agent.buffer.size == 0


def test_entropy_of_a_known_distribution():
    p = np.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    h = pm.entropy_of(paddle.to_tensor(np.log(p).astype(np.float32)))
    # H = -sum p log p: ln 2 + 0.5 ln 2 for the first row, ln 3 for the second; their mean
    assert float(h) == pytest.approx((1.5 * np.log(2) + np.log(3)) / 2, rel=1e-6)


def entropy_after_one_step(agent):
    """The policy's entropy on a batch after one minibatch step in which only the entropy
    term moves the actor: every advantage 0 (so the surrogate and its gradient are 0)."""
    obs = paddle.to_tensor(np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32))

    def entropy():
        with paddle.no_grad():
            return float(pm.entropy_of(F.log_softmax(agent.actor_net.logits(obs), -1)))
    zeros = paddle.zeros([64])
    minibatch = pm.Minibatch(obs, paddle.zeros([64], "int64"), paddle.zeros([64]), zeros, zeros)
    before = entropy()
    agent._minibatch_step(minibatch)
    return before, entropy()


@pytest.mark.parametrize("ent_coef", [1.0, 0.0])
def test_the_entropy_bonus_pushes_towards_more_entropy(ent_coef):
    paddle.seed(0)
    agent = pm.PPO(2, 3, pm.Args(norm_obs=False, ent_coef=ent_coef, actor_lr=1e-2))
    last = agent.actor_net.net[-1]
    last.bias.set_value(np.array([3.0, 0.0, 0.0], np.float32))  # a peaked policy: room to spread
    before, after = entropy_after_one_step(agent)
    if ent_coef:
        assert after > before + 1e-3
    else:  # no bonus: nothing moves the actor
        assert after == pytest.approx(before, abs=1e-7)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])  # clipped, and left alone
def test_clip_grad_global_norm_matches_paddles_clip_by_global_norm(max_norm):
    rng = np.random.default_rng(0)
    params = [paddle.create_parameter([n, 3], "float32") for n in (4, 7)]
    grads = [rng.normal(size=(n, 3)).astype(np.float32) for n in (4, 7)]
    for p, g in zip(params, grads):
        p.grad = paddle.to_tensor(g)
    pm.clip_grad_global_norm(params, max_norm)
    theirs = paddle.nn.ClipGradByGlobalNorm(max_norm)([(p, paddle.to_tensor(g)) for p, g in zip(params, grads)])
    norm = np.sqrt(sum((g ** 2).sum() for g in grads))
    for p, (_, expected), g in zip(params, theirs, grads):
        assert p.grad.numpy() == pytest.approx(expected.numpy(), rel=1e-5)
        assert p.grad.numpy() == pytest.approx(g * min(1.0, max_norm / norm), rel=1e-5)


def test_normalised_has_mean_zero_and_unit_standard_deviation():
    x = np.array([1.0, 2.0, 3.0, 10.0], np.float32)
    z = pm.normalised(paddle.to_tensor(x)).numpy()
    assert z == pytest.approx((x - 4.0) / np.sqrt(12.5), rel=1e-5)  # population std of x: sqrt(12.5)


def test_target_kl_stops_the_epochs():
    # the first epoch moves the policy by far more than a KL of 1e-9: no second epoch
    agent = filled_agent(batch_size=32, update_epochs=5, target_kl=1e-9, actor_lr=1e-2)
    stats = agent.update()
    assert stats["epochs"] == 1 and agent.gradient_steps == 4 and stats["approx_kl"] > 1e-9
    agent = filled_agent(batch_size=32, update_epochs=5, actor_lr=1e-2)  # without it: every epoch
    assert agent.update()["epochs"] == 5 and agent.gradient_steps == 20


def test_the_value_loss_refuses_targets_of_another_shape():
    # [N] against [N, 1] would broadcast to an [N, N] loss without a word
    agent = pm.PPO(2, 3, pm.Args())
    obs = paddle.zeros([8, 2])
    batch = pm.Minibatch(obs, paddle.zeros([8], "int64"), paddle.zeros([8]), paddle.ones([8]), paddle.ones([8, 1]))
    with pytest.raises(AssertionError):
        agent._minibatch_step(batch)
    with paddle.no_grad():
        value = agent.critic_net.value_of_normalised(obs).numpy()
    _, value_loss = agent._minibatch_step(batch._replace(returns=paddle.full([8], 3.0))).numpy()
    assert value_loss == pytest.approx(((value - 3.0) ** 2).mean(), rel=1e-5)  # L_V = mean (V - R)^2


def test_policy_shift_reports_kl_and_clip_fraction_against_hand_values():
    agent = pm.PPO(2, 3, pm.Args(norm_obs=False, clip=0.2))
    obs = paddle.to_tensor(np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32))
    actions = paddle.to_tensor(np.array([0, 1, 2, 0]))
    with paddle.no_grad():
        logp = pm.log_prob_of(F.log_softmax(agent.actor_net.logits(obs), -1), actions).numpy()
    log_ratio = np.array([0.0, 0.1, -0.5, 0.3], np.float32)  # log pi - log pi_old
    batch = pm.Minibatch(obs, actions, paddle.to_tensor(logp - log_ratio), paddle.zeros([4]), paddle.zeros([4]))
    shift = agent.policy_shift(batch)
    r = np.exp(log_ratio)
    assert shift["approx_kl"] == pytest.approx(((r - 1) - log_ratio).mean(), rel=1e-4)
    assert shift["clip_fraction"] == 0.5  # |r - 1| > 0.2 for log ratios -0.5 and 0.3
    assert shift["entropy"] > 0


def test_env_seeds_are_32_bit_above_every_evaluation_seed_and_follow_the_run():
    args = pm.Args(num_envs=16, seed=7)
    seeds = pm.env_seeds(args, rollouts=3)
    assert len(seeds) == 16 and len(set(seeds)) == 16
    assert all(2**31 <= s < 2**32 for s in seeds)  # evaluation episodes start below 2^31
    assert seeds == pm.env_seeds(pm.Args(num_envs=16, seed=7), rollouts=3)  # the same run, the same seeds
    assert not set(seeds) & set(pm.env_seeds(args, rollouts=4))  # a resumed run starts new episodes
    assert not set(seeds) & set(pm.env_seeds(pm.Args(num_envs=16, seed=8), rollouts=3))


def test_arrival_states_take_the_final_observation_of_finished_episodes():
    next_obs = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], np.float32)  # after autoreset
    done = np.array([False, True, False])
    final = np.array([None, np.array([0.5, 0.07], np.float32), None], dtype=object)
    arrived = pm.arrival_states(next_obs, done, {"final_obs": final})
    assert arrived.tolist() == [[0.0, 0.0], [0.5, np.float32(0.07)], [2.0, 2.0]]
    assert next_obs[1].tolist() == [1.0, 1.0]  # the next episode's first state is left alone
    assert pm.arrival_states(next_obs, np.zeros(3, bool), {}) is next_obs


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
