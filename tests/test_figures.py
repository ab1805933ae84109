"""The figures of a run (ppo_toolbox/figures.py) and the `plot` command: the training curve
readable when early episodes reach far below the rest, the losses titled with a legend, maps
of a policy file alone, curves only from the run that holds the file, and records that are
not regular files refused."""
import os
import threading
from pathlib import Path

import numpy as np
import ppo_mountaincar as pm
from matplotlib.backends.backend_agg import FigureCanvasAgg
from ppo_toolbox import cli as ppo_cli
from ppo_toolbox import figures
import pytest
from PIL import Image

from helpers import PRETRAINED


def tutorial_like_scalars() -> dict:
    """The tutorial preset's first episodes: no time limit, thousands of steps, then ~-150."""
    rng = np.random.default_rng(0)
    rets = np.concatenate([np.linspace(-4500, -1000, 20), -150 + 20 * rng.standard_normal(180)])
    steps = np.cumsum(-rets)
    updates = np.arange(1, 201) * 640
    return {"episode/return": (steps, rets), "Steptime/steptime": (np.arange(200), -rets),
            "loss/action_loss": (updates, rng.standard_normal(200)), "loss/value_loss": (updates, rng.random(200)),
            **{f"update/{k}": (steps, rng.random(200)) for k in ("entropy", "approx_kl", "clip_fraction",
                                                                  "explained_variance")}}


def drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def test_the_tutorials_curve_shows_its_last_part_on_its_own_scale_with_whole_labels():
    fig = drawn(figures.training_curve(tutorial_like_scalars(), "a-run"))
    whole, late = fig.axes
    assert whole.get_ylim()[0] < -4500 and -300 < late.get_ylim()[0] < late.get_ylim()[1] < 0
    for ax in fig.axes:  # the y-axis label inside the picture, not clipped at its left edge
        assert ax.yaxis.label.get_window_extent().x0 >= 0
    assert "a-run" in fig._suptitle.get_text()
    # a run without such outliers keeps one panel
    scalars = tutorial_like_scalars()
    steps, rets = scalars["episode/return"]
    scalars["episode/return"] = (steps[20:], rets[20:])
    assert len(drawn(figures.training_curve(scalars, "a-run")).axes) == 1


def test_losses_have_the_runs_title_and_a_legend_for_their_smoothing():
    fig = drawn(figures.losses_figure(tutorial_like_scalars(), "a-run"))
    assert "a-run" in fig._suptitle.get_text()
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["each update", "running mean of 5 updates"]


def test_plot_of_a_policy_file_alone_draws_its_maps_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a fresh clone: no exp/ at all
    assert ppo_cli.main(["plot", "--param", str(PRETRAINED)]) == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(Path("param") / "img" / "policy_value.png")]
    assert err == f"note: no run under exp holds {PRETRAINED}: drew its maps only (pass a run folder to draw its curves too)\n"


def test_plot_pairs_a_policy_file_only_with_the_run_that_holds_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    summary = pm.train(pm.Args(total_timesteps=256, num_envs=4, num_steps=64, batch_size=128, update_epochs=1,
                               eval_every=0, quiet=True, plots=False))
    assert ppo_cli.main(["plot", "--param", summary["actor_path"], "--out", "own"]) == 0
    out, err = capsys.readouterr()
    assert sorted(Path(p).name for p in out.split()) == sorted(figures.FIGURES)
    assert err == f"note: curves of {Path('exp') / summary['run_name']}, maps of {summary['actor_path']}\n"
    # the newest run is not this file's: its maps only, and no older curves left beside them
    assert ppo_cli.main(["plot", "--param", str(PRETRAINED), "--out", "own"]) == 0
    assert capsys.readouterr()[0].split() == [str(Path("own") / "policy_value.png")]
    assert sorted(p.name for p in Path("own").iterdir()) == ["policy_value.png"]


def test_plot_refuses_records_that_are_not_a_regular_file(tmp_path, capsys):
    run = tmp_path / "exp" / "a-run"
    run.mkdir(parents=True)
    os.mkfifo(run / "vdlrecords.1.log")
    codes = []
    worker = threading.Thread(target=lambda: codes.append(ppo_cli.main(["plot", str(run), "--out", str(tmp_path)])),
                              daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # the reader waits for a writer that never comes
        with open(run / "vdlrecords.1.log", "wb"):
            pass
        pytest.fail("plot hung on a FIFO")
    assert codes == [2]
    assert capsys.readouterr().err == f"error: {run / 'vdlrecords.1.log'} is not a regular file; pass a run folder " \
                                      "whose records are files\n"


def test_plot_draws_the_figures_of_a_run(tmp_path, capsys):
    args = pm.Args(num_envs=4, num_steps=64, batch_size=128, update_epochs=1, total_timesteps=2048,
                   eval_every=1024, eval_episodes=5, quiet=True, logdir=str(tmp_path / "exp"),
                   param_dir=str(tmp_path / "param"))
    summary = pm.train(args)  # plots at the end, into the run's folder
    img = Path(summary["run_dir"]) / "img"
    names = {"training_curve.png", "losses.png", "policy_value.png"}
    assert {p.name for p in img.iterdir()} == names
    for p in img.iterdir():
        im = Image.open(p)
        assert im.size[0] > 600 and np.asarray(im.convert("L")).std() > 10  # not blank
    # and again from the logs, through the command line
    capsys.readouterr()
    assert ppo_cli.main(["plot", "--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "param"),
                         "--out", str(tmp_path / "again")]) == 0  # the run's own actor draws the maps
    assert {Path(line).name for line in capsys.readouterr().out.split()} == names


def test_figures_leave_a_notebooks_matplotlib_backend_alone(tmp_path):
    import matplotlib
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # stands for a notebook's inline backend
    try:
        args = pm.Args(num_envs=2, num_steps=32, batch_size=64, update_epochs=1, total_timesteps=64,
                       eval_every=0, quiet=True, logdir=str(tmp_path / "exp"), param_dir=str(tmp_path / "param"))
        summary = pm.train(args)  # plots at the end
        assert (Path(summary["run_dir"]) / "img" / "policy_value.png").is_file()
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
