"""What a run shows in VisualDL (ppo_toolbox/logbook.py): the scalars page opening on the
learning curve, and HParams values a person reads."""
import ppo_mountaincar as pm
from ppo_toolbox import logbook

from helpers import scalars_of


def test_the_scalars_page_opens_on_the_learning_curve(outdirs):
    summary = pm.train(pm.Args(total_timesteps=1024, num_envs=4, num_steps=64, batch_size=128, update_epochs=1,
                               eval_every=512, eval_episodes=5, quiet=True, plots=False, **outdirs))
    groups = {tag.split("/")[0] for tag in scalars_of(outdirs["logdir"], summary["run_name"])}
    # VisualDL's scalars page lists the groups of tags in the alphabet's order, any case
    # (ChartPage.js: sorted by label.split("/")[0].toUpperCase()), and opens the first
    assert sorted(groups, key=str.upper)[:2] == ["episode", "eval"]
    assert {"loss", "Steptime"} <= groups  # the tutorial's tags stay
    # one point per run: the HParams metric, beside eval/; no other group of one point
    scalars = scalars_of(outdirs["logdir"], summary["run_name"])
    assert [tag for tag, points in scalars.items() if len(points) == 1] == ["heldout"]


def test_hparams_are_shown_as_a_person_reads_them():
    assert logbook.readable(0.0012345678901234) == 0.001235 and logbook.readable(0.98765432109) == 0.9877
    assert logbook.readable(3e-4) == 0.0003 and logbook.readable(150_000) == 150_000
    assert logbook.readable(True) == "True" and logbook.readable((64, 64)) == "64,64"
    assert logbook.readable("default") == "default"
