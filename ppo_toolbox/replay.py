"""Replaying a saved actor, into an animated GIF or a window (`replay`), and showing
images inline in a notebook (`show`). Imports numpy, Pillow (when drawing), `errors`,
`settings`, `acting`, `envs`, `evaluation`, `network_files` and `param_files`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .acting import NumpyNet
from .envs import make_env
from .errors import UsageError
from .evaluation import HOLDOUT_SEED, check_episode_seeds, env_for, make_policy, play_episode, success_rule
from .network_files import read_network
from .param_files import atomic_write
from .settings import MAX_EVAL_EPISODES

MAX_GIF_EPISODES = 20  # frames are kept in memory until the GIF is written


def replay(path: str | Path, episodes: int = 3, render: str = "gif", out: str | Path | None = None,
           seed: int = HOLDOUT_SEED, greedy: bool = True, env_id: str | None = None,
           trusted_env: str | None = None) -> list[dict[str, Any]]:
    """Play `episodes` episodes of the standard env with a saved actor: in a window
    (`render="human"`) or into an animated GIF with step and return drawn on each frame."""
    if not 0 < episodes <= (MAX_GIF_EPISODES if render == "gif" else MAX_EVAL_EPISODES):
        raise UsageError(f"--episodes must be in 1..{MAX_GIF_EPISODES} for a GIF (or --render human)"
                         if render == "gif" else f"--episodes must be in 1..{MAX_EVAL_EPISODES:,}")
    check_episode_seeds(seed, episodes)
    actor = read_network(path, "actor")
    env_id = env_for(actor.meta, env_id, trusted_env)
    policy = make_policy(NumpyNet.from_state(actor.state, actor.meta), greedy, seed)
    if render == "human" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("--render human needs a display; leave it out to write a GIF instead")
    if render == "gif":
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # off-screen frames need no display
    env = make_env(env_id, trusted_env=trusted_env, render_mode="human" if render == "human" else "rgb_array")
    frames, results, rule = [], [], success_rule(env_id)
    for ep in range(episodes):
        def film(steps: int, total: float, done: bool, terminated: bool, ep: int = ep) -> None:
            if render == "gif" and (steps % 2 == 0 or done):  # every other frame keeps the file small
                won = done and rule is not None and rule.test(np.array(terminated), np.array(not terminated),
                                                              np.array(total))
                frames.append(_caption(env.render(), f"episode {ep + 1}/{episodes}   step {steps}   "
                                       f"return {total:.0f}" + (f"   {rule.said}" if won else "")))
        episode = play_episode(env, policy, seed + ep, film)
        results.append(dict(episode=ep + 1, steps=episode["steps"], episode_return=episode["episode_return"],
                            success=episode["success"], said=rule.said if rule else None))
    env.close()
    if render == "gif":
        out = Path(out or Path("param") / "img" / "replay.gif")
        hold = [frames[-1]] * 15  # pause on the last frame before the loop restarts
        atomic_write(out, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:] + hold,
                                                     duration=40, loop=0))
        results[-1]["gif"] = str(out)
    return results


def _caption(frame: np.ndarray, text: str) -> Any:
    from PIL import Image, ImageDraw, ImageFont
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    draw.text((10, image.height - 26), text, fill=(0, 0, 0), font=ImageFont.load_default(size=18))  # below the track
    return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)


def show(*paths: str | Path) -> None:
    """Show images (PNG figures, a replay GIF) inline in a Jupyter notebook; elsewhere print
    their paths."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
        inline = getattr(get_ipython(), "kernel", None) is not None
    except ImportError:
        inline = False
    for path in paths:
        if inline:
            display(Image(filename=str(path)))
        else:
            print(path)
