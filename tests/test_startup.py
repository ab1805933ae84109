"""The program's first moments (ppo_toolbox/startup.py): a Python too old is one line before
anything else can fail."""
import ast
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT, one_line_error
from ppo_toolbox import startup


@pytest.mark.parametrize("version", [(3, 9, 18, "final", 0), (3, 7, 0, "final", 0), (2, 7, 18, "final", 0)])
def test_a_python_older_than_3_10_is_one_line(version, capsys):
    with pytest.raises(SystemExit) as stop:
        startup.check_python(version)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"error: needs Python 3.10 or newer (this is {'.'.join(map(str, version[:3]))})"), err


@pytest.mark.parametrize("version", [(3, 10, 0, "final", 0), (3, 13, 1, "final", 0), (4, 0, 0, "alpha", 1)])
def test_python_3_10_and_newer_pass(version, capsys):
    startup.check_python(version)
    assert capsys.readouterr().err == ""


def test_the_check_comes_first_in_a_file_an_old_python_parses():
    """An old Python parses the whole script before running any of it: the script and
    startup.py must parse on 3.7 (the first with `from __future__ import annotations`), and
    the check must be the first thing the command line does."""
    for path in (ROOT / "ppo_mountaincar.py", ROOT / "ppo_toolbox" / "startup.py"):
        ast.parse(path.read_text(), feature_version=(3, 7))
    tree = ast.parse((ROOT / "ppo_mountaincar.py").read_text())
    first_main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
    calls = [ast.unparse(n.value) for n in first_main.body if isinstance(n, ast.Expr)]
    assert calls[0] == "check_python()", calls
    assert tree.body.index(first_main) < min(i for i, n in enumerate(tree.body) if isinstance(n, ast.ImportFrom)
                                             and n.module and n.module.startswith("ppo_toolbox."))


OLD_PYTHONS = sorted(Path("/root/.pyenv/versions").glob("3.[789].*/bin/python"))


@pytest.mark.skipif(not OLD_PYTHONS, reason="no Python older than 3.10 on this machine")
@pytest.mark.parametrize("python", OLD_PYTHONS, ids=lambda p: p.parts[-3])
def test_the_real_command_under_an_old_python(python):
    version = python.parts[-3]
    proc = subprocess.run([str(python), str(ROOT / "ppo_mountaincar.py"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert f"needs Python 3.10 or newer (this is {version})" in one_line_error(proc)
    # check_packages alone says so too, not "pip install -r requirements.txt", which fails on that Python
    proc = subprocess.run([str(python), "-c", "from ppo_toolbox.startup import check_packages; check_packages()"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert f"needs Python 3.10 or newer (this is {version})" in one_line_error(proc)
