"""The best policy's keeper (ppo_toolbox/best_policy.py): when an evaluation is due, what `record` keeps, the
target, and its state through a checkpoint. (Evaluations in whole runs: test_run_bookkeeping.py, test_training.py.)"""
import numpy as np

import ppo_mountaincar as pm
from ppo_toolbox.best_policy import BestPolicy


class Agent:
    """What the keeper asks of an agent here: save_param, whose calls are noted."""

    def __init__(self):
        self.saved = []

    def save_param(self, directory, suffix=""):
        self.saved.append(suffix)


def result(mean_return):
    return dict(mean_return=mean_return, success_rate=None)


def test_record_keeps_the_best_so_far_and_moves_the_next_evaluation(tmp_path):
    keeper, agent = BestPolicy(pm.Args(eval_every=100), tmp_path), Agent()
    assert not keeper.found and keeper.due(100, last=False) and not keeper.due(99, last=False) and keeper.due(5, True)
    for step, mean in [(100, -150.0), (200, -120.0), (300, -130.0)]:
        keeper.record(result(mean), agent, step, seconds=float(step))
    assert agent.saved == ["_best", "_best"]  # the third was worse: the second stays the best
    assert keeper.best["mean_return"] == -120.0 and keeper.best["global_step"] == 200
    assert [h["global_step"] for h in keeper.history] == [100, 200, 300] and keeper.next_eval == 400
    assert not keeper.due(399, last=False) and keeper.due(400, last=False)
    again = BestPolicy(pm.Args(eval_every=100), tmp_path)
    again.load_state(keeper.state())
    assert again.state() == keeper.state() and again.found


def test_reached_target_only_with_a_target_and_at_it_or_above(tmp_path):
    assert not BestPolicy(pm.Args(), tmp_path).reached_target(result(1e9))
    keeper = BestPolicy(pm.Args(target_return=-110.0), tmp_path)
    assert keeper.reached_target(result(-110.0)) and not keeper.reached_target(result(np.nextafter(-110.0, -200)))
