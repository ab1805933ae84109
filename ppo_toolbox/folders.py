"""Run names and the folders a run claims, `param/<run name>/` and `exp/<run name>/`: making
them, holding them (one process per run), and refusing links planted in them. Imports
`errors` and `settings`."""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import UsageError
from .settings import SHORT_NAMES


def run_label(args: Any, changed: dict[str, Any]) -> str:
    """The settings changed from the preset, e.g. "alr=0.001,steps=20000" (empty: none).
    Whole settings only (a cut value would read as another value), "+N" for those left out."""
    def shown_value(v: Any) -> str:
        return "x".join(map(str, v)) if isinstance(v, tuple) else f"{v:.3g}" if isinstance(v, float) else str(v)
    changes = [f"{SHORT_NAMES.get(k, k)}={shown_value(v)}" for k, v in changed.items()]
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


def ensure_writable(folder: Path) -> None:
    """Create `folder` and check that files can be written in it, before training starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to {folder} ({e.strerror}); choose another folder "
                         "with --param-dir / --logdir") from None


def refuse_links(*paths: Path) -> None:
    """Refuse a folder this program picks for its own files, or a file in it, that is a
    symbolic link (git keeps them, so a cloned repo can carry one): writing there would
    write wherever the link points."""
    for path in paths:
        inside = list(path.iterdir()) if path.is_dir() and not path.is_symlink() else []
        link = next((p for p in [path, *inside] if p.is_symlink()), None)
        if link is not None:
            raise UsageError(f"{link} is a symbolic link; this program follows no links in the folders it "
                             "writes its own files to: remove it, or choose another --param-dir / --logdir")


def lock_run_folder(net_dir: Path) -> int:
    """Hold the run folder for this process until `unlock` (or its end): a second training or
    resume of the same run refuses, naming the process. The lock is the kernel's (flock), so
    a process that died holds none."""
    path = net_dir / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        raise UsageError(f"cannot lock the run folder {net_dir} ({e.strerror}); choose another --param-dir") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 20, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise UsageError(f"the run in {net_dir} is in use by process {holder or 'another process'} (a training or "
                         "resume of it); wait for that one to end, or resume another checkpoint") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing the file releases the flock


def remove_if_empty(*folders: Path) -> None:
    """Remove folders a refused run created, if nothing but its lock is in them."""
    for folder in folders:
        try:
            if folder.is_dir() and not folder.is_symlink() and {p.name for p in folder.iterdir()} <= {".lock"}:
                (folder / ".lock").unlink(missing_ok=True)
                folder.rmdir()
        except OSError:
            pass
