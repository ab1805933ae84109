"""Mutation check of the PPO formulas: each one-line mutation below, applied to the script's
source and loaded as a fresh module in this process, must make a test of
tests/test_algorithm.py fail (caught). tests/test_mutations.py fails the build on a mutation
that survives; this prints the table.

    python benchmarks/mutations.py        # a Markdown table: mutation, result, first failing test, seconds
"""
from __future__ import annotations

import inspect
import sys
import time
import types
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT, FORMULA_TESTS = ROOT / "ppo_mountaincar.py", ROOT / "tests" / "test_algorithm.py"

# (what it breaks, the exact code in the script, the mutated code)
MUTATIONS = [
    ("entropy term's sign flipped in the loss",
     "loss = policy_loss - self.ent_coef * entropy + value_loss", "loss = policy_loss + self.ent_coef * entropy + value_loss"),
    ("entropy_of negated",
     "return -(paddle.exp(log_probs) * log_probs).sum(-1).mean()", "return (paddle.exp(log_probs) * log_probs).sum(-1).mean()"),
    ("clip_grad_global_norm a no-op",
     "    grads = [p.grad for p in params if p.grad is not None]\n", "    return\n    grads = [p.grad for p in params if p.grad is not None]\n"),
    ("normalised returns its input",
     "    centred = x - x.mean()\n", "    return x\n    centred = x - x.mean()\n"),
    ("target_kl ignored",
     "if args.target_kl is not None and", "if False and args.target_kl is not None and"),
    ("value-loss shape guard removed",
     "        assert value.shape == minibatch.returns.shape", "        pass"),
    ("approx KL without its -log r term",
     "kl = ((ratio - 1) - log_ratio).mean()", "kl = (ratio - 1).mean()"),
    ("clip fraction against 2 eps",
     "(ratio - 1).abs() > self.args.clip", "(ratio - 1).abs() > 2 * self.args.clip"),
    ("env_seeds below 2^31",
     "return [2**31 + int(x) % 2**31 for x in drawn]", "return [int(x) % 2**31 for x in drawn]"),
    ("arrival_states ignores final_obs",
     "    if not done.any():\n        return next_obs\n", "    return next_obs\n"),
    ("clipped surrogate takes the maximum",
     "return -paddle.minimum(ratio * advantages", "return -paddle.maximum(ratio * advantages"),
    ("GAE flows across episode ends",
     "gamma * gae_lambda * (1.0 - self.dones[t]) * gae", "gamma * gae_lambda * gae"),
    ("bootstraps from terminal states",
     "gamma * next_values * (1.0 - self.terminated[:steps])", "gamma * next_values"),
    ("gradient clip scales every norm to max_norm",
     "scale = max_norm / paddle.maximum(norm, paddle.full_like(norm, max_norm))", "scale = max_norm / norm"),
    ("entropy bonus left out of the loss",
     "loss = policy_loss - self.ent_coef * entropy + value_loss", "loss = policy_loss + value_loss"),
    ("sampling from softmax(pi) (the tutorial's bug)",
     "np.cumsum(np.exp(log_probs), -1)",
     "np.cumsum(np.exp(np.exp(log_probs)) / np.exp(np.exp(log_probs)).sum(-1, keepdims=True), -1)"),
]


def mutated_source(old: str, new: str) -> str:
    """The script's source with the one occurrence of `old` replaced by `new`."""
    source = SCRIPT.read_text(encoding="utf-8")
    if source.count(old) != 1:
        raise ValueError(f"the script no longer holds {old.strip()!r} once: update the mutation")
    return source.replace(old, new)


def first_failing_test(source: str) -> str | None:
    """The first test of tests/test_algorithm.py that fails when the script is `source`, run
    in this process (its failure, e.g. "test_x[0.5]: AssertionError"), or None if all pass.
    Both files are executed afresh, with `source` standing as the module `ppo_mountaincar`."""
    saved = sys.modules.get("ppo_mountaincar")
    try:
        sys.modules["ppo_mountaincar"] = script = types.ModuleType("ppo_mountaincar")
        script.__file__ = str(SCRIPT)
        exec(compile(source, str(SCRIPT), "exec"), script.__dict__)
        tests: dict[str, Any] = {"__name__": "mutation_test_algorithm", "__file__": str(FORMULA_TESTS)}
        exec(compile(FORMULA_TESTS.read_text(encoding="utf-8"), str(FORMULA_TESTS), "exec"), tests)
        for name, test in tests.items():
            if name.startswith("test_") and callable(test):
                for label, kwargs in _calls(test):
                    try:
                        test(**kwargs)
                    except pytest.skip.Exception:
                        continue
                    except (Exception, pytest.fail.Exception) as e:  # noqa: BLE001 - any failure catches it
                        return f"{name}{label}: {type(e).__name__}"
        return None
    finally:
        if saved is None:
            sys.modules.pop("ppo_mountaincar", None)
        else:
            sys.modules["ppo_mountaincar"] = saved


def _calls(test: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The calls pytest would make of a test: one per row of its parametrize marks (no fixtures)."""
    rows: list[tuple[str, dict[str, Any]]] = [("", {})]
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            names = [n.strip() for n in mark.args[0].split(",")] if isinstance(mark.args[0], str) else list(mark.args[0])
            values = [v if len(names) > 1 else (v,) for v in mark.args[1]]
            rows = [(f"{label}[{'-'.join(map(str, v))}]", {**kwargs, **dict(zip(names, v))})
                    for label, kwargs in rows for v in values]
    missing = set(inspect.signature(test).parameters) - set(rows[0][1])
    if missing:
        raise TypeError(f"{test.__name__} takes the fixture {sorted(missing)[0]}: the mutation check runs "
                        "formula tests without fixtures")
    return iter(rows)


def main() -> int:
    print("| mutation | result | first failing test | seconds |\n|---|---|---|---:|")
    survived = 0
    for name, old, new in MUTATIONS:
        start = time.perf_counter()
        failed = first_failing_test(mutated_source(old, new))
        survived += failed is None
        print(f"| {name} | {'caught' if failed else 'SURVIVED'} | `{failed or '-'}` | "
              f"{time.perf_counter() - start:.1f} |", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
