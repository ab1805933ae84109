"""Run names, and claiming one: the folders `param/<run name>/` and `exp/<run name>/` that a new
run makes for itself (their lifecycle after that: `run_folder`). Imports `errors` and `settings`."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from .errors import UsageError
from .settings import short_names


def run_label(args: Any, changed: dict[str, Any]) -> str:
    """The settings changed from the preset, e.g. "alr=0.001,steps=20000" (empty: none).
    Whole settings only (a cut value would read as another value), "+N" for those left out."""
    def shown_value(v: Any) -> str:
        return "x".join(map(str, v)) if isinstance(v, tuple) else f"{v:.3g}" if isinstance(v, float) else str(v)
    short = short_names(args)
    changes = [f"{short[k]}={shown_value(v)}" for k, v in changed.items()]
    shown = [c for i, c in enumerate(changes) if len(",".join(changes[:i + 1])) <= 60]
    return ",".join(shown + ([f"+{len(changes) - len(shown)}"] if len(shown) < len(changes) else []))


def env_tag(env_id: str) -> str:
    """A few letters for an env id: MountainCar-v0 -> MC0, CartPole-v1 -> CP1, Acrobot-v1 -> Acr1."""
    name, _, version = env_id.replace(":", "/").split("/")[-1].rpartition("-v")
    name = name or version
    capitals = "".join(c for c in name if c.isupper())
    tag = capitals if len(capitals) >= 2 else "".join(c for c in name if c.isalnum())[:3]
    return tag + "".join(c for c in version if c.isalnum())


def run_name(args: Any, changed: dict[str, Any], when: str, attempt: int = 1) -> str:
    """<4 hex>-<preset>-s<seed>-<env tag>__[<changed settings>__]<env>__<time>. VisualDL cuts
    a run's name after a dozen characters after "./exp/" (its HParams table: 13, 11 in
    Chinese), so the name opens with what tells runs apart: the hex digits, a digest of the
    rest, different from run to run (two runs of one command too). The full name is also in
    the run's Text panel."""
    env = "".join(c if c.isalnum() or c in "._-" else "-" for c in args.env_id)
    tail = "__".join(part for part in (run_label(args, changed), env, when) if part)
    digest = hashlib.sha1(f"{args.preset}|{args.seed}|{tail}|{attempt}".encode()).hexdigest()[:4]
    return f"{digest}-{args.preset}-s{args.seed}-{env_tag(args.env_id)}__{tail}"


def claim_run_folders(args: Any, changed: dict[str, Any]) -> tuple[str, Path]:
    """A run name (--run-name, else `run_name`'s) whose folders under --param-dir and
    --logdir this run creates itself, so no other run writes into them: another name when
    the name is taken (two runs started in the same second; --run-name: a suffix -2, -3, ...)."""
    when = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1, 10_000):
        if args.run_name:
            name = args.run_name if i == 1 else f"{args.run_name}-{i}"
        else:
            name = run_name(args, changed, when, i)
        run_dir, log_dir = Path(args.param_dir) / name, Path(args.logdir) / name
        try:
            Path(args.param_dir).mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()  # exclusive: fails if another run has it
        except FileExistsError:
            continue
        except OSError as e:
            raise UsageError(f"cannot write to {args.param_dir} ({e.strerror}); choose another folder with "
                             "--param-dir") from None
        if log_dir.exists():  # logs of an older run by this name: pick another name for both
            run_dir.rmdir()
            continue
        return name, run_dir
    raise UsageError(f"too many runs named {args.run_name or name} in {args.param_dir}; pass --run-name")

