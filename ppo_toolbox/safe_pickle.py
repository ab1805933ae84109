"""Reading a pickle from anyone: `read_pickle` runs a small stack machine of its own over the
opcodes `paddle.save` writes for a state dict (protocols 2-5) and builds only what a .param file
or a checkpoint holds: dicts with string keys, lists, tuples, strings, numbers, booleans, None
and numpy arrays of a few numeric dtypes, which it makes itself from their raw bytes after
checking dtype, shape and byte count against each other. It refuses at the first thing it does
not know (a set, a frozenset, a container as a key, an object to construct, code to call), and
within budgets that grow with the file's size, so that refusing any file costs bounded memory
and time: nothing is built first and checked after. Imports numpy and `errors`."""
from __future__ import annotations

import math
import struct
from typing import Any, BinaryIO

import numpy as np

from .errors import Damaged, Refused

SAFE_DTYPES = ("f4", "f8", "i4", "i8")  # numpy's names for what this project writes
MAX_DEPTH = 32             # nesting of containers: a checkpoint needs 6
MAX_STACK = 100_000        # values on the stack at once: a state dict needs 2 per entry
MAX_STR = 65_536           # characters of one string: names and settings are short
MAX_INT_BYTES = 64         # bytes of one integer: an RNG state needs 17 (a 128-bit number)
SMALL_BYTES = 4_096        # a bytes value larger than this must be an array's data
MAX_DIMS = 4
CHUNK = 1 << 20            # the file is read a megabyte at a time


def budgets(size: int) -> tuple[int, int]:
    """(opcodes, cells) a file of `size` bytes may use; a cell is a value built, an item put in a
    container, a memo entry or a mark, and costs at most about 70 bytes (an empty dict and its
    place on the stack), so 600,000 of them stay within 45 MB. This project's files use far
    less: a checkpoint of the default run is 120 KB, about 3,100 opcodes and 3,500 cells, and
    each periodic evaluation adds a few dozen cells (so more than 10,000 evaluations fit)."""
    return min(50_000 + size // 2, 4_000_000), min(50_000 + size // 4, 600_000)


_MARK = object()         # the stack's mark
_NDARRAY = object()      # numpy.ndarray, which may only be passed to _reconstruct
_RECONSTRUCT = object()  # numpy's _reconstruct
_DTYPE = object()        # numpy.dtype
_ORDERED_DICT = object() # collections.OrderedDict, which may only be made empty
GLOBALS = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DTYPE,
           ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
           ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
           ("collections", "OrderedDict"): _ORDERED_DICT}


class _Dtype:
    def __init__(self, name: Any):
        if name not in SAFE_DTYPES:  # no object, string, bool or complex arrays
            raise Refused(f"arrays of type {str(name)[:20]!r}")
        self.dtype, self.built = np.dtype(name), False

    def build(self, state: Any) -> None:
        if self.built or not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", "|", "="):
            raise Damaged("an array has an unknown byte order")
        self.built = True


class _Array:
    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def build(self, state: Any) -> None:
        if self.array is not None or not isinstance(state, tuple) or len(state) != 5:
            raise Damaged("an array is built twice or from the wrong state")
        _version, shape, dtype, fortran, raw = state
        _check_array(shape, dtype, raw)
        self.array = np.frombuffer(raw, dtype.dtype).reshape(shape, order="F" if fortran else "C").copy()


def _check_array(shape: Any, dtype: Any, raw: bytes | None, length: int | None = None) -> None:
    """dtype, shape and data agree (`length`: the data's size, before it is read)."""
    if not isinstance(dtype, _Dtype) or not dtype.built:
        raise Damaged("an array has no valid dtype")
    if not (type(shape) is tuple and len(shape) <= MAX_DIMS and all(type(n) is int and 0 <= n < 2**40 for n in shape)):
        raise Damaged("an array has an invalid shape")
    length = len(raw) if isinstance(raw, bytes) else length
    if length != math.prod(shape) * dtype.dtype.itemsize:
        raise Damaged("an array's data does not match its shape")


class _Reader:
    """The stack machine. `take(n)` gives the next n bytes of the file, read in chunks."""

    def __init__(self, f: BinaryIO, size: int):
        self.f, self.size, self.buf, self.pos = f, size, b"", 0
        self.ops, self.cells = budgets(size)
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}

    def take(self, n: int) -> bytes:
        if n > self.size - self.f.tell() + len(self.buf) - self.pos:
            raise Damaged("it is cut short")
        if self.pos + n > len(self.buf):
            rest = self.buf[self.pos:]
            self.buf, self.pos = rest + self.f.read(max(CHUNK, n - len(rest))), 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        if len(out) != n:
            raise Damaged("it is cut short")
        return out

    def spend(self, cells: int = 1) -> None:
        self.cells -= cells
        if self.cells < 0:
            raise Damaged("it holds more values than a .param file of its size")

    def push(self, value: Any) -> None:
        if len(self.stack) >= MAX_STACK:
            raise Damaged("it stacks more values than a .param file does")
        self.spend()
        self.stack.append(value)

    def pop(self) -> Any:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise Damaged("it takes a value it never put")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise Damaged("it closes a mark it never opened")
        start = self.marks.pop()
        items, self.stack[start:] = self.stack[start:], []
        return items

    def target(self, kind: type) -> Any:
        top = self.stack[-1] if len(self.stack) > (self.marks[-1] if self.marks else 0) else None
        if type(top) is not kind:
            raise Damaged(f"it adds items to something that is not a {kind.__name__}")
        return top

    def set_items(self, d: dict, items: list[Any]) -> None:
        if len(items) % 2:
            raise Damaged("a dictionary has a key without a value")
        for k, v in zip(items[::2], items[1::2]):
            if type(k) is not str:  # never hash a container: a deep one overflows the C stack
                raise Damaged("a dictionary has keys that are not names")
            d[k] = v
        self.spend(len(items) // 2)

    def text(self, n: int) -> str:
        if n > MAX_STR * 4:
            raise Damaged("it holds a string longer than a .param file does")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise Damaged("a string is not UTF-8") from None

    def data(self, n: int) -> bytes:
        """A bytes value: small ones anywhere, large ones only as the data of the array whose
        shape and dtype are on the stack, and only of the size they say."""
        if n > SMALL_BYTES:
            s = self.stack
            if not (len(s) >= 4 and type(s[-4]) is int and type(s[-3]) is tuple and isinstance(s[-2], _Dtype)
                    and type(s[-1]) is bool):
                raise Damaged("it holds data that belongs to no array")
            _check_array(s[-3], s[-2], None, n)
        return self.take(n)

    def memo_put(self, index: int) -> None:
        if not self.stack:
            raise Damaged("it remembers a value it never put")
        self.spend()
        self.memo[index] = self.stack[-1]

    def memo_get(self, index: int) -> None:
        if index not in self.memo:
            raise Damaged("it recalls a value it never remembered")
        self.push(self.memo[index])

    def reduce(self, func: Any, args: Any) -> Any:
        if type(args) is not tuple:
            raise Damaged("a call without arguments")
        if func is _RECONSTRUCT and len(args) == 3 and args[0] is _NDARRAY:
            return _Array()
        if func is _DTYPE and 1 <= len(args) <= 3:
            return _Dtype(args[0])
        if func is _ORDERED_DICT and args == ():
            return {}
        raise Refused("a call of something a .param file never calls")

    def load(self) -> Any:
        u8, u32, u64 = (lambda: self.take(1)[0]), (lambda: struct.unpack("<I", self.take(4))[0]), \
            (lambda: struct.unpack("<Q", self.take(8))[0])
        push, pop = self.push, self.pop
        while True:
            self.ops -= 1
            if self.ops < 0:
                raise Damaged("it has more opcodes than a .param file of its size")
            op = self.take(1)
            if op == b"\x80":                                   # PROTO
                if not 2 <= u8() <= 5:
                    raise Damaged("an unknown pickle protocol")
            elif op == b"\x95":                                 # FRAME: a length hint
                u64()
            elif op == b".":                                    # STOP
                if len(self.stack) != 1 or self.marks:
                    raise Damaged("it ends with more or less than one value")
                return self.stack[0]
            elif op == b"N":
                push(None)
            elif op in (b"\x88", b"\x89"):                      # NEWTRUE, NEWFALSE
                push(op == b"\x88")
            elif op == b"J":                                    # BININT
                push(struct.unpack("<i", self.take(4))[0])
            elif op == b"K":                                    # BININT1
                push(u8())
            elif op == b"M":                                    # BININT2
                push(struct.unpack("<H", self.take(2))[0])
            elif op in (b"\x8a", b"\x8b"):                      # LONG1, LONG4
                n = u8() if op == b"\x8a" else u32()
                if n > MAX_INT_BYTES:
                    raise Damaged("it holds a number larger than a .param file does")
                push(int.from_bytes(self.take(n), "little", signed=True))
            elif op == b"G":                                    # BINFLOAT
                push(struct.unpack(">d", self.take(8))[0])
            elif op in (b"\x8c", b"X", b"\x8d"):                # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
                push(self.text(u8() if op == b"\x8c" else u32() if op == b"X" else u64()))
            elif op in (b"C", b"B", b"\x8e"):                   # SHORT_BINBYTES, BINBYTES, BINBYTES8
                push(self.data(u8() if op == b"C" else u32() if op == b"B" else u64()))
            elif op == b"(":                                    # MARK
                self.spend()
                self.marks.append(len(self.stack))
            elif op == b")":
                push(())
            elif op in (b"\x85", b"\x86", b"\x87"):             # TUPLE1, TUPLE2, TUPLE3
                n = op[0] - 0x84
                items = [pop() for _ in range(n)][::-1]
                push(tuple(items))
            elif op == b"t":                                    # TUPLE
                items = self.pop_mark()
                push(tuple(items))
            elif op == b"]":
                push([])
            elif op == b"l":                                    # LIST
                items = self.pop_mark()
                push(items)
            elif op == b"a":                                    # APPEND
                value = pop()
                self.target(list).append(value)
                self.spend()
            elif op == b"e":                                    # APPENDS
                items = self.pop_mark()
                self.target(list).extend(items)
                self.spend(len(items))
            elif op == b"}":
                push({})
            elif op == b"d":                                    # DICT
                items = self.pop_mark()
                d: dict[str, Any] = {}
                self.set_items(d, items)
                push(d)
            elif op == b"s":                                    # SETITEM
                value, key = pop(), pop()
                self.set_items(self.target(dict), [key, value])
            elif op == b"u":                                    # SETITEMS
                items = self.pop_mark()
                self.set_items(self.target(dict), items)
            elif op == b"0":                                    # POP
                pop()
            elif op == b"1":                                    # POP_MARK
                self.pop_mark()
            elif op == b"\x94":                                 # MEMOIZE
                self.memo_put(len(self.memo))
            elif op in (b"q", b"r"):                            # BINPUT, LONG_BINPUT
                self.memo_put(u8() if op == b"q" else u32())
            elif op in (b"h", b"j"):                            # BINGET, LONG_BINGET
                self.memo_get(u8() if op == b"h" else u32())
            elif op == b"\x93":                                 # STACK_GLOBAL
                name, module = pop(), pop()
                if (module, name) not in GLOBALS:
                    raise Refused(f"{str(module)[:40]}.{str(name)[:40]}")
                push(GLOBALS[module, name])
            elif op == b"R":                                    # REDUCE
                args, func = pop(), pop()
                push(self.reduce(func, args))
            elif op == b"b":                                    # BUILD
                state, obj = pop(), self.target_object()
                obj.build(state)
            else:
                raise Refused(f"the pickle opcode {op!r}")

    def target_object(self) -> Any:
        top = self.pop()
        if not isinstance(top, (_Array, _Dtype)):
            raise Refused("an object of a kind a .param file never holds")
        self.stack.append(top)  # BUILD leaves the object in place
        return top


def plain_data(obj: Any, budget: list[int], depth: int = 0) -> Any:
    """The read object with arrays in place of their stubs, checked to be plain data: dicts
    with string keys, lists, tuples, str, int, float, bool, None. Bounded in depth and in
    visits (a file can share one list many times over, or with itself)."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise Damaged("it nests or repeats its content more than a .param file does")
    if isinstance(obj, _Array):
        if obj.array is None:
            raise Damaged("an array has no data")
        return obj.array
    if type(obj) is dict:
        return {k: plain_data(v, budget, depth + 1) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(plain_data(v, budget, depth + 1) for v in obj)
    if obj is None or type(obj) in (str, int, float, bool):
        return obj
    raise Refused(f"an object of type {type(obj).__name__}")


def read_pickle(f: BinaryIO, size: int) -> Any:
    """The plain data the pickle in `f` (of `size` bytes) holds; Damaged or Refused otherwise."""
    reader = _Reader(f, size)
    return plain_data(reader.load(), [budgets(size)[1] * 2])
