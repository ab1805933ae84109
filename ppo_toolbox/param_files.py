""".param files. A .param file is what `paddle.save` writes for a state dict (a pickle of
numpy arrays), plus a "meta" entry saying how to rebuild the network, so that an actor file
alone is enough to replay a policy, and a checksum of everything else in the file.
`paddle.load(path)` still reads it; this project reads it with `load_state`, which runs
nothing from the file: `param_grammar` recognises the layouts paddle.save writes. Here: atomic
writing, checksums, saving a layer, reading a file. Imports numpy, paddle, `errors`,
`param_grammar` and `run_folder`."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import Damaged, NotParam, Refused, UsageError
from .param_grammar import TABLE, read_param
from .run_folder import TEMPORARY, check_write
from .settings import MAX_WEIGHTS

PARAM_FORMAT = 2  # 2: with a checksum; files of format 1 (no checksum) still load
# The largest file this project can write: a network of MAX_WEIGHTS float32 weights (and a
# quarter more for a wide first layer).
MAX_NETWORK_BYTES = 5 * MAX_WEIGHTS + 2**20


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then rename it into place:
    a crash at any moment leaves either the old file or the new one, never half of one.
    In a run's own folders (`run_folder.check_write`) no link is followed, and the folder
    is checked before and after writing. Elsewhere (a path a user names, e.g. replay --out)
    a symlink is written through to its target; a target that is not a regular file (a
    device, a folder) is refused."""
    path = Path(path)
    guarded = check_write(path)
    if not guarded:
        path = Path(os.path.realpath(path))
        if path.exists() and not path.is_file():
            raise UsageError(f"{path} is not a regular file; write to a file path instead")
    path.parent.mkdir(parents=True, exist_ok=True)  # in a run's folder: no link on the way (checked)
    # mkstemp: O_EXCL, and O_NOFOLLOW where the system has it; the name is this program's own
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMPORARY[0]}{path.name}.", suffix=TEMPORARY[1])
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; keep the usual permissions
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if guarded:
            check_write(path)  # the folder may have been swapped while the file was written
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def numpy_state(layer: Any) -> dict[str, np.ndarray]:
    """A layer's state dict as numpy arrays (what paddle.save stores for tensors)."""
    return {k: v.numpy() for k, v in layer.state_dict().items()}


def content_digest(obj: Any) -> str:
    """SHA-256 of a file's content in a canonical order: containers, scalars, and arrays
    by dtype, shape and bytes. A flipped byte anywhere changes it. Linear in the content's
    size when nothing in it is shared, which `param_grammar` guarantees of what it reads."""
    h = hashlib.sha256()
    todo = [obj]  # what is left to feed, the next on top: a loop, not a recursion
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            h.update(b"{%d" % len(x))
            for k in sorted(x, key=repr, reverse=True):
                todo += [x[k], k]
        elif isinstance(x, (list, tuple)):
            h.update(b"[%d" % len(x))
            todo += reversed(x)
        elif isinstance(x, np.ndarray):
            h.update(f"a{x.dtype.str}{x.shape}".encode())
            h.update(np.ascontiguousarray(x))
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())
    return h.hexdigest()


def sealed(state: dict[str, Any]) -> dict[str, Any]:
    """A network's state with its checksum added to its meta entry."""
    return {**state, "meta": {**state["meta"], "checksum": content_digest(state)}}


def save_pickle(path: Path, state: dict[str, Any]) -> Path:
    """Write `state`, sealed, as paddle.save does, atomically."""
    import paddle
    atomic_write(path, lambda tmp: paddle.save(sealed(state), tmp))
    return path


def save_state(layer: Any, path: Path, meta: dict[str, Any]) -> Path:
    """Write a layer's state dict and its `meta` entry to a .param file, atomically."""
    return save_pickle(path, {**numpy_state(layer), "meta": meta})


def load_state(path: str | Path, max_bytes: int | None = None) -> dict[str, Any]:
    """Read a .param file (of at most `max_bytes`, a network's by default) without executing
    anything from it, within bounded memory and time (`param_grammar`), and check its format
    and checksum. The name table paddle.save adds to a state dict is left out."""
    path = Path(path)
    state = _read(path, max_bytes or MAX_NETWORK_BYTES)
    state.pop(TABLE, None)
    return _unsealed(state, path)


def _damaged(path: Path, problem: str) -> UsageError:
    return UsageError(f"{path} is damaged or not a .param file this program reads ({problem}); "
                      "use another copy, e.g. actor_net_best.param or a numbered snapshot")


def _read(path: Path, max_bytes: int) -> dict[str, Any]:
    if not path.exists():
        raise UsageError(f"no such file: {path}; pass the path of a saved .param file")
    if not path.is_file():  # a folder, a FIFO (reading it would wait forever), a device
        raise UsageError(f"{path} is not a regular file; pass the path of a saved .param file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise Damaged(f"{size / 2**20:.0f} MB, larger than any such file ({max_bytes / 2**20:.0f} MB)")
            if not size:
                raise Damaged("empty")
            state = read_param(f, size)
    except NotParam as e:
        raise UsageError(f"{path} is not a .param file ({e}); pass an actor_net*.param or critic_net*.param "
                         "file saved by this program or the tutorial") from None
    except Refused as e:
        raise UsageError(f"{path} contains code or objects a .param file never holds ({e}); "
                         "it was not loaded") from None
    except Damaged as e:
        raise _damaged(path, str(e)) from None
    except OSError as e:
        raise UsageError(f"cannot read {path} ({e.strerror})") from None
    if not isinstance(state, dict):
        raise UsageError(f"{path} is not a .param state dict; pass a file this project saved")
    return state


def _unsealed(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """`state` without its checksum, once the checksum in its meta entry, where its format has
    one, matches; each checked by type first."""
    meta = state.get("meta")
    holder = meta if isinstance(meta, dict) else {}
    form, saved = holder.get("format", 1), holder.pop("checksum", None)
    if type(form) is not int or not 1 <= form <= PARAM_FORMAT:
        raise _damaged(path, f"its format is not a number in 1..{PARAM_FORMAT}")
    if saved is None and form != 1:
        raise _damaged(path, "its checksum is missing")
    if saved is not None and (type(saved) is not str or saved != content_digest(state)):
        raise _damaged(path, "its checksum does not match its content")
    return state
