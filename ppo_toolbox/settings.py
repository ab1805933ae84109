"""What the settings of a run may be: each setting's roles (its short name, whether it is
output only, may change on resume, may be searched), read from the metadata of its field of
`Args`; the limits past which a setting is a typo, the range checks with a sentence each, and
the device. Works on any `Args` dataclass (the script's); imports only `errors` and `envs` of
the toolbox."""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, NamedTuple

from .errors import UsageError

# Sizes past which a setting is a typo, not a plan: they would exhaust memory or hang.
MAX_ENVS = 65_536
MAX_BUFFER = 2**24            # transitions in one rollout (num_envs x num_steps)
MAX_WEIGHTS = 20_000_000      # per network
MAX_EVAL_EPISODES = 100_000   # evaluated at once, one env each
MAX_SEED = 2**32 - 1          # numpy's and Gymnasium's seeds are 32-bit
MAX_EPOCHS = 1_000
MAX_RUN_BYTES = 2 * 2**30     # the rollout and the update's copies of it
MAX_BONUS_CELLS = 2**20       # the count table (8 MB, saved in every checkpoint)
MAX_LAYERS = 8                # hidden layers a network file may describe
MAX_STEPS = 10**10            # any count of env steps (VisualDL keeps steps as 64-bit ints)

# The roles of a setting, written beside it in the script's `Args` as keywords of its field
# (`_flag(150_000, "...", short="steps", resumable=True)`), each with its default:
ROLES = dict(
    # its name in run names and VisualDL's HParams panel, at most 7 characters: the panel's
    # parallel-coordinates view shortens a wider label in a loop that never ends (VisualDL
    # 2.5.3), freezing the browser tab. Unset: the name, or its first 7 letters and digits.
    short=None,
    output=False,      # it says where a run writes or how it reports, not what it learns
    resumable=False,   # it may change when a run is resumed (the rest come from the checkpoint)
    searchable=None,   # `tune` may search it (unset: unless it is an output setting)
    # a column of VisualDL's HParams table, the same few for every run, tune's trials too (a
    # column one run lacks is a NaN cell in every other; parallel coordinates hang past 8)
    column=False,
)
MAX_SHORT_NAME = 7


class Roles(NamedTuple):
    """A setting's roles, the defaults of ROLES filled in."""

    short: str
    output: bool
    resumable: bool
    searchable: bool
    column: bool


def roles(args: Any) -> dict[str, Roles]:
    """Each setting's roles, read from its field's metadata (`args`: the Args class or an
    instance), the defaults filled in."""
    found: dict[str, Roles] = {}
    for f in dataclasses.fields(args):
        given = {**ROLES, **{k: v for k, v in f.metadata.items() if k in ROLES}}
        short = given["short"] or "".join(c for c in f.name if c.isalnum())[:MAX_SHORT_NAME]
        searchable = not given["output"] if given["searchable"] is None else given["searchable"]
        found[f.name] = Roles(short, bool(given["output"]), bool(given["resumable"]), bool(searchable),
                              bool(given["column"]))
        _check_roles(f, found)
    return found


def _check_roles(f: dataclasses.Field, found: dict[str, Roles]) -> None:
    """A role misspelt, a short name too long or taken, an output setting searched: a mistake
    in `Args`, said when the roles are first read (every run reads them)."""
    r, unknown = found[f.name], set(f.metadata) - set(ROLES) - {"help", "choices"}
    taken = [name for name, other in found.items() if other.short == r.short and name != f.name]
    for wrong, message in ((unknown, f"unknown role {', '.join(sorted(unknown))} (roles: {', '.join(ROLES)})"),
                           (not (r.short.isalnum() and len(r.short) <= MAX_SHORT_NAME),
                            f"short name {r.short!r} must be 1 to {MAX_SHORT_NAME} letters and digits"),
                           (taken, f"short name {r.short!r} is {', '.join(taken)}'s already"),
                           (r.output and r.searchable, "an output setting is never searched: drop searchable=True")):
        if wrong:
            raise ValueError(f"Args.{f.name}: {message}")


def short_names(args: Any) -> dict[str, str]:
    """Each setting's name in run names and VisualDL's HParams panel, e.g. {"total_timesteps": "steps", ...}."""
    return {name: r.short for name, r in roles(args).items()}


def with_role(args: Any, role: str) -> set[str]:
    """The settings with a role: "output", "resumable", "searchable" or "column"."""
    return {name for name, r in roles(args).items() if getattr(r, role)}


def field_types(cls: type) -> dict[str, Any]:
    """The settings' types as types, not strings: {"seed": int, "target_kl": float, ...};
    an optional field gives its non-None type, a tuple field `tuple`."""
    def plain(hint: Any) -> Any:
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            return next(a for a in typing.get_args(hint) if a is not type(None))
        return typing.get_origin(hint) or hint
    return {name: plain(hint) for name, hint in typing.get_type_hints(cls).items()}


def parse_sizes(text: str) -> tuple[int, ...]:
    """Hidden layer sizes from a flag, e.g. "64,64" -> (64, 64)."""
    import argparse
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of sizes, e.g. 64,64") from None


def changed_settings(args: Any, preset: Any) -> dict[str, Any]:
    """The training settings in which `args` differs from `preset` (seed and env apart)."""
    return {k: v for k, v in dataclasses.asdict(args).items()
            if k not in with_role(args, "output") | {"seed", "env_id", "preset"} and v != getattr(preset, k)}


def network_weights(sizes: list[int]) -> int:
    """Weights and biases of an MLP with these layer sizes."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def use_device(name: str) -> str:
    """Put Paddle on the device --device asks for (a GPU build would otherwise pick gpu:0
    unasked); returns its name."""
    import paddle
    gpu_build = paddle.device.is_compiled_with_cuda()
    if name == "gpu" and not gpu_build:
        raise UsageError("--device gpu needs PaddlePaddle's GPU build (paddlepaddle-gpu); this one is the "
                         "CPU build: use --device cpu")
    device = "gpu" if name == "gpu" or (name == "auto" and gpu_build) else "cpu"
    paddle.set_device(device)
    return device


def check_types(args: Any) -> None:
    """Every setting of the type its field declares (a float field takes an int too), one of
    its choices where it has them, and every number finite: settings from Python or from a
    checkpoint are checked as strictly as flags."""
    fields = {f.name: f for f in dataclasses.fields(args)}
    for name, kind in field_types(type(args)).items():
        value, flag = getattr(args, name), "--" + name.replace("_", "-")
        optional = fields[name].default is None
        if value is None and optional:
            continue
        if kind is tuple:
            ok = isinstance(value, tuple) and all(type(v) is int for v in value)
        elif kind is float:
            ok = type(value) in (int, float) and math.isfinite(value)
        else:
            ok = type(value) is kind
        if not ok:
            raise UsageError(f"{flag} must be {'a finite number' if kind is float else 'a ' + kind.__name__}, "
                             f"not {str(value)[:40]!r}")
        choices = fields[name].metadata.get("choices")
        if choices and value not in choices:
            raise UsageError(f"{flag} must be one of {', '.join(choices)}, not {str(value)[:40]!r}")


def validate(args: Any) -> None:
    """Reject settings that cannot work, with a sentence that says how to fix them."""
    check_types(args)
    checks = [
        (0 <= args.seed <= MAX_SEED, f"--seed must be in 0..{MAX_SEED:,}"),
        (0 < args.total_timesteps <= 10**10, "--total-timesteps must be positive and at most 10^10"),
        (0 <= args.episodes <= 10**8, "--episodes must be >= 0 (0: no limit) and at most 10^8"),
        (args.num_envs > 0 and args.num_steps > 0, "--num-envs and --num-steps must be positive"),
        (args.num_envs <= MAX_ENVS, f"--num-envs must be at most {MAX_ENVS:,}, e.g. 16"),
        (args.num_envs * args.num_steps <= MAX_BUFFER,
         f"--num-envs x --num-steps must be at most {MAX_BUFFER:,} transitions, e.g. 16 x 128"),
        (0 < args.gamma <= 1, "--gamma must be in (0, 1]"),
        (0 <= args.gae_lambda <= 1, "--gae-lambda must be in [0, 1]"),
        (0 < args.clip < 1, "--clip must be in (0, 1), e.g. 0.2"),
        (0 < args.update_epochs <= MAX_EPOCHS, f"--update-epochs must be in 1..{MAX_EPOCHS:,}, e.g. 10"),
        (0 < args.batch_size <= args.num_envs * args.num_steps,
         "--batch-size must be positive and at most --num-envs x --num-steps"),
        (args.actor_lr > 0 and args.critic_lr > 0, "learning rates must be positive"),
        (args.max_grad_norm > 0, "--max-grad-norm must be positive"),
        (args.ent_coef >= 0, "--ent-coef must be >= 0"),
        (args.target_kl is None or args.target_kl > 0, "--target-kl must be positive"),
        (all(h > 0 for h in args.hidden_sizes) and args.hidden_sizes, "--hidden-sizes must be positive, e.g. 64,64"),
        (len(args.hidden_sizes) <= MAX_LAYERS, f"--hidden-sizes may list at most {MAX_LAYERS} layers, e.g. 64,64"),
        (network_weights([8, *args.hidden_sizes, 8]) <= MAX_WEIGHTS,  # 8: any small obs/action size
         f"--hidden-sizes would make a network of more than {MAX_WEIGHTS:,} weights; try 64,64 or 128,128"),
        (args.max_episode_steps is None or 0 <= args.max_episode_steps <= MAX_STEPS,
         "--max-episode-steps must be in 0..10^10"),
        (0 <= args.eval_every <= MAX_STEPS and 0 < args.eval_episodes <= MAX_EVAL_EPISODES,
         f"--eval-every must be in 0..10^10, --eval-episodes in 1..{MAX_EVAL_EPISODES:,}"),
        (0 <= args.save_every <= MAX_STEPS and 0 <= args.keep_snapshots <= 10**6,
         "--save-every must be in 0..10^10 and --keep-snapshots in 0..10^6"),
        (args.explore_bins <= MAX_BONUS_CELLS, f"--explore-bins must be at most {MAX_BONUS_CELLS:,}"),
        (args.target_return is None or abs(args.target_return) <= 1e12, "--target-return must be within +/-10^12"),
        (args.explore_bonus >= 0 and args.explore_bins > 0, "--explore-bonus must be >= 0, --explore-bins > 0"),
        (0 < args.explore_decay_steps <= MAX_STEPS, "--explore-decay-steps must be positive, e.g. 100000"),
        (0 < len(args.env_id) <= 200 and args.env_id.isprintable(), "--env-id must be a name, e.g. MountainCar-v0"),
        (0 < len(args.logdir) <= 1024 and 0 < len(args.param_dir) <= 1024 and len(Path(args.logdir).parts) <= 64
         and len(Path(args.param_dir).parts) <= 64, "--logdir and --param-dir must be folder paths of at most 1,024 characters"),
        (args.run_name is None or (0 < len(args.run_name) <= 200 and not args.run_name.startswith(".")
                                   and all(c.isalnum() or c in "._,=+-" for c in args.run_name)),
         "--run-name must be a plain folder name: letters, digits and . _ , = + -"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def validate_for_env(args: Any, trusted_env: str | None = None) -> None:
    """The checks that need the env's observation size (read from one env of it): the
    rollout's memory and the count bonus's table, before anything is allocated for them."""
    from .envs import make_env
    import gymnasium as gym
    env = make_env(args.env_id, trusted_env=trusted_env)
    space = env.observation_space
    env.close()
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        return  # make_vec_env says what it needs
    obs_dim = space.shape[0]
    # obs and next obs with their update copies, the scalars, and the critic's hidden
    # activations on the value batch (V of both obs and next obs in one call): float32 each
    per_transition = obs_dim * 4 * 6 + 64 + 2 * 4 * sum(args.hidden_sizes)
    need = args.num_envs * args.num_steps * per_transition
    if need > MAX_RUN_BYTES:
        raise UsageError(f"--num-envs {args.num_envs} x --num-steps {args.num_steps} would need about "
                         f"{need / 2**30:.1f} GB for one rollout and its update (limit {MAX_RUN_BYTES / 2**30:.0f} GB); "
                         "e.g. --num-envs 16 --num-steps 128")
    rollout = args.num_envs * args.num_steps  # training's smallest step: a smaller budget would train one anyway
    if not args.update_on_episode_end and args.total_timesteps < rollout:
        raise UsageError(f"--total-timesteps {args.total_timesteps:,} is less than one rollout (--num-envs "
                         f"{args.num_envs} x --num-steps {args.num_steps} = {rollout:,} steps); pass at least "
                         f"{rollout}, or fewer --num-envs / --num-steps")
    cells = args.explore_bins ** obs_dim
    if args.explore_bonus > 0 and cells > MAX_BONUS_CELLS:
        fit = int(MAX_BONUS_CELLS ** (1 / obs_dim))
        raise UsageError(f"--explore-bins {args.explore_bins} on a {obs_dim}-dimensional observation makes "
                         f"{cells:,} bonus cells (limit {MAX_BONUS_CELLS:,}); use --explore-bins {fit} "
                         "or --explore-bonus 0")
