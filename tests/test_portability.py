"""Where learners run (Windows, macOS): nothing Unix-only at import time; a short training, an
eval and an export work without `fcntl` and `os.O_NOFOLLOW`, hidden here as Windows lacks them
(one fresh process, so that no module was imported with them before). The CPU's vendor where
/proc is missing."""
import subprocess
import sys
import textwrap

from helpers import QUICK, ROOT
from ppo_toolbox import cpu

AS_ON_WINDOWS = """
import importlib.abc, os, sys

class NoFcntl(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "fcntl":
            raise ModuleNotFoundError("No module named 'fcntl'", name="fcntl")

sys.modules.pop("fcntl", None)
sys.meta_path.insert(0, NoFcntl())
del os.O_NOFOLLOW
"""


def test_every_module_imports_and_train_eval_export_run_without_fcntl_and_o_nofollow(tmp_path):
    code = AS_ON_WINDOWS + textwrap.dedent(f"""
        import importlib, pkgutil, runpy
        sys.path.insert(0, {str(ROOT)!r})
        import ppo_toolbox
        for module in pkgutil.iter_modules(ppo_toolbox.__path__):
            importlib.import_module("ppo_toolbox." + module.name)
        latest = {str(tmp_path / "param" / "net_param" / "actor_net.param")!r}
        for argv in (["--total-timesteps", "512", *{QUICK!r}, "--param-dir", {str(tmp_path / "param")!r},
                      "--logdir", {str(tmp_path / "exp")!r}],
                     ["eval", latest, "--episodes", "3"], ["export", latest, "--out", "exported"]):
            sys.argv = ["ppo_mountaincar.py", *argv]
            try:
                runpy.run_path({str(ROOT / "ppo_mountaincar.py")!r}, run_name="__main__")
            except SystemExit as e:
                assert not e.code, argv
        assert "fcntl" not in sys.modules and not hasattr(os, "O_NOFOLLOW")
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    assert (tmp_path / "exported" / "policy.pdiparams").is_file() and "mean return" in proc.stdout
    assert "no file locks" in proc.stderr  # what is missing, said in one line


def test_the_cpu_vendor_without_proc_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.setenv("PROCESSOR_IDENTIFIER", "AMD64 Family 25 Model 33 Stepping 2, AuthenticAMD")  # Windows'
    assert cpu.cpu_vendor(tmp_path / "no-such-file") == "AuthenticAMD"
    monkeypatch.delenv("PROCESSOR_IDENTIFIER")
    assert cpu.cpu_vendor(tmp_path / "no-such-file") is None
