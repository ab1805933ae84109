"""The CPU math libraries' settings for this process, made before numpy and Paddle do any
arithmetic: numpy's BLAS on one thread, and Paddle's bundled MKL on its fast code path on AMD
CPUs. A setting already in the environment is left as it is. Imports the standard library only.
"""
from __future__ import annotations

import os
from pathlib import Path

# MKL picks its kernels by CPU vendor: on an AMD CPU it takes a generic path, about 3x slower
# at the update's shapes ([512, 64] x [64, 64]: 17-27 GFLOP/s, where numpy's OpenBLAS does 60).
# This old switch, still read by the MKL inside Paddle's CPU wheel (at its first matmul, so
# it may be set after `import paddle`), makes it take the AVX2 path: 53-85 GFLOP/s there,
# with the machine's load (benchmarks/floor.py). Intel CPUs ignore it.
MKL_AVX2 = ("MKL_DEBUG_CPU_TYPE", "5")


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's vendor id (GenuineIntel, AuthenticAMD, ...), or None where it is not told:
    from /proc/cpuinfo (Linux), else from Windows' PROCESSOR_IDENTIFIER ("AMD64 Family 25 ...,
    AuthenticAMD"). macOS tells neither; its CPUs are Intel's or Apple's, which need no setting."""
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as f:
            for _, line in zip(range(64), f):  # the first processor's lines suffice
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    return value.strip()
    except OSError:
        pass
    return os.environ.get("PROCESSOR_IDENTIFIER", "").rpartition(",")[2].strip() or None


def set_math_library_defaults(environ: dict[str, str] | None = None, vendor: str | None = None) -> dict[str, str]:
    """Set the defaults into `environ` (os.environ) unless already set; returns what was set.

    - OPENBLAS_NUM_THREADS=1: the matrices are small, so BLAS threads would only contend (and
      spin) with Paddle's thread and with a second run on the other core. Takes effect if
      numpy is not loaded yet.
    - MKL_DEBUG_CPU_TYPE=5 on AMD CPUs (see MKL_AVX2). It changes the last bits of Paddle's
      matmuls, so a run on an AMD CPU follows another path than before it; still the same
      path every time for a seed.
    """
    environ = os.environ if environ is None else environ
    wanted = {"OPENBLAS_NUM_THREADS": "1"}
    if (vendor or cpu_vendor()) == "AuthenticAMD":
        wanted[MKL_AVX2[0]] = MKL_AVX2[1]
    done = {}
    for key, value in wanted.items():
        if key not in environ:
            environ[key] = done[key] = value
    return done
