"""Replaying a saved actor (ppo_toolbox/replay.py): a GIF in which the car reaches the flag, and a window refused
where there is no display. A signal during a replay: test_cli.py."""
import numpy as np
import ppo_mountaincar as pm
from ppo_toolbox import cli as ppo_cli
import pytest
from PIL import Image

from helpers import PRETRAINED


def test_replay_writes_a_gif_in_which_the_car_reaches_the_flag(tmp_path, capsys):
    out = tmp_path / "replay.gif"
    assert ppo_cli.main(["replay", str(PRETRAINED), "--episodes", "2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.count("(flag reached)") == 2 and f"wrote {out}" in said
    gif = Image.open(out)
    assert gif.n_frames > 2 * 40 and gif.size == (600, 400)
    # the last frame of the last episode shows the car at the flag, on the right
    gif.seek(gif.n_frames - 1)
    last = np.asarray(gif.convert("RGB")).astype(int)
    first = (gif.seek(0), np.asarray(gif.convert("RGB")).astype(int))[1]
    changed = np.abs(last - first).sum(2) > 60
    changed[-30:] = False  # ignore the caption
    cols = np.flatnonzero(changed.any(0))
    # the car is drawn near pixel 567 at the flag (x=0.5) and left of 270 at any start
    assert cols.size and cols.max() > 520


def test_replay_without_a_display_refuses_a_window(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(pm.UsageError, match="needs a display"):
        pm.replay(PRETRAINED, render="human")
