""".param files. A .param file is what `paddle.save` writes for a state dict (a pickle of
numpy arrays), plus a "meta" entry saying how to rebuild the network, so that an actor file
alone is enough to replay a policy, and a checksum of everything else in the file.
`paddle.load(path)` still reads it; this project reads it with `load_state`, which runs
nothing from the file. Here: atomic writing, checksums, saving a layer, reading a file.
Imports numpy, paddle, `errors`, `run_folder` and `safe_pickle`."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import Damaged, Refused, UsageError
from .run_folder import TEMPORARY, check_write
from .safe_pickle import read_pickle
from .settings import MAX_BONUS_CELLS, MAX_WEIGHTS

PARAM_FORMAT = 2  # 2: with a checksum; files of format 1 (no checksum) still load
# The largest files this project can write: a network of MAX_WEIGHTS float32 weights (and a
# quarter more for a wide first layer), and a checkpoint of two of them with Adam's two
# moments each, the bonus table and the rest.
MAX_NETWORK_BYTES = 5 * MAX_WEIGHTS + 2**20
MAX_CHECKPOINT_BYTES = 6 * MAX_NETWORK_BYTES + 8 * MAX_BONUS_CELLS + 2**24


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
    by dtype, shape and bytes. A flipped byte anywhere changes it."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, dict):
            h.update(b"{%d" % len(x))
            for k in sorted(x, key=repr):
                feed(k)
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"[%d" % len(x))
            for v in x:
                feed(v)
        elif isinstance(x, np.ndarray):
            h.update(f"a{x.dtype.str}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())
    feed(obj)
    return h.hexdigest()


def sealed(state: dict[str, Any]) -> dict[str, Any]:
    """`state` with its checksum added: in its meta entry (networks) or at the top (checkpoints)."""
    if "meta" in state:
        return {**state, "meta": {**state["meta"], "checksum": content_digest(state)}}
    return {**state, "checksum": content_digest(state)}


def save_pickle(path: Path, state: dict[str, Any]) -> Path:
    """Write `state`, sealed, as paddle.save does, atomically."""
    import paddle
    atomic_write(path, lambda tmp: paddle.save(sealed(state), tmp))
    return path


def save_state(layer: Any, path: Path, meta: dict[str, Any]) -> Path:
    """Write a layer's state dict and its `meta` entry to a .param file, atomically."""
    return save_pickle(path, {**numpy_state(layer), "meta": meta})


def load_state(path: str | Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> dict[str, Any]:
    """Read a .param file or a checkpoint without executing anything from it, within bounded
    memory and time, and check its checksum."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no such file: {path}; pass the path of a saved .param file")
    if not path.is_file():  # a folder, a FIFO (reading it would wait forever), a device
        raise UsageError(f"{path} is not a regular file; pass the path of a saved .param file")
    damaged = (f"{path} is damaged or not a .param file ({{}}); use another copy, "
               "e.g. actor_net_best.param or a numbered snapshot")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise Damaged(f"{size / 2**20:.0f} MB, larger than any such file ({max_bytes / 2**20:.0f} MB)")
            if not size:
                raise Damaged("empty")
            state = read_pickle(f, size)
    except Refused as e:
        raise UsageError(f"{path} contains code or objects a .param file never holds ({e}); "
                         "it was not loaded") from None
    except Damaged as e:
        raise UsageError(damaged.format(e)) from None
    except OSError as e:
        raise UsageError(f"cannot read {path} ({e.strerror})") from None
    except (Exception, RecursionError):  # whatever else a damaged pickle trips on
        raise UsageError(damaged.format("it is cut short or not a pickle this project writes")) from None
    if not isinstance(state, dict):
        raise UsageError(f"{path} is not a .param state dict; pass a file this project saved")
    state.pop("StructuredToParameterName@@", None)
    meta = state.get("meta")
    holder = meta if isinstance(meta, dict) else state
    saved = holder.pop("checksum", None)
    if saved is None and holder.get("format", 1) != 1:
        raise UsageError(damaged.format("its checksum is missing"))
    if saved is not None and saved != content_digest(state):
        raise UsageError(damaged.format("its checksum does not match its content"))
    return state
