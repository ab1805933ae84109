"""The figures of a run: reading its VisualDL scalars back (`read_scalars`), the training
curve, the losses and, for a 2-D observation such as MountainCar's, the policy and value maps
(`plot_run`; the small maps for VisualDL's image tab are `policy_value_images`). Drawn
without pyplot, so a notebook's own matplotlib backend is left alone. Imports numpy,
matplotlib, Pillow and visualdl (when drawing), `errors`, `acting`, `envs`, `evaluation`,
`logbook`, `network_files` and `param_files`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .acting import NumpyNet
from .envs import make_env
from .errors import UsageError
from .evaluation import HOLDOUT_SEED, make_policy, play_episode
from .logbook import whole_records_end
from .network_files import read_network
from .param_files import atomic_write

ACTION_COLOURS = ["#d95f02", "#dddddd", "#1b9e77"]  # push left, no push, push right
FIGURES = ("training_curve.png", "losses.png", "policy_value.png")  # what `plot_run` may write


def read_scalars(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar tag of a VisualDL run folder, as (steps, values) arrays."""
    from visualdl import LogReader
    files = sorted(Path(run_dir).glob("vdlrecords.*"))
    if not files:
        raise UsageError(f"no VisualDL records in {run_dir}; pass a run folder under ./exp")
    series: dict[str, list[tuple[int, float]]] = {}
    for f in files:  # runs of older versions added a file per resume
        if not f.is_file():  # a FIFO would hang the reader
            raise UsageError(f"{f} is not a regular file; pass a run folder whose records are files")
        try:
            if f.stat().st_size and not whole_records_end(f):  # VisualDL would allocate what it claims
                raise ValueError("no whole record")
            reader = LogReader(file_path=str(f))
            for tag in reader.get_tags().get("scalar", []):
                series.setdefault(tag, []).extend((r.id, r.value) for r in reader.get_data("scalar", tag))
        except Exception as e:  # noqa: BLE001 - a damaged file fails deep inside protobuf
            raise UsageError(f"cannot read the VisualDL records {f} ({type(e).__name__}); the file is damaged") from None
    return {tag: tuple(np.array(x) for x in zip(*sorted(pts))) for tag, pts in series.items()}


def latest_run(logdir: str | Path) -> Path:
    """The most recently written run folder under `logdir`."""
    runs = sorted((p for p in Path(logdir).glob("*") if any(p.glob("vdlrecords.*"))),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UsageError(f"no training runs under {logdir}; train first, pass a run folder, or pass --param "
                         "an actor .param file for its policy and value maps")
    return runs[-1]


def plot_run(run_dir: str | Path | None, actor_path: str | Path | None, img_dir: str | Path) -> list[Path]:
    """Write a run's figures into `img_dir`: its training curve and losses (from its VisualDL
    records; none without `run_dir`) and, for an actor with 2-D observations, the policy and
    value maps with a greedy trajectory. Returns their paths."""
    img_dir, written = Path(img_dir), []

    def save(fig: Any, name: str) -> None:  # fixed margins: tight_layout would draw each figure twice
        atomic_write(img_dir / name, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
        written.append(img_dir / name)

    if run_dir is not None:
        scalars, title = read_scalars(run_dir), Path(run_dir).name
        save(training_curve(scalars, title), "training_curve.png")
        save(losses_figure(scalars, title), "losses.png")
    if actor_path is not None and Path(actor_path).is_file():
        actor = read_network(actor_path, "actor")
        name = Path(actor_path).name
        # the critic saved beside an actor_net*.param; another name is drawn without the value map
        critic_path = Path(actor_path).with_name(name.replace("actor_net", "critic_net")) if "actor_net" in name else None
        if actor.meta["obs_dim"] == 2 and actor.meta["env_id"]:
            critic = None
            if critic_path is not None and critic_path.is_file():
                critic_file = read_network(critic_path, "critic")
                critic = NumpyNet.from_state(critic_file.state, critic_file.meta)
            save(policy_value_figure(NumpyNet.from_state(actor.state, actor.meta), critic, actor.meta["env_id"]),
                 "policy_value.png")
    for name in FIGURES:  # an older run's figure would read as one of these
        stale = img_dir / name
        if stale not in written and stale.is_file() and not stale.is_symlink():
            stale.unlink()
    return written


def steps_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda x, _: f"{x / 1e6:g}M" if abs(x) >= 1e6 else f"{x / 1e3:g}k" if abs(x) >= 1e3 else f"{x:g}")


def training_curve(scalars: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Any:
    """Training episodes' returns (each, and a running mean) and the greedy evaluations,
    against env steps. When a few early episodes reach far below the rest (the tutorial's
    first episodes, with no time limit, last thousands of steps), a second panel shows the
    last half of the run on its own scale, where -200..-100 would otherwise be a line."""
    from matplotlib.figure import Figure

    rets = scalars.get("episode/return", (np.zeros(0), np.zeros(0)))[1]
    late = rets[len(rets) // 2:]
    zoom = late.size > 1 and np.ptp(rets) > 3 * max(np.ptp(late), 1.0)
    fig = Figure(figsize=(13 if zoom else 8, 4.5))
    # fixed margins wide enough for "-4000" and the axis label
    fig.subplots_adjust(left=0.08 if zoom else 0.12, right=0.98, bottom=0.12, top=0.86 if zoom else 0.9, wspace=0.18)
    axes = fig.subplots(1, 2 if zoom else 1, squeeze=False)[0]
    for ax in axes:
        if "episode/return" in scalars:
            steps, rets = scalars["episode/return"]
            ax.plot(steps, rets, ".", ms=2, alpha=0.3, color="tab:blue", label="training episode")
            k = min(len(rets), max(10, len(rets) // 40))
            ax.plot(steps[k - 1:], np.convolve(rets, np.ones(k) / k, "valid"), color="tab:blue",
                    label=f"training, mean of {k} episodes")
        if "eval/mean_return" in scalars:
            ax.plot(*scalars["eval/mean_return"], "o-", ms=3, color="tab:orange", label="greedy evaluation")
        ax.axhline(-110, ls="--", color="gray", label="solved (-110)")
        ax.set(xlabel="environment steps", ylabel="episode return")
        ax.xaxis.set_major_formatter(steps_formatter())
    axes[0].legend(loc="lower right")
    if zoom:
        steps = scalars["episode/return"][0][len(rets) // 2:]
        margin = 0.05 * max(np.ptp(late), 1.0)
        axes[1].set(xlim=(steps[0], steps[-1]), ylim=(min(late.min(), -110) - margin, max(late.max(), -110) + margin),
                    title="the later half of the episodes, on their own scale")
        axes[0].set_title("the whole run")
    fig.suptitle(f"Training curve: {title}", fontsize=10)
    return fig


def losses_figure(scalars: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Any:
    """The update's losses and health, each point and a running mean; a run's older records
    name the health group diagnostics/."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [("loss/action_loss", "action (clipped surrogate) loss"), ("loss/value_loss", "value loss"),
              ("update/entropy", "policy entropy"), ("update/approx_kl", "approx. KL"),
              ("update/clip_fraction", "clip fraction"), ("update/explained_variance", "explained variance")]
    fig = Figure(figsize=(12, 6.4))
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.08, top=0.86, wspace=0.3, hspace=0.4)
    axes = fig.subplots(2, 3)
    for ax, (tag, name) in zip(axes.flat, panels):
        x, y = scalars.get(tag) or scalars.get(tag.replace("update/", "diagnostics/")) or ((), ())
        if len(y):
            k = max(1, len(y) // 40)  # a running mean only where there are enough points
            ax.plot(x, y, lw=0.6 if k > 1 else 1.2, alpha=0.4 if k > 1 else 1.0, label="each update")
            if k > 1:
                ax.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, "valid"), lw=1.5, label=f"running mean of {k} updates")
        ax.set(title=name, xlabel="minibatch update" if tag.startswith("loss/") else "environment steps")
        ax.xaxis.set_major_formatter(steps_formatter())
        ax.xaxis.set_major_locator(MaxNLocator(5))  # a few short labels: they ran together
    # ncol, not ncols: matplotlib 3.5, the floor, knows only ncol
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper right", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(f"Losses and update health: {title}", x=0.07, ha="left", fontsize=10)
    return fig


def policy_value_grid(actor: NumpyNet, critic: NumpyNet | None, low: np.ndarray, high: np.ndarray,
                      shape: tuple[int, int] = (141, 181)) -> tuple[np.ndarray, np.ndarray | None]:
    """Greedy action and V(s) on a grid over a 2-D observation box (rows: 2nd coordinate,
    from low to high; columns: 1st), each in one batched forward pass."""
    xs, ys = np.meshgrid(np.linspace(low[0], high[0], shape[1]), np.linspace(low[1], high[1], shape[0]))
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    action = actor.outputs(grid).argmax(1).reshape(shape)
    return action, None if critic is None else critic.values(grid).reshape(shape)


def policy_value_images(actor: NumpyNet, critic: NumpyNet, low: np.ndarray, high: np.ndarray) -> dict[str, np.ndarray]:
    """The policy and value maps as small RGB images for VisualDL's image tab, coloured in
    numpy (a matplotlib figure per evaluation would cost more than the evaluation)."""
    from matplotlib import colormaps, colors
    from PIL import Image, ImageDraw, ImageFont

    action, value = policy_value_grid(actor, critic, low, high, shape=(48, 64))
    span = float(value.max() - value.min()) or 1.0
    pictures = {
        "maps/policy": (np.asarray(colors.to_rgba_array(ACTION_COLOURS))[action],
                        "orange: push left, grey: none, green: right"),
        "maps/value": (colormaps["viridis"]((value - value.min()) / span),
                       f"V(s) from {value.min():.1f} (purple) to {value.max():.1f} (yellow)")}
    images = {}
    for tag, (rgba, text) in pictures.items():
        pixels = np.repeat(np.repeat((rgba[::-1, :, :3] * 255).astype(np.uint8), 5, 0), 5, 1)  # velocity up
        image = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + 40), "white")
        image.paste(Image.fromarray(pixels))
        draw, small = ImageDraw.Draw(image), ImageFont.load_default(size=12)
        draw.text((6, pixels.shape[0] + 3), f"x: position, y: velocity\n{text}", fill="black",
                  font=ImageFont.load_default(size=15))
        h, w = pixels.shape[:2]  # the axis ranges at the picture's edges, as ticks would say
        for xy, label, anchor in (((2, h - 2), f"{low[0]:g}", "ld"), ((w - 2, h - 2), f"{high[0]:g}", "rd"),
                                  ((2, 2), f"v {high[1]:g}", "la"), ((2, h - 16), f"v {low[1]:g}", "ld")):
            draw.text(xy, label, fill="white", font=small, anchor=anchor, stroke_width=2, stroke_fill="black")
        images[tag] = np.asarray(image)
    return images


def policy_value_figure(actor: NumpyNet, critic: NumpyNet | None, env_id: str) -> Any:
    """Greedy action and V(s) over (position, velocity), with a greedy trajectory."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    env = make_env(env_id)
    low, high = env.observation_space.low, env.observation_space.high
    action, value = policy_value_grid(actor, critic, low, high)
    path = play_episode(env, make_policy(actor), HOLDOUT_SEED)["observations"]
    env.close()
    extent = [low[0], high[0], low[1], high[1]]
    fig = Figure(figsize=(13 if value is not None else 7, 5))
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.11, top=0.93, wspace=0.15)
    axes = fig.subplots(1, 2 if value is not None else 1, squeeze=False)
    cmap = ListedColormap(ACTION_COLOURS)
    im = axes[0, 0].imshow(action, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=-0.5, vmax=2.5)
    bar = fig.colorbar(im, ax=axes[0, 0], ticks=[0, 1, 2])
    bar.ax.set_yticklabels(["push left", "no push", "push right"])
    axes[0, 0].set_title("Greedy policy")
    if value is not None:
        im = axes[0, 1].imshow(value, origin="lower", extent=extent, aspect="auto", cmap="viridis")
        fig.colorbar(im, ax=axes[0, 1], label="V(s)")
        axes[0, 1].set_title("Value function (critic)")
    for ax in axes.flat:
        ax.plot(path[:, 0], path[:, 1], "k-", lw=1.5, label=f"greedy episode ({len(path) - 1} steps)")
        ax.plot(*path[0], "wo", mec="k", label="start")
        ax.axvline(0.5, color="red", ls="--", lw=1, label="flag (x = 0.5)")
        ax.set(xlabel="position", ylabel="velocity")
        ax.legend(loc="lower left", fontsize=8)
    return fig
