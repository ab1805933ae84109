"""Reading a pickle from anyone: nothing Python or numpy would construct from the file is
constructed. The only globals a .param file names are numpy's array and dtype rebuilders;
stubs answer them, and `_ArrayStub` makes each array from its raw bytes after checking dtype,
shape and byte count against each other. `plain_data` then checks the result is plain data.
Imports numpy and `errors`."""
from __future__ import annotations

import io
import math
import pickle
from typing import Any

import numpy as np

from .errors import Damaged, Refused

SAFE_DTYPES = ("f4", "f8", "i4", "i8")  # numpy's names for what this project writes
MAX_DEPTH = 32             # nesting of containers: a checkpoint needs 6
MAX_VISITS = 2_000_000     # objects visited while checking: shared lists may not multiply them


class _DtypeStub:
    def __init__(self, name: Any, align: Any = False, copy: Any = True):
        if name not in SAFE_DTYPES:  # no object, string, bool or complex arrays
            raise Refused(f"arrays of type {str(name)[:20]!r}")
        self.dtype = np.dtype(name)

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", "|", "="):
            raise Damaged("an array has an unknown byte order")


class _ArrayStub:
    MAX_DIMS = 4

    def __init__(self, *args: Any):
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        _version, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DtypeStub) or not hasattr(dtype, "dtype"):
            raise Damaged("an array has no valid dtype")
        if not (isinstance(shape, tuple) and len(shape) <= self.MAX_DIMS and
                all(type(n) is int and 0 <= n < 2**40 for n in shape)):
            raise Damaged("an array has an invalid shape")
        if not isinstance(raw, bytes) or len(raw) != math.prod(shape) * dtype.dtype.itemsize:
            raise Damaged("an array's data does not match its shape")
        self.array = np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran else "C").copy()


def _reconstruct_stub(cls: Any, shape: Any, typecode: Any) -> _ArrayStub:
    if cls is not _NDARRAY:
        raise Refused("an array of an unknown class")
    return _ArrayStub()


_NDARRAY = object()  # stands for numpy.ndarray, which may only be passed to _reconstruct


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its memo is a dict
    """Admits plain containers, strings, numbers and numpy arrays of `SAFE_DTYPES` only."""

    GLOBALS = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DtypeStub,
               ("numpy._core.multiarray", "_reconstruct"): _reconstruct_stub,
               ("numpy.core.multiarray", "_reconstruct"): _reconstruct_stub,
               ("collections", "OrderedDict"): dict}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.GLOBALS:
            raise Refused(f"{module}.{name}"[:80])
        return self.GLOBALS[module, name]

    def persistent_load(self, pid: Any) -> Any:
        raise Refused("a persistent reference")


def plain_data(obj: Any, budget: list[int], depth: int = 0) -> Any:
    """The unpickled object with arrays in place of their stubs, checked to be plain data:
    dicts with str/int keys, lists, tuples, str, int, float, bool, None. Bounded in depth
    and in visits (a crafted file can share one list many times over, or with itself)."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise Damaged("it nests or repeats its content more than a .param file does")
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise Damaged("an array has no data")
        return obj.array
    if type(obj) is dict:
        if not all(type(k) in (str, int) for k in obj):
            raise Damaged("a dictionary has keys that are not names")
        return {k: plain_data(v, budget, depth + 1) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(plain_data(v, budget, depth + 1) for v in obj)
    if obj is None or type(obj) in (str, int, float, bool):
        return obj
    raise Refused(f"an object of type {type(obj).__name__}")


def read_pickle(data: bytes) -> Any:
    """The plain data a pickle of this project's kind holds; Damaged or Refused otherwise."""
    return plain_data(_SafeUnpickler(io.BytesIO(data)).load(), [MAX_VISITS])
