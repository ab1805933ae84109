"""Mutation check of the PPO formulas: apply each one-line mutation below to a copy of the repo
and run tests/test_algorithm.py on it; every mutation must make it fail (caught).

    python benchmarks/mutations.py        # prints a Markdown table: mutation, result, first failing test, seconds
"""
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (what it breaks, file, the exact code, the mutated code)
M = [
 ("entropy term's sign flipped in the loss", "ppo_mountaincar.py",
  "loss = policy_loss - self.ent_coef * entropy + value_loss", "loss = policy_loss + self.ent_coef * entropy + value_loss"),
 ("entropy_of negated", "ppo_mountaincar.py",
  "return -(paddle.exp(log_probs) * log_probs).sum(-1).mean()", "return (paddle.exp(log_probs) * log_probs).sum(-1).mean()"),
 ("clip_grad_global_norm a no-op", "ppo_mountaincar.py",
  "    grads = [p.grad for p in params if p.grad is not None]\n", "    return\n    grads = [p.grad for p in params if p.grad is not None]\n"),
 ("normalised returns its input", "ppo_mountaincar.py",
  "    centred = x - x.mean()\n", "    return x\n    centred = x - x.mean()\n"),
 ("target_kl ignored", "ppo_mountaincar.py",
  "if args.target_kl is not None and", "if False and args.target_kl is not None and"),
 ("value-loss shape guard removed", "ppo_mountaincar.py",
  "        assert value.shape == minibatch.returns.shape", "        pass"),
 ("approx KL without its -log r term", "ppo_mountaincar.py",
  "kl = ((ratio - 1) - log_ratio).mean()", "kl = (ratio - 1).mean()"),
 ("clip fraction against 2 eps", "ppo_mountaincar.py",
  "(ratio - 1).abs() > self.args.clip", "(ratio - 1).abs() > 2 * self.args.clip"),
 ("env_seeds below 2^31", "ppo_mountaincar.py",
  "return [2**31 + int(x) % 2**31 for x in drawn]", "return [int(x) % 2**31 for x in drawn]"),
 ("arrival_states ignores final_obs", "ppo_mountaincar.py",
  "    if not done.any():\n        return next_obs\n", "    return next_obs\n"),
 ("clipped surrogate takes the maximum", "ppo_mountaincar.py",
  "return -paddle.minimum(ratio * advantages", "return -paddle.maximum(ratio * advantages"),
 ("GAE flows across episode ends", "ppo_mountaincar.py",
  "gamma * gae_lambda * (1.0 - self.dones[t]) * gae", "gamma * gae_lambda * gae"),
 ("bootstraps from terminal states", "ppo_mountaincar.py",
  "gamma * next_values * (1.0 - self.terminated[:steps])", "gamma * next_values"),
 ("gradient clip scales every norm to max_norm", "ppo_mountaincar.py",
  "scale = max_norm / paddle.maximum(norm, paddle.full_like(norm, max_norm))", "scale = max_norm / norm"),
 ("entropy bonus left out of the loss", "ppo_mountaincar.py",
  "loss = policy_loss - self.ent_coef * entropy + value_loss", "loss = policy_loss + value_loss"),
 ("sampling from softmax(pi) (the tutorial's bug)", "ppo_toolbox/acting.py",
  "np.cumsum(np.exp(log_probs), -1)", "np.cumsum(np.exp(np.exp(log_probs)) / np.exp(np.exp(log_probs)).sum(-1, keepdims=True), -1)"),
]

def main() -> int:
    print("| mutation | result | first failing test | seconds |\n|---|---|---|---:|")
    survived = 0
    for name, file, old, new in M:
        survived += not run_one(name, file, old, new)
    return 1 if survived else 0


def run_one(name: str, file: str, old: str, new: str) -> bool:
    """True if tests/test_algorithm.py fails on the mutated copy."""
    work = Path(tempfile.mkdtemp(prefix="mutation-")) / "repo"
    shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".git", "param", "exp", "__pycache__", ".venv*"))
    src = (work / file).read_text()
    assert src.count(old) == 1, f"the code of '{name}' changed: update the mutation"
    (work / file).write_text(src.replace(old, new))
    start = time.time()
    p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "tests/test_algorithm.py"],
                       cwd=work, capture_output=True, text=True, timeout=120)
    failed = [line.split("::")[1].split(" ")[0] for line in p.stdout.splitlines() if line.startswith("FAILED")]
    print(f"| {name} | {'caught' if p.returncode else 'SURVIVED'} | `{failed[0] if failed else '-'}` | "
          f"{time.time() - start:.1f} |", flush=True)
    shutil.rmtree(work.parent, ignore_errors=True)
    return p.returncode != 0


if __name__ == "__main__":
    sys.exit(main())
