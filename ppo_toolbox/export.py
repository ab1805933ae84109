"""A trained policy for other programs: `export_policy` writes, from an actor .param file, a
Paddle Inference model (`policy.json` + `policy.pdiparams`: raw state in, action logits out,
the observation statistics inside, any batch size), an ONNX model (`policy.onnx`, when
paddle2onnx is installed), `policy_info.json` (what `eval DIR` needs) and a `README.md` card;
`ExportedPolicy` runs either one as a policy, after checking the folder as a file from anyone
(regular files no larger than export writes, JSON that parses, the info's sizes typed and
matched by the model). Top layer: it imports `ppo_mountaincar` (to build the actor), paddle,
numpy and the toolbox."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import paddle
from paddle import inference

from .errors import UsageError
from .acting import NumpyNet
from .evaluation import HOLDOUT_SEED, env_for, evaluate, make_policy
from .network_files import read_network
from .run_folder import NOFOLLOW, NONBLOCK, remove_stale_temporaries
from .settings import MAX_WEIGHTS

PARITY_STATES = 10_000
TOLERANCE = 1e-5  # logits of the exported model against the .param's
MAX_SIZE = 4096   # inputs or actions an exported model may have
# The largest files export writes: the weights as float32 (.pdiparams, and the same inside
# .onnx) with room for the observation statistics and the graph; a program of at most
# MAX_LAYERS layers (about 20 KB); the info.
EXPORTED_FILES = {"policy.json": 2**18, "policy.pdiparams": 4 * MAX_WEIGHTS + 2**20,
                  "policy.onnx": 4 * MAX_WEIGHTS + 2**20, "policy_info.json": 2**16}
WORK_FOLDER = ".export-"  # where export writes before moving the files in; stale ones are removed


def export_policy(path: str | Path, out: str | Path, trusted_env: str | None = None) -> dict[str, Any]:
    """Write the exported policy of the actor at `path` into the folder `out` (made if
    missing; files already there by these names are replaced, others left alone). Nothing
    half-written stays: the files are made in a temporary folder beside it, checked against
    the .param on 10,000 states, and only then moved in. Returns what was written and measured."""
    import ppo_mountaincar as pm
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder for the exported model")
    actor, net_file = pm.load_actor(path), read_network(path, "actor", note=False)  # load_actor said any note
    meta = net_file.meta
    env_id = env_for(meta, trusted_env=trusted_env) if meta["env_id"] else None
    try:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out, WORK_FOLDER + "*")  # left by an export that was killed
        work = Path(tempfile.mkdtemp(dir=out, prefix=WORK_FOLDER))
    except OSError as e:
        raise UsageError(f"cannot write to {out} ({e.strerror}); choose another --out") from None
    sizes = (meta["obs_dim"], meta["n_actions"])
    try:
        layer = RawStateLogits(actor)
        layer.eval()
        spec = [paddle.static.InputSpec([None, meta["obs_dim"]], "float32", "state")]
        paddle.jit.save(layer, str(work / "policy"), input_spec=spec)
        states = parity_states(actor, meta, env_id)
        with paddle.no_grad():
            expected = actor.logits(paddle.to_tensor(states)).numpy()
        report = dict(env_id=env_id, obs_dim=meta["obs_dim"], n_actions=meta["n_actions"],
                      hidden_sizes=meta["hidden_sizes"], activation=meta["activation"], norm_obs=meta["norm_obs"],
                      source=str(Path(path).name), parity_states=len(states))
        report["paddle_inference"] = parity(written_back(work, "paddle", sizes).logits(states), expected)
        why_no_onnx = export_onnx(work)
        if why_no_onnx is None:
            report["onnx"] = parity(written_back(work, "onnx", sizes).logits(states), expected)
        for runtime in ("paddle_inference", "onnx"):
            if runtime in report and not report[runtime]["ok"]:
                raise UsageError(f"the exported {runtime} model does not match {path} (max logit difference "
                                 f"{report[runtime]['max_logit_difference']:.2e}); nothing was written")
        if env_id is not None:
            policy = make_policy(NumpyNet.from_state(net_file.state, meta))
            report["held_out_return"] = evaluate(policy, env_id, 100, HOLDOUT_SEED)["mean_return"]
        (work / "policy_info.json").write_text(json.dumps(report, indent=2) + "\n")
        (work / "README.md").write_text(card(report))
        written = []
        for f in sorted(work.iterdir()):
            os.replace(f, out / f.name)  # each file whole, or the old one
            written.append(str(out / f.name))
    except OSError as e:
        fix = "free space, or choose another --out" if e.errno == errno.ENOSPC else "choose another --out"
        raise UsageError(f"cannot write to {out} ({e.strerror}); nothing was written; {fix}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dict(report, files=written, why_no_onnx=why_no_onnx)


def written_back(work: Path, runtime: str, sizes: tuple[int, int]) -> ExportedPolicy:
    """The model just written, loaded back. Paddle's writer and paddle2onnx's do not report a
    full disk: they leave a cut file, so a model that does not load back was not written."""
    try:
        return ExportedPolicy(work, runtime, sizes)
    except UsageError:
        full = shutil.disk_usage(work).free < 2**20
        raise OSError(errno.ENOSPC if full else errno.EIO, os.strerror(errno.ENOSPC) if full else
                      "the model written there does not load back") from None


class RawStateLogits(paddle.nn.Layer):
    """What is exported: raw state -> the actor's logits (its observation normalisation first)."""

    def __init__(self, actor: Any):
        super().__init__()
        self.actor = actor

    def forward(self, state: paddle.Tensor) -> paddle.Tensor:
        return self.actor.logits(state)


def parity_states(actor: Any, meta: dict[str, Any], env_id: str | None) -> np.ndarray:
    """10,000 states drawn uniformly over the env's observation box (where a side is unbounded,
    over the observation statistics' mean +/- 5 standard deviations, or [-10, 10])."""
    low, high = np.full(meta["obs_dim"], -10.0), np.full(meta["obs_dim"], 10.0)
    if meta["norm_obs"]:
        mean, std = actor.obs_norm.mean.numpy(), np.sqrt(actor.obs_norm.var.numpy())
        low, high = mean - 5 * std, mean + 5 * std
    if env_id is not None:
        from .envs import make_env
        env = make_env(env_id)
        box_low, box_high = env.observation_space.low, env.observation_space.high
        env.close()
        low, high = np.where(np.isfinite(box_low), box_low, low), np.where(np.isfinite(box_high), box_high, high)
    return np.random.default_rng(0).uniform(low, high, (PARITY_STATES, meta["obs_dim"])).astype(np.float32)


def parity(logits: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """How far the exported logits are from the .param's: within 1e-5, scaled by the largest
    logit where that exceeds 1 (float32 rounds a logit of 300 to about 3e-5), and the same
    greedy action on every state."""
    diff = float(np.abs(logits - expected).max())
    same = float((logits.argmax(1) == expected.argmax(1)).mean())
    scale = max(1.0, float(np.abs(expected).max()))
    return dict(max_logit_difference=diff, largest_logit=scale, same_greedy_action=same,
                ok=diff <= TOLERANCE * scale and same == 1.0)


def export_onnx(folder: Path) -> str | None:
    """policy.onnx from the Paddle model, with paddle2onnx's optimiser off (it can install
    packages by itself). Returns None, or a line saying why there is no ONNX model."""
    try:
        import onnxruntime  # noqa: F401
        import paddle2onnx
    except ImportError:
        return ("policy.onnx not written: the ONNX export needs paddle2onnx and onnxruntime "
                "(pip install -r requirements-export.txt)")
    # optimize_tool="None": its default (Polygraphy) sets POLYGRAPHY_AUTOINSTALL_DEPS=1 and runs
    # pip install by itself when a module is missing; nothing may install on a user's behalf
    with _quiet_output():  # its C++ core prints progress on stdout
        try:
            paddle2onnx.export(str(folder / "policy.json"), str(folder / "policy.pdiparams"),
                               str(folder / "policy.onnx"), opset_version=11, enable_optimize=False,
                               optimize_tool="None", verbose=False)
        except Exception as e:  # noqa: BLE001 - its C++ core's errors; a full disk among them
            raise OSError(errno.EIO, f"paddle2onnx failed: {type(e).__name__}") from None
    return None


@contextlib.contextmanager
def _quiet_output() -> Iterator[None]:
    """stdout and stderr, the C-level ones too, sent to /dev/null for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


class ExportedPolicy:
    """An exported model as a policy: `logits(states)` and, called, greedy actions (argmax);
    `runtime` "paddle" (Paddle Inference) or "onnx" (onnxruntime). Its files are checked
    before the runtime sees them (`exported_file`), and the model must map `sizes` (the
    inputs and actions of policy_info.json, unless given) as the info says."""

    def __init__(self, folder: str | Path, runtime: str = "paddle", sizes: tuple[int, int] | None = None):
        folder = Path(folder)
        self.runtime = runtime
        if sizes is None:
            info = read_info(folder)
            sizes = info["obs_dim"], info["n_actions"]
        if runtime == "onnx":
            model = read_exported(folder, "policy.onnx")
            try:
                import onnxruntime
            except ImportError:
                raise UsageError("running policy.onnx needs onnxruntime: pip install -r requirements-export.txt "
                                 f"(or pass the folder {folder}: Paddle Inference runs it)") from None

            def loading() -> Any:
                return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        else:
            program = read_exported(folder, "policy.json")
            try:
                if not isinstance(json.loads(program), dict):
                    raise ValueError
            except (ValueError, RecursionError):  # RecursionError: nesting past the parser's depth
                raise UsageError(f"{folder / 'policy.json'} is not a Paddle program written by export; export "
                                 "the policy again") from None
            params = exported_file(folder, "policy.pdiparams")

            def loading() -> Any:
                config = inference.Config(str(folder / "policy.json"), str(params))
                config.disable_gpu()
                config.disable_glog_info()
                config.set_cpu_math_library_num_threads(1)
                return inference.create_predictor(config)
        files = "policy.onnx does" if runtime == "onnx" else "policy.json and policy.pdiparams do"
        try:  # the one place a runtime loads a model: its failure is one line
            self.model = loading()
        except Exception:  # noqa: BLE001 - the runtimes raise their own types
            raise UsageError(f"{files} not load as a model from {folder} (damaged, or not written by export); "
                             "export the policy again") from None
        try:
            probe = self.logits(np.zeros((1, sizes[0]), np.float32))
        except Exception:  # noqa: BLE001 - e.g. a model of another input size
            probe = None
        if probe is None or probe.shape != (1, sizes[1]) or not np.isfinite(probe).all():
            raise UsageError(f"{files} not map {sizes[0]} inputs to {sizes[1]} actions as "
                             f"{folder / 'policy_info.json'} says; export the policy again")

    def logits(self, states: np.ndarray) -> np.ndarray:
        states = np.ascontiguousarray(states, np.float32)
        if self.runtime == "onnx":
            return self.model.run(None, {self.model.get_inputs()[0].name: states})[0]
        p = self.model
        handle = p.get_input_handle(p.get_input_names()[0])
        handle.reshape(list(states.shape))
        handle.copy_from_cpu(states)
        p.run()
        return p.get_output_handle(p.get_output_names()[0]).copy_to_cpu()

    def __call__(self, states: np.ndarray) -> np.ndarray:
        return self.logits(states).argmax(1)


def exported_file(folder: Path, name: str) -> Path:
    """`folder/name` if it is a regular file (not a link, a FIFO or a device) no larger than
    export writes it; else one line."""
    path = folder / name
    try:
        st = os.lstat(path)
    except OSError:
        raise UsageError(f"no such file: {path}; pass a folder written by export" +
                         (" with paddle2onnx and onnxruntime installed (pip install -r requirements-export.txt)"
                          if name == "policy.onnx" else "")) from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is {'a link' if stat.S_ISLNK(st.st_mode) else 'not a regular file'}; an exported "
                         "folder holds only the files export wrote: export the policy again")
    if st.st_size > EXPORTED_FILES[name]:
        raise UsageError(f"{path} is larger than any file export writes ({st.st_size:,} bytes); export the "
                         "policy again")
    return path


def read_exported(folder: Path, name: str) -> bytes:
    """The bytes of `exported_file(folder, name)`, read without following a link or waiting on a FIFO."""
    path = exported_file(folder, name)
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | NONBLOCK | getattr(os, "O_BINARY", 0))
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped since exported_file looked
                raise OSError(errno.EINVAL, "not a regular file")
            data = f.read(EXPORTED_FILES[name] + 1)
    except OSError as e:
        raise UsageError(f"cannot read {path} ({e.strerror}); export the policy again") from None
    if len(data) > EXPORTED_FILES[name]:  # it grew since exported_file looked
        raise UsageError(f"{path} is larger than any file export writes; export the policy again")
    return data


def read_info(folder: Path) -> dict[str, Any]:
    """An exported folder's policy_info.json, checked: the env and sizes `eval DIR` needs,
    each of its type (before it is compared) and in range."""
    def refused(why: str) -> UsageError:
        return UsageError(f"{folder} is not a folder written by export (policy_info.json: {why}); pass an actor "
                          ".param or an exported folder")
    try:
        info = json.loads(read_exported(folder, "policy_info.json"))
    except (ValueError, RecursionError):  # RecursionError: nesting past the parser's depth
        raise refused("not JSON") from None
    if not isinstance(info, dict):
        raise refused("not a JSON object")
    env_id = info.get("env_id", "")
    if not (env_id is None or isinstance(env_id, str) and 0 < len(env_id) <= 200 and env_id.isprintable()):
        raise refused("its env_id is not an env id")
    for key in ("obs_dim", "n_actions"):
        if not (type(info.get(key)) is int and 0 < info[key] <= MAX_SIZE):
            raise refused(f"its {key} is not a whole number in 1..{MAX_SIZE}")
    return info


def card(r: dict[str, Any]) -> str:
    """The exported folder's README.md."""
    env = r["env_id"] or "an env the .param did not name"
    score = f"{r['held_out_return']:.1f}" if "held_out_return" in r else "not measured"
    parity_lines = [f"- {name}: max logit difference {r[key]['max_logit_difference']:.1e}, the same greedy action "
                    f"on {r[key]['same_greedy_action']:.0%} of {r['parity_states']:,} states"
                    for key, name in (("paddle_inference", "Paddle Inference"), ("onnx", "onnxruntime")) if key in r]
    return f"""# A PPO policy for {env}

Exported from `{r['source']}` by `python ppo_mountaincar.py export`. Input: a batch of raw
states, float32 [N, {r['obs_dim']}] (the observation normalisation is inside). Output: action
logits, float32 [N, {r['n_actions']}]. The network: {len(r['hidden_sizes'])} hidden layer(s) of
{', '.join(map(str, r['hidden_sizes']))} {r['activation']} units. Greedy action: `argmax(logits)`;
a stochastic policy samples from `softmax(logits)` (the model itself does not sample).
Mean return over 100 held-out episodes (seeds 1,000,000 + i): {score}.

Checked against the .param on {r['parity_states']:,} states over the observation box:
{chr(10).join(parity_lines)}

## Paddle Inference (Python; the C++ API reads the same two files)

```python
import numpy as np
from paddle import inference

config = inference.Config("policy.json", "policy.pdiparams")
config.disable_gpu()
config.disable_glog_info()  # else 40-60 lines of "Running PIR pass"
predictor = inference.create_predictor(config)
state = np.zeros((1, {r['obs_dim']}), np.float32)
handle = predictor.get_input_handle(predictor.get_input_names()[0])
handle.reshape(list(state.shape))
handle.copy_from_cpu(state)
predictor.run()
action = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu().argmax(1)
```

## onnxruntime

```python
import numpy as np
import onnxruntime

session = onnxruntime.InferenceSession("policy.onnx", providers=["CPUExecutionProvider"])
state = np.zeros((1, {r['obs_dim']}), np.float32)
action = session.run(None, {{session.get_inputs()[0].name: state}})[0].argmax(1)
```
"""
