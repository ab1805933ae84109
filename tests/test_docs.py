"""The READMEs: the English and the Chinese one show the same commands, and each one parses."""
import re
import shlex

import pytest
from helpers import ROOT

import ppo_mountaincar as pm

COMMAND = re.compile(r"^\s*(python ppo_mountaincar\.py[^#\n]*)", re.M)


def commands(name: str) -> set[str]:
    """Every `python ppo_mountaincar.py ...` line of a README's code blocks, comments dropped."""
    return {" ".join(c.split()) for c in COMMAND.findall((ROOT / name).read_text(encoding="utf-8"))}


def test_both_readmes_show_the_same_commands():
    english, chinese = commands("README.md"), commands("README_cn.md")
    assert len(english) >= 10
    assert english == chinese, f"only in README.md: {english - chinese}; only in README_cn.md: {chinese - english}"


def test_the_readmes_link_to_each_other():
    assert "(README_cn.md)" in (ROOT / "README.md").read_text(encoding="utf-8").split("\n\n")[1]
    assert "(README.md)" in (ROOT / "README_cn.md").read_text(encoding="utf-8").split("\n\n")[1]


@pytest.mark.parametrize("command", sorted(commands("README.md")))
def test_every_documented_command_parses(command):
    argv = shlex.split(command)[2:]
    if "--help" in argv:
        return  # argparse prints and exits; test_cli checks the help
    ns = pm.parse_command_line(argv)
    if ns.command == "train":
        pm.validate(pm.args_from_cli(ns))  # and its settings are accepted
