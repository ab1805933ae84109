"""The READMEs: the English and the Chinese one show the same commands, each one parses, and what
they say of the presets, the script's length and resuming is what the code does."""
import dataclasses
import re
import shlex

import pytest
from helpers import ROOT

import ppo_mountaincar as pm
from ppo_toolbox import settings
from ppo_toolbox import cli as ppo_cli

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
def test_every_documented_command_parses(command, capsys):
    argv = shlex.split(command)[2:]
    if "--help" in argv:  # argparse prints the command's help and exits with 0
        with pytest.raises(SystemExit) as e:
            ppo_cli.parse_command_line(argv)
        named = argv[0] if argv[0] in ppo_cli.COMMANDS else "train"
        assert e.value.code == 0 and capsys.readouterr().out.startswith(f"usage: ppo_mountaincar.py {named} ")
        return
    ns = ppo_cli.parse_command_line(argv)
    if ns.command == "train":
        settings.validate(ppo_cli.args_from_cli(ns))  # and its settings are accepted


@pytest.mark.parametrize("readme", ["README.md", "README_cn.md"])
def test_every_python_block_runs_in_a_fresh_jupyter_kernel(readme, tmp_path):
    """The README's python blocks, in order, as cells of a notebook in a real kernel started in
    an empty folder: no error, no warning on stderr, the figures and the GIF shown inline."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / readme).read_text(encoding="utf-8"), re.S)
    assert blocks
    setup = f"import sys; sys.path.insert(0, {str(ROOT)!r})"  # the repo folder, where a user runs it
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in [setup, *blocks]])
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Warning" not in stderr, stderr
    shown = [o for o in outputs if o.output_type == "display_data"]
    assert sum("image/png" in o.data for o in shown) == 3 and sum("image/gif" in o.data for o in shown) == 1
    assert (tmp_path / "param" / "img" / "replay.gif").is_file()


def readme(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def gradient_steps(args) -> int:
    """Minibatch steps of a whole run: rollouts x epochs x minibatches per rollout (no early stop)."""
    per_rollout = args.num_envs * args.num_steps
    return -(-args.total_timesteps // per_rollout) * args.update_epochs * -(-per_rollout // args.batch_size)


@pytest.mark.parametrize("name", ["README.md", "README_cn.md"])
def test_the_preset_commands_set_what_the_presets_set(name):
    lines = re.findall(r"^(python ppo_mountaincar\.py [^\n]*?)\s+# (\w+)$", readme(name), re.M)
    shown = {preset: command for command, preset in lines if preset in pm.PRESETS}
    assert set(shown) == set(pm.PRESETS) - {"default"}
    for preset, command in shown.items():
        args = ppo_cli.args_from_cli(ppo_cli.parse_command_line(shlex.split(command)[2:]))
        assert dataclasses.replace(args, preset=preset) == pm.preset_args(preset), preset


@pytest.mark.parametrize("name", ["README.md", "README_cn.md"])
def test_the_readmes_numbers_are_the_codes(name):
    text = readme(name)
    best_row = next(line for line in text.splitlines() if line.startswith("| `best` |"))
    for preset in ("default", "best"):  # "about as many gradient steps (2,940 against 2,960)"
        assert f"{gradient_steps(pm.preset_args(preset)):,}" in best_row, preset
    lines = len((ROOT / "ppo_mountaincar.py").read_text().splitlines())
    stated = re.search(r"`ppo_mountaincar\.py`\s*[(（]\D*(\d+)", text)
    assert abs(int(stated.group(1)) - lines) <= 10, (stated.group(1), lines)
    resumable = re.search(r"(?:Only|只能修改)((?:\s*`--[a-z-]+`[,、]?(?: and| 和)?)+)", text)
    flags = set(re.findall(r"`--([a-z-]+)`", resumable.group(1)))
    assert flags == {f.replace("_", "-") for f in settings.with_role(pm.Args, "resumable")}


def test_the_lower_bounds_are_the_floors_ci_installs():
    """Every lower bound in the requirement files is a pin of constraints-floors.txt (the
    versions .ci/floors installs and runs), and both READMEs name the same versions."""
    def pins(name):
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / name).read_text(), re.M))
    floors = pins("constraints-floors.txt")
    bounds = {}
    for name in ("requirements.txt", "requirements-no-paddle.txt"):
        bounds.update(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([0-9][^,;\s]*)", (ROOT / name).read_text(), re.M))
    assert {k.lower(): v for k, v in bounds.items()} == {k.lower(): v for k, v in floors.items()}
    for readme in ("README.md", "README_cn.md"):
        text = (ROOT / readme).read_text()
        for version in floors.values():
            assert version in text, (readme, version)
    assert ".ci/floors" in (ROOT / ".ci" / "run").read_text() and "constraints-floors.txt" in (ROOT / ".ci" / "floors").read_text()
