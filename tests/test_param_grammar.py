"""Reading a .param file from anyone (ppo_toolbox/param_grammar.py, param_files.load_state): every layout paddle.save
writes (Paddle 3.3 here, 3.0 in tests/fixtures/paddle300) reads back exactly; anything else, crafted or damaged, is
refused in one line at its first byte outside the grammar, within memory a small multiple of the file's size and
time linear in it."""
import io
import pickle
import pickletools
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import paddle
import ppo_mountaincar as pm
from ppo_toolbox import param_files, param_grammar
import pytest

from helpers import ROOT, TutorialActor, TutorialCritic, cli, one_line_error

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "paddle300"


def same(a, b) -> bool:
    """Equal data of equal types: dicts by key, arrays by dtype, shape and every byte."""
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return type(a) is type(b) and a == b


def read(data: bytes) -> dict:
    return param_grammar.read_param(io.BytesIO(data), len(data))


def stripped_of_frames(data: bytes) -> bytes:
    """The same protocol 4 pickle without its FRAME opcodes (Python's unpickler reads both)."""
    frames = [pos for op, _, pos in pickletools.genops(data) if op.name == "FRAME"]
    return b"".join(data[a + (9 if a in frames else 0):b] for a, b in zip([0, *frames], [*frames, len(data)]))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    """A file of every layout, by name: written here by paddle.save (this Paddle), and by Paddle 3.0."""
    folder = tmp_path_factory.mktemp("layouts")
    paddle.seed(3)
    agent = pm.PPO(2, 3, pm.Args())
    agent.obs_norm.update(np.random.default_rng(0).normal([-0.5, 0.0], [0.3, 0.02], (500, 2)))
    files = {"ours actor p4": agent.save_param(folder), "ours critic p4": folder / "critic_net.param"}
    ours = param_files.load_state(files["ours actor p4"])
    wide = pm.Actor(2, 3, (300, 300)).state_dict()  # arrays of 360 KB: written outside the frames
    tutorial_actor, tutorial_critic = TutorialActor(), TutorialCritic()
    for protocol in (2, 3, 4):
        writes = {"ours actor": param_files.sealed(ours), "plain state dict": pm.Actor(2, 3).state_dict(),
                  "tutorial actor": tutorial_actor.state_dict(), "tutorial critic": tutorial_critic.state_dict(),
                  "four dtypes": {n: paddle.to_tensor(np.arange(12).reshape(3, 4).astype(t)) for n, t in
                                  (("f4", "float32"), ("f8", "float64"), ("i4", "int32"), ("i8", "int64"))},
                  "wide numpy dict": {k: v.numpy() for k, v in wide.items()},
                  "one-letter names": {"b": paddle.ones([2]), "x": paddle.zeros([3])}}  # p2: 'b' is b'b''s string
        for name, obj in writes.items():
            files[f"{name} p{protocol}"] = folder / f"{name} p{protocol}.param".replace(" ", "_")
            paddle.save(obj, str(files[f"{name} p{protocol}"]), protocol=protocol)
    files["wide p4 without frames"] = folder / "wide_no_frames.param"
    files["wide p4 without frames"].write_bytes(stripped_of_frames(files["wide numpy dict p4"].read_bytes()))
    files.update({f"paddle 3.0 {p.stem}": p for p in sorted(FIXTURES.glob("*.param"))})
    return files


def test_every_layout_paddle_save_writes_reads_back_exactly(layouts):
    frames = {}
    for name, path in layouts.items():
        data = path.read_bytes()
        ops = [(op.name, pos) for op, _, pos in pickletools.genops(data)]
        frames[name] = sum(op == "FRAME" for op, _ in ops)
        assert same(read(data), pickle.loads(data)), name  # the files are ours: pickle is the reference
        state = param_files.load_state(path)  # checksums, where the file has one, match
        loaded = paddle.load(str(path), return_numpy=True)  # and paddle.load still reads every one
        assert set(loaded) == set(state) and all(np.array_equal(loaded[k], v) for k, v in state.items()
                                                 if k != "meta"), name
    # the layouts cover protocols 2, 3 and 4, pickles with frames and without, Paddle 3.0 and this one
    assert {int(name[-1]) for name in layouts if name[-2:] in ("p2", "p3", "p4")} == {2, 3, 4}
    assert frames["wide numpy dict p4"] >= 2 and frames["wide p4 without frames"] == frames["ours actor p2"] == 0
    assert len([n for n in layouts if n.startswith("paddle 3.0")]) == 5
    wide = read(layouts["wide numpy dict p4"].read_bytes())
    assert wide["net.2.weight"].shape == (300, 300) and wide["net.2.weight"].flags.writeable


def test_the_tutorials_and_paddle_3_0_files_load_as_networks(layouts):
    for name in ("tutorial actor p2", "tutorial actor p4", "paddle 3.0 tutorial_actor_p4", "paddle 3.0 ours_actor_p2"):
        actor = pm.load_actor(layouts[name])
        assert actor(paddle.zeros([1, 2])).shape == [1, 3], name
    assert pm.load_critic(layouts["paddle 3.0 tutorial_critic_p2"])(paddle.zeros([4, 2])).shape == [4]


def test_opcode_constants_are_pickles_own():
    codes = {op.name: ord(op.code) for op in pickletools.opcodes}
    for name, code in vars(param_grammar).items():
        if name.isupper() and type(code) is int and name in codes:
            assert codes[name] == code, name


def test_a_file_that_is_not_a_pickle_is_called_that(tmp_path):
    with pytest.raises(pm.UsageError) as e:
        param_files.load_state(ROOT / "README.md")
    assert "README.md is not a .param file (it is not a pickle" in str(e.value) and "code" not in str(e.value)
    assert "README.md is not a .param file" in one_line_error(cli("eval", str(ROOT / "README.md")))


# --- refusing: the reader's own checks -----------------------------------------------------------------------
RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's _reconstruct, under numpy 1 or 2


class Array:
    """Pickles as numpy pickles an array, with whatever dtype, shape, data and state object we say."""

    def __init__(self, dtype, shape, raw, state=None):
        self.state = state or (1, shape, np.dtype(dtype), False, raw)

    def __reduce__(self):
        return RECONSTRUCT, (np.ndarray, (0,), b"b"), self.state


def dumps(obj) -> bytes:
    return pickle.dumps(obj, protocol=4)


SHARED = [1, 2]
CRAFTED = {  # a file's bytes, and words of the one line that refuses it
    "object array": (dumps({"net.0.weight": Array("O", (1000,), [1])}), "arrays of type 'O8'"),
    "bool weights": (dumps({"net.0.weight": Array("b1", (2, 64), b"\x01" * 128)}), "arrays of type 'b1'"),
    "complex weights": (dumps({"net.0.weight": Array("c8", (2, 64), b"\0" * 1024)}), "arrays of type 'c8'"),
    "string weights": (dumps({"net.0.weight": Array("U3", (2,), b"\0" * 24)}), "arrays of type 'U3'"),
    "an array claiming 10 TB": (dumps({"net.0.weight": Array("f4", (10**12, 10), b"\0" * 16)}), "a dimension"),
    "data shorter than the shape": (dumps({"w": Array("f4", (4, 4), b"\0" * 60)}), "60 bytes where"),
    "a nested dict": (dumps({"w": {"x": {"y": 1}}}), "EMPTY_DICT where"),
    "a list of arrays": (dumps({"w": [np.zeros(2, np.float32)]}), "EMPTY_LIST where"),
    "a tuple as a name": (dumps({("w",): np.zeros(2, np.float32)}), "TUPLE1 where"),
    "a list shared in meta": (dumps({"meta": {"a": SHARED, "b": SHARED}}), "BINGET where"),
    "a set in meta": (dumps({"meta": {"a": {1, 2}}}), "EMPTY_SET where"),
    "os.system": (b"\x80\x04}\x94\x8c\x01w\x94\x8c\x02os\x94\x8c\x06system\x94\x93\x94.", "the global os.system"),
}


@pytest.mark.parametrize("kind", CRAFTED)
def test_crafted_contents_are_refused_where_they_begin(kind, tmp_path):
    data, words = CRAFTED[kind]
    path = tmp_path / "actor_net.param"
    path.write_bytes(data)
    with pytest.raises(pm.UsageError) as e:
        param_files.load_state(path)
    line = str(e.value)
    assert "\n" not in line and str(path) in line and "at byte" in line and words in line, line
    if kind == "os.system":
        assert "contains code or objects a .param file never holds" in line and "not loaded" in line


@pytest.mark.parametrize("meta, words", [
    (dict(format=np.zeros(2)), "meta's 'format'"),  # numeric arrays: no dtype refuses them
    (dict(checksum=np.zeros(64)), "meta's 'checksum'"),
    (dict(role=np.zeros(2)), "meta's 'role'"),
    (dict(activation=np.ones(2, np.float32)), "meta's 'activation'"),
    (dict(hidden_sizes=np.array([64, 64])), "meta's 'hidden_sizes'"),
    (dict(env_id=np.array([1.0])), "meta's 'env_id'"),
    (dict(norm_obs=np.array([1], np.int32)), "meta's 'norm_obs'"),
    (dict(hidden_sizes=[64, True]), "a list of numbers"),
    (dict(hidden_sizes=["64", "64"]), "a list of numbers"),
    (dict(obs_dim=10**30), "an integer of 13 bytes"),
    (dict(n_actions=float("nan")), "nan where"),
    (dict(format="2"), "its format is not a number"),
    (dict(format=2.0), "its format is not a number"),
    (dict(format=True), "its format is not a number"),
    (dict(format=3), "its format is not a number in 1..2"),
    (dict(checksum=5), "its checksum does not match"),
    (dict(obs_dim=2.0), "observation or action size"),
    (dict(env_id=7), "env id"),
    (dict(norm_obs=1), "normalisation"),
    (dict(activation=None), "activation"),
    (dict(role=5), "is not an actor .param file"),
])
def test_every_field_of_meta_is_checked_by_type_before_it_is_used(layouts, tmp_path, meta, words):
    """An attacker writes any value with a valid checksum (or none): each is one line, never a traceback."""
    state = param_files.load_state(layouts["ours actor p4"])
    state["meta"] = {**state["meta"], **{k: v for k, v in meta.items() if k != "checksum"}}
    sealed = param_files.sealed(state)
    if "checksum" in meta:
        sealed["meta"]["checksum"] = meta["checksum"]
    path = tmp_path / "actor_net.param"
    path.write_bytes(pickle.dumps(sealed, protocol=4))
    with pytest.raises(pm.UsageError) as e:
        pm.load_actor(path)
    assert "\n" not in str(e.value) and words in str(e.value), str(e.value)


# --- fuzzing ---------------------------------------------------------------------------------------------
def mutants(sources: list[bytes], rng: np.random.Generator, n: int):
    """Damaged copies of `sources`: a byte flipped, inserted or deleted, or a run of opcodes from
    one file inserted into or put in place of a run of another (at opcode boundaries)."""
    bounds = [[pos for _, _, pos in pickletools.genops(s)] + [len(s)] for s in sources]
    for i in range(n):
        k = int(rng.integers(len(sources)))
        data, cuts = sources[k], bounds[k]
        kind, at = i % 5, int(rng.integers(len(data)))
        if kind == 0:
            yield data[:at] + bytes([data[at] ^ int(rng.choice([1, 0x10, 0x80, 0xFF]))]) + data[at + 1:]
        elif kind == 1:
            yield data[:at] + bytes([int(rng.integers(256))]) + data[at:]
        elif kind == 2:
            yield data[:at] + data[at + 1 + int(rng.integers(3)):]
        else:  # a splice: opcodes of another file, inserted (3) or in place of this file's (4)
            j = int(rng.integers(len(sources)))
            a = int(rng.integers(len(bounds[j]) - 1))
            run = sources[j][bounds[j][a]:bounds[j][min(a + int(rng.integers(1, 7)), len(bounds[j]) - 1)]]
            c = int(rng.integers(len(cuts) - 1))
            end = cuts[min(c + (int(rng.integers(1, 5)) if kind == 4 else 0), len(cuts) - 1)]
            yield data[:cuts[c]] + run + data[end:]


def test_fuzzed_files_read_as_pickle_reads_them_or_are_refused_in_one_line_in_bounded_memory(layouts, tmp_path):
    names = ["paddle 3.0 ours_actor_p4", "paddle 3.0 ours_actor_p2", "paddle 3.0 tutorial_actor_p4",
             "paddle 3.0 tutorial_critic_p2", "paddle 3.0 plain_p3", "plain state dict p4"]
    sources = [layouts[n].read_bytes() for n in names]
    originals = [param_files.load_state(layouts[n]) for n in names]
    target = tmp_path / "actor_net.param"
    loaded = refused = worst = 0
    started = time.perf_counter()
    tracemalloc.start()
    try:
        for case in mutants(sources, np.random.default_rng(0), 6000):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            try:
                state = read(case)
            except param_grammar.Damaged as e:  # Refused and NotParam are kinds of Damaged
                assert "\n" not in str(e) and len(str(e)) < 300, str(e)
                refused += 1
                continue
            finally:  # peak memory within 8x the file's size + 16 KB (a few arrays' and dicts' headers)
                peak = tracemalloc.get_traced_memory()[1] - base
                assert peak < 8 * len(case) + 2**14, (peak, len(case))
                worst = max(worst, peak)
            loaded += 1  # read as Python's unpickler reads it (safe here: only numpy's globals got through)
            assert same(state, pickle.loads(case))
            if b"checksum" in case:  # a sealed file loads only with its own content, or is refused in one line
                target.write_bytes(case)
                try:
                    assert any(same(param_files.load_state(target), o) for o in originals)
                except pm.UsageError as e:
                    assert "\n" not in str(e) and "checksum" in str(e), str(e)
    finally:
        tracemalloc.stop()
    assert refused > 4000 and time.perf_counter() - started < 60, (loaded, refused)
    print(f"{loaded + refused} mutants: {loaded} read as pickle reads them, {refused} refused in one line; "
          f"peak memory at most {worst / 1024:.1f} KB")


# --- crafted files: the probes that crashed, flooded or stalled the pickle machine --------------------
def crafted_files() -> dict[str, bytes]:
    """Each built to break a pickle machine: crash it, flood its memory or stall it."""
    head = b"\x80\x04}\x94(\x8c\x0cnet.0.weight\x94"  # a dict and its first name, as paddle.save begins
    padding = b"".join(b"X" + struct.pack("<I", 2**18) + b"p" * 2**18 + b"0" for _ in range(6))  # strings popped
    payload = np.zeros(2**14, np.float32).tobytes()
    state = (1, (2**14,), np.dtype("f4"), False, payload)  # one state tuple, memoised once, fetched 1,000 times
    s = "s" * 262_000  # one string, memoised once, fetched 20,000 times beside a checksum
    flood = 2**20
    return {
        # 1.9 MB: 300,000 one-item tuples nested, then named as a global's module (hashed: a C stack overflow)
        "deep tuple at STACK_GLOBAL": head + padding + b"N" + b"\x85" * 300_000 + b"\x8c\x01x\x93.",
        "one payload rebuilt 1,000 times": dumps({f"w{i}": Array("f4", None, None, state) for i in range(1000)}),
        "one string fetched 20,000 times": pickle.dumps({"meta": {"format": 2, "checksum": "0" * 64,
                                                                  "x": [s] * 20_000}}, protocol=4),
        "set flood": b"\x80\x04" + b"\x8f" * flood,
        "memo flood": b"\x80\x04}" + b"\x94" * flood,
        "mark flood": b"\x80\x04}" + b"(" * flood,
        "recall flood": b"\x80\x04}\x94" + b"h\x00" * (flood // 2),
        "frame flood": b"\x80\x04" + (b"\x95" + b"\x00" * 8) * (flood // 9),
        "2^62 bytes claimed": head + b"\x8e" + struct.pack("<Q", 2**62) + b"x" * 64,
        "a large string": b"\x80\x04}\x94X" + struct.pack("<I", flood) + b"a" * flood + b".",
        "a 5,000-digit int": pickle.dumps({"meta": {"format": 10**5000}}, protocol=4),
        "memoize at 2^32-1": b"\x80\x04N\x95" + struct.pack("<I", 2**32 - 1) + b".",
        "frozenset": dumps({"meta": frozenset(range(10))}),
        "deep tuple as a key": b"\x80\x04}" + b"N" + b"\x85" * 200_000 + b"K\x00s.",
        "deep set": b"\x80\x04" + b"\x8f" * 200_000 + b".",
        "colliding int keys": b"\x80\x04}(" + b"".join(b"\x8a\x10" + (k * (2**61 - 1)).to_bytes(16, "little", signed=True)
                                                        + b"G" + b"\0" * 8 for k in range(1, 60_001)) + b"u.",
        "data of no array": head + b"B" + struct.pack("<I", flood) + b"\0" * flood + b".",
        "protocol 2's data claiming 2 GB": pickle.dumps({"w": np.zeros(3, np.float32)}, protocol=2).replace(
            b"K\x03\x85", b"J" + struct.pack("<i", 2**29) + b"\x85").replace(b"X\x0c\0\0\0", b"X\xff\xff\xff\xff"),
    }


def test_crafted_files_are_refused_at_once_in_bounded_memory_and_time(tmp_path):
    """Each refused in one line naming its offset, reading at most a small multiple of its size
    in memory and in time under 1 s + 1 s per MB: in a fresh process, which a crash would end."""
    probe = ("import sys, time, tracemalloc; sys.path.insert(0, sys.argv[1])\n"
             "from ppo_toolbox.param_files import load_state\nfrom ppo_toolbox.errors import UsageError\n"
             "for path in sys.argv[2:]:\n"
             "    tracemalloc.start(); t = time.perf_counter()\n"
             "    try:\n        load_state(path); result = 'loaded'\n"
             "    except UsageError as e:\n        result = str(e)\n"
             "    print(time.perf_counter() - t, tracemalloc.get_traced_memory()[1], result, flush=True)\n"
             "    tracemalloc.stop()\n")
    files = crafted_files()
    paths = []
    for i, data in enumerate(files.values()):
        paths.append(tmp_path / f"{i}.param")
        paths[-1].write_bytes(data)
    p = subprocess.run([sys.executable, "-c", probe, str(ROOT), *map(str, paths)], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])  # a crash (SIGSEGV) fails here
    for (name, data), line in zip(files.items(), p.stdout.splitlines()):
        seconds, peak, result = line.split(" ", 2)
        size = len(data)
        assert result != "loaded" and "at byte" in result, (name, result)
        assert float(seconds) < 1 + size / 2**20, (name, seconds)
        assert int(peak) < 8 * size + 2**20, (name, peak, size)
    assert len(p.stdout.splitlines()) == len(files)


def test_a_network_file_is_read_by_the_grammar_whatever_its_name(tmp_path):
    """Only a checkpoint's own reader (checkpoint.py) reads a .ckpt with the pickle machine."""
    path = tmp_path / "actor.ckpt"
    path.write_bytes(crafted_files()["deep tuple at STACK_GLOBAL"])
    with pytest.raises(pm.UsageError, match="at byte 20: a string of 262,144 bytes"):
        pm.load_actor(path)


def test_refusing_a_crafted_file_costs_no_more_memory_than_a_plain_eval(layouts, tmp_path):
    """The whole program, as a user runs it: exit code 2, one line, no more memory than a plain eval."""
    def peak_rss(path):
        code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
                "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(p.stderr, end='')")
        out = subprocess.run([sys.executable, "-c", code, sys.executable, str(ROOT / "ppo_mountaincar.py"), "eval",
                              "--episodes", "100", str(path)], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300).stdout.split("\n", 1)
        returncode, kb = out[0].split()
        return int(returncode), out[1], int(kb) / 1024
    _, _, plain = peak_rss(layouts["ours actor p4"])
    # the memory flood (a crash is test_crafted_files_are_refused_at_once_in_bounded_memory_and_time's)
    (tmp_path / "crafted.param").write_bytes(crafted_files()["one payload rebuilt 1,000 times"])
    code, stderr, mb = peak_rss(tmp_path / "crafted.param")
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "at byte" in lines[0], stderr
    assert mb < plain + 20, (mb, plain)


def test_the_reader_reads_a_large_file_in_memory_near_its_size(tmp_path):
    """A 4 MB network in protocols 4 and 2: peak memory within 4x the file (protocol 2's data is
    text, decoded once) and time well under a second per MB."""
    state = {"w": np.random.default_rng(0).normal(size=(1000, 1000)).astype(np.float32), "b": np.ones(3, np.float32)}
    for protocol in (4, 2):
        path = tmp_path / f"big{protocol}.param"
        paddle.save(state, str(path), protocol=protocol)
        tracemalloc.start()
        started = time.perf_counter()
        got = param_files.load_state(path)
        seconds, peak = time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        size = path.stat().st_size
        assert same(got, state) and peak < 4 * size + 2**20 and seconds < 1 + size / 2**20, (protocol, peak, seconds)
