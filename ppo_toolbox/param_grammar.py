"""Reading a .param file (what `paddle.save` writes for a state dict: a pickle) from anyone.
`read_param` is a recognizer of the opcode sequences paddle.save writes for the layouts below
(protocols 2-4, with or without frames), not a pickle machine: no stack, no memo of the file's
data, nesting fixed by the layout. Each byte makes at most one value, each check happens at the
opcode that would break it, anything else is refused there, with its offset: time linear in the
file's size, memory about its arrays' plus a constant. Imports numpy and `errors`.

The layouts, as a grammar. A name in quotes or a number is that exact value; `put` is an
optional memo store of the value just made (numbered in order); `get(x)` a memo fetch, which
may fetch only the small fixed objects paddle.save's own files reuse: numpy's globals and their
names, b'b', 'latin1', a dtype and its name, one character ('<', or protocol 2's 'b' and a one-letter
name, which reuse each other) and, in the name table, a name, once.

  file   := PROTO(2|3|4) EMPTY_DICT put [MARK entry{2,256} SETITEMS | entry SETITEM] STOP
  entry  := (name put | get(char)) array | 'meta' put meta | 'StructuredToParameterName@@' put table
  array  := global(_reconstruct) global(ndarray) 0 TUPLE1 put b'b' TUPLE3 put REDUCE put
            MARK 1 shape dtype False bytes(shape x dtype) TUPLE put BUILD
  shape  := (EMPTY_TUPLE | dim TUPLE1 | dim dim TUPLE2 | dim dim dim TUPLE3) put       (3 dimensions at most)
  dtype  := get(dtype) | global(dtype) (('f4'|'f8'|'i4'|'i8') put | get(it)) False True TUPLE3 put REDUCE put
            MARK 3 ('<' put | get(char)) None None None -1 -1 0 TUPLE put BUILD
  meta   := EMPTY_DICT put (MARK field{2,32} SETITEMS | field SETITEM)
  field  := key put (None | bool | int | finite float | text put | EMPTY_LIST put (MARK int{2,64} APPENDS | int APPEND))
  table  := EMPTY_DICT put [MARK pair{2,256} SETITEMS | pair SETITEM]      pair := (get(name|char) | name put) text put
  global := get(it) | GLOBAL 'module name' put (protocols 2, 3) | str put|get str put|get STACK_GLOBAL put (4)
  bytes  := (SHORT_BINBYTES | BINBYTES) put (3, 4) | global(_codecs.encode) str put ('latin1' put | get) TUPLE2 put REDUCE put (2)

In protocol 4 a FRAME may come between opcodes where no frame is open, and no opcode runs
past the end of its frame."""
from __future__ import annotations

import codecs
import math
import pickletools
import struct
from typing import Any, BinaryIO, Callable, NoReturn

import numpy as np

from .errors import Damaged, NotParam, Refused

META, TABLE = "meta", "StructuredToParameterName@@"
DTYPES = {name: np.dtype("<" + name) for name in ("f4", "f8", "i4", "i8")}
GLOBALS = {("numpy._core.multiarray", "_reconstruct"): "_reconstruct",   # numpy 2
           ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",    # numpy 1
           ("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype", ("_codecs", "encode"): "_codecs.encode"}
MAX_ENTRIES, MAX_NAME = 256, 256  # a network of 8 hidden layers has 22 entries
MAX_FIELDS, MAX_KEY, MAX_TEXT, MAX_LIST = 32, 64, 256, 64  # meta: its fields, their names, strings, lists
CHUNK = 2**20  # protocol 2's arrays are decoded a megabyte at a time

(MARK, STOP, NONE, BININT, BININT1, BININT2, LONG1, BINFLOAT, BINUNICODE, SHORT_BINUNICODE, BINBYTES,
 SHORT_BINBYTES, EMPTY_TUPLE, TUPLE, TUPLE1, TUPLE2, TUPLE3, EMPTY_LIST, APPEND, APPENDS, EMPTY_DICT,
 SETITEM, SETITEMS, BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET, GLOBAL, STACK_GLOBAL, REDUCE, BUILD,
 NEWTRUE, NEWFALSE, PROTO, FRAME) = b"(.NJKM\x8aGX\x8cBC)t\x85\x86\x87]ae}suqr\x94hjc\x93Rb\x88\x89\x80\x95"
INTS, GETS = (BININT1, BININT2, BININT, LONG1), (BINGET, LONG_BINGET)
# Opcodes that import, call or build an object, refused as code rather than damage where the layout
# has none: GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ(_EX), EXT1/2/4, (BIN)PERSID.
CALLS = frozenset(b"c\x93Rbio\x81\x92\x82\x83\x84PQ")
OPCODE_NAMES = {ord(op.code): op.name for op in pickletools.opcodes}  # for the messages


def read_param(f: BinaryIO, size: int) -> dict[str, Any]:
    """The state dict in the .param file `f` (`size` bytes): names to arrays, "meta" and the name
    table where the file has them; or NotParam, Refused or Damaged, saying where."""
    return _Recognizer(f, size).file()


class _Recognizer:
    """The grammar above, one method per rule, with one opcode of lookahead."""

    def __init__(self, f: BinaryIO, size: int):
        self.f, self.size, self.pos = f, size, 0
        self.frame_end = 0        # where the open frame ends (none is open once pos reaches it)
        self.proto = 0
        self.next, self.at = -1, 0  # the opcode read ahead (-1: none) and its offset
        self.memo_size = 0        # how many values the memo would hold: stores must come in order
        self.fetchable: dict[int, tuple[str, Any]] = {}  # memo index -> (kind, value) that a get may fetch

    # --- bytes, opcodes, memo ------------------------------------------------------------------
    def read(self, n: int, writable: bool = False) -> bytes | bytearray:
        """The next `n` bytes (`writable`: in a buffer of their own), checked to be there first."""
        end = self.pos + n
        if end > self.size:
            raise Damaged(f"at byte {self.pos}: it is cut short ({n:,} bytes wanted, {self.size - self.pos:,} left)")
        if self.pos < self.frame_end < end:
            raise Damaged(f"at byte {self.pos}: an opcode runs past the end of its frame")
        data = bytearray(n) if writable else self.f.read(n)
        if (self.f.readinto(data) if writable else len(data)) != n:
            raise Damaged(f"at byte {self.pos}: it is cut short")
        self.pos = end
        return data

    def number(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def peek(self) -> int:
        """The next opcode, read ahead once; a FRAME before it is checked and passed over."""
        if self.next < 0:
            self.at, self.next = self.pos, self.read(1)[0]
            if self.next == FRAME:
                if self.proto != 4 or self.at < self.frame_end:
                    self.fail("an opcode")
                n = self.number("<Q")
                if not 0 < n <= self.size - self.pos:
                    raise Damaged(f"at byte {self.at}: a frame of {n:,} bytes, with {self.size - self.pos:,} left")
                self.frame_end = self.pos + n
                self.at, self.next = self.pos, self.read(1)[0]
        return self.next

    def take(self, what: str, *ops: int) -> int:
        """The next opcode, which must be one of `ops` (`what` the layout has there)."""
        op = self.peek()
        if op not in ops:
            self.fail(what)
        self.next = -1
        return op

    def fail(self, what: str) -> NoReturn:
        name = OPCODE_NAMES.get(self.next, f"the byte 0x{self.next:02x}")
        kind = Refused if self.next in CALLS else Damaged
        raise kind(f"at byte {self.at}: {name} where a .param file has {what}")

    def put(self, kind: str | None = None, value: Any = None) -> None:
        """An optional memo store of the value just made; `kind`: what a get may fetch it as
        (None: nothing may)."""
        if self.peek() not in ((MEMOIZE,) if self.proto == 4 else (BINPUT, LONG_BINPUT)):
            return
        op = self.take("a memo store", self.next)
        if op != MEMOIZE and self.number("<B" if op == BINPUT else "<I") != self.memo_size:
            raise Damaged(f"at byte {self.at}: a memo store out of order")
        if kind is not None:
            self.fetchable[self.memo_size] = (kind, value)
        self.memo_size += 1

    def get(self, what: str, *kinds: str) -> Any:
        """The value of a memo fetch of one of `kinds`."""
        return self.fetch(what, *kinds)[1]

    def fetch(self, what: str, *kinds: str) -> tuple[str, Any]:
        """(kind, value) of a memo fetch of one of `kinds`."""
        op = self.take(what, *GETS)
        index = self.number("<B" if op == BINGET else "<I")
        kind, value = self.fetchable.get(index, (None, None))
        if kind not in kinds:
            raise Damaged(f"at byte {self.at}: a memo fetch of {'something' if kind is None else 'a ' + kind} "
                          f"where a .param file has {what}")
        if kind == "name":  # a name may be fetched once: by the name table
            del self.fetchable[index]
        return kind, value

    # --- values ----------------------------------------------------------------------------------
    def integer(self, what: str) -> int:
        op = self.take(what, *INTS)
        if op != LONG1:
            return self.number({BININT1: "<B", BININT2: "<H", BININT: "<i"}[op])
        n = self.number("<B")
        if n > 8:
            raise Damaged(f"at byte {self.at}: an integer of {n} bytes where a .param file has {what}")
        return int.from_bytes(self.read(n), "little", signed=True)

    def exactly(self, value: int, what: str) -> None:
        self.peek()
        at = self.at
        if self.integer(what) != value:
            raise Damaged(f"at byte {at}: a number other than {value} where a .param file has {what}")

    def text(self, most: int, what: str) -> str:
        """A string of at most `most` characters, refused at its length before it is read."""
        op = self.take(what, SHORT_BINUNICODE, BINUNICODE) if self.proto == 4 else self.take(what, BINUNICODE)
        at, n = self.at, self.number("<B" if op == SHORT_BINUNICODE else "<I")
        if n > 4 * most:
            raise Damaged(f"at byte {at}: a string of {n:,} bytes where a .param file has {what}")
        try:
            s = self.read(n).decode("utf-8")
        except UnicodeDecodeError:
            raise Damaged(f"at byte {at}: a string that is not UTF-8") from None
        if len(s) > most:
            raise Damaged(f"at byte {at}: a string of {len(s):,} characters where a .param file has {what}")
        return s

    def batch(self, item: Callable[[], None], starts: tuple[int, ...], one: int, many: int, most: int,
              what: str, required: bool = False) -> None:
        """A container's items as Python's pickler writes them: MARK item{2,most} MANY, or
        item ONE, or (unless `required`) none. `starts`: the opcodes an item begins with."""
        op = self.peek()
        if op == MARK:
            self.take(what, MARK)
            count = 0
            while self.peek() != many:
                count += 1
                if count > most:
                    raise Damaged(f"at byte {self.at}: more than {most} {what}")
                item()
            self.take(what, many)
            if count < 2:
                raise Damaged(f"at byte {self.at}: a batch of {count} {what}, which Python's pickler never writes")
        elif op in starts:
            item()
            self.take(what, one)
        elif required:
            self.fail(what)

    def strings(self) -> tuple[int, ...]:
        return (SHORT_BINUNICODE, BINUNICODE) if self.proto == 4 else (BINUNICODE,)

    def global_(self, which: str, fetched: tuple[str, Any] | None = None) -> None:
        """numpy's (or _codecs') global `which`; `fetched`: a memo fetch already taken in its place."""
        what = f"the global {which}"
        if fetched is None:
            self.peek()
        at = self.at
        if fetched is None and self.next in GETS:
            fetched = self.fetch(what, "global", "global's name")
        if fetched is not None and fetched[0] == "global":
            if fetched[1] != which:
                raise Damaged(f"at byte {at}: the global {fetched[1]} where a .param file has {what}")
            return
        if self.proto < 4:
            self.take(what, GLOBAL)
            module, name = self.line(what), self.line(what)
        else:
            module = self.reusable(64, what, "global's name") if fetched is None else fetched[1]
            name = self.reusable(64, what, "global's name")
            self.take(what, STACK_GLOBAL)
        if GLOBALS.get((module, name)) != which:
            raise Refused(f"at byte {at}: the global {module[:60]}.{name[:60]} where a .param file has {what}")
        self.put("global", which)

    def reusable(self, most: int, what: str, kind: str, *others: str) -> str:
        """A string the pickler may have written before: fetched (as `kind` or `others`), or
        read and stored as `kind`."""
        if self.peek() in GETS:
            return self.get(what, kind, *others)
        s = self.text(most, what)
        self.put(kind, s)
        return s

    def line(self, what: str) -> str:
        """A GLOBAL's module or name: up to a newline, in at most 64 bytes."""
        at, out = self.pos, bytearray()
        while (c := self.read(1)) != b"\n":
            out += c
            if len(out) > 64:
                raise Damaged(f"at byte {at}: a line of more than 64 bytes where a .param file has {what}")
        return out.decode("latin-1")

    def encoded(self, n: int, what: str) -> bytearray:
        """Protocol 2's bytes: _codecs.encode(the bytes as a latin-1 string, 'latin1')."""
        self.global_("_codecs.encode")
        if n == 1 and self.peek() in GETS:  # one character the pickler wrote before (a name of one letter)
            data = bytearray(self.get(what, "char").encode("latin-1"))
        else:
            data = self.latin1_text(n, what)
        if self.reusable(6, what, "'latin1'") != "latin1":
            raise Damaged(f"at byte {self.at}: an encoding other than latin1 in {what}")
        self.take(what, TUPLE2)
        self.put()
        self.take(what, REDUCE)
        return data

    def latin1_text(self, n: int, what: str) -> bytearray:
        """The latin-1 string of protocol 2's bytes, decoded straight into `n` bytes."""
        self.take(what, BINUNICODE)
        at, length = self.at, self.number("<I")
        if not n <= length <= 2 * n:  # each byte is one or two bytes of UTF-8
            raise Damaged(f"at byte {at}: a string of {length:,} bytes where a .param file has {what} of {n:,} bytes")
        if length > self.size - self.pos:  # before the array's buffer is made
            self.read(length)
        data, done, utf8 = bytearray(n), 0, codecs.getincrementaldecoder("utf-8")()
        try:  # a megabyte at a time, into the array's own buffer
            for start in range(0, length, CHUNK):
                part = utf8.decode(self.read(min(CHUNK, length - start)), start + CHUNK >= length).encode("latin-1")
                if done + len(part) > n:
                    break
                data[done:done + len(part)], done = part, done + len(part)
        except UnicodeError:
            raise Damaged(f"at byte {at}: a string that is not latin-1 text in UTF-8") from None
        if done != n:
            raise Damaged(f"at byte {at}: more or fewer bytes than {what} of {n:,} bytes")
        self.put("char" if n == 1 else None, data.decode("latin-1") if n == 1 else None)
        return data

    def data(self, n: int, what: str) -> bytearray:
        """`n` bytes, read into an array's own buffer."""
        if self.proto == 2:
            return self.encoded(n, what)
        op = self.take(what, SHORT_BINBYTES, BINBYTES)
        at, length = self.at, self.number("<B" if op == SHORT_BINBYTES else "<I")
        if length != n:
            raise Damaged(f"at byte {at}: {length:,} bytes where a .param file has {what} of {n:,} bytes")
        return self.read(n, writable=True)

    # --- the rules -------------------------------------------------------------------------------
    def file(self) -> dict[str, Any]:
        head = self.f.read(12)
        if head[:1] != bytes([PROTO]):
            raise NotParam(f"it is not a pickle: it begins with {head!r}")
        self.f.seek(0)
        self.take("a pickle's protocol", PROTO)
        self.proto = self.number("<B")
        if not 2 <= self.proto <= 4:
            raise Damaged(f"at byte 1: pickle protocol {self.proto}, which paddle.save never writes")
        self.take("a dictionary", EMPTY_DICT)
        self.put()
        state: dict[str, Any] = {}
        self.batch(lambda: self.entry(state), self.strings(), SETITEM, SETITEMS, MAX_ENTRIES, "entries")
        self.take("the end of the pickle", STOP)
        if self.pos != self.size:
            raise Damaged(f"at byte {self.pos}: {self.size - self.pos:,} bytes after the end of the pickle")
        return state

    def entry(self, state: dict[str, Any]) -> None:
        if self.peek() in GETS:  # a one-character name, which Python's pickler stored as b'b''s or '<'
            name = self.get("a name", "char")
        else:
            name = self.text(MAX_NAME, "a name")
            # a name of one letter may come back as protocol 2's b'b' (the pickler reuses the string)
            self.put(None if name in (META, TABLE) else "char" if len(name) == 1 else "name", name)
        if name in state:
            raise Damaged(f"at byte {self.at}: the name {name[:60]!r} a second time")
        state[name] = self.meta() if name == META else self.table(state) if name == TABLE else self.array()

    def array(self) -> np.ndarray:
        what = "an array"
        self.global_("_reconstruct")
        self.global_("ndarray")
        self.exactly(0, what)
        self.take(what, TUPLE1)
        self.put()
        if self.peek() in GETS:
            self.get("b'b'", "b'b'")
        elif (self.encoded(1, "b'b'") if self.proto == 2 else self.data(1, "b'b'")) != b"b":
            raise Damaged(f"at byte {self.at}: other bytes where a .param file has b'b'")
        else:
            self.put("b'b'")
        self.take(what, TUPLE3)
        self.put()
        self.take(what, REDUCE)
        self.put()
        self.take(what, MARK)
        self.exactly(1, "an array's version")
        shape, dtype = self.shape(), self.dtype()
        self.take("an array in C order (False)", NEWFALSE)
        n = math.prod(shape) * dtype.itemsize
        data = self.data(n, f"the data of a {dtype.name} array of shape {shape}")
        self.put()
        self.take(what, TUPLE)
        self.put()
        self.take(what, BUILD)
        return np.frombuffer(data, dtype).reshape(shape)

    def shape(self) -> tuple[int, ...]:
        what = "an array's shape"

        def dim() -> int:
            self.peek()
            at, d = self.at, self.integer(what)
            if not 0 < d < 2**31:
                raise Damaged(f"at byte {at}: a dimension of {d} where a .param file has 1 to 2**31 - 1")
            return d
        dims: list[int] = []
        if self.peek() == EMPTY_TUPLE:
            self.take(what, EMPTY_TUPLE)
        else:
            dims.append(dim())
            while len(dims) < 3 and self.peek() in INTS:
                dims.append(dim())
            self.take(what, (TUPLE1, TUPLE2, TUPLE3)[len(dims) - 1])
        self.put()
        return tuple(dims)

    def dtype(self) -> np.dtype:
        what = "an array's dtype"
        fetched = self.fetch(what, "dtype", "global", "global's name") if self.peek() in GETS else None
        if fetched is not None and fetched[0] == "dtype":
            return fetched[1]
        self.global_("dtype", fetched)
        self.peek()  # the name is fetched where a dtype equals an earlier one but is not the same object
        at, name = self.at, self.reusable(4, "a dtype's name", "dtype's name")
        if name not in DTYPES:
            raise Refused(f"at byte {at}: arrays of type {name!r}; a .param file holds float32, float64, int32 and int64")
        for op in (NEWFALSE, NEWTRUE, TUPLE3):
            self.take(what, op)
        self.put()
        self.take(what, REDUCE)
        self.put("dtype", DTYPES[name])
        self.take(what, MARK)
        self.exactly(3, "a dtype's version")
        if self.reusable(1, "a byte order", "char") != "<":
            raise Damaged(f"at byte {self.at}: a byte order other than little-endian ('<')")
        for op in (NONE, NONE, NONE):
            self.take(what, op)
        for value in (-1, -1, 0):
            self.exactly(value, what)
        self.take(what, TUPLE)
        self.put()
        self.take(what, BUILD)
        return DTYPES[name]

    def meta(self) -> dict[str, Any]:
        self.take("meta: a dictionary", EMPTY_DICT)
        self.put()
        meta: dict[str, Any] = {}
        def field() -> None:  # noqa: E306
            key = self.text(MAX_KEY, "the name of a field of meta")
            if key in meta:
                raise Damaged(f"at byte {self.at}: meta's field {key!r} a second time")
            self.put()
            meta[key] = self.plain(f"meta's {key!r}: a number, a string, None or a list of numbers")
        self.batch(field, self.strings(), SETITEM, SETITEMS, MAX_FIELDS, "fields of meta", required=True)
        return meta

    def plain(self, what: str) -> Any:
        """A value of meta: None, a bool, an int, a finite float, a short string or a short list of ints."""
        op = self.peek()
        if op in (NONE, NEWTRUE, NEWFALSE):
            return {NONE: None, NEWTRUE: True, NEWFALSE: False}[self.take(what, op)]
        if op in INTS:
            return self.integer(what)
        if op == BINFLOAT:
            self.take(what, op)
            x = self.number(">d")
            if not math.isfinite(x):
                raise Damaged(f"at byte {self.at}: {x} where a .param file has {what}")
            return x
        if op in self.strings():
            s = self.text(MAX_TEXT, what)
            self.put()
            return s
        items: list[int] = []
        self.take(what, EMPTY_LIST)
        self.put()
        self.batch(lambda: items.append(self.integer("a list of numbers")), INTS, APPEND, APPENDS, MAX_LIST,
                   "items of a list of numbers", required=True)
        return items

    def table(self, state: dict[str, Any]) -> dict[str, str]:
        """Paddle's table of each entry's parameter name: (a name of this file, fetched once) -> str."""
        what = "the name table: a dictionary"
        self.take(what, EMPTY_DICT)
        self.put()
        table: dict[str, str] = {}
        def pair() -> None:  # noqa: E306
            name = self.reusable(MAX_NAME, "a name of this file", "name", "char")
            if not isinstance(state.get(name), np.ndarray) or name in table:
                raise Damaged(f"at byte {self.at}: the name table names {name[:60]!r}, no array or one named twice")
            table[name] = self.text(MAX_NAME, "a parameter's name")
            self.put()
        self.batch(pair, (*GETS, *self.strings()), SETITEM, SETITEMS, MAX_ENTRIES, "names of the name table")
        return table

