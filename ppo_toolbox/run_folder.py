"""The run folder's lifecycle. `RunFolder` holds the folders one training run writes to, its run
folder param/<run>/, its log folder exp/<run>/ and param/net_param/ (the latest finished run's
policy), from `claim` to `release`:

- claim: a new run makes its run folder itself (`folders.claim_run_folders`), a resumed run
  takes its checkpoint's folder if that holds nothing but what runs write; no link is followed
  (param/ and exp/ themselves, the folders, the files in them: git keeps links, so a cloned
  repo can carry one);
- the lock: `.lock` in the run folder holds it for one process (filelock's native lock, on a
  file this module opens itself without following a link; a FIFO or a hard-linked file is
  refused before anything is written to it);
- writable: each folder made, and a file written in it, before training starts;
- cleanup: the temporaries of writes a kill interrupted are removed; a refused new run leaves
  nothing behind.

While a folder is claimed, every `param_files.atomic_write` into it asks `check_write`: the
folder must still be the one claimed (same device and inode: not moved away, not replaced by
a link), and neither the file's name nor a folder between is a link. So a run writes only
inside its own folders, checked at every write. Imports `errors` and `folders`; filelock.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from .errors import UsageError
from .folders import claim_run_folders

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # none on Windows: a link is looked for just before opening
NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO opens at once instead of waiting for a writer
LOCK = ".lock"  # every run makes it when it claims its folder, and leaves it there
TEMPORARY = (".ppo-", ".tmp")  # an atomic write's temporary: .ppo-<name>.<random>.tmp
STALE_AFTER = 60.0             # seconds: a write takes well under a minute
# What a run writes in its run folder: networks, snapshots and the best; checkpoints; figures;
# the lock; temporaries (this program's, and older versions' .<name>.param.<random>.tmp)
RUN_FILES = re.compile(r"[\w.-]+\.(param|ckpt)|img|\.lock|\.ppo-[\w.-]+\.tmp|\.[\w.-]+\.param\.\w+\.tmp")
_claimed: dict[str, tuple[int, int]] = {}  # claimed folder (absolute) -> (st_dev, st_ino)


class RunFolder:
    """The folders of one training run, claimed (`claim`), checked at every write while held
    (`check_write`), and given back (`release`)."""

    def __init__(self, args: Any, changed: dict[str, Any], resumed: tuple[str, Path] | None = None):
        """`resumed`: the run name and folder of the checkpoint a resumed run goes on in."""
        self.args, self.changed, self.resumed = args, changed, resumed
        self.run_name, self.path = resumed if resumed is not None else ("", Path())
        self.lock_fd: int | None = None
        self.folders: list[Path] = []

    @property
    def log_dir(self) -> Path:
        return Path(self.args.logdir) / self.run_name

    @property
    def latest_dir(self) -> Path:
        return Path(self.args.param_dir) / "net_param"

    def claim(self) -> RunFolder:
        """Take the folders: links refused, the lock held, each folder writable, stale
        temporaries removed. A refusal is a UsageError, and leaves nothing of a new run."""
        if self.resumed is None:
            refuse_links(Path(self.args.param_dir), Path(self.args.logdir))  # before making anything in them
            self.run_name, self.path = claim_run_folders(self.args, self.changed)
        else:
            refuse_foreign_folder(self.path)
        try:
            refuse_links(self.path, self.log_dir, self.latest_dir, self.path / "img")
            self.lock_fd = lock(self.path)  # before anything is written there
            for folder in (self.path, self.log_dir, self.latest_dir):
                ensure_writable(folder)
                _claimed[os.path.abspath(folder)] = _identity(folder)
                self.folders.append(folder)
                remove_stale_temporaries(folder)
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Unlock, stop checking writes, and remove a new run's folders if nothing but its
        lock is in them (a run refused before it wrote anything)."""
        for folder in self.folders:
            _claimed.pop(os.path.abspath(folder), None)
        self.folders = []
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # closing the file releases the lock
            self.lock_fd = None
        if self.resumed is None and self.run_name:
            remove_if_empty(self.path, self.log_dir)


def _identity(folder: Path | str) -> tuple[int, int]:
    st = os.stat(folder)  # follows links: the folder a write would land in
    return st.st_dev, st.st_ino


def _is_link(path: Path) -> bool:
    return path.is_symlink() or getattr(path, "is_junction", lambda: False)()  # a junction: Windows' folder link


def _link_refused(link: Path) -> UsageError:
    return UsageError(f"{link} is a symbolic link; this program follows no links in the folders it writes its "
                      "own files to: remove it, or choose another --param-dir / --logdir")


def refuse_links(*paths: Path) -> None:
    """Refuse a folder this program picks for its own files, or a file in it, that is a link:
    writing there would write wherever the link points."""
    for path in paths:
        inside = list(path.iterdir()) if path.is_dir() and not _is_link(path) else []
        link = next((p for p in [path, *inside] if _is_link(p)), None)
        if link is not None:
            raise _link_refused(link)


def is_run_folder(folder: Path) -> bool:
    """A folder a run claimed: it holds the run's lock file, which a run makes when it claims
    its folder and never removes (`lock` refuses one that is not a regular file)."""
    return not _is_link(folder) and os.path.lexists(folder / LOCK)


def refuse_foreign_folder(folder: Path) -> None:
    """A resumed run writes into its checkpoint's folder: refuse one that holds anything a run
    does not write there (a checkpoint saved among a user's files, e.g. in Downloads), before
    anything is written or removed in it. The names are not shown: they are anyone's."""
    foreign = [p for p in folder.iterdir() if not RUN_FILES.fullmatch(p.name)]
    if foreign:
        raise UsageError(f"{folder} is not a run folder: it holds {len(foreign)} file(s) no run writes, and a resumed "
                         "run writes into its checkpoint's folder; move the checkpoint into a folder of its own "
                         "(e.g. param/my-run/) and resume it there")


def check_write(path: Path) -> bool:
    """Whether `path` is in a folder a run has claimed (or below one). If so, refuse unless
    the folder is still the one claimed and no link is on the way: at `path`, or a folder
    between (img/). False: not a run's file (e.g. replay --out), written as the caller says."""
    if not _claimed:
        return False
    folder, between = os.path.abspath(path.parent), []
    while folder not in _claimed:
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder, between = parent, [Path(folder), *between]
    try:
        same = _identity(folder) == _claimed[folder]
    except OSError:
        same = False
    if not same:
        raise UsageError(f"{folder} is no longer the folder this run claimed (moved, or replaced by a link); "
                         "nothing was written there and the run stopped: put the folder back, then resume its "
                         "checkpoint")
    link = next((p for p in (*between, path) if _is_link(p)), None)
    if link is not None:
        raise _link_refused(link)
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} is not a regular file; this run writes nothing through it: remove it, then "
                         "resume the run's checkpoint")
    return True


def lock(folder: Path) -> int:
    """Hold `folder` for this process until the returned file is closed (or the process ends:
    the lock is the system's, so a process that died holds none). A second training or resume
    of the run refuses, naming the holder's process id."""
    path = folder / LOCK
    if _is_link(path):  # O_NOFOLLOW below refuses it too, where the system has it
        raise _link_refused(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW | NONBLOCK | getattr(os, "O_BINARY", 0), 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _link_refused(path) from None
        raise UsageError(f"cannot lock the run folder {folder} ({e.strerror}); choose another --param-dir") from None
    st = os.fstat(fd)
    odd = "not a regular file" if not stat.S_ISREG(st.st_mode) else \
        f"a hard link (one of {st.st_nlink} names of one file)" if st.st_nlink > 1 else ""
    if odd:
        os.close(fd)
        raise UsageError(f"{path} is {odd}; this run writes nothing through it: remove it, then run again")
    try:
        held = _lock_descriptor(fd)
    except OSError as e:
        os.close(fd)
        raise UsageError(f"cannot lock the run folder {folder} ({e.strerror}); choose another --param-dir") from None
    if held is False:
        holder = _holder(fd)
        os.close(fd)
        raise UsageError(f"the run in {folder} is in use by {holder} (a training or resume of it); wait for that "
                         "one to end, or resume another checkpoint")
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _lock_descriptor(fd: int) -> bool | None:
    """filelock's native lock on `fd` (flock; LockFileEx on Windows): True, False (held by
    another process), or None where the system has none (one line says so)."""
    with warnings.catch_warnings():  # without fcntl, filelock warns at import that it has soft locks only
        warnings.simplefilter("ignore")
        from filelock import lock_descriptor
    try:
        return lock_descriptor(fd, blocking=False)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    print("note: this system has no file locks (no fcntl); nothing stops a second process from training into "
          "the same run folder", file=sys.stderr)
    return None


def _holder(fd: int) -> str:
    """The process holding the lock, from the pid it wrote; a file that holds anything else
    (escape codes, newlines: it is anyone's) is not echoed."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        written = os.read(fd, 24)
    except OSError:  # Windows: the lock keeps others from reading its byte
        written = b""
    pid = re.fullmatch(rb"\s*([0-9]{1,10})\s*", written)
    return f"process {int(pid[1])}" if pid else "another process"


def ensure_writable(folder: Path) -> None:
    """Make `folder` and check that files can be written in it, before training starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to {folder} ({e.strerror}); choose another folder "
                         "with --param-dir / --logdir") from None


def remove_stale_temporaries(folder: Path, pattern: str = "*".join(TEMPORARY)) -> None:
    """Delete what writes that a kill interrupted left in `folder` (files or folders by this
    program's own names, `pattern`), once older than STALE_AFTER: a younger one may belong to
    a process still writing."""
    for leftover in folder.glob(pattern):
        try:
            if time.time() - leftover.lstat().st_mtime <= STALE_AFTER or _is_link(leftover):
                continue
            if leftover.is_dir():
                for inside in leftover.iterdir():  # a flat folder of files (export's)
                    inside.unlink()
                leftover.rmdir()
            else:
                leftover.unlink()
        except OSError:
            pass


def remove_if_empty(*folders: Path) -> None:
    """Remove folders a refused run created, if nothing but its lock is in them."""
    for folder in folders:
        try:
            if folder.is_dir() and not _is_link(folder) and {p.name for p in folder.iterdir()} <= {LOCK}:
                (folder / LOCK).unlink(missing_ok=True)
                folder.rmdir()
        except OSError:
            pass
