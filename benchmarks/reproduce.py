"""Does this machine reproduce the shipped policy? The cross-machine check of the README's
reproducibility statement.

Runs the bare command that made `param/pretrained/` (`python ppo_mountaincar.py --seed 1`) in a
fresh folder and compares its policy with the shipped one: byte for byte (the same machine,
or one whose math kernels round alike), else by score: both actors on the same 100 held-out
episodes, this run's within TOLERANCE of the shipped one's. Exit code 0 when it reproduces
either way, 1 when not.

    python benchmarks/reproduce.py
    python benchmarks/reproduce.py -- --preset best   # another command (compared by score only)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOLERANCE = 4.0  # held-out mean return; seed 1 on the machines seen so far: -101.6 to -104.8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("flags", nargs="*", help="flags for the command, after -- [--seed 1]")
    a = parser.parse_args()
    flags = a.flags or ["--seed", "1"]
    from ppo_mountaincar import evaluate, load_policy
    shipped = ROOT / "param" / "pretrained" / "actor_net.param"
    with tempfile.TemporaryDirectory() as cwd:
        subprocess.run([sys.executable, str(ROOT / "ppo_mountaincar.py"), *flags, "--quiet", "--no-plots"],
                       cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        ours = Path(cwd) / "param" / "net_param" / "actor_net.param"
        identical = a.flags == [] and ours.read_bytes() == shipped.read_bytes()
        scores = {name: evaluate(load_policy(path), "MountainCar-v0", 100)["mean_return"]
                  for name, path in (("shipped", shipped), ("this machine", ours))}
    gap = scores["this machine"] - scores["shipped"]
    print(f"`python ppo_mountaincar.py {' '.join(flags)}`: the policy is "
          f"{'byte-identical to' if identical else 'not byte-identical to'} param/pretrained/actor_net.param")
    print(f"held-out mean return (100 episodes): shipped {scores['shipped']:.1f}, this machine "
          f"{scores['this machine']:.1f} ({gap:+.1f}; tolerance {TOLERANCE:g})")
    reproduced = identical or abs(gap) <= TOLERANCE
    print("reproduced" + (" byte for byte" if identical else " within the tolerance" if reproduced else ": NO"))
    return 0 if reproduced else 1


if __name__ == "__main__":
    sys.exit(main())
