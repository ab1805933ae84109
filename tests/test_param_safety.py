"""A .param file from anyone (ppo_toolbox/param_files.py, network_files.py): crafted files never run code, crash Python or
allocate more than the file's size; damaged files are detected by their checksum; every
failure is one line and exit code 2."""
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paddle
import ppo_mountaincar as pm
from ppo_toolbox import acting, evaluation, figures, network_files, param_files
import pytest

from helpers import ROOT, cli, one_line_error


class Array:
    """Pickles as numpy would pickle an array, with whatever dtype, shape and data we say."""

    def __init__(self, dtype, shape, raw):
        self.dtype, self.shape, self.raw = dtype, shape, raw

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                (1, self.shape, np.dtype(self.dtype), False, self.raw))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A freshly saved actor/critic pair and the state the actor file holds."""
    folder = tmp_path_factory.mktemp("good")
    paddle.seed(3)
    agent = pm.PPO(2, 3, pm.Args())
    agent.obs_norm.update(np.random.default_rng(0).normal([-0.5, 0.0], [0.3, 0.02], (500, 2)))
    path = agent.save_param(folder)
    return path, param_files.load_state(path)


def resealed(state, tmp_path, name="actor_net.param", **meta):
    """A crafted file with a valid checksum: what an attacker can always write."""
    state = {**state, "meta": {**state["meta"], **meta}} if meta else state
    path = tmp_path / name
    paddle.save(param_files.sealed(state), str(path))
    return path


def refused(path, *words):
    with pytest.raises(pm.UsageError) as e:
        pm.load_actor(path)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)
    return str(e.value)


def test_an_env_id_from_a_file_never_imports_a_module(good, tmp_path):
    # a folder as downloaded: a policy naming "evilmod:Car-v0", and evilmod.py beside it
    marker = tmp_path / "ran"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    path = resealed(good[1], tmp_path, env_id="evilmod:Car-v0")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    for command in (["eval", str(path)], ["replay", str(path), "--out", str(tmp_path / "r.gif")],
                    ["plot", "--param", str(path), str(tmp_path)]):
        proc = subprocess.run([sys.executable, str(ROOT / "ppo_mountaincar.py"), *command], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert "would import the module 'evilmod'" in one_line_error(proc) or command[0] == "plot", proc.stderr
        assert not marker.exists(), command
    sys.path.insert(0, str(tmp_path))
    try:  # in a notebook: load_policy works, running it in the file's env is refused
        actor, meta = pm.load_actor(path), network_files.read_network(path, "actor").meta
        with pytest.raises(pm.UsageError, match="--allow-env-module"):
            evaluation.env_for(meta)
        with pytest.raises(pm.UsageError, match="would import"):
            figures.policy_value_figure(acting.NumpyNet(actor), None, meta["env_id"])
        assert not marker.exists()
    finally:
        sys.path.remove(str(tmp_path))


def test_allow_env_module_imports_only_what_the_command_line_names(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "mymod.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    base = [sys.executable, str(ROOT / "ppo_mountaincar.py"), "--env-id", "mymod:Car-v0", "--quiet",
            "--logdir", str(tmp_path / "exp"), "--param-dir", str(tmp_path / "p")]
    refusal = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)
    assert "--allow-env-module" in one_line_error(refusal) and not marker.exists()
    allowed = subprocess.run(base + ["--allow-env-module"], env=env, capture_output=True, text=True, timeout=120)
    assert marker.exists()  # imported, as asked; the env itself does not exist there: one line
    assert "cannot make env 'mymod:Car-v0'" in one_line_error(allowed)


CRAFTED = {
    # numpy's own restore of an object array reads past a list shorter than its shape (a segfault)
    "object array": lambda: {"net.0.weight": Array("O", (1000,), [1])},
    "bool weights": lambda: {"net.0.weight": Array("b1", (2, 64), b"\x01" * 128)},
    "complex weights": lambda: {"net.0.weight": Array("c8", (2, 64), b"\0" * 1024)},
    "string weights": lambda: {"net.0.weight": Array("U3", (2,), b"\0" * 24)},
    "an array claiming 10 TB": lambda: {"net.0.weight": Array("f4", (10**12, 10), b"\0" * 16)},
}


@pytest.mark.parametrize("kind", CRAFTED)
def test_crafted_arrays_are_refused(kind, tmp_path):
    path = tmp_path / "actor_net.param"
    path.write_bytes(pickle.dumps(CRAFTED[kind](), protocol=4))
    refused(path, str(path))


def test_crafted_containers_are_refused(tmp_path):
    selfish = []
    selfish.append(selfish)
    bomb = [1.0]
    for _ in range(80):  # 2^80 paths through 80 shared lists
        bomb = [bomb, bomb]
    for name, obj in (("self", {"net.0.weight": selfish}), ("bomb", {"net.0.weight": bomb})):
        path = tmp_path / f"{name}.param"
        path.write_bytes(pickle.dumps(obj, protocol=4))
        refused(path, "nests or repeats")
    memo = tmp_path / "memo.param"  # 9 bytes: memoize None at index 2^32-1
    memo.write_bytes(b"\x80\x04N\x95" + struct.pack("<I", 2**32 - 1) + b".")
    refused(memo)


@pytest.mark.parametrize("meta, words", [
    (dict(hidden_sizes=[-64, 64]), "hidden sizes"),
    (dict(hidden_sizes=[10**6, 10**6]), "larger than the file"),
    (dict(obs_dim=10**9), "observation or action size"),
    (dict(obs_dim=True), "observation or action size"),
    (dict(activation="sigmoid"), "activation"),
    (dict(env_id=["MountainCar-v0"]), "env id"),
])
def test_crafted_network_descriptions_are_refused_before_building(good, tmp_path, meta, words):
    refused(resealed(good[1], tmp_path, **meta), "is damaged", words)


def test_weights_of_the_wrong_kind_are_refused(good, tmp_path):
    state = good[1]
    w = state["net.0.weight"]
    for name, value in (("f64", w.astype(np.float64)), ("ragged", [[1.0, 2.0], [3.0]]), ("list", w.tolist()),
                        ("nan", np.full_like(w, np.nan)), ("1-D", w.ravel())):
        path = resealed({**state, "net.0.weight": value}, tmp_path, f"{name}.param")
        refused(path, "is damaged")
    missing = resealed({**state, "meta": {k: v for k, v in state["meta"].items() if k != "env_id"}}, tmp_path)
    with pytest.raises(pm.UsageError, match="pass --env-id"):  # loads; asks which env to run it in
        evaluation.env_for(network_files.read_network(missing, "actor").meta)


def test_a_one_dimensional_tutorial_weight_is_not_taken_for_a_tutorial_file(tmp_path):
    path = tmp_path / "actor_net.param"
    paddle.save({"fc1.weight": np.zeros(256, np.float32), "fc1.bias": np.zeros(128, np.float32),
                 "action_head.weight": np.zeros((128, 3), np.float32),
                 "action_head.bias": np.zeros(3, np.float32)}, str(path))
    refused(path, "not an actor .param file")


def peak_rss(argv, cwd):
    """Run argv in a child process; (its result, its peak resident memory in MB)."""
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(p.stderr, end='')")
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True,
                         timeout=120).stdout.split("\n", 1)
    code_, kb = out[0].split()
    return int(code_), out[1], int(kb) / 1024


def test_refusing_a_crafted_file_costs_no_more_memory_than_a_plain_eval(good, tmp_path):
    files = {"selfish": None, "memo": None, "neg": None, "obs": None, "huge": None}
    selfish = []
    selfish.append(selfish)
    (tmp_path / "selfish.param").write_bytes(pickle.dumps({"net.0.weight": [selfish] * 3}, protocol=4))
    (tmp_path / "memo.param").write_bytes(b"\x80\x04N\x95" + struct.pack("<I", 2**32 - 1) + b".")
    resealed(good[1], tmp_path, "neg.param", hidden_sizes=[-10**5, -10**5])
    resealed(good[1], tmp_path, "obs.param", obs_dim=MAXOBS)
    (tmp_path / "huge.param").write_bytes(pickle.dumps({"w": Array("f4", (10**9,), b"\0" * 8)}, protocol=4))
    script = [sys.executable, str(ROOT / "ppo_mountaincar.py"), "eval", "--episodes", "100"]
    _, _, plain = peak_rss(script + [str(good[0])], tmp_path)
    for name in files:
        code, stderr, mb = peak_rss(script + [str(tmp_path / f"{name}.param")], tmp_path)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), stderr
        assert mb < plain + 20, (name, mb, plain)  # the files are a few KB


MAXOBS = network_files.MAX_OBS_DIM


def test_every_byte_flip_and_truncation_is_a_correct_load_or_one_line(tmp_path):
    path = ROOT / "param" / "pretrained" / "actor_net.param"  # the file users get
    state = param_files.load_state(path)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    cases = [data[:n] for n in rng.choice(len(data), 100, replace=False)]
    for i in rng.choice(len(data), 300, replace=False):  # one bit or one byte, anywhere in the file
        flipped = bytearray(data)
        flipped[i] ^= int(rng.choice([1, 0x10, 0xFF]))
        cases.append(bytes(flipped))
    loaded = errors = 0
    target = tmp_path / "actor_net.param"
    started = time.perf_counter()
    for case in cases:
        target.write_bytes(case)
        try:
            actor = pm.load_actor(target)
        except pm.UsageError as e:
            assert "\n" not in str(e) and str(target) in str(e), str(e)
            errors += 1
            continue
        loaded += 1  # only a flip that changes no content (e.g. a memo index) may load: same weights
        assert all(np.array_equal(v.numpy(), state[k]) for k, v in actor.state_dict().items())
    assert errors >= 350 and time.perf_counter() - started < 60, (loaded, errors)
    print(f"{len(cases)} damaged copies: {loaded} loaded with identical content, {errors} refused in one line")


def crafted_pickles(mb: int) -> dict[str, bytes]:
    """Files of about `mb` MB built to crash, flood or stall an unpickler, by kind."""
    n = mb * 2**20
    deep = b"N" + b"\x85" * 200_000  # None, then TUPLE1 200,000 times: (((...),),)
    # {k * (2^61 - 1): 0.0}: one hash for every key (built as bytes: as a dict it takes minutes)
    colliding = b"".join(b"\x8a" + bytes([len(key)]) + key + b"G" + b"\0" * 8 for key in
                         ((k * (2**61 - 1)).to_bytes(16, "little", signed=True) for k in range(1, 60_001)))
    return {
        "set flood": b"\x80\x04" + b"\x8f" * n,                                   # EMPTY_SET
        "frozenset": pickle.dumps({"meta": frozenset(range(10))}, protocol=4),
        "deep tuple as a key": b"\x80\x04}" + deep + b"K\x00s.",  # {((...),): 0}
        "deep set": b"\x80\x04" + b"\x8f" * 200_000 + b".",
        "ordered dict of pairs": pickle.dumps(__import__("collections").OrderedDict([((1, (2,)), 3)]), protocol=4),
        "colliding int keys": b"\x80\x04}(" + colliding + b"u.",
        "a 5,000-digit int": pickle.dumps({"meta": {"format": 10**5000}}, protocol=4),
        "memo flood": b"\x80\x04N" + b"\x94" * n,
        "mark flood": b"\x80\x04" + b"(" * n,
        "dict flood": b"\x80\x04" + b"}" * n,
        "list flood": b"\x80\x04" + b"]" * n,
        "recall flood": b"\x80\x04N\x94" + b"h\x00" * (n // 2),
        "frame flood": b"\x80\x04" + (b"\x95" + b"\x00" * 8) * (n // 9),
        "2^62 bytes claimed": b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"x" * 64,
        "a large string": b"\x80\x04X" + struct.pack("<I", n - 8) + b"a" * (n - 8) + b".",
        "data of no array": b"\x80\x04B" + struct.pack("<I", n - 8) + b"\0" * (n - 8) + b".",
        "os.system": b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R.",
    }


def test_the_reader_refuses_floods_and_traps_while_reading_in_bounded_memory_and_time(tmp_path):
    """Each crafted file is refused with Damaged or Refused by a reader that stops at the first
    thing a .param file never holds: never a crash, and within a plain load's memory + 64 MB
    and 2 s per MB (each file in a fresh process that imports only the reader)."""
    # VmHWM, not ru_maxrss: the latter keeps the peak of the forked parent (pytest) across exec
    probe = ("import sys, time; sys.path.insert(0, sys.argv[1])\n"
             "from ppo_toolbox.param_files import load_state\nfrom ppo_toolbox.errors import UsageError\n"
             "t = time.perf_counter()\n"
             "try:\n    load_state(sys.argv[2]); result = 'loaded'\n"
             "except UsageError as e:\n    result = str(e)\n"
             "peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
             "print(time.perf_counter() - t, int(peak.split()[1]) / 1024)\n"
             "print(result)\n")

    def measure(path):
        p = subprocess.run([sys.executable, "-c", probe, str(ROOT), str(path)], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr  # a crash (SIGSEGV) or a traceback fails here
        (seconds, mb), result = p.stdout.split("\n", 1)[0].split(), p.stdout.split("\n", 1)[1].strip()
        return float(seconds), float(mb), result

    _, plain, result = measure(ROOT / "param" / "pretrained" / "actor_net.param")
    assert result == "loaded"
    for name, data in crafted_pickles(mb=16).items():
        path = tmp_path / "crafted.param"
        path.write_bytes(data)
        seconds, mb, result = measure(path)
        assert result != "loaded" and str(path) in result and "\n" not in result, (name, result)
        assert mb < plain + 64, (name, mb, plain)
        assert seconds < 1 + 2 * len(data) / 2**20, (name, seconds)
