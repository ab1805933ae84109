"""Draw the docs' pictures from the shipped policy and a fixed-seed run, and say in the pages
what made them.

    python docs/make_figures.py

Writes docs/img/replay.gif (the shipped policy, param/pretrained/actor_net.param, on the first
held-out episode), docs/img/training_curve.png (the bare default with --seed 1, the command
that made param/pretrained, trained in a temporary folder), docs/img/policy_value.png (the
shipped policy's maps) and docs/img/clipped_objective.png (PPO's objective against the ratio,
computed by the script's `clipped_surrogate`), then the provenance line between the `make_figures.py` markers of
docs/results.md and docs/zh/results.md. Takes about as long as one default training.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ppo_mountaincar as pm  # noqa: E402
from PIL import Image  # noqa: E402
from solve import provenance, write_between_markers  # noqa: E402

IMG = ROOT / "docs" / "img"
PRETRAINED = ROOT / "param" / "pretrained" / "actor_net.param"
COMMAND = "python docs/make_figures.py"


def clipped_objective(path: Path, eps: float = 0.2) -> None:
    """L_clip = min(r A, clip(r, 1 - eps, 1 + eps) A) against r, for A = +1 and A = -1, each
    point from the script's clipped_surrogate (which returns -L_clip)."""
    import numpy as np
    import paddle
    from matplotlib.figure import Figure
    ratios = np.linspace(0.4, 1.6, 121, dtype=np.float32)
    fig = Figure(figsize=(8, 2.8))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.18, top=0.88, wspace=0.25)
    for ax, advantage in zip(fig.subplots(1, 2), (1.0, -1.0)):
        objective = [-float(pm.clipped_surrogate(paddle.to_tensor([np.log(r)]), paddle.zeros([1]),
                                                 paddle.to_tensor([advantage]), eps)) for r in ratios]
        ax.plot(ratios, ratios * advantage, "--", color="gray", label="r * A")
        ax.plot(ratios, objective, color="tab:blue", lw=2, label="L_clip")
        ax.axvspan(1 - eps, 1 + eps, color="tab:orange", alpha=0.1)
        ax.set(title=f"A = {advantage:+.0f}", xlabel="r = pi(a|s) / pi_old(a|s)")
        ax.legend(loc="upper left" if advantage > 0 else "lower left", fontsize=8)
    fig.savefig(path, dpi=100)
    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def main() -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    clipped_objective(IMG / "clipped_objective.png")
    episode = pm.replay(PRETRAINED, episodes=1, out=IMG / "replay.gif")[0]
    with tempfile.TemporaryDirectory() as tmp:
        summary = pm.train(pm.preset_args(seed=1, quiet=True, logdir=f"{tmp}/exp", param_dir=f"{tmp}/param",
                                          run_name="default-seed-1"))  # a fixed title: the same bytes each time
        drawn = pm.plot_run(Path(tmp) / "exp" / summary["run_name"], PRETRAINED, tmp)
        for path in drawn:
            if path.name in ("training_curve.png", "policy_value.png"):  # 64 colours: a third of the bytes
                Image.open(path).convert("RGB").quantize(colors=64).save(IMG / path.name, optimize=True)
    facts = provenance(COMMAND)
    sizes = {p.name: p.stat().st_size // 1024 for p in sorted(IMG.glob("*.*"))}
    for page, text in (("docs/results.md",
                        f"The pictures: `{COMMAND}` at commit {facts['commit']} on {facts['date']} ({facts['cpu']}, {facts['cores']} cores, "
                        f"Paddle {facts['paddle']}). The GIF is the shipped policy's first held-out episode "
                        f"({episode['steps']} steps); the curve is the run `--seed 1` of that commit on that "
                        "machine; the maps are the shipped policy's. Sizes: "
                        + ", ".join(f"{k} {v} KB" for k, v in sizes.items()) + "."),
                       ("docs/zh/results.md",
                        f"图片：{facts['date']} 在提交 {facts['commit']} 上用 `{COMMAND}` 生成（{facts['cpu']}，{facts['cores']} 核，"
                        f"Paddle {facts['paddle']}）。动图是随附策略在第一个留出回合上的表现（{episode['steps']} 步）；"
                        "曲线是该提交在该机器上 `--seed 1` 的那次训练；策略图画的是随附策略。文件大小："
                        + "，".join(f"{k} {v} KB" for k, v in sizes.items()) + "。")):
        write_between_markers(ROOT / page, "make_figures.py", text)
    print("\n".join(f"{k}: {v} KB" for k, v in sizes.items()))


if __name__ == "__main__":
    main()
