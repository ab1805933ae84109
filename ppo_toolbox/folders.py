"""Run names and the folders a run claims: `param/<run name>/` and `exp/<run name>/`.
Imports `errors` and `settings`."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import UsageError
from .settings import SHORT_NAMES


def run_label(args: Any, changed: dict[str, Any]) -> str:
    """The preset and the settings changed from it, e.g. "default,alr=0.001". What runs
    differ in comes first: VisualDL's run list shows only a name's beginning. Whole settings
    only (a cut value would read as another value), "+N" for those left out."""
    def shown_value(v: Any) -> str:
        return "x".join(map(str, v)) if isinstance(v, tuple) else f"{v:.3g}" if isinstance(v, float) else str(v)
    changes = [f"{SHORT_NAMES.get(k, k)}={shown_value(v)}" for k, v in changed.items()]
    shown = [c for i, c in enumerate(changes) if len(",".join(changes[:i + 1])) <= 60]
    return ",".join([args.preset, *shown] + ([f"+{len(changes) - len(shown)}"] if len(shown) < len(changes) else []))


def claim_run_folders(args: Any, changed: dict[str, Any]) -> tuple[str, Path]:
    """A run name (--run-name, else <preset>[,changed settings]__seed<N>__<env>__<time>) whose
    folders under --param-dir and --logdir this run creates itself, so no other run writes
    into them: a suffix -2, -3, ... when the name is taken (two runs started in the same second)."""
    base = args.run_name or "__".join([run_label(args, changed), f"seed{args.seed}", args.env_id,
                                       time.strftime("%Y%m%d-%H%M%S")])
    for i in range(1, 10_000):
        name = base if i == 1 else f"{base}-{i}"
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
    raise UsageError(f"too many runs named {base} in {args.param_dir}; pass --run-name")


def ensure_writable(folder: Path) -> None:
    """Create `folder` and check that files can be written in it, before training starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to {folder} ({e.strerror}); choose another folder "
                         "with --param-dir / --logdir") from None
